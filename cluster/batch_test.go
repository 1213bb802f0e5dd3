package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gotodo/todo"
	"github.com/gotodo/todo/cluster"
	"github.com/gotodo/todo/cluster/clustertest"
)

// The store's atomic batches, tried on the store itself, beside the
// System: each test writes lists of its own that no System serves, so
// that it decides what each commit holds.

// storeLists returns count list names no test has used, loaded into n's
// store (empty).
func storeLists(t testing.TB, n *cluster.Node, prefix string, count int) []string {
	t.Helper()
	lists := make([]string, count)
	stamp := time.Now().UnixNano()
	for i := range lists {
		lists[i] = fmt.Sprintf("%s-%d-%d", prefix, stamp, i)
	}
	loadInto(t, n, lists...)
	return lists
}

// loadInto loads lists into n's store and returns what it read.
func loadInto(t testing.TB, n *cluster.Node, lists ...string) map[string]todo.ListState {
	t.Helper()
	out := make(map[string]todo.ListState, len(lists))
	var mu sync.Mutex
	parallel(16, len(lists), func(i int) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		st, err := n.StoreLoad(ctx, lists[i])
		if err != nil {
			t.Errorf("load %q into %s: %v", lists[i], n.Name(), err)
			return
		}
		mu.Lock()
		out[lists[i]] = st
		mu.Unlock()
	})
	if t.Failed() {
		t.FailNow()
	}
	return out
}

// storeAdd makes the change that adds an entry titled title to a list
// that stands at prev.
func storeAdd(list string, prev todo.ListState, title string) todo.Change {
	e := todo.Entry{ID: prev.LastID + 1, Date: day, Title: title}
	return todo.Change{
		List:  list,
		Ops:   []todo.Op{{Entry: e}},
		State: todo.ListState{LastID: e.ID, Entries: append(slices.Clone(prev.Entries), e)},
	}
}

// commitAdds commits, through n's store in one Commit, one add to each
// list, records each in h, and returns the changes (their Err set).
func commitAdds(h *clustertest.History, n *cluster.Node, states map[string]todo.ListState, lists []string, title func(list string) string) []todo.Change {
	batch := make([]todo.Change, len(lists))
	for i, l := range lists {
		batch[i] = storeAdd(l, states[l], title(l))
	}
	start := time.Now()
	n.StoreCommit(batch)
	for _, c := range batch {
		op := clustertest.Op{List: c.List, Title: c.Ops[0].Entry.Title, ID: c.Ops[0].Entry.ID, Node: n.Name()}
		if c.Err == nil {
			op.Outcome = clustertest.Acked
			states[c.List] = c.State
		} else {
			// A change whose Err is set must never be stored.
			op.Outcome, op.Err = clustertest.Refused, c.Err.Error()
		}
		h.Record(op, start)
	}
	return batch
}

// storedIn reads lists as a store that never held them does.
func storedIn(t testing.TB, n *cluster.Node, lists []string) map[string][]todo.Entry {
	t.Helper()
	final := make(map[string][]todo.Entry, len(lists))
	for l, st := range loadInto(t, n, lists...) {
		final[l] = st.Entries
	}
	return final
}

// staleBatch runs a stale fence inside a batch: a commits one add to each
// of 10 lists, b takes one of them over and writes it, then a, unaware,
// commits another add to each of the 10 in one batch. It returns the
// history, what c reads of the lists, the list b took, and the changes
// of a's second batch.
func staleBatch(t *testing.T, a, b, c *cluster.Node) (*clustertest.History, map[string][]todo.Entry, string, []todo.Change) {
	t.Helper()
	lists := storeLists(t, a, "stale-batch", 10)
	states := make(map[string]todo.ListState)
	h := clustertest.NewHistory()
	batches := a.Stats().Batches
	for _, ch := range commitAdds(h, a, states, lists, func(l string) string { return "a-first-" + l }) {
		if ch.Err != nil {
			t.Fatalf("first batch: %v", ch.Err)
		}
	}
	if got := a.Stats().Batches - batches; got != 1 {
		t.Fatalf("the first commit of 10 lists took %d atomic batches, want 1", got)
	}
	taken := lists[3]
	bStates := loadInto(t, b, taken)
	if ch := commitAdds(h, b, bStates, []string{taken}, func(l string) string { return "b-takes-" + l }); ch[0].Err != nil {
		t.Fatalf("b's write: %v", ch[0].Err)
	}
	second := commitAdds(h, a, states, lists, func(l string) string { return "a-second-" + l })
	return h, storedIn(t, c, lists), taken, second
}

