package todo_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gotodo/todo"
)

// TestPool_Coalescing sends 64 concurrent AddEntry to one list under Fsync
// durability: every one is answered, every entry is on disk after a
// reopen, and far fewer files were written than entries added.
//
// The bound: the list's server writes the list once per batch and takes
// into a batch everything that arrived while it was writing the previous
// one. The 64 callers are released together, so after the first write
// (which holds at least one entry) all the others have arrived and wait in
// one or two batches. 64/4 = 16 writes leaves room for a slow scheduler
// and still fails an implementation that writes once per entry, or once
// per pair of entries.
func TestPool_Coalescing(t *testing.T) {
	const callers = 64
	ctx := context.Background()
	dir := t.TempDir()
	sys := persistOpen(t, dir, &todo.Options{Durability: todo.Fsync})
	s := sys.ServerProcess("coalesced")
	// Load the list first, so that the adds do not wait for its server to
	// start and load, which would put them all in one batch.
	if _, err := s.AllEntries(ctx); err != nil {
		t.Fatal(err)
	}

	start := make(chan struct{})
	results := make(chan error, callers)
	ids := make(chan int, callers)
	for i := range callers {
		go func() {
			<-start
			e, err := s.AddEntry(ctx, todo.Entry{Date: persistDay, Title: fmt.Sprint("entry ", i)})
			ids <- e.ID
			results <- err
		}()
	}
	close(start)
	var got []int
	for range callers {
		if err := <-results; err != nil {
			t.Errorf("AddEntry: %v", err)
		}
		got = append(got, <-ids)
	}
	slices.Sort(got)
	for i, id := range got {
		if id != i+1 {
			t.Fatalf("ids %v, want 1..%d", got, callers)
		}
	}
	written := sys.Stats().ChangesStored
	t.Logf("%d entries added by %d concurrent callers with %d changes stored", callers, callers, written)
	if written < 1 || written > callers/4 {
		t.Errorf("%d changes stored for %d concurrent adds, want between 1 and %d", written, callers, callers/4)
	}
	persistClose(t, sys)

	sys = persistOpen(t, dir, nil)
	if es := persistAll(t, sys, "coalesced"); len(es) != callers {
		t.Errorf("after reopen %d entries, want %d", len(es), callers)
	}
}

// saveLog records the number of entries of each list's stored changes
// through a todo.SaveHook, and catches two stores of one list at once.
type saveLog struct {
	mu       sync.Mutex // guards the fields below
	lengths  map[string][]int
	inFlight map[string]bool
	overlaps int
}

func newSaveLog() *saveLog {
	return &saveLog{lengths: make(map[string][]int), inFlight: make(map[string]bool)}
}

func (l *saveLog) hook(list string, _, entries int, save func() error) error {
	l.mu.Lock()
	if l.inFlight[list] {
		l.overlaps++
	}
	l.inFlight[list] = true
	l.mu.Unlock()

	err := save()

	l.mu.Lock()
	l.inFlight[list] = false
	if err == nil {
		l.lengths[list] = append(l.lengths[list], entries)
	}
	l.mu.Unlock()
	return err
}

