package main

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gotodo/todo/cluster/clustertest"
)

// netLab is a set of network namespaces made by a test: one per node,
// joined by a bridge in a namespace of its own (the cluster's network,
// 10.213.0.0/24), and a direct link from the test's namespace to each
// node (a /30 of 10.214.X.0/24) for the test's HTTP requests, which
// therefore go on when the cluster's network is cut. Every namespace, and
// with them every link, is deleted when the test ends.
//
// The direct links' addresses are in the host's namespace, which the
// tests of other processes share: X is one no other link of the host
// uses. With a fixed one, two test processes at once routed each other's
// requests to the wrong namespace (connection refused).
type netLab struct {
	t       *testing.T
	prefix  string
	nodes   int
	hostNet int // X of 10.214.X.0/24
}

// newNetLab makes the namespaces, or skips the test with the reason it
// cannot.
func newNetLab(t *testing.T, nodes int) *netLab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the partition test needs root, to make network namespaces; skipping")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("the partition test needs the ip command (Debian package iproute2); skipping")
	}
	l := &netLab{t: t, prefix: fmt.Sprintf("t%04x", os.Getpid()&0xffff), nodes: nodes, hostNet: freeHostNet(t)}
	t.Cleanup(l.remove)
	br := l.ns("br")
	l.ip("netns", "add", br)
	l.ip("-n", br, "link", "add", "br0", "type", "bridge")
	l.ip("-n", br, "link", "set", "br0", "up")
	for i := 1; i <= nodes; i++ {
		ns := l.ns(fmt.Sprint(i))
		c, b, h, m := l.prefix+fmt.Sprint("c", i), l.prefix+fmt.Sprint("b", i), l.prefix+fmt.Sprint("h", i), l.prefix+fmt.Sprint("m", i)
		l.ip("netns", "add", ns)
		l.ip("-n", ns, "link", "set", "lo", "up")
		l.ip("link", "add", c, "type", "veth", "peer", "name", b)
		l.ip("link", "set", c, "netns", ns)
		l.ip("link", "set", b, "netns", br)
		l.ip("-n", br, "link", "set", b, "master", "br0")
		l.ip("-n", br, "link", "set", b, "up")
		l.ip("-n", ns, "addr", "add", fmt.Sprintf("10.213.0.%d/24", i), "dev", c)
		l.ip("-n", ns, "link", "set", c, "up")
		l.ip("link", "add", h, "type", "veth", "peer", "name", m)
		l.ip("link", "set", m, "netns", ns)
		l.ip("addr", "add", l.hostAddr(i)+"/30", "dev", h)
		l.ip("link", "set", h, "up")
		l.ip("-n", ns, "addr", "add", l.nodeAddr(i)+"/30", "dev", m)
		l.ip("-n", ns, "link", "set", m, "up")
	}
	return l
}

func (l *netLab) ns(name string) string { return l.prefix + "-" + name }

// hostAddr and nodeAddr are the addresses of the direct link to node i
// (from 1): the test's end and the node's.
func (l *netLab) hostAddr(i int) string { return fmt.Sprintf("10.214.%d.%d", l.hostNet, 4*i+1) }
func (l *netLab) nodeAddr(i int) string { return fmt.Sprintf("10.214.%d.%d", l.hostNet, 4*i+2) }

// freeHostNet returns an X that no address of the host's namespace uses
// in 10.214.X.0/24, starting from one this process's PID picks.
func freeHostNet(t *testing.T) int {
	t.Helper()
	for k := range 256 {
		x := (os.Getpid() + k) & 0xff
		out, err := exec.Command("ip", "-o", "addr", "show", "to", fmt.Sprintf("10.214.%d.0/24", x)).Output()
		if err != nil {
			t.Fatalf("ip addr show: %v", err)
		}
		if len(strings.TrimSpace(string(out))) == 0 {
			return x
		}
	}
	t.Skip("every 10.214.X.0/24 of the host is in use; skipping")
	return 0
}