// One stale fence in a batch fails only its own list: the other nine are
// stored, the stale one is settled as ErrNotOwner (another node wrote
// it), and nothing is lost or doubled.
func TestStore_BatchWithOneStaleFence(t *testing.T) {
	nodes := threeNodes(t)
	a, b, c := nodes[0], nodes[1], nodes[2]
	splits, fences := a.Stats().BatchSplits, a.Stats().FenceFailures
	h, final, taken, second := staleBatch(t, a, b, c)
	checkHistory(t, h, final)
	for _, ch := range second {
		switch {
		case ch.List == taken && !errors.Is(ch.Err, cluster.ErrNotOwner):
			t.Errorf("the stale write to %s: %v, want ErrNotOwner", ch.List, ch.Err)
		case ch.List != taken && ch.Err != nil:
			t.Errorf("the write to %s failed with the stale one: %v", ch.List, ch.Err)
		}
	}
	if got := a.Stats().BatchSplits - splits; got < 1 {
		t.Errorf("%d batches split, want at least 1", got)
	}
	if got := a.Stats().FenceFailures - fences; got != 1 {
		t.Errorf("%d fence failures, want 1", got)
	}
	if want := []string{"a-first-" + taken, "b-takes-" + taken}; !slices.Equal(titles(final[taken]), want) {
		t.Errorf("%s holds %q, want %q", taken, titles(final[taken]), want)
	}
	// The list that lost its fence stays lost to a: its next write is
	// refused without being tried.
	next := []todo.Change{storeAdd(taken, todo.ListState{LastID: 2}, "a-again")}
	a.StoreCommit(next)
	if !errors.Is(next[0].Err, cluster.ErrNotOwner) {
		t.Errorf("a's next write to the list it lost: %v, want ErrNotOwner", next[0].Err)
	}
}