// TestPool_WritesOfAListNeverReorder adds a thousand entries, one after
// another, to each of several lists under Async durability, with as many
// workers as lists. After a list's first add (which waits: it reserves the
// ids it gives out), each of its writes passes a gate of its own that its
// adder opens for one write every 50 adds, so that the list always has a
// pending change that its adds keep growing (coalescing) and is written
// about twenty times. Every write of a list must hold a newer state than
// the one before (its entries only grow), no two writes of a list may
// overlap, and after Close the store holds everything.
func TestPool_WritesOfAListNeverReorder(t *testing.T) {
	const lists, adds = 8, 1000
	ctx := context.Background()
	dir := t.TempDir()
	log := newSaveLog()
	gates := make(map[string]chan struct{})
	gated := make(map[string]*atomic.Bool)
	for l := range lists {
		gates[fmt.Sprint("ordered ", l)] = make(chan struct{})
		gated[fmt.Sprint("ordered ", l)] = new(atomic.Bool)
	}
	hook := func(list string, lastID, entries int, save func() error) error {
		if gated[list].Load() {
			<-gates[list] // closed once the list's adder is done
		}
		return log.hook(list, lastID, entries, save)
	}
	// AsyncDelay -1: every write goes as soon as its gate lets it.
	sys, err := todo.OpenHooked(dir, &todo.Options{Durability: todo.Async, Workers: lists, AsyncDelay: -1}, hook)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sys.Close() })

	var wg sync.WaitGroup
	for l := range lists {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprint("ordered ", l)
			defer close(gates[name])
			s := sys.ServerProcess(name)
			for i := range adds {
				if _, err := s.AddEntry(ctx, todo.Entry{Date: persistDay, Title: fmt.Sprint(i)}); err != nil {
					t.Errorf("AddEntry: %v", err)
					return
				}
				gated[name].Store(true)
				if i%50 == 49 {
					// A write of this list is pending (this add made sure of
					// it) and every write waits here: let one through.
					gates[name] <- struct{}{}
				}
			}
		}()
	}
	wg.Wait()
	persistClose(t, sys)

	if log.overlaps != 0 {
		t.Errorf("%d writes of a list overlapped another write of the same list", log.overlaps)
	}
	writes := 0
	for l := range lists {
		name := fmt.Sprint("ordered ", l)
		lengths := log.lengths[name]
		writes += len(lengths)
		if !slices.IsSorted(lengths) || len(slices.Compact(slices.Clone(lengths))) != len(lengths) {
			t.Errorf("%s: the writes held %v entries: not strictly increasing", name, lengths)
		}
		if len(lengths) == 0 || lengths[len(lengths)-1] != adds {
			t.Errorf("%s: the last write held %v entries, want %d", name, lengths[max(len(lengths)-1, 0):], adds)
		}
	}
	t.Logf("%d Async adds over %d lists took %d file writes", lists*adds, lists, writes)
	if writes < 4*lists {
		t.Errorf("only %d writes: too few to see an order", writes)
	}

	sys = persistOpen(t, dir, nil)
	for l := range lists {
		es := persistAll(t, sys, fmt.Sprint("ordered ", l))
		if len(es) != adds {
			t.Fatalf("list %d has %d entries after reopen, want %d", l, len(es), adds)
		}
		for i, e := range es {
			if e.ID != i+1 || e.Title != fmt.Sprint(i) {
				t.Fatalf("list %d entry %d = %+v, want id %d titled %d", l, i, e, i+1, i)
			}
		}
	}
}

// TestPool_SmallQueue runs the pool at its tightest, one worker with a
// queue of one list, under many lists and callers: everything must still
// complete (no deadlock) and be on disk.
func TestPool_SmallQueue(t *testing.T) {
	for _, d := range []todo.Durability{todo.Fsync, todo.Write, todo.Async} {
		t.Run("durability="+d.String(), func(t *testing.T) {
			const lists, callers, adds = 64, 16, 3
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			dir := t.TempDir()
			sys := persistOpen(t, dir, &todo.Options{Durability: d, Workers: 1, QueueSize: 1})
			var wg sync.WaitGroup
			for c := range callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range adds {
						for l := c; l < lists; l += callers {
							list := fmt.Sprint("small queue ", l)
							if _, err := sys.ServerProcess(list).AddEntry(ctx, todo.Entry{Date: persistDay, Title: fmt.Sprint(i)}); err != nil {
								t.Errorf("AddEntry(%s): %v", list, err)
								return
							}
						}
					}
				}()
			}
			wg.Wait()
			persistClose(t, sys)
			sys = persistOpen(t, dir, nil)
			for l := range lists {
				if es := persistAll(t, sys, fmt.Sprint("small queue ", l)); len(es) != adds {
					t.Fatalf("list %d has %d entries after reopen, want %d", l, len(es), adds)
				}
			}
		})
	}
}

// ackedEntry is an entry whose AddEntry was acknowledged.
type ackedEntry struct {
	list  string
	id    int
	title string
}

// missingEntries opens dir and returns the acknowledged entries that are
// not there, with the same id and title.
func missingEntries(tb testing.TB, dir string, acked []ackedEntry) []ackedEntry {
	tb.Helper()
	sys := persistOpen(tb, dir, nil)
	defer persistClose(tb, sys)
	stored := make(map[string]map[int]string)
	var missing []ackedEntry
	for _, a := range acked {
		byID, ok := stored[a.list]
		if !ok {
			byID = make(map[int]string)
			es, err := sys.ServerProcess(a.list).AllEntries(context.Background())
			if err != nil {
				tb.Errorf("list %q: %v", a.list, err)
			}
			for _, e := range es {
				byID[e.ID] = e.Title
			}
			stored[a.list] = byID
		}
		if title, ok := byID[a.id]; !ok || title != a.title {
			missing = append(missing, a)
		}
	}
	return missing
}

