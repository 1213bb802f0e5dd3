package todo_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gotodo/todo"
)

// The System while its store fails (issue 18), on the clock of a synctest
// bubble, over a Store double whose faults the test turns on and off: Async
// changes are refused, not acknowledged, while it fails; health comes back
// by itself; the log has a line per fault, not per failure; a release that
// fails loses nothing acknowledged. diskfull_test.go and faults_test.go
// check the same on a real full disk, in child processes.

// probingStore is a flakyStore that is also a todo.Prober: its probe
// fails as its commits do, and is counted.
type probingStore struct {
	*flakyStore
	probes atomic.Int64
}

func newProbingStore(delay time.Duration) *probingStore {
	return &probingStore{flakyStore: newFlakyStore(delay)}
}

func (s *probingStore) Probe(context.Context) error {
	s.probes.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fault
}

// asyncWhileFailing runs Async changes against a store that fails for 30s
// and then heals, in a bubble, with the broken twin called twin (see
// todo.OpenStoreBroken), and returns what went wrong and how many changes
// were acknowledged once the failure was known:
//
//   - the changes acknowledged before the first commit failed are kept and
//     retried; once it has failed, Health says so and every change is
//     refused with an error wrapping ErrStoreFailing and the store's own,
//     and changes nothing;
//   - within AsyncDelay (and a commit's time) of the store healing, the
//     store holds every acknowledged change, Health is nil, and changes
//     are acknowledged again.
func asyncWhileFailing(t *testing.T, twin string) (problems []string, ackedWhileFailing int) {
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	synctest.Test(t, func(t *testing.T) {
		const asyncDelay, commit = 200 * time.Millisecond, 10 * time.Millisecond
		ctx := context.Background()
		store := newProbingStore(commit)
		sys, err := todo.OpenStoreBroken(store, &todo.Options{Durability: todo.Async, AsyncDelay: asyncDelay}, twin)
		if err != nil {
			t.Fatal(err)
		}
		defer sys.Close()
		s := sys.ServerProcess("bob")
		acked := []string{mustAddEntry(t, s, day19, "0").Title} // reserves its ids, stored
		store.failWith(errDiskOnFire)
		for i := 1; i <= 3; i++ { // acknowledged before any commit failed
			acked = append(acked, mustAddEntry(t, s, day19, fmt.Sprint(i)).Title)
		}
		time.Sleep(asyncDelay + 2*commit) // their commit fails
		if err := sys.Health(); !errors.Is(err, errDiskOnFire) {
			bad("after a failed commit Health = %v, want the store's error", err)
		}
		for start := time.Now(); time.Since(start) < 30*time.Second; time.Sleep(100 * time.Millisecond) {
			e, err := s.AddEntry(ctx, todo.Entry{Date: day19, Title: fmt.Sprint(len(acked))})
			if err == nil {
				ackedWhileFailing++
				acked = append(acked, e.Title)
			} else if !errors.Is(err, todo.ErrStoreFailing) || !errors.Is(err, errDiskOnFire) {
				bad("an add while the store fails: %v, want an error wrapping ErrStoreFailing and the store's", err)
			}
		}
		if ackedWhileFailing > 0 {
			bad("%d changes acknowledged while the store was known to fail", ackedWhileFailing)
		}
		if got := titles(mustAllEntries(t, s)); !slices.Equal(got, acked) {
			bad("while the store fails bob serves %q, want the acknowledged %q", got, acked)
		}
		if st := sys.Stats(); st.Unstored != 1 || st.WriteErrors < 30 {
			bad("after 30s of failing retries: Unstored %d, WriteErrors %d; want 1 list unstored, and the retries counted", st.Unstored, st.WriteErrors)
		}

		store.failWith(nil)
		time.Sleep(asyncDelay + 2*commit) // the retry's backoff is at most AsyncDelay
		if got := store.stored(t, "bob"); !slices.Equal(got, acked) {
			bad("AsyncDelay after the store healed it holds %q, want every acknowledged change %q", got, acked)
		}
		if err, st := sys.Health(), sys.Stats(); err != nil || st.Unstored != 0 {
			bad("AsyncDelay after the store healed: Health %v, Unstored %d; want nil and 0", err, st.Unstored)
		}
		if _, err := s.AddEntry(ctx, todo.Entry{Date: day19, Title: "after"}); err != nil {
			bad("an add once the store healed: %v", err)
		}
	})
	return problems, ackedWhileFailing
}

