package main

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gotodo/todo/cluster/clustertest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The tests of this file measure what failures cost a cluster of the
// built binary, run as child processes on 127.0.0.1 and stopped by PID:
// which lists a SIGKILL moves, whether /healthz tells the truth while
// nodes die, are cut off and restart, and what the survivors log while a
// peer is down.

// loopbackCluster starts count nodes named prefix1.. on 127.0.0.1, each
// given the others as peers and a NATS client port for the test to
// inspect JetStream with, args added to each, and waits until each is
// healthy. The nodes share a cluster secret, as an operator's would, and
// serve HTTP without tokens (-insecure).
func loopbackCluster(t *testing.T, bin, prefix string, count int, args ...string) []*clusterChild {
	t.Helper()
	dir := t.TempDir()
	secret := clusterSecret(t, dir)
	user := natsUser(t, secret)
	clusterAddrs := make([]string, count)
	for i := range clusterAddrs {
		clusterAddrs[i] = freeLoopbackAddr(t)
	}
	nodes := make([]*clusterChild, count)
	for i := range nodes {
		name := fmt.Sprint(prefix, i+1)
		var peers []string
		for j, a := range clusterAddrs {
			if j != i {
				peers = append(peers, a)
			}
		}
		natsAddr := freeLoopbackAddr(t)
		nodes[i] = &clusterChild{name: name, natsAddr: natsAddr, user: user, args: append([]string{
			"-node", name, "-cluster", clusterAddrs[i], "-peers", strings.Join(peers, ","),
			"-nats-addr", natsAddr, "-addr", "127.0.0.1:0", "-data", filepath.Join(dir, name),
			"-log-format", "json", "-insecure", "-cluster-secret-file", secret,
		}, args...)}
	}
	for _, c := range nodes {
		c.start(t, bin)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	for _, c := range nodes {
		waitHealthy(t, client, c, 30*time.Second)
	}
	waitReplicated(t, nodes[0], count, 30*time.Second)
	return nodes
}

// waitReplicated waits until the lists' stream and the node's two buckets
// are stored on all of the cluster's servers (3 at most, the default
// replicas), each replica current and no change of their peers under way
// (JetStream reports a peer being added as a current replica as soon as
// the leader has stored the change; until the other first member has too,
// that member counts only its old peers' votes), as c's server says. A node is healthy
// before that: the first node to find enough servers creates the stream
// with as many replicas as it finds (two) and scales it up a second or so
// later, and a test that stopped a node meanwhile would find the stream
// without a quorum, waiting for the node to come back rather than testing
// what it means to.
func waitReplicated(t *testing.T, c *clusterChild, servers int, within time.Duration) {
	t.Helper()
	js := inspect(t, c)
	want := min(servers, 3)
	var how string
	ok := until(within, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, name := range []string{"TODO_LISTS", "KV_todo_nodes", "KV_todo_owners"} {
			s, err := js.Stream(ctx, name)
			if err != nil {
				how = name + ": " + err.Error()
				return false
			}
			info, err := s.Info(ctx)
			if err != nil {
				how = name + ": " + err.Error()
				return false
			}
			if info.Cluster != nil && info.Cluster.Desired != nil {
				// A change of its peers is under way: until the members it
				// had have stored it, they count only each other's votes.
				how = fmt.Sprintf("%s: its peers are changing (%+v)", name, info.Cluster.Desired.Status)
				return false
			}
			if info.Config.Replicas < want || info.Cluster == nil || info.Cluster.Leader == "" || len(info.Cluster.Replicas) != info.Config.Replicas-1 {
				how = fmt.Sprintf("%s: %d replicas, cluster %+v", name, info.Config.Replicas, info.Cluster)
				return false
			}
			for _, r := range info.Cluster.Replicas {
				if !r.Current || r.Offline {
					how = fmt.Sprintf("%s: replica %s not current", name, r.Name)
					return false
				}
			}
		}
		return true
	})
	if !ok {
		t.Fatalf("the cluster's assets are not replicated on %d servers after %v: %s", want, within, how)
	}
}