func (l *netLab) ip(args ...string) {
	l.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		l.t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// cut takes node i off the cluster's network, or puts it back.
func (l *netLab) cut(i int, off bool) {
	state := "up"
	if off {
		state = "down"
	}
	l.ip("-n", l.ns("br"), "link", "set", l.prefix+fmt.Sprint("b", i), state)
}

// remove deletes the host's ends of the direct links, then the
// namespaces, and with them their links. The kernel tears a deleted
// namespace down in the background, and a veth pair with it: the host's
// end would outlive the call for a while and its name clash with the next
// lab of this process (same PID, same prefix: the test run again under
// -count or -cpu), so it is deleted here first, which deletes the pair at
// once.
func (l *netLab) remove() {
	for i := 1; i <= l.nodes; i++ {
		exec.Command("ip", "link", "del", l.prefix+fmt.Sprint("h", i)).Run()
	}
	for i := 1; i <= l.nodes; i++ {
		exec.Command("ip", "netns", "del", l.ns(fmt.Sprint(i))).Run()
	}
	exec.Command("ip", "netns", "del", l.ns("br")).Run()
}

// A 3-node cluster in network namespaces, under adds at all three: one
// node is cut off. The majority keeps serving; the minority answers 503
// within its timeout and applies nothing; once the network heals, the
// node serves again and no acknowledged entry is lost.
func TestCluster_Partition(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the partition test")
	}
	// Not parallel: the stall it bounds grows with the load of the
	// other tests on the machine.
	lab := newNetLab(t, 3)
	bin := buildBinary(t)
	dir := t.TempDir()
	secret := clusterSecret(t, dir)
	const timeout = 3 * time.Second
	nodes := make([]*clusterChild, 3)
	for i := range nodes {
		name := fmt.Sprint("p", i+1)
		var peers []string
		for j := range nodes {
			if j != i {
				peers = append(peers, fmt.Sprintf("10.213.0.%d:6222", j+1))
			}
		}
		natsAddr := lab.nodeAddr(i+1) + ":4222"
		nodes[i] = &clusterChild{name: name, netns: lab.ns(fmt.Sprint(i + 1)), natsAddr: natsAddr, user: natsUser(t, secret), args: []string{
			"-node", name, "-cluster", fmt.Sprintf("10.213.0.%d:6222", i+1), "-peers", strings.Join(peers, ","),
			"-addr", lab.nodeAddr(i+1) + ":5454", "-nats-addr", natsAddr, "-data", filepath.Join(dir, name),
			"-log-format", "json", "-timeout", timeout.String(), "-insecure", "-cluster-secret-file", secret,
		}}
		nodes[i].start(t, bin)
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 8}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 15 * time.Second}
	for _, c := range nodes {
		waitHealthy(t, client, c, 20*time.Second)
	}
	waitReplicated(t, nodes[0], len(nodes), 30*time.Second)
	lists := make([]string, 20)
	for i := range lists {
		lists[i] = fmt.Sprint("part-", i)
	}
	h := clustertest.NewHistory()
	stop := make(chan struct{})
	all := func() []*clusterChild { return nodes }
	load := driver(client, h, all, lists, stop)
	var once sync.Once
	stopLoad := func() { once.Do(func() { close(stop); load.Wait() }) }
	defer stopLoad()
	time.Sleep(2 * time.Second) // load before the partition, which gives every list an owner
	own, owned := ownWriters(t, client, inspect(t, nodes[0]), h, all, lists, stop)
	defer own.Wait()
	health := watchHealth(client, h, all)

	minority := nodes[2]
	cutAt := h.Since()
	lab.cut(3, true)
	t.Logf("cut %s off at %v", minority.name, cutAt)
	time.Sleep(15 * time.Second) // load through the partition
	healAt := h.Since()
	lab.cut(3, false)
	t.Logf("healed at %v", healAt)
	took := waitHealthy(t, client, minority, 30*time.Second)
	t.Logf("%s healthy again %v after the heal", minority.name, took.Round(time.Millisecond))
	time.Sleep(3 * time.Second) // load on all three again
	stopLoad()
	own.Wait()
	checkHealth(t, health.end(), h, owned)

	final := readAll(t, client, nodes[0].addr, lists)
	present := make(map[string]bool)
	for _, es := range final {
		for _, e := range es {
			present[e.Title] = true
		}
	}
	// The minority: every add sent to it while cut off (from a moment
	// after the cut, when the adds already on their way have been
	// answered) is answered 503 within the timeout, and none is applied.
	var minorityAdds, majorityAcked int
	for _, op := range h.Ops() {
		during := op.Start > cutAt+500*time.Millisecond && op.End < healAt
		if !during {
			continue
		}
		if op.Node != minority.name {
			if op.Outcome == clustertest.Acked {
				majorityAcked++
			}
			continue
		}
		minorityAdds++
		if op.Outcome == clustertest.Acked || !strings.HasPrefix(op.Err, "503") && op.Outcome == clustertest.Unknown {
			t.Errorf("the minority answered an add at %v with %v %s", op.Start, op.Outcome, op.Err)
		}
		if d := op.End - op.Start; d > timeout+time.Second {
			t.Errorf("the minority took %v to answer an add, more than its timeout %v", d, timeout)
		}
		if present[op.Title] {
			t.Errorf("the minority applied %q, answered %s", op.Title, op.Err)
		}
	}
	if minorityAdds == 0 {
		t.Error("no add reached the minority while it was cut off")
	}
	gap, gapAt := h.LongestGap(cutAt, healAt)
	t.Logf("during the partition: %d adds to the minority, all refused; %d acknowledged by the majority; longest stall of acknowledgements %v (from %v)",
		minorityAdds, majorityAcked, gap.Round(time.Millisecond), gapAt.Round(time.Millisecond))
	after, afterAt := h.LongestGap(healAt, 0)
	t.Logf("after the heal: longest stall of acknowledgements %v (from %v)", after.Round(time.Millisecond), afterAt.Round(time.Millisecond))
	if majorityAcked == 0 || gap >= 10*time.Second {
		t.Errorf("the majority did not keep serving: %d acknowledged, a stall of %v", majorityAcked, gap)
	}
	a, r, u := h.Counts()
	t.Logf("%d adds acknowledged, %d refused, %d unknown", a, r, u)
	for _, p := range h.Check(final) {
		t.Error(p)
	}
	batched, writes := batchedWrites(t, nodes[0].natsAddr, nodes[0].user)
	t.Logf("%d of the %d writes the stream holds travelled in atomic batches", batched, writes)
	if batched == 0 {
		t.Error("no write travelled in an atomic batch: the test did not try the batch path")
	}
	for _, c := range nodes {
		c.stop(t)
	}
}