func titles(es []todo.Entry) []string {
	var ts []string
	for _, e := range es {
		ts = append(ts, e.Title)
	}
	return ts
}

func TestSystem_AsyncRefusedWhileStoreFails(t *testing.T) {
	problems, _ := asyncWhileFailing(t, "")
	for _, p := range problems {
		t.Error(p)
	}
}

// TestSystem_AsyncRefusedWhileStoreFails_BrokenTwin runs it with a pool
// that acknowledges Async changes while commits fail, as the seed did.
func TestSystem_AsyncRefusedWhileStoreFails_BrokenTwin(t *testing.T) {
	problems, acked := asyncWhileFailing(t, "ack-while-failing")
	for _, p := range problems {
		t.Logf("broken twin: %s", p)
	}
	if acked == 0 {
		t.Error("a pool that acknowledges while the store fails acknowledged nothing: the test cannot see it")
	}
}

// healthComesBack fails a store, with the durability given, for 30s, then
// heals it, and returns how long Health took to be nil again, with no
// change made meanwhile, or 0 if it was not within 10s; and what else
// went wrong. With Async durability the failure is that of a change that
// reserves ids, which waits for its commit: nothing acknowledged is left
// to retry, and only a probe can tell.
func healthComesBack(t *testing.T, d todo.Durability, twin string) (took time.Duration, problems []string) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := newProbingStore(10 * time.Millisecond)
		sys, err := todo.OpenStoreBroken(store, &todo.Options{Durability: d}, twin)
		if err != nil {
			t.Fatal(err)
		}
		defer sys.Close()
		mustAddEntry(t, sys.ServerProcess("bob"), day19, "stored")
		store.failWith(errDiskOnFire)
		if _, err := sys.ServerProcess("alice").AddEntry(ctx, todo.Entry{Date: day19, Title: "refused"}); !errors.Is(err, errDiskOnFire) {
			problems = append(problems, fmt.Sprintf("add on a failing store: %v, want its error", err))
		}
		time.Sleep(30 * time.Second)
		if err := sys.Health(); !errors.Is(err, errDiskOnFire) {
			problems = append(problems, fmt.Sprintf("30s into the failure Health = %v, want the store's error", err))
		}
		probes := store.probes.Load()
		store.failWith(nil)
		healed := time.Now()
		for sys.Health() != nil && time.Since(healed) < 10*time.Second {
			time.Sleep(10 * time.Millisecond)
		}
		if sys.Health() == nil {
			took = time.Since(healed)
		}
		if st := sys.Stats(); st.ChangesStored != 1 {
			problems = append(problems, fmt.Sprintf("%d changes stored: the test made one, before the failure", st.ChangesStored))
		}
		t.Logf("%v: %d probes in 30s of failure; healthy %v after the store healed", d, probes, took)
	})
	return took, problems
}

// Health comes back by itself, within a second of the store healing (the
// longest backoff of the probes), with no change made: in every
// durability.
func TestSystem_HealthComesBackByItself(t *testing.T) {
	for _, d := range []todo.Durability{todo.Fsync, todo.Write, todo.Async} {
		t.Run(d.String(), func(t *testing.T) {
			took, problems := healthComesBack(t, d, "")
			for _, p := range problems {
				t.Error(p)
			}
			if took == 0 || took > time.Second+10*time.Millisecond {
				t.Errorf("Health nil %v after the store healed, want within a second (0: not in 10s)", took)
			}
		})
	}
}

// TestSystem_HealthComesBackByItself_BrokenTwin runs it with a System that
// never probes: health comes back only with a client's write.
func TestSystem_HealthComesBackByItself_BrokenTwin(t *testing.T) {
	if took, _ := healthComesBack(t, todo.Fsync, "no-probe"); took != 0 {
		t.Errorf("a System that never probes was healthy %v after the store healed: the test cannot see it", took)
	}
}