// closeFlushes adds entries to many lists from many goroutines, then
// closes the System, and returns the acknowledged entries missing after a
// reopen. With racing set, Close is called while the adds are still going
// on, once a third of them are acknowledged; adds that lose the race must
// fail with ErrClosed.
func closeFlushes(tb testing.TB, dir string, d todo.Durability, racing bool, open func(string, *todo.Options) (*todo.System, error)) (acked, missing []ackedEntry) {
	const lists, callers, adds = 40, 16, 40
	sys, err := open(dir, &todo.Options{Durability: d})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { sys.Close() })

	var mu sync.Mutex // guards acked
	var n atomic.Int64
	closeNow := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range adds {
				list := fmt.Sprint("flush ", (c*adds+i)%lists)
				title := fmt.Sprintf("caller %d add %d", c, i)
				e, err := sys.ServerProcess(list).AddEntry(context.Background(), todo.Entry{Date: persistDay, Title: title})
				if err != nil {
					if !racing || !errors.Is(err, todo.ErrClosed) {
						tb.Errorf("AddEntry: %v", err)
					}
					return
				}
				mu.Lock()
				acked = append(acked, ackedEntry{list, e.ID, title})
				mu.Unlock()
				if n.Add(1) == callers*adds/3 {
					once.Do(func() { close(closeNow) })
				}
			}
		}()
	}
	if racing {
		<-closeNow
	} else {
		wg.Wait()
	}
	if err := sys.Close(); err != nil {
		tb.Errorf("Close: %v", err)
	}
	wg.Wait()
	return acked, missingEntries(tb, dir, acked)
}

// TestClose_Flushes checks, for every durability, that every acknowledged
// entry is on disk after Close, whether Close comes after the adds or
// races with them.
func TestClose_Flushes(t *testing.T) {
	for _, d := range []todo.Durability{todo.Fsync, todo.Write, todo.Async} {
		for _, racing := range []bool{false, true} {
			t.Run(fmt.Sprintf("durability=%v/racing=%v", d, racing), func(t *testing.T) {
				acked, missing := closeFlushes(t, t.TempDir(), d, racing, todo.Open)
				t.Logf("%d acknowledged, %d missing after reopen", len(acked), len(missing))
				if len(missing) > 0 {
					t.Errorf("%d of %d acknowledged entries missing after Close, e.g. %+v", len(missing), len(acked), missing[0])
				}
				if len(acked) == 0 {
					t.Error("nothing was acknowledged")
				}
			})
		}
	}
}

// TestClose_Flushes_BrokenTwin runs the harness of TestClose_Flushes over
// a store that drops every Async write, to show that the harness sees a
// loss.
func TestClose_Flushes_BrokenTwin(t *testing.T) {
	dropping := func(dir string, o *todo.Options) (*todo.System, error) {
		return todo.OpenHooked(dir, o, func(string, int, int, func() error) error { return nil })
	}
	acked, missing := closeFlushes(t, t.TempDir(), todo.Async, false, dropping)
	t.Logf("broken twin: %d acknowledged, %d missing after reopen", len(acked), len(missing))
	if len(missing) == 0 {
		t.Error("the harness did not see the loss of every write")
	}
}

