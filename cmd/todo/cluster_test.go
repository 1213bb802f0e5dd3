package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gotodo/todo"
	"github.com/gotodo/todo/cluster/clustertest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The tests of this file run clusters of the built binary as child
// processes: on 127.0.0.1, or in network namespaces the test makes, and
// stop them by PID.

// clusterChild is one node of a cluster running as a child process.
type clusterChild struct {
	name     string
	args     []string
	netns    string // run in this network namespace, or ""
	cmd      *exec.Cmd
	addr     string // HTTP
	natsAddr string
	user     nats.Option // the credentials of its NATS port, or nil
	exited   chan struct{}
	err      error
	logs     syncBuffer
}

// start starts the node and waits until it listens. A node still running
// when the test ends is killed.
func (c *clusterChild) start(t *testing.T, bin string) {
	t.Helper()
	c.exited = make(chan struct{})
	if c.netns != "" {
		// ip netns exec sets the namespace and execs the binary: the PID
		// is the binary's.
		c.cmd = exec.Command("ip", append([]string{"netns", "exec", c.netns, bin}, c.args...)...)
	} else {
		c.cmd = exec.Command(bin, c.args...)
	}
	c.cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	stderr, err := c.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	listening := make(chan string, 1)
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			c.logs.Write(append(sc.Bytes(), '\n'))
			var l struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "listening" {
				listening <- l.Addr
			}
		}
	}()
	exited := c.exited
	go func() {
		<-drained
		c.err = c.cmd.Wait()
		close(exited)
	}()
	cmd := c.cmd
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			cmd.Process.Kill()
			<-exited
		}
	})
	select {
	case c.addr = <-listening:
	case <-exited:
		t.Fatalf("node %s exited before listening: %v\n%s", c.name, c.err, c.logs.String())
	case <-time.After(15 * time.Second):
		t.Fatalf("node %s is not listening:\n%s", c.name, c.logs.String())
	}
}

// kill sends SIGKILL to the node's PID and waits for it to die.
func (c *clusterChild) kill(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-c.exited
}

// stop sends SIGTERM to the node's PID: it leaves the cluster gracefully
// and must exit 0.
func (c *clusterChild) stop(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("node %s did not exit:\n%s", c.name, c.logs.String())
	}
	if c.err != nil {
		t.Errorf("node %s exited with %v:\n%s", c.name, c.err, c.logs.String())
	}
}

// freeLoopbackAddr returns a 127.0.0.1 address that was free a moment ago.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitHealthy waits until the node's /healthz says it can write.
func waitHealthy(t *testing.T, client *http.Client, c *clusterChild, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	var last string
	for time.Since(start) < within {
		resp, err := client.Get("http://" + c.addr + "/healthz")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(start)
			}
			last = string(body)
		} else {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("node %s not healthy after %v: %s\n%s", c.name, within, last, c.logs.String())
	return 0
}

