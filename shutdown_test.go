package todo_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gotodo/todo"
	"go.uber.org/goleak"
)

// Every time.Sleep and timeout in this file runs inside a synctest bubble:
// it moves the bubble's fake clock, and the times measured are exact.

// flakyStore is a Store double: a store in memory whose every commit takes
// delay, and fails, every change of it, with the error given to failWith
// until nil is given.
type flakyStore struct {
	todo.Store
	delay time.Duration

	mu    sync.Mutex // guards fault
	fault error
}

func newFlakyStore(delay time.Duration) *flakyStore {
	return &flakyStore{Store: todo.NewMemStore(), delay: delay}
}

func (s *flakyStore) failWith(err error) {
	s.mu.Lock()
	s.fault = err
	s.mu.Unlock()
}

func (s *flakyStore) Commit(ctx context.Context, batch []todo.Change, sync bool) {
	time.Sleep(s.delay)
	s.mu.Lock()
	err := s.fault
	s.mu.Unlock()
	if err == nil {
		s.Store.Commit(ctx, batch, sync)
		return
	}
	for i := range batch {
		batch[i].Err = err
	}
}

// stored returns the titles the store holds for list, in id order.
func (s *flakyStore) stored(t testing.TB, list string) []string {
	t.Helper()
	st, err := s.Load(context.Background(), list)
	if err != nil {
		t.Fatalf("Load(%q) from the store: %v", list, err)
	}
	var titles []string
	for _, e := range st.Entries {
		titles = append(titles, e.Title)
	}
	return titles
}

var errDiskOnFire = errors.New("disk on fire")

// Shutdown answers every request queued before it began and stores every
// change, Async ones included; calls made once it has begun, during it
// and after it, get ErrClosed at once; a second Shutdown or a Close during
// it waits for it, within its own ctx; after it, both return nil.
func TestSystem_Shutdown_StoresEverythingQueued(t *testing.T) {
	for _, d := range []todo.Durability{todo.Fsync, todo.Write, todo.Async} {
		t.Run(d.String(), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) { shutdownStoresQueued(t, d) })
		})
	}
}