// TestPool_PublishedOnlyWhenStored holds a list's write at the disk and
// checks that, meanwhile, readers see only what was stored before it, and
// that a write that then fails is never seen at all: with Fsync and Write
// durability a reader sees exactly the acknowledged entries.
func TestPool_PublishedOnlyWhenStored(t *testing.T) {
	for _, d := range []todo.Durability{todo.Fsync, todo.Write} {
		t.Run(d.String(), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			entered := make(chan struct{}, 1)
			release := make(chan error)
			abort := make(chan struct{}) // a failed test lets held writes go
			var holding atomic.Bool
			hook := func(list string, lastID, entries int, save func() error) error {
				if !holding.Load() {
					return save()
				}
				select {
				case entered <- struct{}{}:
				case <-abort:
					return save()
				}
				select {
				case err := <-release:
					if err != nil {
						return err // the disk refuses this write
					}
				case <-abort:
				}
				return save()
			}
			sys, err := todo.OpenHooked(t.TempDir(), &todo.Options{Durability: d}, hook)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { sys.Close() })
			t.Cleanup(func() { close(abort) }) // runs before Close
			s := sys.ServerProcess("held")
			first := persistAdd(t, sys, "held", "stored")

			holding.Store(true)
			for _, fail := range []bool{true, false} {
				done := make(chan error, 1)
				go func() {
					_, err := s.AddEntry(ctx, todo.Entry{Date: persistDay, Title: "held"})
					done <- err
				}()
				<-entered // the write is at the disk, not yet stored
				for _, read := range []func() ([]todo.Entry, error){
					func() ([]todo.Entry, error) { return s.Entries(ctx, persistDay) },
					func() ([]todo.Entry, error) { return s.AllEntries(ctx) },
				} {
					got, err := read()
					if err != nil || !slices.Equal(got, []todo.Entry{first}) {
						t.Fatalf("while the write is held: read %v, %v; want only %v", got, err, first)
					}
				}
				if fail {
					release <- errors.New("disk says no")
					if err := <-done; err == nil {
						t.Fatal("AddEntry succeeded though its write failed")
					}
					if got := persistAll(t, sys, "held"); !slices.Equal(got, []todo.Entry{first}) {
						t.Fatalf("after the failed write: %v, want only %v", got, first)
					}
					continue
				}
				release <- nil
				if err := <-done; err != nil {
					t.Fatal(err)
				}
				if got := persistAll(t, sys, "held"); len(got) != 2 || got[1].Title != "held" {
					t.Fatalf("after the stored write: %v", got)
				}
			}
		})
	}
}

// TestPool_AsyncDelay checks, on a fake clock, that with Async durability
// the changes made to a list within AsyncDelay share one commit, that the
// commit happens once the delay is over, and that Close does not wait for
// it. The list's first add is committed at once, and waited for: it
// reserves the ids the list gives out (see TestIDs_NeverReused).
func TestPool_AsyncDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		sys, err := todo.OpenInMemory(&todo.Options{Durability: todo.Async, AsyncDelay: time.Second, IdleTimeout: -1})
		if err != nil {
			t.Fatal(err)
		}
		s := sys.ServerProcess("paced")
		for i := range 100 {
			if _, err := s.AddEntry(ctx, todo.Entry{Date: persistDay, Title: fmt.Sprint(i)}); err != nil {
				t.Fatal(err)
			}
			time.Sleep(5 * time.Millisecond) // 100 adds over half a second
		}
		synctest.Wait()
		if n := sys.Stats().Commits; n != 1 {
			t.Fatalf("%d commits within the delay, want 1: the first add's reservation", n)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if n := sys.Stats().Commits; n != 2 {
			t.Fatalf("%d commits after the delay, want 2: one more holding the other 99 adds", n)
		}
		if _, err := s.AddEntry(ctx, todo.Entry{Date: persistDay, Title: "last"}); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := sys.Close(); err != nil {
			t.Fatal(err)
		}
		if waited := time.Since(start); waited != 0 {
			t.Errorf("Close waited %v for the delay", waited)
		}
		if n := sys.Stats().Commits; n != 3 {
			t.Errorf("%d commits after Close, want 3", n)
		}
	})
}

// replayStore is a Store double in memory that checks every change it
// stores as a log replays it: the change's operations, applied in order
// to the list as the store holds it from the changes before, must give
// the change's state. Every commit takes 5ms, and fails while fault is
// set.
type replayStore struct {
	todo.Store

	mu       sync.Mutex // guards the fields below
	fault    error
	lists    map[string]*todo.List // each list as replayed from its changes
	problems []string
}

func newReplayStore() *replayStore {
	return &replayStore{Store: todo.NewMemStore(), lists: make(map[string]*todo.List)}
}

func (s *replayStore) Commit(ctx context.Context, batch []todo.Change, sync bool) {
	// A commit takes a while, on the bubble's clock: changes come in
	// meanwhile, and when it fails they are merged with its retry.
	time.Sleep(5 * time.Millisecond)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fault != nil {
		for i := range batch {
			batch[i].Err = s.fault
		}
		return
	}
	s.Store.Commit(ctx, batch, sync)
	for _, c := range batch {
		l := s.lists[c.List]
		if l == nil {
			l = todo.NewList()
			s.lists[c.List] = l
		}
		todo.ApplyOps(l, c.Ops)
		if got := l.All(); !slices.Equal(got, c.State.Entries) && len(got)+len(c.State.Entries) > 0 {
			s.problems = append(s.problems, fmt.Sprintf("list %q: its %d operations replay to %v, want the change's state %v", c.List, len(c.Ops), got, c.State.Entries))
		}
	}
}