// inspect connects the test to a node's embedded server, with its
// credentials, for JetStream's own view of the cluster.
func inspect(t *testing.T, c *clusterChild) jetstream.JetStream {
	t.Helper()
	opts := []nats.Option{nats.MaxReconnects(-1)}
	if c.user != nil {
		opts = append(opts, c.user)
	}
	nc, err := nats.Connect("nats://"+c.natsAddr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// leaderOf returns the node that leads stream, as the server js talks to
// says, or "" when it names none (or does not answer) within 2s.
func leaderOf(js jetstream.JetStream, stream string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return ""
	}
	info, err := s.Info(ctx)
	if err != nil || info.Cluster == nil {
		return ""
	}
	return info.Cluster.Leader
}

// owners reads the owners bucket: each list's owner. A list's key is the
// unpadded base64url of its name; an owner record is the owner's epoch
// (a uvarint) followed by its name (docs/cluster.md names the bucket;
// package cluster's names.go and membership.go, the encodings).
func owners(t *testing.T, js jetstream.JetStream) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, "todo_owners")
	if err != nil {
		t.Fatal(err)
	}
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	out := make(map[string]string)
	for e := range w.Updates() {
		if e == nil {
			return out
		}
		name, err := base64.RawURLEncoding.DecodeString(e.Key())
		_, n := binary.Uvarint(e.Value())
		if err != nil || n <= 0 {
			t.Fatalf("owner record %q = %q: not what the cluster writes", e.Key(), e.Value())
		}
		out[string(name)] = string(e.Value()[n:])
	}
	t.Fatalf("the owners bucket was not read within a minute: %v", ctx.Err())
	return nil
}

// varsOf reads a node's /debug/vars.
func varsOf(t *testing.T, client *http.Client, c *clusterChild) debugVars {
	t.Helper()
	resp, err := client.Get("http://" + c.addr + "/debug/vars")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v debugVars
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || resp.StatusCode != http.StatusOK || v.Cluster == nil {
		t.Fatalf("%s /debug/vars: %d %v", c.name, resp.StatusCode, err)
	}
	return v
}