// Over a Store that cannot be probed, an Async change made while it fails
// with nothing acknowledged to retry waits for its commit, as with Fsync,
// and is answered with the store's error; once the store heals, such a
// change succeeds, and the ones after it are acknowledged at once again.
func TestSystem_AsyncWithoutProber(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := newFlakyStore(10 * time.Millisecond)
		sys, err := todo.OpenStore(store, &todo.Options{Durability: todo.Async})
		if err != nil {
			t.Fatal(err)
		}
		defer sys.Close()
		bob := sys.ServerProcess("bob")
		mustAddEntry(t, bob, day19, "stored")
		store.failWith(errDiskOnFire)
		if _, err := sys.ServerProcess("alice").AddEntry(ctx, todo.Entry{Date: day19, Title: "x"}); !errors.Is(err, errDiskOnFire) {
			t.Fatalf("a change reserving ids on a failing store: %v, want its error", err)
		}
		if _, err := bob.AddEntry(ctx, todo.Entry{Date: day19, Title: "y"}); !errors.Is(err, errDiskOnFire) || errors.Is(err, todo.ErrStoreFailing) {
			t.Errorf("an Async change while the store fails, unprobed: %v, want the store's error from its own commit", err)
		}
		store.failWith(nil)
		start := time.Now()
		mustAddEntry(t, bob, day19, "committed")
		if time.Since(start) == 0 || sys.Health() != nil {
			t.Errorf("the first change after the store healed took %v, Health %v; want it to wait for its commit, and health back", time.Since(start), sys.Health())
		}
		start = time.Now()
		mustAddEntry(t, bob, day19, "acknowledged")
		if took := time.Since(start); took != 0 {
			t.Errorf("an Async change once healthy took %v, want it acknowledged at once", took)
		}
		if got := titles(mustAllEntries(t, bob)); !slices.Equal(got, []string{"stored", "committed", "acknowledged"}) {
			t.Errorf("bob holds %q", got)
		}
	})
}

// A list that leaves memory while the store fails (Unload, idle expiry)
// holds nothing acknowledged that is not stored: when Close or Shutdown
// gives its release up, they return nil, not "lost its last changes"
// (issue 18: SIGTERM on a full disk in Fsync mode said so and exited 1,
// and the next start restored every entry).
func TestSystem_CloseGivesUpAReleaseQuietly(t *testing.T) {
	for _, closer := range []string{"Close", "Shutdown"} {
		t.Run(closer, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				store := newFlakyStore(10 * time.Millisecond)
				sys, err := todo.OpenStore(store, &todo.Options{Durability: todo.Fsync})
				if err != nil {
					t.Fatal(err)
				}
				want := []string{mustAddEntry(t, sys.ServerProcess("bob"), day19, "stored").Title}
				store.failWith(errDiskOnFire)
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				if err := sys.Unload(ctx, "bob"); !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("Unload while the store fails: %v, want it to wait for the release's retries until ctx ends", err)
				}
				if closer == "Close" {
					err = sys.Close()
				} else {
					ctx, cancel := context.WithTimeout(context.Background(), time.Second)
					defer cancel()
					err = sys.Shutdown(ctx)
				}
				if err != nil {
					t.Errorf("%s with only a release unstored: %v, want nil: nothing acknowledged was lost", closer, err)
				}
				if got := store.stored(t, "bob"); !slices.Equal(got, want) {
					t.Errorf("the store holds %q, want %q", got, want)
				}
			})
		})
	}
}

// levels is a slog.Handler that counts the records of each level and
// keeps their messages.
type levels struct {
	mu   *sync.Mutex
	msgs *[]string
}

func newLevels() levels { return levels{new(sync.Mutex), new([]string)} }

func (h levels) Enabled(context.Context, slog.Level) bool { return true }
func (h levels) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	*h.msgs = append(*h.msgs, r.Level.String()+" "+r.Message)
	h.mu.Unlock()
	return nil
}
func (h levels) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h levels) WithGroup(string) slog.Handler      { return h }

