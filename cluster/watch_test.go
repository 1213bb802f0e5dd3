package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"sync"
	"testing"
	"time"

	"github.com/gotodo/todo"
	"github.com/gotodo/todo/cluster"
)

// watchUntil ranges over seq until it yields revision until or later, or
// an error, or ctx ends; it returns the events and the error.
func watchUntil(ctx context.Context, seq iter.Seq2[todo.Event, error], until int64) ([]todo.Event, error) {
	var events []todo.Event
	for ev, err := range seq {
		if err != nil {
			return events, err
		}
		events = append(events, ev)
		if ev.Revision >= until {
			return events, nil
		}
		if ctx.Err() != nil {
			return events, ctx.Err()
		}
	}
	return events, nil
}

// checkRevisions returns the first way events are not the changes after
// from up to until, each once, in order, with the entries want has by
// revision (nil: any), or nil.
func checkRevisions(events []todo.Event, from, until int64, want map[int64]todo.Event) error {
	next := from + 1
	for i, ev := range events {
		if ev.Revision != next {
			return fmt.Errorf("event %d has revision %d, want %d", i, ev.Revision, next)
		}
		if w, ok := want[ev.Revision]; want != nil && (!ok || w != ev) {
			return fmt.Errorf("event of revision %d = %+v, want %+v", ev.Revision, ev, w)
		}
		next++
	}
	if next != until+1 {
		return fmt.Errorf("%d events, up to revision %d; want every revision from %d to %d", len(events), next-1, from+1, until)
	}
	return nil
}