func shutdownStoresQueued(t *testing.T, d todo.Durability) {
	const commit = time.Second
	store := newFlakyStore(commit)
	sys, err := todo.OpenStore(store, &todo.Options{Durability: d})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	lists := []string{"a", "b", "c", "d"}
	const callers = 8
	// Each caller adds twice in a row: its first add is queued before
	// Shutdown begins, its second comes after.
	var (
		mu      sync.Mutex
		acked   = make(map[string][]string)
		refused int
		wg      sync.WaitGroup
	)
	for _, list := range lists {
		for c := range callers {
			wg.Go(func() {
				s := sys.ServerProcess(list)
				for i := range 2 {
					title := fmt.Sprintf("caller %d add %d", c, i)
					_, err := s.AddEntry(ctx, todo.Entry{Date: day19, Title: title})
					mu.Lock()
					switch {
					case err == nil:
						acked[list] = append(acked[list], title)
					case errors.Is(err, todo.ErrClosed) && i == 1:
						refused++
					default:
						t.Errorf("list %s: add %q: %v", list, title, err)
					}
					mu.Unlock()
					if err != nil {
						return
					}
				}
			})
		}
	}
	synctest.Wait() // every caller waits on its first add, the first commit under way

	start := time.Now()
	shutCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- sys.Shutdown(shutCtx) }()
	synctest.Wait() // Shutdown has begun, and waits for the commits

	// During Shutdown.
	if _, err := sys.ServerProcess("new").AddEntry(ctx, todo.Entry{Date: day19, Title: "late"}); !errors.Is(err, todo.ErrClosed) {
		t.Errorf("AddEntry on a new list during Shutdown: %v, want ErrClosed", err)
	}
	if _, err := sys.ServerProcess("new").AllEntries(ctx); !errors.Is(err, todo.ErrClosed) {
		t.Errorf("AllEntries of a list not loaded during Shutdown: %v, want ErrClosed", err)
	}
	if err := sys.Unload(ctx, "a"); !errors.Is(err, todo.ErrClosed) {
		t.Errorf("Unload during Shutdown: %v, want ErrClosed", err)
	}
	if _, err := sys.Lists(ctx); !errors.Is(err, todo.ErrClosed) {
		t.Errorf("Lists during Shutdown: %v, want ErrClosed", err)
	}
	gone, stop := context.WithCancel(ctx)
	stop()
	if err := sys.Shutdown(gone); !errors.Is(err, context.Canceled) {
		t.Errorf("a second Shutdown, its ctx ended, during the first: %v, want its ctx's error", err)
	}
	closed := make(chan error, 1)
	go func() { closed <- sys.Close() }()
	synctest.Wait()
	select {
	case err := <-closed:
		t.Fatalf("Close during Shutdown returned (%v) before Shutdown did", err)
	default:
	}

	err = <-shut
	took := time.Since(start)
	if err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := <-closed; err != nil {
		t.Errorf("Close that waited for Shutdown: %v", err)
	}
	wg.Wait()
	// A worker's last step is its deferred wg.Done, which lets Shutdown
	// return: let it leave its function before looking. One that leaked
	// stays blocked, and is found.
	synctest.Wait()
	if g := bubbleGoroutines(t); len(g) > 0 {
		t.Errorf("%d goroutines left after Shutdown, the first:\n%s", len(g), g[0])
	}
	if took >= time.Minute {
		t.Errorf("Shutdown took %v: it waited its ctx out, with nothing left to store", took)
	}
	t.Logf("Shutdown took %v with commits of %v", took, commit)

	if refused != len(lists)*callers {
		t.Errorf("%d adds refused once Shutdown had begun, want each caller's second, %d", refused, len(lists)*callers)
	}
	for _, list := range lists {
		want := slices.Sorted(slices.Values(acked[list]))
		got := slices.Sorted(slices.Values(store.stored(t, list)))
		if len(want) != callers || !slices.Equal(got, want) {
			t.Errorf("list %s: %d adds acknowledged, want every first add (%d); the store holds %q, want %q", list, len(want), callers, got, want)
		}
	}

	// After Shutdown.
	if _, err := sys.ServerProcess("a").AddEntry(ctx, todo.Entry{Date: day19, Title: "after"}); !errors.Is(err, todo.ErrClosed) {
		t.Errorf("AddEntry after Shutdown: %v, want ErrClosed", err)
	}
	if _, err := sys.ServerProcess("a").AllEntries(ctx); !errors.Is(err, todo.ErrClosed) {
		t.Errorf("AllEntries after Shutdown: %v, want ErrClosed", err)
	}
	if err := sys.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown twice: %v, want nil", err)
	}
	if err := sys.Shutdown(gone); err != nil {
		t.Errorf("Shutdown twice, its ctx ended: %v, want nil", err)
	}
	if err := sys.Close(); err != nil {
		t.Errorf("Close after Shutdown: %v, want nil", err)
	}
}

