package todo_test

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"maps"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gotodo/todo"
	"go.uber.org/goleak"
)

// watched is what a watch yielded: its events, and the error that ended
// it, if one did.
type watched struct {
	events []todo.Event
	err    error
}

// watchUntil ranges over seq until it yields an event of revision until
// or later, or an error, or n events when n > 0.
func watchUntil(seq iter.Seq2[todo.Event, error], until int64, n int) watched {
	var w watched
	for ev, err := range seq {
		if err != nil {
			w.err = err
			break
		}
		w.events = append(w.events, ev)
		if ev.Revision >= until || n > 0 && len(w.events) == n {
			break
		}
	}
	return w
}

// mustWatch starts a watch of s from revision from, ended with the test.
func mustWatch(t testing.TB, s *todo.Server, from int64) iter.Seq2[todo.Event, error] {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	seq, err := s.Watch(ctx, from)
	if err != nil {
		t.Fatalf("Watch(%q, %d): %v", s.Name(), from, err)
	}
	return seq
}

// checkEvents returns the first way events are not the changes after
// revision from up to until, each once, in order, of the kinds and
// entries want gives by revision (nil: any), or nil. It is the harness of
// the order tests, which its broken twins prove.
func checkEvents(events []todo.Event, from, until int64, want map[int64]todo.Event) error {
	next := from + 1
	for i, ev := range events {
		switch {
		case ev.Revision != next:
			return fmt.Errorf("event %d has revision %d, want %d (events %v)", i, ev.Revision, next, around(events, i))
		case want != nil && ev != want[ev.Revision]:
			return fmt.Errorf("event of revision %d = %+v, want %+v", ev.Revision, ev, want[ev.Revision])
		}
		next++
	}
	if next != until+1 {
		return fmt.Errorf("%d events, up to revision %d; want every revision from %d to %d", len(events), next-1, from+1, until)
	}
	return nil
}

// around returns the events near i, for an error message.
func around(events []todo.Event, i int) []todo.Event {
	return events[max(0, i-2):min(len(events), i+3)]
}