func (s *replayStore) failWith(err error) {
	s.mu.Lock()
	s.fault = err
	s.mu.Unlock()
}

// TestPool_RecordsReplayToState checks what the pool gives the store to
// append: a list's plain adds are kept as the id of the first, their
// entries read from the state at commit (see pending.record), after the
// list's other changes. Random changes to three lists (adds, keyed adds,
// updates and deletes of old and new entries, keyed or not), with pauses
// that split them over commits, and a while of failed commits whose
// acknowledged changes are retried merged with the newer ones, in each
// durability: every change the store stores must replay to its state, and
// the lists as replayed must be what the System reads at the end.
func TestPool_RecordsReplayToState(t *testing.T) {
	for _, d := range []todo.Durability{todo.Async, todo.Write, todo.Fsync} {
		t.Run(d.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				store := newReplayStore()
				sys, err := todo.OpenStore(store, &todo.Options{Durability: d, AsyncDelay: 100 * time.Millisecond, IdleTimeout: -1})
				if err != nil {
					t.Fatal(err)
				}
				defer sys.Close() // on a failure: Close is idempotent
				ctx := context.Background()
				lists := []string{"a", "b", "c"}
				rnd := rand.New(rand.NewPCG(1, uint64(d)))
				keys := 0
				for i := range 3000 {
					s := sys.ServerProcess(lists[rnd.IntN(len(lists))])
					cctx := ctx
					if rnd.IntN(10) == 0 {
						keys++
						cctx = todo.WithIdempotencyKey(ctx, fmt.Sprint("key-", keys))
					}
					var err error
					switch n := rnd.IntN(100); {
					case n < 70:
						_, err = s.AddEntry(cctx, todo.Entry{Date: persistDay, Title: fmt.Sprint("add ", i)})
					case n < 85:
						id := pickID(t, s, rnd)
						_, err = s.UpdateEntry(cctx, id, func(e todo.Entry) todo.Entry { e.Title = fmt.Sprint("update ", i); return e })
					default:
						err = s.DeleteEntry(cctx, pickID(t, s, rnd))
					}
					switch {
					case i == 1500:
						store.failWith(errDiskOnFire)
					case i == 1700:
						store.failWith(nil)
						// Async refuses changes until health comes back by
						// itself (the acknowledged ones' retries); the
						// others find out with their next commit.
						if d == todo.Async && !pollHealthy(sys) {
							t.Fatal("the store healed, and the System is not healthy a minute later")
						}
					}
					if err != nil && !errors.Is(err, todo.ErrEntryNotFound) && !(i >= 1500 && i <= 1700) {
						t.Fatalf("change %d: %v", i, err)
					}
					// A change a millisecond, so that some come while a
					// commit is made, and now and then a pause.
					time.Sleep(time.Millisecond)
					if rnd.IntN(50) == 0 {
						time.Sleep(time.Duration(rnd.IntN(150)) * time.Millisecond)
					}
				}
				want := make(map[string][]todo.Entry)
				for _, name := range lists {
					if want[name], err = sys.ServerProcess(name).AllEntries(ctx); err != nil {
						t.Fatal(err)
					}
				}
				if err := sys.Close(); err != nil {
					t.Fatal(err)
				}
				store.mu.Lock()
				defer store.mu.Unlock()
				for _, p := range store.problems[:min(len(store.problems), 5)] {
					t.Error(p)
				}
				for _, name := range lists {
					if got := store.lists[name].All(); !slices.Equal(got, want[name]) {
						t.Errorf("list %q replayed from the store's changes: %d entries, want the %d the System read", name, len(got), len(want[name]))
					}
				}
			})
		})
	}
}

// pickID returns the id of an entry of s picked at random, or 1 when it
// has none.
func pickID(t *testing.T, s *todo.Server, rnd *rand.Rand) int {
	t.Helper()
	es, err := s.AllEntries(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(es) == 0 {
		return 1
	}
	return es[rnd.IntN(len(es))].ID
}

// pollHealthy waits, on the bubble's clock, until sys is healthy, for a
// minute at most, and reports whether it is.
func pollHealthy(sys *todo.System) bool {
	for range 600 {
		if sys.Health() == nil {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}