func (h levels) lines() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(*h.msgs)
}

// logsWhileFailing makes 8 writers add to a store that fails for 25s,
// 100 adds a second each, then heals, and returns the lines logged
// meanwhile and after, and the failures Stats counted.
func logsWhileFailing(t *testing.T, twin string) (lines []string, failures int64) {
	synctest.Test(t, func(t *testing.T) {
		store := newProbingStore(time.Millisecond)
		logged := newLevels()
		sys, err := todo.OpenStoreBroken(store, &todo.Options{Durability: todo.Fsync, Logger: slog.New(logged)}, twin)
		if err != nil {
			t.Fatal(err)
		}
		defer sys.Close()
		store.failWith(errDiskOnFire)
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Go(func() {
				s := sys.ServerProcess(fmt.Sprint("list ", w))
				for start := time.Now(); time.Since(start) < 25*time.Second; time.Sleep(10 * time.Millisecond) {
					s.AddEntry(context.Background(), todo.Entry{Date: day19, Title: "x"})
				}
			})
		}
		wg.Wait()
		store.failWith(nil)
		time.Sleep(2 * time.Second) // a probe finds it healed
		lines, failures = logged.lines(), sys.Stats().Failures
	})
	return lines, failures
}

// A store failing every write of 8 writers for 25s logs its first failure
// with its cause, one line per 10s with the count of the others, and one
// line when it heals; Stats.Failures counts every failure.
func TestSystem_LogsOncePerFault(t *testing.T) {
	lines, failures := logsWhileFailing(t, "")
	t.Logf("%d failures logged as:\n%s", failures, strings.Join(lines, "\n"))
	if len(lines) == 0 || lines[0] != "ERROR todo: cannot store" {
		t.Errorf("the first line is %q, want the first failure, at error level", lines)
	}
	if len(lines) > 4 {
		t.Errorf("%d lines for 25s of failures, want at most 4: the first, one per 10s, the recovery", len(lines))
	}
	if len(lines) == 0 || !strings.HasPrefix(lines[len(lines)-1], "INFO todo: storing again (after ") {
		t.Errorf("the last line is not the recovery: %q", lines)
	}
	if failures < 8*2000 {
		t.Errorf("Stats.Failures = %d, want every one of the 8 writers' 2,500 failed adds", failures)
	}
}

// TestSystem_LogsOncePerFault_BrokenTwin runs it with a System that logs
// every failure.
func TestSystem_LogsOncePerFault_BrokenTwin(t *testing.T) {
	if lines, _ := logsWhileFailing(t, "log-every-failure"); len(lines) <= 4 {
		t.Errorf("a System logging every failure logged %d lines: the test cannot see it", len(lines))
	}
}

// movingStore is a store double whose lists may move to another writer:
// a change of a list that moved is refused with ErrListMoved, as a node of
// a cluster refuses the changes of a list another node took over, and
// counted.
type movingStore struct {
	todo.Store
	delay time.Duration

	mu      sync.Mutex // guards moved and refused
	moved   map[string]bool
	refused map[string]int
}

func newMovingStore(delay time.Duration) *movingStore {
	return &movingStore{Store: todo.NewMemStore(), delay: delay, moved: make(map[string]bool), refused: make(map[string]int)}
}

func (s *movingStore) move(list string) {
	s.mu.Lock()
	s.moved[list] = true
	s.mu.Unlock()
}

func (s *movingStore) refusals(list string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refused[list]
}

func (s *movingStore) Commit(ctx context.Context, batch []todo.Change, sync bool) {
	time.Sleep(s.delay)
	var rest []todo.Change
	var at []int
	s.mu.Lock()
	for i, c := range batch {
		if s.moved[c.List] {
			s.refused[c.List]++
			batch[i].Err = fmt.Errorf("%w: list %q was written by another node", todo.ErrListMoved, c.List)
			continue
		}
		rest, at = append(rest, c), append(at, i)
	}
	s.mu.Unlock()
	s.Store.Commit(ctx, rest, sync)
	for j, i := range at {
		batch[i].Err = rest[j].Err
	}
}