// httpAdd adds an entry with a unique title to list through the node at
// addr and records what the client learned.
func httpAdd(client *http.Client, h *clustertest.History, node, addr, list, title string) clustertest.Outcome {
	start := time.Now()
	body, _ := json.Marshal(map[string]string{"date": "2013-12-19", "title": title})
	op := clustertest.Op{List: list, Title: title, Node: node}
	resp, err := client.Post("http://"+addr+"/lists/"+list+"/entries", "application/json", bytes.NewReader(body))
	if err != nil {
		op.Outcome, op.Err = clustertest.Unknown, err.Error()
		h.Record(op, start)
		return op.Outcome
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var out struct {
		ID    int
		Error string
	}
	json.Unmarshal(data, &out)
	switch {
	case resp.StatusCode == http.StatusCreated:
		op.Outcome, op.ID = clustertest.Acked, out.ID
	case resp.StatusCode == http.StatusServiceUnavailable &&
		(strings.Contains(out.Error, "unavailable for now") || strings.Contains(out.Error, "shutting down")):
		// A refusal that says nothing was changed (docs/http.md): the list
		// is moving or cannot be served, or the node is stopping. A 503
		// after a timeout may have been applied.
		op.Outcome, op.Err = clustertest.Refused, out.Error
	default:
		op.Outcome, op.Err = clustertest.Unknown, fmt.Sprintf("%d %s", resp.StatusCode, out.Error)
	}
	h.Record(op, start)
	return op.Outcome
}

// readAll reads lists through the node at addr. A list that is moving,
// or whose stream is electing a leader, answers 503 for a while: that is
// retried for up to 30s, since what is read here is the data, not the
// availability.
func readAll(t *testing.T, client *http.Client, addr string, lists []string) map[string][]todo.Entry {
	t.Helper()
	out := make(map[string][]todo.Entry)
	for _, l := range lists {
		deadline := time.Now().Add(30 * time.Second)
		after := 0
		for {
			// Every page of the list: the JSON API answers at most limit
			// entries, and "next" when there are more.
			resp, err := client.Get(fmt.Sprintf("http://%s/lists/%s/entries?limit=1000&after=%d", addr, l, after))
			if err != nil {
				t.Fatal(err)
			}
			var body struct {
				Entries []struct {
					ID    int
					Title string
				}
				Next string
			}
			err = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusServiceUnavailable && time.Now().Before(deadline) {
				time.Sleep(200 * time.Millisecond)
				continue
			}
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("read %s through %s: %d %v", l, addr, resp.StatusCode, err)
			}
			for _, e := range body.Entries {
				out[l] = append(out[l], todo.Entry{ID: e.ID, Title: e.Title})
				after = e.ID
			}
			if body.Next == "" {
				break
			}
		}
	}
	return out
}

// driver sends adds to the nodes that targets returns, from two clients
// per node, over lists, until stop is closed.
func driver(client *http.Client, h *clustertest.History, targets func() []*clusterChild, lists []string, stop <-chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	var seq sync.Mutex
	n := 0
	next := func() int {
		seq.Lock()
		defer seq.Unlock()
		n++
		return n
	}
	for w := range 6 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				ts := targets()
				c := ts[w%len(ts)]
				i := next()
				httpAdd(client, h, c.name, c.addr, lists[i%len(lists)], fmt.Sprintf("%s-%d", c.name, i))
			}
		})
	}
	return &wg
}