// TestNode_Watch: a watch on each node of the list, begun from the
// revision a read gave, yields every change made through any node, in
// order, each once, with the revision its write answered, wherever the
// list is served; and a watch begun later, from a revision the log holds,
// yields the changes after it. A watch from ahead of the list is refused.
func TestNode_Watch(t *testing.T) {
	nodes := threeNodes(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	list := unique("watch")
	if _, err := nodes[0].AddEntry(ctx, list, todo.Entry{Date: day, Title: "first"}); err != nil {
		t.Fatal(err)
	}
	_, from, err := nodes[1].EntriesPageRev(ctx, list, todo.Date{}, 0, 10)
	if err != nil || from != 2 {
		t.Fatalf("the list's revision: %d, %v; want 2", from, err)
	}
	seqs := make([]iter.Seq2[todo.Event, error], len(nodes))
	for i, n := range nodes {
		if seqs[i], err = n.Watch(ctx, list, from); err != nil {
			t.Fatalf("watch on %s: %v", n.Name(), err)
		}
	}
	const adds = 60
	var (
		mu   sync.Mutex
		want = make(map[int64]todo.Event)
		wg   sync.WaitGroup
	)
	for i, n := range nodes {
		wg.Go(func() {
			for j := range adds / len(nodes) {
				e, rev, err := n.AddEntryRev(ctx, list, todo.Entry{Date: day, Title: fmt.Sprintf("%d-%d", i, j)})
				if err != nil {
					t.Errorf("add through %s: %v", n.Name(), err)
					return
				}
				mu.Lock()
				want[rev] = todo.Event{Kind: todo.Added, Entry: e, Revision: rev}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	up, rev, err := nodes[2].UpdateEntryRev(ctx, list, 1, todo.Patch{Title: "first, updated"})
	if err != nil {
		t.Fatal(err)
	}
	want[rev] = todo.Event{Kind: todo.Updated, Entry: up, Revision: rev}
	if rev, err = nodes[1].DeleteEntryRev(ctx, list, 1); err != nil {
		t.Fatal(err)
	}
	want[rev] = todo.Event{Kind: todo.Deleted, Entry: up, Revision: rev}
	last := rev
	for i, seq := range seqs {
		events, err := watchUntil(ctx, seq, last)
		if err := errors.Join(err, checkRevisions(events, from, last, want)); err != nil {
			t.Errorf("the watch on %s: %v", nodes[i].Name(), err)
		}
	}

	// Later, from the middle of the log; and from ahead of it.
	seq, err := nodes[2].Watch(ctx, list, from+10)
	if err != nil {
		t.Fatal(err)
	}
	events, err := watchUntil(ctx, seq, last)
	if err := errors.Join(err, checkRevisions(events, from+10, last, want)); err != nil {
		t.Errorf("a watch from %d: %v", from+10, err)
	}
	if _, err := nodes[0].Watch(ctx, list, last+1); !errors.Is(err, todo.ErrTooOld) {
		t.Errorf("a watch from ahead of the list: %v, want ErrTooOld", err)
	}
	if _, err := nodes[0].Watch(ctx, list, -1); !errors.Is(err, todo.ErrInvalidRevision) {
		t.Errorf("a watch from -1: %v, want ErrInvalidRevision", err)
	}
}

// TestNode_Watch_FromNow: a watch from now of a list never written yields
// its first change, revision 2; one of a list written yields the changes
// after it began.
func TestNode_Watch_FromNow(t *testing.T) {
	nodes := threeNodes(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	list := unique("watch-now")
	seq, err := nodes[1].Watch(ctx, list, 0)
	if err != nil {
		t.Fatal(err)
	}
	e, rev, err := nodes[0].AddEntryRev(ctx, list, todo.Entry{Date: day, Title: "a"})
	if err != nil || rev != 2 {
		t.Fatalf("the first add: revision %d, %v", rev, err)
	}
	events, err := watchUntil(ctx, seq, 2)
	if err := errors.Join(err, checkRevisions(events, 1, 2, map[int64]todo.Event{2: {Kind: todo.Added, Entry: e, Revision: 2}})); err != nil {
		t.Fatal(err)
	}
	seq, err = nodes[2].Watch(ctx, list, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nodes[1].AddEntry(ctx, list, todo.Entry{Date: day, Title: "b"}); err != nil {
		t.Fatal(err)
	}
	events, err = watchUntil(ctx, seq, 3)
	if err := errors.Join(err, checkRevisions(events, 2, 3, nil)); err != nil {
		t.Fatal(err)
	}
}

// TestNode_Watch_Ends: a watch ends with ctx's error when its ctx ends,
// with ErrClosed when its node closes, and gives its place back either
// way; past MaxListWatches a watch is refused.
func TestNode_Watch_Ends(t *testing.T) {
	dir := t.TempDir()
	nodes, err := startNodes(dir, 3, nil, func(o *cluster.Options) {
		o.System = &todo.Options{IdleTimeout: -1, MaxListWatches: 1}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll(nodes)
	ctx := context.Background()
	list := unique("watch-ends")
	wctx, cancel := context.WithCancel(ctx)
	seq, err := nodes[0].Watch(wctx, list, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nodes[0].Watch(ctx, list, 0); !errors.Is(err, todo.ErrTooManyWatches) {
		t.Fatalf("a second watch, MaxListWatches 1: %v, want ErrTooManyWatches", err)
	}
	done := make(chan error)
	go func() {
		_, err := watchUntil(ctx, seq, 1<<62)
		done <- err
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("a watch whose ctx ended: %v, want context.Canceled", err)
	}
	seq, err = nodes[0].Watch(ctx, list, 0) // its place was given back
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		_, err := watchUntil(ctx, seq, 1<<62)
		done <- err
	}()
	nodes[0].Close()
	if err := <-done; !errors.Is(err, todo.ErrClosed) {
		t.Fatalf("a watch over Close: %v, want ErrClosed", err)
	}
}

// TestNode_Watch_HandOff: watches on the two other nodes follow a list
// while adds go on through them and the node serving it leaves (Close,
// which hands its lists off): every acknowledged add is yielded once, in
// the order of its revision, with no revision skipped or repeated.
func TestNode_Watch_HandOff(t *testing.T) {
	nodes, err := startNodes(t.TempDir(), 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll(nodes)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	list := unique("watch-handoff")
	if _, err := nodes[0].AddEntry(ctx, list, todo.Entry{Date: day, Title: "first"}); err != nil {
		t.Fatal(err)
	}
	var owner *cluster.Node
	var others []*cluster.Node
	for _, n := range nodes {
		if n.Holds(list) {
			owner = n
		} else {
			others = append(others, n)
		}
	}
	if owner == nil || len(others) != 2 {
		t.Fatalf("no single node serves %s", list)
	}
	_, from, err := others[0].EntriesPageRev(ctx, list, todo.Date{}, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	seqs := make([]iter.Seq2[todo.Event, error], len(others))
	for i, n := range others {
		if seqs[i], err = n.Watch(ctx, list, from); err != nil {
			t.Fatal(err)
		}
	}
	var (
		mu      sync.Mutex
		want    = make(map[int64]todo.Event)
		last    int64
		acked   int
		flowing = make(chan struct{})
		closed  = make(chan struct{})
		wg      sync.WaitGroup
	)
	for i, n := range others {
		wg.Go(func() {
			for j := 0; ; j++ {
				select {
				case <-closed:
					if j > 40 {
						return
					}
				default:
				}
				e, rev, err := n.AddEntryRev(ctx, list, todo.Entry{Date: day, Title: fmt.Sprintf("%d-%d", i, j)})
				if err != nil {
					t.Errorf("add through %s: %v", n.Name(), err)
					return
				}
				mu.Lock()
				want[rev] = todo.Event{Kind: todo.Added, Entry: e, Revision: rev}
				last, acked = max(last, rev), acked+1
				if acked == 20 {
					close(flowing)
				}
				mu.Unlock()
			}
		})
	}
	select { // adds go through: the hand-off happens under them
	case <-flowing:
	case <-ctx.Done():
		t.Fatalf("no 20 adds went through: %v", ctx.Err())
	}
	owner.Close()
	closedAt := time.Now()
	close(closed)
	wg.Wait()
	if t.Failed() {
		t.Logf("%s closed %v before; what the others' servers say of their Raft groups:", owner.Name(), time.Since(closedAt).Round(time.Millisecond))
		for _, n := range others {
			t.Logf("%s:\n%s", n.Name(), n.Diagnose())
		}
		t.FailNow()
	}
	if len(want) != int(last-from) {
		t.Fatalf("%d adds acknowledged, up to revision %d from %d: revisions were skipped or given twice", len(want), last, from)
	}
	for i, seq := range seqs {
		events, err := watchUntil(ctx, seq, last)
		if err := errors.Join(err, checkRevisions(events, from, last, want)); err != nil {
			t.Errorf("the watch on %s: %v", others[i].Name(), err)
		}
	}
	t.Logf("%d adds from revision %d, across %s's hand-off", len(want), from, owner.Name())
}