// listMoved runs a list that moves to another writer, in durability d,
// with the broken twin called twin, and returns what went wrong: a
// change of the list is refused with ErrListMoved (to its caller with
// Fsync; with Async, once acknowledged, its loss is logged at ERROR); the
// System stays healthy, other lists' changes are acknowledged and stored,
// and the refused change is not tried again.
func listMoved(t *testing.T, d todo.Durability, twin string) (problems []string) {
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	synctest.Test(t, func(t *testing.T) {
		const asyncDelay, commit = 200 * time.Millisecond, 10 * time.Millisecond
		ctx := context.Background()
		store := newMovingStore(commit)
		logged := newLevels()
		sys, err := todo.OpenStoreBroken(store, &todo.Options{Durability: d, AsyncDelay: asyncDelay, Logger: slog.New(logged)}, twin)
		if err != nil {
			t.Fatal(err)
		}
		defer sys.Close()
		gone, kept := sys.ServerProcess("gone"), sys.ServerProcess("kept")
		mustAddEntry(t, gone, day19, "before")
		mustAddEntry(t, kept, day19, "before")
		time.Sleep(asyncDelay + 2*commit)
		store.move("gone")
		_, err = gone.AddEntry(ctx, todo.Entry{Date: day19, Title: "after the move"})
		switch {
		case d == todo.Async && err != nil:
			bad("an Async add to the list as it moves: %v, want it acknowledged", err)
		case d != todo.Async && !errors.Is(err, todo.ErrListMoved):
			bad("an add to a list that moved: %v, want ErrListMoved", err)
		}
		time.Sleep(asyncDelay + 2*commit) // its commit is refused
		if err := sys.Health(); err != nil {
			bad("Health after a list moved: %v, want nil: the store works", err)
		}
		want := []string{"before"}
		for i := range 3 {
			title := fmt.Sprint("kept ", i)
			if _, err := kept.AddEntry(ctx, todo.Entry{Date: day19, Title: title}); err != nil {
				bad("an add to another list after one moved: %v", err)
				continue
			}
			want = append(want, title)
		}
		time.Sleep(10 * time.Second) // retries, if any, come within this
		st, err := store.Load(ctx, "kept")
		if err != nil {
			t.Fatal(err)
		}
		if got := titles(st.Entries); !slices.Equal(got, want) {
			bad("the store holds %q of the other list, want %q", got, want)
		}
		if n := store.refusals("gone"); n != 1 {
			bad("the change of the list that moved was tried %d times, want once", n)
		}
		if st := sys.Stats(); st.Unstored != 0 {
			bad("Unstored %d after a list moved, want 0", st.Unstored)
		}
		lost := 0
		for _, l := range logged.lines() {
			if strings.HasPrefix(l, "ERROR todo: acknowledged changes lost: their list moved") {
				lost++
			}
		}
		if want := map[bool]int{true: 1, false: 0}[d == todo.Async]; lost != want {
			bad("%d lines say acknowledged changes were lost, want %d: %q", lost, want, logged.lines())
		}
	})
	return problems
}

func TestSystem_ListMovedIsNotAFailingStore(t *testing.T) {
	for _, d := range []todo.Durability{todo.Fsync, todo.Write, todo.Async} {
		t.Run(d.String(), func(t *testing.T) {
			t.Parallel()
			for _, p := range listMoved(t, d, "") {
				t.Error(p)
			}
		})
	}
}

// The broken twin: a refusal for a list that moved taken for a failing
// store makes an Async System refuse every other list's changes, and
// retries the lost change for ever.
func TestSystem_ListMovedIsNotAFailingStore_BrokenTwin(t *testing.T) {
	problems := listMoved(t, todo.Async, "moved-fails")
	if len(problems) == 0 {
		t.Fatal("the twin that takes a moved list for a failing store passed: the test cannot fail")
	}
	t.Logf("the twin, as expected: %q", problems)
}