// concurrentAdds adds n entries to list from 50 goroutines, and returns
// the event each add's revision should give.
func concurrentAdds(t testing.TB, sys *todo.System, list string, n int) map[int64]todo.Event {
	t.Helper()
	const writers = 50
	var (
		mu   sync.Mutex
		want = make(map[int64]todo.Event, n)
		wg   sync.WaitGroup
	)
	for w := range writers {
		wg.Go(func() {
			for i := w; i < n; i += writers {
				e, rev, err := sys.AddEntryRev(context.Background(), list, todo.Entry{Date: day19, Title: fmt.Sprintf("add %d", i)})
				if err != nil {
					t.Errorf("AddEntryRev: %v", err)
					return
				}
				mu.Lock()
				want[rev] = todo.Event{Kind: todo.Added, Entry: e, Revision: rev}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return want
}

// watchConcurrentAdds watches a list from now while 1,000 adds are made
// to it at once, and returns what the watch saw against what it should.
func watchConcurrentAdds(t *testing.T, sys *todo.System) error {
	const n = 1000
	seq := mustWatch(t, sys.ServerProcess("bob"), 0)
	got := make(chan watched)
	go func() { got <- watchUntil(seq, n+1, n) }()
	want := concurrentAdds(t, sys, "bob", n)
	w := <-got
	if w.err != nil {
		t.Fatalf("the watch ended: %v", w.err)
	}
	if len(want) != n {
		t.Fatalf("%d adds were acknowledged with distinct revisions, want %d", len(want), n)
	}
	return checkEvents(w.events, 1, n+1, want)
}

// TestWatch_ConcurrentAdds: a watch sees each of 1,000 concurrent adds
// once, in the order of their revisions, 2 to 1,001, with the entry its
// add was answered, on a data directory and in memory.
func TestWatch_ConcurrentAdds(t *testing.T) {
	t.Parallel()
	opts := &todo.Options{WatchBuffer: 1000} // the watcher may lag the whole run
	t.Run("store=dir", func(t *testing.T) {
		t.Parallel()
		if err := watchConcurrentAdds(t, openDirSystem(t, t.TempDir(), opts)); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("store=memory", func(t *testing.T) {
		t.Parallel()
		if err := watchConcurrentAdds(t, openMemSystem(t, opts)); err != nil {
			t.Fatal(err)
		}
	})
}

// TestWatch_ConcurrentAdds_BrokenTwins: the harness above catches a watch
// that skips one event, and one that repeats one.
func TestWatch_ConcurrentAdds_BrokenTwins(t *testing.T) {
	t.Parallel()
	for _, twin := range []string{"skip", "repeat"} {
		t.Run("twin="+twin, func(t *testing.T) {
			t.Parallel()
			sys, err := todo.OpenInMemoryWatchBroken(&todo.Options{WatchBuffer: 1000}, twin)
			if err != nil {
				t.Fatal(err)
			}
			defer sys.Close()
			err = watchConcurrentAdds(t, sys)
			if err == nil {
				t.Fatalf("the harness passed a watch that does %s", twin)
			}
			t.Logf("caught: %v", err)
		})
	}
}

// TestWatch_Kinds: an add, an update and a delete are yielded as what
// they did, with the entry as the change left it (as it was, for the
// delete), and the revision each write returned; a retry with an
// idempotency key changes nothing and yields nothing.
func TestWatch_Kinds(t *testing.T) {
	t.Parallel()
	sys := openMemSystem(t, nil)
	ctx := context.Background()
	seq := mustWatch(t, sys.ServerProcess("bob"), 0)

	keyed := todo.WithIdempotencyKey(ctx, "add-1")
	added, r1, err := sys.AddEntryRev(keyed, "bob", todo.Entry{Date: day19, Title: "Dentist"})
	if err != nil {
		t.Fatal(err)
	}
	if _, again, err := sys.AddEntryRev(keyed, "bob", todo.Entry{Date: day19, Title: "Dentist"}); err != nil || again != r1 {
		t.Fatalf("the retry of the add: revision %d, %v; want %d, nil", again, err, r1)
	}
	updated, r2, err := sys.UpdateEntryRev(ctx, "bob", added.ID, todo.Patch{Title: "Dentist at 10"})
	if err != nil {
		t.Fatal(err)
	}
	r3, err := sys.DeleteEntryRev(ctx, "bob", added.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := sys.UpdateEntryRev(ctx, "bob", added.ID, todo.Patch{Title: "gone"}); !errors.Is(err, todo.ErrEntryNotFound) {
		t.Fatalf("update of a deleted entry: %v, want ErrEntryNotFound", err)
	}
	if r1 != 2 || r2 != 3 || r3 != 4 {
		t.Fatalf("revisions %d, %d, %d; want 2, 3, 4 (a new list is at 1)", r1, r2, r3)
	}
	w := watchUntil(seq, 4, 0)
	want := map[int64]todo.Event{
		2: {Kind: todo.Added, Entry: added, Revision: 2},
		3: {Kind: todo.Updated, Entry: updated, Revision: 3},
		4: {Kind: todo.Deleted, Entry: updated, Revision: 4},
	}
	if err := errors.Join(w.err, checkEvents(w.events, 1, 4, want)); err != nil {
		t.Fatal(err)
	}
	for k, s := range map[todo.EventKind]string{todo.Added: "added", todo.Updated: "updated", todo.Deleted: "deleted", 0: "EventKind(0)"} {
		if k.String() != s {
			t.Errorf("%d.String() = %q, want %q", k, k.String(), s)
		}
	}
}

// TestWatch_ReadThenWatch: a client that reads a list with its revision
// while writers add, update and delete, then watches from that revision
// and applies each change to the entry of its id, ends with the list as
// it is: no change missed, none seen twice.
func TestWatch_ReadThenWatch(t *testing.T) {
	t.Parallel()
	// The watch is not ranged over until the writers are done: its buffer
	// holds all their changes.
	sys := openDirSystem(t, t.TempDir(), &todo.Options{Durability: todo.Write, WatchBuffer: 1000})
	ctx := context.Background()
	s := sys.ServerProcess("bob")
	for i := range 20 {
		mustAddEntry(t, s, day19, fmt.Sprintf("first %d", i))
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			rnd := rand.New(rand.NewPCG(uint64(w), 1))
			for i := range 100 {
				var err error
				switch id := 1 + rnd.IntN(20+i); i % 3 {
				case 0:
					_, err = s.AddEntry(ctx, todo.Entry{Date: day20, Title: fmt.Sprintf("w%d %d", w, i)})
				case 1:
					_, _, err = sys.UpdateEntryRev(ctx, "bob", id, todo.Patch{Title: fmt.Sprintf("w%d %d", w, i)})
				default:
					_, err = sys.DeleteEntryRev(ctx, "bob", id)
				}
				if err != nil && !errors.Is(err, todo.ErrEntryNotFound) {
					t.Errorf("writer %d: %v", w, err)
				}
			}
		})
	}
	entries, rev, err := s.EntriesRev(ctx, todo.Date{})
	if err != nil {
		t.Fatal(err)
	}
	seq := mustWatch(t, s, rev)
	wg.Wait()
	final, finalRev, err := s.EntriesRev(ctx, todo.Date{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("read at revision %d of %d", rev, finalRev)
	w := watchUntil(seq, finalRev, 0)
	if err := errors.Join(w.err, checkEvents(w.events, rev, finalRev, nil)); err != nil {
		t.Fatal(err)
	}
	byID := make(map[int]todo.Entry)
	for _, e := range entries {
		byID[e.ID] = e
	}
	for _, ev := range w.events {
		if ev.Kind == todo.Deleted {
			delete(byID, ev.Entry.ID)
		} else {
			byID[ev.Entry.ID] = ev.Entry
		}
	}
	want := make(map[int]todo.Entry)
	for _, e := range final {
		want[e.ID] = e
	}
	if !maps.Equal(byID, want) {
		t.Fatalf("the read and the watch give %d entries, the list has %d:\n got %v\nwant %v", len(byID), len(want), byID, want)
	}
}

// TestWatch_Resume: a watch broken off (its client went away) and begun
// again from the last revision it yielded goes on with no gap and no
// repeat.
func TestWatch_Resume(t *testing.T) {
	t.Parallel()
	sys := openMemSystem(t, nil)
	s := sys.ServerProcess("bob")
	seq := mustWatch(t, s, 0)
	for i := range 10 {
		mustAddEntry(t, s, day19, fmt.Sprint(i))
	}
	first := watchUntil(seq, 11, 4) // the client takes 4, and goes
	for i := range 10 {
		mustAddEntry(t, s, day19, fmt.Sprint(10+i))
	}
	last := first.events[len(first.events)-1].Revision
	rest := watchUntil(mustWatch(t, s, last), 21, 0)
	all := append(first.events, rest.events...)
	if err := errors.Join(first.err, rest.err, checkEvents(all, 1, 21, nil)); err != nil {
		t.Fatal(err)
	}
	for _, err := range seq {
		if !errors.Is(err, todo.ErrClosed) {
			t.Fatalf("a watch ranged over twice yielded %v, want ErrClosed", err)
		}
	}
}

// TestWatch_TooOld: a watch from before the history, or ahead of the
// list, is refused with ErrTooOld, and one from within it served; a
// revision out of range is refused as invalid. After a restart the
// history starts at the list's revision.
func TestWatch_TooOld(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sys := openDirSystem(t, dir, &todo.Options{WatchHistory: 10})
	s := sys.ServerProcess("bob")
	ctx := context.Background()
	for i := range 30 {
		mustAddEntry(t, s, day19, fmt.Sprint(i))
	}
	for _, from := range []int64{1, 20, 32, 1000} {
		if _, err := s.Watch(ctx, from); !errors.Is(err, todo.ErrTooOld) {
			t.Errorf("Watch from %d of 31, keeping 10: %v, want ErrTooOld", from, err)
		}
	}
	for _, from := range []int64{-1, todo.MaxRevision + 1} {
		if _, err := s.Watch(ctx, from); !errors.Is(err, todo.ErrInvalidRevision) {
			t.Errorf("Watch from %d: %v, want ErrInvalidRevision", from, err)
		}
	}
	if _, err := sys.Watch(ctx, "", 0); !errors.Is(err, todo.ErrInvalidName) {
		t.Errorf("Watch of an invalid name: %v, want ErrInvalidName", err)
	}
	w := watchUntil(mustWatch(t, s, 21), 31, 0)
	if err := errors.Join(w.err, checkEvents(w.events, 21, 31, nil)); err != nil {
		t.Fatalf("from 21, the oldest kept: %v", err)
	}
	if st := sys.Stats(); st.Watches != 0 {
		t.Errorf("Stats.Watches = %d after every watch ended, want 0", st.Watches)
	}

	if err := sys.Close(); err != nil {
		t.Fatal(err)
	}
	sys = openDirSystem(t, dir, nil)
	s = sys.ServerProcess("bob")
	if _, err := s.Watch(ctx, 30); !errors.Is(err, todo.ErrTooOld) {
		t.Errorf("Watch from 30 after a restart at 31: %v, want ErrTooOld", err)
	}
	seq := mustWatch(t, s, 31)
	mustAddEntry(t, s, day19, "after the restart")
	w = watchUntil(seq, 32, 0)
	if err := errors.Join(w.err, checkEvents(w.events, 31, 32, nil)); err != nil {
		t.Fatalf("from 31 after a restart: %v", err)
	}
}

// TestWatch_SlowWatcherEnded: a watcher that stops taking events holds up
// no add; once it is more than WatchBuffer changes behind it ends with a
// BehindError saying where it stood, and a watch from there goes on.
func TestWatch_SlowWatcherEnded(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		sys := openMemSystem(t, &todo.Options{WatchHistory: 200, WatchBuffer: 8})
		s := sys.ServerProcess("bob")
		seq := mustWatch(t, s, 0)
		release := make(chan struct{})
		got := make(chan watched)
		go func() {
			var w watched
			for ev, err := range seq {
				if err != nil {
					w.err = err
					break
				}
				w.events = append(w.events, ev)
				<-release // the client stalls
			}
			got <- w
		}()
		mustAddEntry(t, s, day19, "first")
		synctest.Wait() // the watcher holds the first event

		var added atomic.Int64
		go func() {
			for i := range 100 {
				if _, err := s.AddEntry(context.Background(), todo.Entry{Date: day19, Title: fmt.Sprint(i)}); err != nil {
					t.Errorf("AddEntry: %v", err)
					return
				}
				added.Add(1)
			}
		}()
		synctest.Wait()
		if n := added.Load(); n != 100 {
			t.Fatalf("%d of 100 adds were answered while a watcher stalled: the watcher holds up the writer", n)
		}
		close(release)
		w := <-got
		var behind *todo.BehindError
		if !errors.As(w.err, &behind) || !errors.Is(w.err, todo.ErrWatchBehind) || behind.Revision != 2 || behind.List != "bob" {
			t.Fatalf("the stalled watch ended with %v (events %v), want a BehindError at revision 2", w.err, w.events)
		}
		if st := sys.Stats(); st.WatchesBehind != 1 || st.Watches != 0 {
			t.Errorf("Stats: WatchesBehind = %d, Watches = %d; want 1, 0", st.WatchesBehind, st.Watches)
		}
		rest := watchUntil(mustWatch(t, s, behind.Revision), 102, 0)
		if err := errors.Join(rest.err, checkEvents(rest.events, 2, 102, nil)); err != nil {
			t.Fatalf("resumed from %d: %v", behind.Revision, err)
		}
	})
}

// TestWatch_Ends: a watch ends when its ctx ends (with ctx's error), and
// when the System closes (with ErrClosed, after every change stored); one
// never ranged over gives its place back when its ctx ends; no goroutine
// is left.
func TestWatch_Ends(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	synctest.Test(t, func(t *testing.T) {
		sys, err := todo.OpenInMemory(nil)
		if err != nil {
			t.Fatal(err)
		}
		s := sys.ServerProcess("bob")

		ctx, cancel := context.WithCancel(context.Background())
		seq, err := s.Watch(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan watched)
		go func() { got <- watchUntil(seq, 1<<62, 0) }()
		mustAddEntry(t, s, day19, "Dentist")
		synctest.Wait()
		cancel()
		if w := <-got; !errors.Is(w.err, context.Canceled) || len(w.events) != 1 {
			t.Fatalf("the watch whose ctx ended: %d events, %v; want 1, then context.Canceled", len(w.events), w.err)
		}

		idle, cancelIdle := context.WithCancel(context.Background())
		if _, err := s.Watch(idle, 0); err != nil {
			t.Fatal(err)
		}
		if n := sys.Stats().Watches; n != 1 {
			t.Fatalf("Stats.Watches = %d with one watch never ranged over, want 1", n)
		}
		cancelIdle()
		synctest.Wait() // for the ctx's AfterFunc
		if n := sys.Stats().Watches; n != 0 {
			t.Fatalf("Stats.Watches = %d once the ctx of the watch never ranged over ended, want 0", n)
		}

		seqs := make([]iter.Seq2[todo.Event, error], 3)
		for i := range seqs {
			seqs[i] = mustWatch(t, s, 2)
		}
		ends := make(chan watched, len(seqs))
		for _, seq := range seqs {
			go func() { ends <- watchUntil(seq, 1<<62, 0) }()
		}
		mustAddEntry(t, s, day19, "before Close")
		if err := sys.Close(); err != nil {
			t.Fatal(err)
		}
		for range seqs {
			w := <-ends
			if err := checkEvents(w.events, 2, 3, nil); err != nil || !errors.Is(w.err, todo.ErrClosed) {
				t.Errorf("a watch over Close: %v, ended with %v; want revision 3, then ErrClosed", err, w.err)
			}
		}
		if _, err := s.Watch(context.Background(), 0); !errors.Is(err, todo.ErrClosed) {
			t.Errorf("Watch after Close: %v, want ErrClosed", err)
		}
	})
}

// TestWatch_Limits: a watch past MaxListWatches on one list, or
// MaxWatches in all, is refused with ErrTooManyWatches; one that ended
// gives its place back.
func TestWatch_Limits(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		sys := openMemSystem(t, &todo.Options{MaxWatches: 3, MaxListWatches: 2})
		ctx := context.Background()
		bob := sys.ServerProcess("bob")
		first, cancelFirst := context.WithCancel(ctx)
		defer cancelFirst()
		if _, err := bob.Watch(first, 0); err != nil {
			t.Fatal(err)
		}
		mustWatch(t, bob, 0)
		if _, err := bob.Watch(ctx, 0); !errors.Is(err, todo.ErrTooManyWatches) {
			t.Fatalf("a third watch of bob, MaxListWatches 2: %v, want ErrTooManyWatches", err)
		}
		mustWatch(t, sys.ServerProcess("alice"), 0)
		if _, err := sys.ServerProcess("carol").Watch(ctx, 0); !errors.Is(err, todo.ErrTooManyWatches) {
			t.Fatalf("a fourth watch, MaxWatches 3: %v, want ErrTooManyWatches", err)
		}
		cancelFirst()
		synctest.Wait() // for the ctx's AfterFunc
		mustWatch(t, bob, 0)
		if n := sys.Stats().Watches; n != 3 {
			t.Fatalf("Stats.Watches = %d, want 3", n)
		}
	})
}

// TestWatch_DoesNotLoadOrWake: watching a list neither loads it (a watch
// from now reads nothing; one from a revision reads the list's revision
// without a server) nor keeps its server awake: it hibernates and expires
// as without the watch, and the watch goes on over its restart, from the
// history the watch kept. A list that sleeps unwatched keeps no history,
// and a watch of it wakes nothing.
func TestWatch_DoesNotLoadOrWake(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		sys := openMemSystem(t, &todo.Options{HibernateAfter: time.Second, IdleTimeout: 10 * time.Second})
		ctx := context.Background()
		bob := sys.ServerProcess("bob")
		seq := mustWatch(t, bob, 0)
		if st := sys.Stats(); st.ServersStarted != 0 {
			t.Fatalf("a watch from now started %d servers, want none", st.ServersStarted)
		}
		got := make(chan watched)
		go func() { got <- watchUntil(seq, 4, 0) }()

		mustAddEntry(t, bob, day19, "Dentist")
		mustAddEntry(t, bob, day19, "Shopping")
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if st := sys.Stats(); st.ServersHibernating != 1 {
			t.Fatalf("ServersHibernating = %d with the list watched, want 1", st.ServersHibernating)
		}
		if n := todo.FeedHistory(sys, "bob"); n != 2 {
			t.Errorf("the watched list keeps %d changes while it sleeps, want 2", n)
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if st := sys.Stats(); st.ServersExpired != 1 || st.ServersRunning != 0 {
			t.Fatalf("ServersExpired = %d, ServersRunning = %d with the list watched; want 1, 0", st.ServersExpired, st.ServersRunning)
		}
		late := mustWatch(t, bob, 1) // from the history the first watch keeps
		mustAddEntry(t, bob, day19, "after the restart")
		w := <-got
		if err := errors.Join(w.err, checkEvents(w.events, 1, 4, nil)); err != nil {
			t.Fatalf("the watch over hibernation and expiry: %v", err)
		}
		w = watchUntil(late, 4, 0)
		if err := errors.Join(w.err, checkEvents(w.events, 1, 4, nil)); err != nil {
			t.Fatalf("the watch begun from the history, after the expiry: %v", err)
		}

		alice := sys.ServerProcess("alice")
		mustAddEntry(t, alice, day19, "asleep")
		if n := todo.FeedHistory(sys, "alice"); n != 1 {
			t.Errorf("an awake list keeps %d changes, want 1", n)
		}
		carol := sys.ServerProcess("carol")
		mustAddEntry(t, carol, day19, "stored")
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if n := todo.FeedHistory(sys, "alice"); n != -1 {
			t.Errorf("a list asleep and unwatched keeps a feed of %d changes, want none", n)
		}
		mustAddEntry(t, alice, day19, "awake again") // carol's clock runs on
		time.Sleep(9 * time.Second)
		synctest.Wait()
		if st := sys.Stats(); st.ServersRunning != 1 || st.ServersHibernating != 1 {
			t.Fatalf("%d servers running, %d asleep; want alice's alone, asleep (bob and carol expired)", st.ServersRunning, st.ServersHibernating)
		}
		before := sys.Stats()
		for _, c := range []struct {
			s    *todo.Server
			from int64
		}{{alice, 0}, {alice, 3}, {carol, 0}, {carol, 2}} {
			if _, err := c.s.Watch(ctx, c.from); err != nil {
				t.Errorf("watch of %s from %d: %v", c.s.Name(), c.from, err)
			}
		}
		if _, err := carol.Watch(ctx, 3); !errors.Is(err, todo.ErrTooOld) {
			t.Errorf("watch of carol, stored at 2, from 3: %v, want ErrTooOld", err)
		}
		after := sys.Stats()
		if after.Wakes != before.Wakes || after.ServersStarted != before.ServersStarted {
			t.Errorf("watches woke %d servers and started %d, want none", after.Wakes-before.Wakes, after.ServersStarted-before.ServersStarted)
		}
	})
}

// TestRevision_Stored: a list's revision counts its changes, is answered
// by its writes and reads, and survives a Close and a crash; with Write
// durability a crash may skip revisions, never give one twice.
func TestRevision_Stored(t *testing.T) {
	t.Parallel()
	for _, d := range []todo.Durability{todo.Fsync, todo.Write} {
		t.Run("durability="+d.String(), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			sys := openDirSystem(t, dir, &todo.Options{Durability: d})
			ctx := context.Background()
			if _, rev, err := sys.EntriesPageRev(ctx, "bob", todo.Date{}, 0, 10); err != nil || rev != 1 {
				t.Fatalf("EntriesPageRev of a new list: revision %d, %v; want 1", rev, err)
			}
			for i := range 3 {
				if _, rev, err := sys.AddEntryRev(ctx, "bob", todo.Entry{Date: day19, Title: fmt.Sprint(i)}); err != nil || rev != int64(i+2) {
					t.Fatalf("add %d: revision %d, %v; want %d", i, rev, err, i+2)
				}
			}
			if rev, err := sys.DeleteEntryRev(ctx, "bob", 2); err != nil || rev != 5 {
				t.Fatalf("delete: revision %d, %v; want 5", rev, err)
			}
			if _, rev, err := sys.EntriesPageRev(ctx, "bob", todo.Date{}, 0, 10); err != nil || rev != 5 {
				t.Fatalf("EntriesPageRev: revision %d, %v; want 5", rev, err)
			}
			crashed := copyDir(t, dir) // as a SIGKILL would leave it
			if err := sys.Close(); err != nil {
				t.Fatal(err)
			}

			sys = openDirSystem(t, dir, nil)
			if _, rev, err := sys.ServerProcess("bob").EntriesRev(ctx, day19); err != nil || rev != 5 {
				t.Fatalf("after Close and Open: revision %d, %v; want 5", rev, err)
			}
			if _, _, err := sys.EntriesPageRev(ctx, "bob", todo.Date{}, 0, 0); !errors.Is(err, todo.ErrInvalidLimit) {
				t.Errorf("EntriesPageRev with limit 0: %v, want ErrInvalidLimit", err)
			}

			sys = openDirSystem(t, crashed, nil)
			_, rev, err := sys.ServerProcess("bob").EntriesRev(ctx, todo.Date{})
			switch {
			case err != nil:
				t.Fatal(err)
			case d == todo.Fsync && rev != 5:
				t.Fatalf("after a crash, Fsync: revision %d, want 5", rev)
			case rev < 5:
				t.Fatalf("after a crash: revision %d, below the 5 answered", rev)
			}
			if _, err := sys.Watch(ctx, "bob", rev-1); !errors.Is(err, todo.ErrTooOld) {
				t.Errorf("after a crash at revision %d, Watch from %d: %v, want ErrTooOld", rev, rev-1, err)
			}
			if _, next, err := sys.AddEntryRev(ctx, "bob", todo.Entry{Date: day19, Title: "after"}); err != nil || next != rev+1 {
				t.Errorf("the add after the crash: revision %d, %v; want %d", next, err, rev+1)
			}
		})
	}
}

// TestRevision_Corrupt: a list file whose revision is past MaxRevision,
// or 0, is refused as corrupt, naming the file.
func TestRevision_Corrupt(t *testing.T) {
	t.Parallel()
	for name, rev := range map[string][]byte{
		"2^53": {0xcf, 0, 0x20, 0, 0, 0, 0, 0, 0},
		"0":    {0x00},
	} {
		t.Run("revision="+name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			body := append(persistBody{0x95, 0x03, 0x00, 0x90, 0x90}, rev...) // [3, 0, [], [], rev]
			persistWriteFile(t, dir, "bob", persistFrame(body))
			sys := persistOpen(t, dir, nil)
			_, err := sys.ServerProcess("bob").AllEntries(context.Background())
			if !errors.Is(err, todo.ErrCorrupt) || !strings.Contains(err.Error(), persistPath(dir, "bob")) {
				t.Fatalf("a revision of %s: %v, want ErrCorrupt naming the file", name, err)
			}
		})
	}
}