// until calls try until it reports true, pausing 50ms between tries, for
// at most within; it reports whether try did.
func until(within time.Duration, try func() bool) bool {
	for deadline := time.Now().Add(within); ; {
		if try() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// request sends method to url and reports whether it was answered 200, and
// what was answered.
func request(client *http.Client, method, url string) (bool, string) {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return false, err.Error()
	}
	resp, err := client.Do(req)
	if err != nil {
		return false, err.Error()
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK, fmt.Sprint(resp.StatusCode, " ", strings.TrimSpace(string(body)))
}

// A SIGKILL costs the survivors nothing they hold: three nodes own 10,000
// lists, each loaded on its owner; the node that leads the nodes bucket
// is killed, so that no renewal lands until JetStream has elected a new
// leader (4-9s, longer than the 4s lease: every survivor's lease lapses).
// Once every list has been read again through the survivors, each
// survivor still owns every list it owned, has reloaded none of them and
// lost none; the lists it loaded are the dead node's it took over, and
// those alone. Counts, not times: the stall of the survivors' own lists
// and the election are logged beside each other.
func TestCluster_KillKeepsSurvivorsLists(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the multi-process cluster test")
	}
	bin := buildBinary(t)
	nodes := loopbackCluster(t, bin, "s", 3, "-idle", "-1", "-timeout", "3s")
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 15 * time.Second}
	const count = 10_000
	lists := make([]string, count)
	for i := range lists {
		lists[i] = fmt.Sprint("surv-", i)
	}
	addURL := func(c *clusterChild, list, title string) string {
		return fmt.Sprintf("http://%s/add_entry?list=%s&date=20131219&title=%s", c.addr, list, title)
	}
	// Every list gets an entry, through every node: its owner loads it.
	var failed atomic.Int64
	parallelDo(48, count, func(i int) {
		c := nodes[i%3]
		if !until(30*time.Second, func() bool { ok, _ := request(client, "POST", addURL(c, lists[i], "first")); return ok }) {
			failed.Add(1)
		}
	})
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of %d first adds failed for 30s", n, count)
	}
	js := inspect(t, nodes[0])
	before := owners(t, js)
	victimName := leaderOf(js, "KV_todo_nodes")
	var victim *clusterChild
	var survivors []*clusterChild
	for _, c := range nodes {
		if c.name == victimName {
			victim = c
		} else {
			survivors = append(survivors, c)
		}
	}
	if victim == nil {
		t.Fatalf("the nodes bucket's leader %q is none of the nodes", victimName)
	}
	held := make(map[string]int)
	for _, l := range lists {
		held[before[l]]++
	}
	varsBefore := make(map[string]debugVars)
	for _, c := range survivors {
		v := varsOf(t, client, c)
		varsBefore[c.name] = v
		if int(v.Cluster.OwnedLists) != held[c.name] {
			t.Fatalf("%s holds %d lists and owns %d: every list it owns should be loaded", c.name, v.Cluster.OwnedLists, held[c.name])
		}
	}
	t.Logf("owners before the kill: %v; killing %s, the nodes bucket's leader", held, victim.name)

	// A prober per survivor writes to one of its own lists all along, to
	// measure how long they stall; two more write through it to lists of
	// the other survivor, forwarded: right after the election, a request
	// for a list of a survivor that has not renewed yet finds its record
	// stale.
	stopProbes := make(chan struct{})
	var probes sync.WaitGroup
	stalls := make([]time.Duration, len(survivors))
	for i, c := range survivors {
		other := survivors[1-i]
		own := slices.IndexFunc(lists, func(l string) bool { return before[l] == c.name })
		probes.Go(func() {
			last := time.Now()
			for n := 0; ; n++ {
				select {
				case <-stopProbes:
					return
				default:
				}
				if ok, _ := request(client, "POST", addURL(c, lists[own], fmt.Sprint("probe-", n))); ok {
					stalls[i] = max(stalls[i], time.Since(last))
					last = time.Now()
				}
				time.Sleep(20 * time.Millisecond) // paces the probe
			}
		})
		for k := range 2 {
			theirs := slices.IndexFunc(lists[k*count/2:], func(l string) bool { return before[l] == other.name }) + k*count/2
			probes.Go(func() {
				for n := 0; ; n++ {
					select {
					case <-stopProbes:
						return
					default:
					}
					request(client, "POST", addURL(c, lists[theirs], fmt.Sprint("cross-", n)))
					time.Sleep(20 * time.Millisecond) // paces the probe
				}
			})
		}
	}
	killedAt := time.Now()
	victim.kill(t)
	sjs := inspect(t, survivors[0])
	var election time.Duration
	if !until(30*time.Second, func() bool {
		l := leaderOf(sjs, "KV_todo_nodes")
		election = time.Since(killedAt)
		return l != "" && l != victim.name
	}) {
		t.Fatal("the nodes bucket has no leader 30s after the kill")
	}
	// Every list is read again through the survivors: the dead node's
	// are taken over on the way.
	readURL := func(c *clusterChild, list string) string {
		return fmt.Sprintf("http://%s/entries?list=%s&date=20131219", c.addr, list)
	}
	failed.Store(0)
	parallelDo(32, count, func(i int) {
		c := survivors[i%2]
		if !until(60*time.Second, func() bool { ok, _ := request(client, "GET", readURL(c, lists[i])); return ok }) {
			failed.Add(1)
		}
	})
	swept := time.Since(killedAt)
	close(stopProbes)
	probes.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of %d lists could not be read through the survivors for 60s", n, count)
	}
	t.Logf("the nodes bucket had a new leader %v after the kill; the survivors' own lists stalled at most %v and %v; every list read again %v after the kill",
		election.Round(time.Millisecond), stalls[0].Round(time.Millisecond), stalls[1].Round(time.Millisecond), swept.Round(time.Millisecond))

	after := owners(t, sjs)
	took := make(map[string]int) // the dead node's lists each survivor owns now
	for _, l := range lists {
		was, now := before[l], after[l]
		switch {
		case was == victim.name && (now == victim.name || now == ""):
			t.Errorf("%s is still owned by %q after the dead node's lists were taken over", l, now)
		case was == victim.name:
			took[now]++
		case now != was:
			t.Errorf("%s moved from %s, which lives, to %q", l, was, now)
		}
	}
	// A survivor loads a list that is not in its memory: one of the dead
	// node's it claimed, or one the other survivor handed to it (a
	// survivor whose view of the other lagged after the election claimed
	// a list the other is preferred for, and handed it on). Its own lists
	// never left its memory: none was lost, expired, evicted, or handed
	// off (each is still its own), so none was loaded again.
	var loaded, handedOn int64
	for _, c := range survivors {
		b, a := varsBefore[c.name], varsOf(t, client, c)
		started := a.Todo.ServersStarted - b.Todo.ServersStarted
		handoffs := a.Cluster.Handoffs - b.Cluster.Handoffs
		loaded, handedOn = loaded+started, handedOn+handoffs
		t.Logf("%s: owns %d of the dead node's lists, loaded %d, handed %d on, lost %d, lease lapsed %d times, declared %d dead",
			c.name, took[c.name], started, handoffs, a.Cluster.ListsLost-b.Cluster.ListsLost,
			a.Cluster.LeaseLapses-b.Cluster.LeaseLapses, a.Cluster.DeclaredDead-b.Cluster.DeclaredDead)
		if a.Cluster.LeaseLapses == b.Cluster.LeaseLapses {
			t.Errorf("%s's lease never lapsed: the kill of the nodes bucket's leader did not test what it should", c.name)
		}
		if lost := a.Cluster.ListsLost - b.Cluster.ListsLost; lost != 0 {
			t.Errorf("%s lost %d lists", c.name, lost)
		}
		if n := (a.Todo.ServersExpired + a.Todo.ServersEvicted) - (b.Todo.ServersExpired + b.Todo.ServersEvicted); n != 0 {
			t.Errorf("%s let %d lists leave memory", c.name, n)
		}
		if started > int64(took[c.name])+handoffs {
			t.Errorf("%s loaded %d lists, more than the %d of the dead node's it owns and the %d it handed on: it loaded some of its own again", c.name, started, took[c.name], handoffs)
		}
	}
	// Every list of the dead node was loaded by a survivor, once, and
	// once more for each handed on.
	if dead := int64(held[victim.name]); loaded < dead || loaded > dead+handedOn {
		t.Errorf("the survivors loaded %d lists: the dead node had %d, and %d were handed on", loaded, dead, handedOn)
	}
	for _, c := range survivors {
		c.stop(t)
	}
}