// A store that keeps failing holds acknowledged Async changes, which
// Shutdown retries until its ctx ends; then it commits them once more,
// gives them up, returns ctx's error joined with one naming each list
// lost, and leaves no goroutine behind.
func TestSystem_Shutdown_CtxEndsWhileStoreFails(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	synctest.Test(t, func(t *testing.T) {
		const commit, deadline = 10 * time.Millisecond, 3 * time.Second
		store := newFlakyStore(commit)
		sys, err := todo.OpenStore(store, &todo.Options{Durability: todo.Async, AsyncDelay: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		lists := []string{"lost one", "lost two"}
		for _, list := range lists {
			mustAddEntry(t, sys.ServerProcess(list), day19, "stored") // reserves its ids, stored
		}
		store.failWith(errDiskOnFire)
		for _, list := range lists {
			for i := range 3 {
				mustAddEntry(t, sys.ServerProcess(list), day19, fmt.Sprint("acknowledged ", i))
			}
		}
		time.Sleep(time.Second) // the commits fail, and are retried
		if st := sys.Stats(); st.Unstored != int64(len(lists)) || !errors.Is(sys.Health(), errDiskOnFire) {
			t.Fatalf("before Shutdown: Unstored %d, Health %v; want %d lists unstored, and the store's error", st.Unstored, sys.Health(), len(lists))
		}

		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		start := time.Now()
		err = sys.Shutdown(ctx)
		took := time.Since(start)
		synctest.Wait() // as above: the workers' deferred wg.Done, then their return
		if g := bubbleGoroutines(t); len(g) > 0 {
			t.Errorf("%d goroutines left when Shutdown returned, the first:\n%s", len(g), g[0])
		}
		// ctx ends during a commit, which fails, or a backoff, which ends
		// with one commit more.
		if took < deadline || took > deadline+2*commit {
			t.Errorf("Shutdown returned after %v; want its ctx's %v and at most two commits of %v", took, deadline, commit)
		}
		if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, errDiskOnFire) {
			t.Errorf("Shutdown: %v; want ctx's error joined with the store's", err)
		}
		for _, list := range lists {
			if !strings.Contains(fmt.Sprint(err), fmt.Sprintf("list %q lost its last changes", list)) {
				t.Errorf("Shutdown's error does not name %q as lost: %v", list, err)
			}
			if got := store.stored(t, list); !slices.Equal(got, []string{"stored"}) {
				t.Errorf("list %q: the store holds %q, want only the entry stored before it failed", list, got)
			}
		}
		if err := sys.Close(); err != nil {
			t.Errorf("Close after Shutdown: %v, want nil", err)
		}
	})
}

// A store that fails for a while holds acknowledged Async changes:
// Shutdown retries them, with backoff, until the store heals, and stores
// them all; Close, in the same spot, gives them up after two attempts.
func TestSystem_Shutdown_RetriesUntilStored(t *testing.T) {
	for _, closer := range []string{"Shutdown", "Close"} {
		t.Run(closer, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				const heals = 20 * time.Second
				store := newFlakyStore(10 * time.Millisecond)
				sys, err := todo.OpenStore(store, &todo.Options{Durability: todo.Async})
				if err != nil {
					t.Fatal(err)
				}
				s := sys.ServerProcess("bob")
				mustAddEntry(t, s, day19, "0") // reserves its ids, stored
				store.failWith(errDiskOnFire)
				want := []string{"0"}
				for i := 1; i <= 5; i++ {
					want = append(want, mustAddEntry(t, s, day19, fmt.Sprint(i)).Title)
				}
				go func() {
					time.Sleep(heals)
					store.failWith(nil)
				}()
				start := time.Now()
				if closer == "Close" {
					err := sys.Close()
					if !errors.Is(err, errDiskOnFire) || !strings.Contains(fmt.Sprint(err), `list "bob"`) {
						t.Errorf("Close on a failing store: %v; want the store's error naming bob", err)
					}
					if got := store.stored(t, "bob"); !slices.Equal(got, []string{"0"}) {
						t.Errorf("after Close the store holds %q, want only the entry stored before it failed", got)
					}
					if took := time.Since(start); took >= heals {
						t.Errorf("Close took %v, not giving up before the store healed at %v", took, heals)
					}
					time.Sleep(heals) // the store heals: the bubble may end
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				if err := sys.Shutdown(ctx); err != nil {
					t.Errorf("Shutdown with the store healing within its ctx: %v", err)
				}
				if took := time.Since(start); took < heals || took > heals+5*time.Second+time.Second {
					t.Errorf("Shutdown took %v; want the %v the store took to heal, and at most a backoff (5s) more", took, heals)
				}
				if got := store.stored(t, "bob"); !slices.Equal(got, want) {
					t.Errorf("after Shutdown the store holds %q, want %q", got, want)
				}
			})
		})
	}
}