// TestChange_Events: a Store that keeps events (an EventKeeper) is handed
// every change's event once, in order, whatever the batches, the
// coalescing of Async changes, and the retries of those acknowledged
// whose commit failed; a change refused or rolled back is handed none.
func TestChange_Events(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name     string
		opts     todo.Options
		failures int
	}{
		{"durability=fsync", todo.Options{}, 0},
		{"durability=fsync/failures=3", todo.Options{}, 3},
		{"durability=async", todo.Options{Durability: todo.Async, AsyncDelay: time.Millisecond}, 0},
		{"durability=async/failures=1", todo.Options{Durability: todo.Async, AsyncDelay: time.Millisecond}, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			sys, stored, err := todo.OpenEventKeeping(&c.opts, c.failures)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			var (
				mu   sync.Mutex
				want = make(map[int64]todo.Event)
				last int64
				wg   sync.WaitGroup
			)
			note := func(ev todo.Event) {
				mu.Lock()
				defer mu.Unlock()
				want[ev.Revision] = ev
				last = max(last, ev.Revision)
			}
			for w := range 8 {
				wg.Go(func() {
					for i := range 25 {
						e, rev, err := sys.AddEntryRev(ctx, "bob", todo.Entry{Date: day19, Title: fmt.Sprint(w, " ", i)})
						if err != nil {
							continue // refused, or failed and rolled back: no change made
						}
						note(todo.Event{Kind: todo.Added, Entry: e, Revision: rev})
						if i%5 == 0 {
							up, rev, err := sys.UpdateEntryRev(ctx, "bob", e.ID, todo.Patch{Title: "updated"})
							if err == nil {
								note(todo.Event{Kind: todo.Updated, Entry: up, Revision: rev})
							}
						}
					}
				})
			}
			wg.Wait()
			if err := sys.Close(); err != nil {
				t.Fatal(err)
			}
			if len(want) < 100 {
				t.Fatalf("only %d changes made", len(want))
			}
			if err := checkEvents(stored("bob"), 1, last, want); err != nil {
				t.Fatal(err)
			}
		})
	}
}