// clusterSecret makes a cluster's secret in dir with `todo
// cluster-secret`, as an operator would, and returns its file.
func clusterSecret(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "cluster-secret")
	if code, stdout, stderr := runMain(t, nil, "cluster-secret", path); code != exitOK || stdout != "" || stderr != "" {
		t.Fatalf("todo cluster-secret: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	return path
}

// natsUser is the credentials a NATS client gives at the -nats-addr of a
// node started with the secret in secretFile, as docs/security.md
// derives them: the user "todo", and the hex of the HMAC-SHA-256 of "todo
// nats client v1" keyed by the secret.
func natsUser(t *testing.T, secretFile string) nats.Option {
	t.Helper()
	b, err := os.ReadFile(secretFile)
	if err != nil {
		t.Fatal(err)
	}
	m := hmac.New(sha256.New, bytes.TrimSpace(b))
	m.Write([]byte("todo nats client v1"))
	return nats.UserInfo("todo", hex.EncodeToString(m.Sum(nil)))
}

// replicaCurrent waits until the node's replica of the lists' stream has
// caught up with the leader, and returns how long that took.
func replicaCurrent(t *testing.T, natsAddr string, user nats.Option, node string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	nc, err := nats.Connect("nats://"+natsAddr, user)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	for time.Since(start) < within {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		s, err := js.Stream(ctx, "TODO_LISTS")
		if err == nil {
			if info, err := s.Info(ctx); err == nil && info.Cluster != nil {
				if info.Cluster.Leader == node {
					cancel()
					return time.Since(start)
				}
				for _, r := range info.Cluster.Replicas {
					if r.Name == node && r.Current && r.Lag == 0 {
						cancel()
						return time.Since(start)
					}
				}
			}
		}
		cancel()
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("node %s's replica did not catch up within %v", node, within)
	return 0
}

// batchedWrites counts the lists' writes, as a node's embedded server
// holds them now, and those of them that travelled in an atomic batch
// (they carry the batch's id): what the fault tests say of the batch path
// depends on the adds their drivers made sharing commits.
func batchedWrites(t *testing.T, natsAddr string, user nats.Option) (batched, all int) {
	t.Helper()
	nc, err := nats.Connect("nats://"+natsAddr, user)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, "TODO_LISTS")
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.CreateConsumer(ctx, jetstream.ConsumerConfig{
		AckPolicy: jetstream.AckNonePolicy, MemoryStorage: true, Replicas: 1, InactiveThreshold: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	for seq := uint64(0); seq < info.State.LastSeq; {
		msgs, err := c.Fetch(500, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for m := range msgs.Messages() {
			got++
			all++
			if m.Headers().Get("Nats-Batch-Id") != "" {
				batched++
			}
			if meta, err := m.Metadata(); err == nil {
				seq = meta.Sequence.Stream
			}
		}
		if err := msgs.Error(); got == 0 && errors.Is(err, nats.ErrNoResponders) && ctx.Err() == nil {
			// The consumer is made, but its server's interest in the
			// pull requests has not reached this server yet (seen once,
			// just after a partition healed): this reads the data, not
			// the availability, so it asks again within ctx.
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if err := msgs.Error(); err != nil || got == 0 {
			t.Fatalf("reading the lists' stream after sequence %d of %d: %v", seq, info.State.LastSeq, err)
		}
	}
	return batched, all
}

// A 3-node cluster of processes on 127.0.0.1, with a cluster secret,
// under adds at all three: SIGKILL of the lists' stream leader stalls
// writes for less than 10s and loses no acknowledged entry; restarted on
// its data directory, the node catches up. All along, /healthz tells the
// truth (see checkHealth).
func TestCluster_KillStreamLeader(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the multi-process cluster test")
	}
	// Not parallel: the stall it bounds grows with the load of the
	// other tests on the machine.
	bin := buildBinary(t)
	nodes := loopbackCluster(t, bin, "k", 3, "-timeout", "3s")
	tr := &http.Transport{MaxIdleConnsPerHost: 8}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	lists := make([]string, 20)
	for i := range lists {
		lists[i] = fmt.Sprint("kill-", i)
	}
	h := clustertest.NewHistory()
	var mu sync.Mutex
	targets := nodes
	current := func() []*clusterChild { mu.Lock(); defer mu.Unlock(); return targets }
	stop := make(chan struct{})
	load := driver(client, h, current, lists, stop)
	var once sync.Once
	stopLoad := func() { once.Do(func() { close(stop); load.Wait() }) }
	defer stopLoad()
	time.Sleep(2 * time.Second) // load before the kill, which gives every list an owner
	js := inspect(t, nodes[0])
	own, owned := ownWriters(t, client, js, h, current, lists, stop)
	health := watchHealth(client, h, current) // a node restarting is polled once it is healthy again: its address changes
	defer own.Wait()

	leader := leaderOf(js, "TODO_LISTS")
	var victim *clusterChild
	var survivors []*clusterChild
	for _, c := range nodes {
		if c.name == leader {
			victim = c
		} else {
			survivors = append(survivors, c)
		}
	}
	if victim == nil {
		t.Fatalf("the leader %q is none of the nodes", leader)
	}
	mu.Lock()
	targets = survivors
	mu.Unlock()
	killedAt := h.Since()
	victim.kill(t)
	t.Logf("killed %s, the lists' stream leader, by PID %d at %v", victim.name, victim.cmd.Process.Pid, killedAt)
	time.Sleep(12 * time.Second) // load through the failover

	gap, gapAt := h.LongestGap(killedAt, h.Since())
	t.Logf("longest stall of acknowledgements after the kill: %v (from %v)", gap.Round(time.Millisecond), gapAt.Round(time.Millisecond))
	if gap >= 10*time.Second {
		t.Errorf("writes stalled %v after the kill, more than 10s", gap)
	}
	acked := 0
	for _, op := range h.Ops() {
		if op.Outcome == clustertest.Acked && op.Start > killedAt+gap {
			acked++
		}
	}
	if acked == 0 {
		t.Fatal("no write succeeded after the kill")
	}

	// The killed node comes back on its data directory and catches up.
	restartedAt := h.Since()
	victim.start(t, bin)
	took := waitHealthy(t, client, victim, 20*time.Second)
	caught := replicaCurrent(t, victim.natsAddr, victim.user, victim.name, 20*time.Second)
	t.Logf("%s restarted: healthy after %v, its replica current after %v more", victim.name, took.Round(time.Millisecond), caught.Round(time.Millisecond))
	mu.Lock()
	targets = nodes
	mu.Unlock()
	time.Sleep(2 * time.Second) // load on all three again
	stopLoad()
	own.Wait()
	checkHealth(t, health.end(), h, owned)

	after, afterAt := h.LongestGap(restartedAt, 0)
	t.Logf("after the restart: longest stall of acknowledgements %v (from %v)", after.Round(time.Millisecond), afterAt.Round(time.Millisecond))
	a, r, u := h.Counts()
	t.Logf("%d adds acknowledged, %d refused, %d unknown", a, r, u)
	for _, p := range h.Check(readAll(t, client, victim.addr, lists)) {
		t.Error(p)
	}
	batched, all := batchedWrites(t, victim.natsAddr, victim.user)
	t.Logf("%d of the %d writes the stream holds travelled in atomic batches", batched, all)
	if batched == 0 {
		t.Error("no write travelled in an atomic batch: the test did not try the batch path")
	}
	for _, c := range nodes {
		c.stop(t)
	}
}

// The cluster flags: cluster mode is opt-in, and needs a node name.
func TestParseConfig_ClusterFlags(t *testing.T) {
	env := func(string) string { return "" }
	cfg, err := parseConfig([]string{"-node", "n2", "-join", "127.0.0.1:6222", "-peers", "127.0.0.1:6223,127.0.0.1:6224", "-insecure"}, env)
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.cluster
	if !c.enabled() || c.node != "n2" || c.addr != "127.0.0.1:0" || c.peers != "127.0.0.1:6222,127.0.0.1:6223,127.0.0.1:6224" || c.lease != 4*time.Second {
		t.Fatalf("%+v", c)
	}
	if cfg, err := parseConfig(nil, env); err != nil || cfg.cluster.enabled() {
		t.Fatalf("no cluster flag: %+v, %v", cfg, err)
	}
	for _, args := range [][]string{
		{"-cluster", "127.0.0.1:6222"},                                 // no -node
		{"-node", "n1"},                                                // no cluster
		{"-node", "n1", "-peers", "nohost"},                            // not host:port
		{"-node", "n1", "-join", "127.0.0.1"},                          // no port
		{"-node", "n1", "-cluster", "127.0.0.1:6222", "-lease", "0"},   // 0 would mean 4s: refused
		{"-node", "n1", "-cluster", "127.0.0.1:6222", "-lease", "-1s"}, // negative
	} {
		if _, err := parseConfig(args, env); err == nil || errors.Is(err, flag.ErrHelp) {
			t.Errorf("%q: no error", args)
		}
	}
}

// The tests below run cluster nodes in this process, through run: a
// cluster node goes through the lifecycle of one node (listen, serve,
// watchdog, debug listener, signals, shutdown), with every flag that
// applies to both.

// waitRunHealthy waits until the node of r answers /healthz 200.
func waitRunHealthy(t *testing.T, r *running, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		code, body := get(t, "GET", "http://"+r.addr+"/healthz")
		if code == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not healthy after %v: %d %s", within, code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// debugVarsOf reads /debug/vars at base.
func debugVarsOf(t *testing.T, base string) debugVars {
	t.Helper()
	code, body := get(t, "GET", base+"/debug/vars")
	var v debugVars
	if err := json.Unmarshal([]byte(body), &v); code != http.StatusOK || err != nil {
		t.Fatalf("%s/debug/vars: %d %v: %s", base, code, err, body)
	}
	return v
}

// A cluster node's watchdog stops it, as one node's does, when its data
// directory is removed; a lone node, which has no quorum, is enough.
func TestRun_Cluster_WatchdogDirectoryRemoved(t *testing.T) {
	t.Parallel()
	r := startRun(t, "-node", "w1", "-cluster", "127.0.0.1:0", "-watchdog", "20ms", "-insecure")
	// Moved away in one step, not os.RemoveAll'd: the node's JetStream
	// goes on making files in it until the watchdog stops it, and a
	// RemoveAll racing with that failed once with "directory not empty".
	// For the watchdog the directory is gone all the same.
	if err := os.Rename(r.dir, r.dir+".removed"); err != nil {
		t.Fatal(err)
	}
	err := r.wait(t)
	if err == nil || !strings.Contains(err.Error(), "data directory unusable") {
		t.Fatalf("run: %v", err)
	}
	if !strings.Contains(r.logs.String(), "cannot go on") {
		t.Errorf("the reason is not logged:\n%s", r.logs.String())
	}
}

// A cluster node serves pprof, /debug/vars (with its cluster counters)
// and /metrics on -debug-addr, as one node does.
func TestRun_Cluster_DebugAddr(t *testing.T) {
	t.Parallel()
	r := startRun(t, "-node", "d1", "-cluster", "127.0.0.1:0", "-debug-addr", "127.0.0.1:0", "-insecure")
	if r.debugAddr == "" {
		t.Fatal("no debug address logged")
	}
	debug := "http://" + r.debugAddr
	for _, p := range []string{"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/goroutine?debug=1"} {
		if code, body := get(t, "GET", debug+p); code != 200 || body == "" {
			t.Errorf("%s: %d %q", p, code, body)
		}
	}
	if v := debugVarsOf(t, debug); v.Cluster == nil || v.Memstats == nil {
		t.Errorf("debug/vars has no cluster counters or memstats: %+v", v)
	}
	if code, body := get(t, "GET", debug+"/metrics"); code != 200 || !strings.Contains(body, "todo_list_servers ") {
		t.Errorf("metrics: %d %q", code, body)
	}
	if code, _ := get(t, "GET", debug+"/entries?list=bob&date=20131219"); code != 404 {
		t.Errorf("the lists are served on the debug listener: %d", code)
	}
}

// -max-loaded reaches a cluster node's System: two nodes capped at 2
// lists each, 12 lists added, and the nodes retire lists to stay within
// the cap (with the default cap of 20,000 none would be). The nodes have
// a secret and route TLS, as an operator past loopback runs them.
func TestRun_Cluster_MaxLoaded(t *testing.T) {
	t.Parallel()
	a1, a2 := freeLoopbackAddr(t), freeLoopbackAddr(t)
	dir := t.TempDir()
	secure := []string{"-cluster-secret-file", clusterSecret(t, dir)}
	ca := newTestCA(t)
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, ca.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	tlsOf := func(name string) []string {
		cert, key := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
		ca.issueFiles(t, cert, key)
		return []string{"-cluster-ca", caFile, "-cluster-cert", cert, "-cluster-key", key}
	}
	nodes := []*running{
		startRun(t, append(append([]string{"-node", "m1", "-cluster", a1, "-peers", a2, "-max-loaded", "2", "-log-level", "info", "-insecure"}, secure...), tlsOf("m1")...)...),
		startRun(t, append(append([]string{"-node", "m2", "-cluster", a2, "-peers", a1, "-max-loaded", "2", "-log-level", "info", "-insecure"}, secure...), tlsOf("m2")...)...),
	}
	for _, r := range nodes {
		waitRunHealthy(t, r, 30*time.Second)
		if !strings.Contains(r.logs.String(), `"cluster_secret":true,"route_tls":true`) {
			t.Errorf("listening does not say cluster_secret and route_tls:\n%s", r.logs.String())
		}
	}
	const lists, maxLoaded = 12, 2
	for i := range lists {
		url := fmt.Sprintf("http://%s/add_entry?list=cap-%d&date=20131219&title=Dentist", nodes[i%2].addr, i)
		if code, body := get(t, "POST", url); code != 200 || body != "OK" {
			t.Fatalf("add to cap-%d: %d %q", i, code, body)
		}
	}
	// Retiring takes its turn after the add: wait for it, bounded.
	deadline := time.Now().Add(15 * time.Second)
	for {
		var running, evicted []int64
		done := true
		var total int64
		for _, r := range nodes {
			st := debugVarsOf(t, "http://"+r.addr).Todo
			running, evicted = append(running, st.ServersRunning), append(evicted, st.ServersEvicted)
			total += st.ServersEvicted
			done = done && st.ServersRunning <= maxLoaded
		}
		if done && total >= lists-2*maxLoaded {
			t.Logf("lists running per node %v, evicted %v", running, evicted)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("lists running per node %v, evicted %v: want at most %d running on each and %d evicted in all", running, evicted, maxLoaded, lists-2*maxLoaded)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