// parallelDo runs fn(0..count-1) on workers goroutines.
func parallelDo(workers, count int, fn func(i int)) {
	var wg sync.WaitGroup
	next := make(chan int)
	for range workers {
		wg.Go(func() {
			for i := range next {
				fn(i)
			}
		})
	}
	for i := range count {
		next <- i
	}
	close(next)
	wg.Wait()
}

// healthSample is one answer of a node's /healthz, timed on a history's
// clock.
type healthSample struct {
	node      string
	at        time.Duration // when the request was sent
	ok        bool          // 200 and can_write
	listsSelf bool          // its nodes name it
	body      string
}

// healthWatch polls every node's /healthz every 50ms until stopped.
type healthWatch struct {
	mu      sync.Mutex // guards samples
	samples []healthSample
	stop    chan struct{}
	wg      sync.WaitGroup
}

func watchHealth(client *http.Client, h *clustertest.History, nodes func() []*clusterChild) *healthWatch {
	w := &healthWatch{stop: make(chan struct{})}
	w.wg.Go(func() {
		for {
			select {
			case <-w.stop:
				return
			default:
			}
			for _, c := range nodes() {
				at := h.Since()
				resp, err := client.Get("http://" + c.addr + "/healthz")
				if err != nil {
					continue // not running
				}
				var body struct {
					CanWrite bool `json:"can_write"`
					Nodes    []string
				}
				data, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				json.Unmarshal(data, &body)
				s := healthSample{node: c.name, at: at, ok: resp.StatusCode == http.StatusOK && body.CanWrite,
					listsSelf: slices.Contains(body.Nodes, c.name), body: strings.TrimSpace(string(data))}
				w.mu.Lock()
				w.samples = append(w.samples, s)
				w.mu.Unlock()
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	return w
}

func (w *healthWatch) end() []healthSample {
	close(w.stop)
	w.wg.Wait()
	return w.samples
}

// Health's lag: /healthz says a node cannot write at most healthLag after
// a write to it began that then failed (a write waits AckTimeout/2, 1s,
// for a quorum before the node says so; the rest is for the request to
// reach the store, and the poll). A failed write near its end is not
// held against it either, for healthSettle: a write that timed out just
// after the node could write again failed for want of time, not of a
// quorum.
const (
	healthLag    = 1500 * time.Millisecond
	healthSettle = 500 * time.Millisecond
)

// checkHealth compares what /healthz said with what the writes of
// ownWriters in h did at that moment, each sent to a node for a list that
// node owned all the while it took (as the owners bucket's log says: a
// list taken over or handed on meanwhile is forwarded, and what becomes
// of it says nothing of the node's own health): a node that answered 200
// can_write while such a write to it had been failing for healthLag is a
// failure, and so is a 200 whose nodes leave the node out. It reports the
// other mismatches, 503s while writes to the node succeeded, in the log.
func checkHealth(t *testing.T, samples []healthSample, h *clustertest.History, owned *ownerLog) {
	t.Helper()
	owned.catchUp(t, 30*time.Second)
	var ops []clustertest.Op
	var moved int
	for _, op := range h.Ops() {
		if !strings.HasPrefix(op.Title, ownPrefix) {
			continue
		}
		if !owned.throughout(op.List, op.Node, op.Start, op.End) {
			moved++
			continue
		}
		ops = append(ops, op)
	}
	if len(ops) == 0 {
		t.Errorf("health: no write to a list its node owned all the while to compare /healthz with (%d to lists that moved)", moved)
	}
	var lies, pessimistic, checked int
	for _, s := range samples {
		if s.ok && !s.listsSelf {
			t.Errorf("at %v %s answered 200 and does not list itself: %s", s.at.Round(time.Millisecond), s.node, s.body)
		}
		for _, op := range ops {
			if op.Node != s.node {
				continue
			}
			failed := op.Outcome != clustertest.Acked
			switch {
			case failed && s.ok && op.Start+healthLag <= s.at && s.at <= op.End-healthSettle:
				lies++
				if lies <= 10 {
					t.Errorf("at %v %s answered %s, while a write sent to it at %v failed at %v: %s",
						s.at.Round(time.Millisecond), s.node, s.body, op.Start.Round(time.Millisecond), op.End.Round(time.Millisecond), op.Err)
				}
			case !failed && !s.ok && op.Start <= s.at && s.at <= op.End && op.End-op.Start < time.Second:
				pessimistic++
			}
		}
		checked++
	}
	if lies > 10 {
		t.Errorf("... %d such answers in all", lies)
	}
	t.Logf("health: %d answers compared with %d writes to the nodes' own lists (and not with %d whose list changed owner on the way); %d said a node could not write while a write to it went through within a second", checked, len(ops), moved, pessimistic)
}

// ownerLog is the owners bucket's log, as the test follows it: when each
// list's owner record changed, on a history's clock, by the time the
// stream stored the change.
type ownerLog struct {
	js      jetstream.JetStream
	mu      sync.Mutex // guards the fields below
	changes map[string][]ownerChange
	lastRev uint64 // the bucket's last revision followed
	ended   bool   // the watcher stopped before the test ended
}

type ownerChange struct {
	at   time.Duration
	node string // "" when the record was deleted
}

// followOwners reads the owners bucket through every node in cs (any one
// of them, the others when it is down), then follows its changes until
// the test ends.
func followOwners(t *testing.T, cs []*clusterChild, h *clustertest.History) *ownerLog {
	t.Helper()
	var urls []string
	for _, c := range cs {
		urls = append(urls, "nats://"+c.natsAddr)
	}
	opts := []nats.Option{nats.MaxReconnects(-1)}
	if cs[0].user != nil {
		opts = append(opts, cs[0].user)
	}
	nc, err := nats.Connect(strings.Join(urls, ","), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	rctx, rcancel := context.WithTimeout(ctx, 60*time.Second)
	defer rcancel()
	kv, err := js.KeyValue(rctx, "todo_owners")
	if err != nil {
		t.Fatal(err)
	}
	w, err := kv.WatchAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	l := &ownerLog{js: js, changes: make(map[string][]ownerChange)}
	start := time.Now().Add(-h.Since())
	record := func(e jetstream.KeyValueEntry) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.lastRev = max(l.lastRev, e.Revision())
		name, err := base64.RawURLEncoding.DecodeString(e.Key())
		if err != nil {
			return
		}
		c := ownerChange{at: e.Created().Sub(start)}
		if e.Operation() == jetstream.KeyValuePut {
			if _, n := binary.Uvarint(e.Value()); n > 0 {
				c.node = string(e.Value()[n:])
			}
		}
		l.changes[string(name)] = append(l.changes[string(name)], c)
	}
read:
	for {
		select {
		case e := <-w.Updates():
			if e == nil {
				break read // the records there are now
			}
			record(e)
		case <-rctx.Done():
			w.Stop()
			t.Fatal("the owners bucket was not read within a minute")
		}
	}
	go func() {
		defer w.Stop()
		for e := range w.Updates() {
			if e != nil {
				record(e)
			}
		}
		l.mu.Lock()
		l.ended = ctx.Err() == nil
		l.mu.Unlock()
	}()
	return l
}

// catchUp waits until the log has followed the bucket up to its last
// revision now: a follower cut off with a node that died gets the
// changes it missed only when it is back, and a change missed would let
// a write to a list that moved count as one to a list its node owned.
func (l *ownerLog) catchUp(t *testing.T, within time.Duration) {
	t.Helper()
	var last uint64
	var ended bool
	ok := until(within, func() bool {
		l.mu.Lock()
		ended = l.ended
		l.mu.Unlock()
		if ended {
			return true
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s, err := l.js.Stream(ctx, "KV_todo_owners")
		if err != nil {
			return false
		}
		info, err := s.Info(ctx)
		if err != nil {
			return false
		}
		last = info.State.LastSeq
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.lastRev >= last
	})
	if ended {
		t.Fatalf("the test's watch of the owners bucket ended before the test did (nats.go gave up on it): the check cannot tell which lists moved")
	}
	if !ok {
		l.mu.Lock()
		defer l.mu.Unlock()
		t.Fatalf("the owners bucket's log was followed up to revision %d, not %d, within %v", l.lastRev, last, within)
	}
}

// throughout reports whether node owned list from from to to: the last
// change of its record at or before from names node, and none that
// follows until to names another (a record the node wrote again under a
// new epoch, after a restart, is still its own).
func (l *ownerLog) throughout(list, node string, from, to time.Duration) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	owner := ""
	for _, c := range l.changes[list] {
		if c.at > to {
			break
		}
		if c.at > from && c.node != node {
			return false
		}
		owner = c.node
	}
	return owner == node
}

// ownPrefix begins the titles of ownWriters' entries.
const ownPrefix = "own-"

// ownWriters writes, through each node, to lists that node owns (as the
// owners bucket said when they started), until stop is closed: what
// /healthz says of a node is compared with what these writes do.
func ownWriters(t *testing.T, client *http.Client, js jetstream.JetStream, h *clustertest.History, nodes func() []*clusterChild, lists []string, stop <-chan struct{}) (*sync.WaitGroup, *ownerLog) {
	t.Helper()
	owned := followOwners(t, nodes(), h)
	owner := owners(t, js)
	var wg sync.WaitGroup
	for _, c := range nodes() {
		var mine []string
		for _, l := range lists {
			if owner[l] == c.name {
				mine = append(mine, l)
			}
		}
		if len(mine) == 0 {
			continue
		}
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if !slices.Contains(nodes(), c) {
					time.Sleep(50 * time.Millisecond) // down: its writes would say nothing of health
					continue
				}
				httpAdd(client, h, c.name, c.addr, mine[i%len(mine)], fmt.Sprintf("%s%s-%d", ownPrefix, c.name, i))
			}
		})
	}
	return &wg, owned
}

// A majority restarted: two of three nodes are killed, the third left
// alone with no quorum, then both restarted on their data directories,
// under adds at every node that is up. /healthz tells the truth all along
// (see checkHealth), and no acknowledged entry is lost.
func TestCluster_RestartMajority(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the multi-process cluster test")
	}
	bin := buildBinary(t)
	nodes := loopbackCluster(t, bin, "r", 3, "-timeout", "3s")
	tr := &http.Transport{MaxIdleConnsPerHost: 8}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	lists := make([]string, 20)
	for i := range lists {
		lists[i] = fmt.Sprint("restart-", i)
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
	own, owned := ownWriters(t, client, inspect(t, nodes[0]), h, current, lists, stop)
	defer own.Wait()
	health := watchHealth(client, h, current) // a node restarting is polled once it is healthy again: its address changes

	mu.Lock()
	targets = nodes[:1]
	mu.Unlock()
	for _, c := range nodes[1:] {
		c.kill(t)
	}
	t.Logf("killed %s and %s at %v", nodes[1].name, nodes[2].name, h.Since())
	time.Sleep(4 * time.Second) // the survivor alone, with no quorum
	restartedAt := h.Since()
	for _, c := range nodes[1:] {
		c.start(t, bin)
	}
	for _, c := range nodes[1:] {
		waitHealthy(t, client, c, 30*time.Second)
		t.Logf("%s healthy %v after the restart", c.name, (h.Since() - restartedAt).Round(time.Millisecond))
	}
	mu.Lock()
	targets = nodes
	mu.Unlock()
	time.Sleep(5 * time.Second) // load on all three again
	stopLoad()
	own.Wait()
	checkHealth(t, health.end(), h, owned)
	after, afterAt := h.LongestGap(restartedAt, 0)
	a, r, u := h.Counts()
	t.Logf("after the restart: longest stall of acknowledgements %v (from %v); %d adds acknowledged, %d refused, %d unknown",
		after.Round(time.Millisecond), afterAt.Round(time.Millisecond), a, r, u)
	for _, p := range h.Check(readAll(t, client, nodes[0].addr, lists)) {
		t.Error(p)
	}
	for _, c := range nodes {
		c.stop(t)
	}
}

// clusterAddr returns the address a node takes its peers' routes on.
func (c *clusterChild) clusterAddr() string {
	i := slices.Index(c.args, "-cluster")
	return c.args[i+1]
}

// logLines returns the node's log lines from the from-th on, decoded.
func (c *clusterChild) logLines(from int) []map[string]any {
	var out []map[string]any
	for i, line := range strings.Split(c.logs.String(), "\n") {
		var l map[string]any
		if i < from || json.Unmarshal([]byte(line), &l) != nil {
			continue
		}
		out = append(out, l)
	}
	return out
}

// peerLines counts, in the node's log lines from the from-th on, those
// that say the peer p (known by its name or its address) went, and those
// that say it came back.
func (c *clusterChild) peerLines(from int, p *clusterChild) (went, back int) {
	for _, l := range c.logLines(from) {
		if l["peer"] != p.name && l["peer"] != p.clusterAddr() {
			continue
		}
		switch l["msg"] {
		case "cluster: cannot route to a peer; retrying, with back-off (one summary a while until it is back)":
			went++
		case "cluster: a peer is reachable again":
			back++
		}
	}
	return went, back
}

// Quiet when a peer is gone: while a peer is down, killed or stopped, each
// survivor logs one line that it cannot route to it, none at ERROR, and
// tries again with back-off (the server's attempts, at debug level, are
// numbered: without back-off they reach one a second); once the peer is
// back, one line says so.
func TestCluster_QuietWhenPeerDown(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the multi-process cluster test")
	}
	bin := buildBinary(t)
	nodes := loopbackCluster(t, bin, "q", 3, "-log-level", "debug")
	client := &http.Client{Timeout: 10 * time.Second}
	peer, survivors := nodes[2], nodes[:2]
	// A node that started before the peer could not route to it at
	// first: wait until each has said it can.
	for _, c := range survivors {
		if !until(20*time.Second, func() bool { went, back := c.peerLines(0, peer); return went == back }) {
			went, back := c.peerLines(0, peer)
			t.Fatalf("%s said %d times that it cannot route to %s, and %d times that it can again", c.name, went, peer.name, back)
		}
	}
	const down = 15 * time.Second
	for _, how := range []string{"killed", "stopped"} {
		marks := make([]int, len(survivors))
		for i, c := range survivors {
			marks[i] = strings.Count(c.logs.String(), "\n")
		}
		if how == "killed" {
			peer.kill(t)
		} else {
			peer.stop(t)
		}
		time.Sleep(down) // the bounded period the lines are counted over
		for i, c := range survivors {
			var errs, attempts, lastAttempt int
			for _, l := range c.logLines(marks[i]) {
				msg, _ := l["msg"].(string)
				switch {
				case l["level"] == "ERROR":
					errs++
					t.Errorf("%s, peer %s: %s logged at ERROR: %v", how, peer.name, c.name, l)
				case strings.HasPrefix(msg, "nats: Error trying to connect to route") && strings.Contains(msg, peer.clusterAddr()):
					attempts++
					var n int
					fmt.Sscanf(msg, "nats: Error trying to connect to route (attempt %d)", &n)
					lastAttempt = max(lastAttempt, n)
				}
			}
			went, back := c.peerLines(marks[i], peer)
			t.Logf("%s, %v with %s down: %s logged %d line(s) that it cannot route to it (%d that it can), %d at ERROR; the server tried %d times, the last attempt numbered %d",
				how, down, peer.name, c.name, went, back, errs, attempts, lastAttempt)
			if went != 1 || back != 0 {
				t.Errorf("%s: %s logged %d lines that it cannot route to %s and %d that it can, want 1 and 0", how, c.name, went, peer.name, back)
			}
			// Back-off: tries after 1s, 2s, 4s, 8s (each try takes a
			// moment): the 5th try is the last within 15s. Without it,
			// the server tries every second.
			if lastAttempt > 6 {
				t.Errorf("%s: %s's server tried %d times, up to attempt %d, in %v: want tries backing off", how, c.name, attempts, lastAttempt, down)
			}
			marks[i] = strings.Count(c.logs.String(), "\n")
		}
		peer.start(t, bin)
		waitHealthy(t, client, peer, 30*time.Second)
		for i, c := range survivors {
			if !until(30*time.Second, func() bool { _, back := c.peerLines(marks[i], peer); return back == 1 }) {
				t.Errorf("%s: %s never logged that %s is reachable again", how, c.name, peer.name)
			}
		}
	}
	for _, c := range nodes {
		c.stop(t)
	}
}