// The broken twin: a store that commits its batches without fences stores
// the stale write over the new owner's, and the history checker finds the
// new owner's acknowledged entry lost.
func TestStore_BatchWithoutFence_LosesWrites(t *testing.T) {
	nodes, err := startNodesWith(cluster.StartWithoutFence, t.TempDir(), 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll(nodes)
	batches := nodes[0].Stats().Batches
	h, final, _, _ := staleBatch(t, nodes[0], nodes[1], nodes[2])
	if got := nodes[0].Stats().Batches - batches; got != 2 {
		t.Errorf("%d atomic batches, want 2: the twin must break the batch path", got)
	}
	if problems := h.Check(final); len(problems) == 0 {
		t.Fatal("without the fence, the checker found nothing wrong: the stale-batch test cannot fail")
	} else {
		t.Logf("without the fence, as expected: %q", problems)
	}
}

func titles(es []todo.Entry) []string {
	var ts []string
	for _, e := range es {
		ts = append(ts, e.Title)
	}
	return ts
}

// A commit over the limits of one batch goes in several (at most 1,000
// messages, at most 1 MiB, a list over that alone: TestGroups has the
// grouping): every list is stored once, and the store knows where each
// stands, so that a second commit of every list passes its fences.
func TestStore_BatchesSplitAtTheLimits(t *testing.T) {
	nodes := threeNodes(t)
	a := nodes[0]
	lists := storeLists(t, a, "limits", 1005)
	states := make(map[string]todo.ListState)
	h := clustertest.NewHistory()
	// 1,001 small adds, then three lists of 600 KB (a snapshot each: two
	// cannot share 1 MiB), then one of 1.5 MB, over the limit.
	big := map[string]int{lists[1001]: 600 << 10, lists[1002]: 600 << 10, lists[1003]: 600 << 10, lists[1004]: 1500 << 10}
	title := func(round string) func(string) string {
		return func(l string) string {
			if size := big[l]; size > 0 && round == "first" {
				return round + "-" + l + "-" + strings.Repeat("x", size)
			}
			return round + "-" + l
		}
	}
	batches := a.Stats().Batches
	for _, ch := range commitAdds(h, a, states, lists, title("first")) {
		if ch.Err != nil {
			t.Fatalf("first commit: %s: %v", ch.List, ch.Err)
		}
	}
	// 1,000 small, then one small and 600 KB: 2 batches, when no answer
	// was lost (a batch whose answer is late is settled write by write).
	t.Logf("the commit of 1,005 lists took %d atomic batches (2 when none timed out)", a.Stats().Batches-batches)
	for _, ch := range commitAdds(h, a, states, lists, title("second")) {
		if ch.Err != nil {
			t.Fatalf("second commit: %s: %v", ch.List, ch.Err)
		}
	}
	checkHistory(t, h, storedIn(t, nodes[1], lists))
}

// A batch the server refuses as over its limit (a server configured with
// fewer than the 1,000 messages a store puts in a batch) is split until
// its halves pass, and every list is stored once.
func TestStore_BatchOverTheServerLimitSplits(t *testing.T) {
	start := func(ctx context.Context, o cluster.Options) (*cluster.Node, error) {
		if o.Name == "n1" {
			return cluster.StartOverBatchLimit(ctx, o, 5000)
		}
		return cluster.Start(ctx, o)
	}
	nodes, err := startNodesWith(start, t.TempDir(), 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll(nodes)
	a := nodes[0]
	lists := storeLists(t, a, "over-limit", 1005)
	states := make(map[string]todo.ListState)
	h := clustertest.NewHistory()
	for _, ch := range commitAdds(h, a, states, lists, func(l string) string { return "over-" + l }) {
		if ch.Err != nil {
			t.Fatalf("%s: %v", ch.List, ch.Err)
		}
	}
	// The refusal is at once; the halves pass, or time out and are
	// settled write by write (a loaded machine): a split either way.
	if st := a.Stats(); st.BatchSplits < 1 {
		t.Errorf("no batch split (%d stored): the server's limit did not split the batch of 1,005", st.Batches)
	}
	checkHistory(t, h, storedIn(t, nodes[1], lists))
}

// A batch whose answer is lost is settled write by write: each list's
// write is found stored, or stored again alone, or fenced out by a
// marker; a change whose Err is set is never stored, not even by the
// batch's commit arriving after the store settled it.
func TestStore_BatchAnswerLost(t *testing.T) {
	var mu sync.Mutex
	var fault cluster.BatchFault
	faults := &cluster.BatchFaults{Next: func() cluster.BatchFault {
		mu.Lock()
		defer mu.Unlock()
		return fault
	}}
	// n1 settles as nodes do (WriteTimeout 5s: it publishes a lost write
	// again); n2 gives up on a write at once (WriteTimeout 1ms: a marker
	// settles it). Both lose their batches' answers.
	start := func(ctx context.Context, o cluster.Options) (*cluster.Node, error) {
		switch o.Name {
		case "n2":
			o.WriteTimeout = time.Millisecond
			fallthrough
		case "n1":
			return cluster.StartWithBatchFaults(ctx, o, faults)
		}
		return cluster.Start(ctx, o)
	}
	nodes, err := startNodesWith(start, t.TempDir(), 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll(nodes)
	for _, tc := range []struct {
		name   string
		node   int
		fault  cluster.BatchFault
		stored bool // every change is stored, or none is
	}{
		{"ack-lost", 0, cluster.AckLost, true},
		{"commit-lost", 0, cluster.CommitLost, true},
		{"commit-late", 0, cluster.CommitLate, true},
		{"ack-lost/markers", 1, cluster.AckLost, true},
		{"commit-lost/markers", 1, cluster.CommitLost, false},
		{"commit-late/markers", 1, cluster.CommitLate, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := nodes[tc.node]
			lists := storeLists(t, n, "lost-"+strings.ReplaceAll(tc.name, "/", "-"), 8)
			states := make(map[string]todo.ListState)
			h := clustertest.NewHistory()
			mu.Lock()
			fault = tc.fault
			mu.Unlock()
			batch := commitAdds(h, n, states, lists, func(l string) string { return "lost-" + l })
			mu.Lock()
			fault = cluster.BatchOK
			mu.Unlock()
			for _, ch := range batch {
				if (ch.Err == nil) != tc.stored {
					t.Errorf("%s: Err %v, want stored=%v", ch.List, ch.Err, tc.stored)
				}
				if ch.Err != nil && !errors.Is(ch.Err, todo.ErrUnavailable) {
					t.Errorf("%s: Err %v, want one wrapping ErrUnavailable", ch.List, ch.Err)
				}
			}
			// The batch's commit, held back until the store settled every
			// write of it, is refused: whatever holds the lists' slots now
			// (the writes again, or markers) fails its fences.
			for _, err := range faults.SendLate() {
				t.Logf("the late commit: %v", err)
				if err == nil {
					t.Error("the late commit was stored after the store settled its writes")
				}
			}
			// A second add to each list passes its fence: the store knows
			// where each list stands, whatever became of the first.
			for _, ch := range commitAdds(h, n, states, lists, func(l string) string { return "after-" + l }) {
				if ch.Err != nil {
					t.Errorf("the write after: %s: %v", ch.List, ch.Err)
				}
			}
			checkHistory(t, h, storedIn(t, nodes[2], lists))
		})
	}
}

// A node of this version started on the data directories of a cluster
// whose lists' stream an earlier version made (no atomic batches) lets the
// stream take them, keeps every list, and commits in batches from then on.
func TestNode_UpgradeAllowsBatches(t *testing.T) {
	dir := t.TempDir()
	old, err := startNodesWith(cluster.StartEarlierVersion, dir, 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := clustertest.NewHistory()
	lists := make([]string, 30)
	for i := range lists {
		lists[i] = fmt.Sprint("upgrade-", i)
	}
	parallel(30, len(lists), func(i int) {
		if err := add(h, old[i%3], lists[i], "before-"+lists[i], addTimeout); err != nil {
			t.Errorf("add before the upgrade: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if batches, err := old[0].StreamTakesBatches(ctx); err != nil || batches {
		t.Fatalf("the earlier version's stream takes batches: %v (err %v)", batches, err)
	}
	for _, n := range old {
		if b := n.Stats().Batches; b != 0 {
			t.Errorf("%s, an earlier version, stored %d batches", n.Name(), b)
		}
	}
	closeAll(old)
	nodes, err := startNodes(dir, 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll(nodes)
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if batches, err := nodes[0].StreamTakesBatches(ctx); err != nil || !batches {
		t.Fatalf("after the upgrade the stream takes batches: %v (err %v)", batches, err)
	}
	// Every node adds to every list at once: each owner's commits hold
	// several lists.
	parallel(90, 3*len(lists), func(i int) {
		if err := add(h, nodes[i%3], lists[i/3], fmt.Sprint("after-", i), addTimeout); err != nil {
			t.Errorf("add after the upgrade: %v", err)
		}
	})
	var batches int64
	for _, n := range nodes {
		batches += n.Stats().Batches
	}
	if batches == 0 {
		t.Error("no atomic batch stored after the upgrade")
	}
	checkHistory(t, h, stored(t, nodes, lists...))
}

// A batch the leader keeps answering incomplete (a message of it lost
// without a word, which only the commit's answer tells) is sent again once,
// then split, and its halves are stored.
func TestStore_BatchIncompleteTwiceSplits(t *testing.T) {
	var mu sync.Mutex
	drops := 0
	faults := &cluster.BatchFaults{Next: func() cluster.BatchFault {
		mu.Lock()
		defer mu.Unlock()
		if drops > 0 {
			drops--
			return cluster.MsgDropped
		}
		return cluster.BatchOK
	}}
	start := func(ctx context.Context, o cluster.Options) (*cluster.Node, error) {
		if o.Name == "n1" {
			return cluster.StartWithBatchFaults(ctx, o, faults)
		}
		return cluster.Start(ctx, o)
	}
	nodes, err := startNodesWith(start, t.TempDir(), 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll(nodes)
	a := nodes[0]
	lists := storeLists(t, a, "gap", 8)
	states := make(map[string]todo.ListState)
	h := clustertest.NewHistory()
	mu.Lock()
	drops = 2
	mu.Unlock()
	splits := a.Stats().BatchSplits
	for _, ch := range commitAdds(h, a, states, lists, func(l string) string { return "gap-" + l }) {
		if ch.Err != nil {
			t.Errorf("%s: %v", ch.List, ch.Err)
		}
	}
	if got := a.Stats().BatchSplits - splits; got != 1 {
		t.Errorf("%d batches split, want 1: the batch answered incomplete twice", got)
	}
	checkHistory(t, h, storedIn(t, nodes[1], lists))
}
