package todo_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gotodo/todo"
	"go.uber.org/goleak"
)

// Every time.Sleep in this file but in the tests named RealClock runs
// inside a synctest bubble: it moves the bubble's fake clock.

// serverGoroutines counts the goroutines of the caller's synctest bubble
// that run a list's server: those of other tests, running in parallel in
// other bubbles, are not counted.
func serverGoroutines(t testing.TB) int {
	t.Helper()
	count := 0
	for _, g := range bubbleGoroutines(t) {
		if strings.Contains(g, "todo.(*proc).run(") {
			count++
		}
	}
	return count
}

// bubbleGoroutines returns the stacks of the goroutines of the caller's
// synctest bubble that run code of this module, but the caller's own and
// the one that waits in synctest.Test for the bubble to end.
func bubbleGoroutines(t testing.TB) []string {
	t.Helper()
	own := make([]byte, 1<<12)
	own = own[:runtime.Stack(own, false)]
	header, _, _ := strings.Cut(string(own), "\n")
	i := strings.Index(header, "synctest bubble ")
	if i < 0 {
		t.Fatalf("bubbleGoroutines called outside a synctest bubble: %q", header)
	}
	bubble := ", " + strings.TrimSuffix(header[i:], ":")
	all := make([]byte, 1<<20)
	for {
		n := runtime.Stack(all, true)
		if n < len(all) {
			all = all[:n]
			break
		}
		all = make([]byte, 2*len(all))
	}
	var stacks []string
	for g := range strings.SplitSeq(string(all), "\n\n") {
		head, _, _ := strings.Cut(g, "\n")
		if head == header || !strings.HasSuffix(strings.TrimSuffix(head, ":"), bubble) {
			continue
		}
		if strings.Contains(g, "github.com/gotodo/todo") && !strings.Contains(g, "internal/synctest.Run(") {
			stacks = append(stacks, g)
		}
	}
	return stacks
}

// checkServers checks the server goroutines of the bubble and the
// hibernation counters.
func checkServers(t testing.TB, sys *todo.System, when string, goroutines int, hibernations, wakes int64) {
	t.Helper()
	synctest.Wait()
	st := sys.Stats()
	if g := serverGoroutines(t); g != goroutines || st.Hibernations != hibernations || st.Wakes != wakes {
		t.Fatalf("%s: %d server goroutines, Hibernations = %d, Wakes = %d; want %d, %d and %d",
			when, g, st.Hibernations, st.Wakes, goroutines, hibernations, wakes)
	}
	if st.ServersHibernating != hibernations-wakes {
		t.Errorf("%s: ServersHibernating = %d, want %d", when, st.ServersHibernating, hibernations-wakes)
	}
}

// A server hibernates once its mailbox has been empty for HibernateAfter:
// its goroutine ends, its list stays loaded, reads are served from the
// table without waking it, and the next change wakes it without loading
// the list again.
func TestServer_Hibernate_WakesOnChange(t *testing.T) {
	t.Parallel()
	for _, sc := range storageCases {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				sys := sc.open(t, todo.Options{HibernateAfter: time.Second, IdleTimeout: time.Hour})
				s := sys.ServerProcess("sleepy")
				mustAddEntry(t, s, day19, "first")
				checkServers(t, sys, "after the first add", 1, 0, 0)

				time.Sleep(time.Second - time.Millisecond)
				checkServers(t, sys, "just before HibernateAfter", 1, 0, 0)
				time.Sleep(2 * time.Millisecond)
				checkServers(t, sys, "just after HibernateAfter", 0, 1, 0)
				if st := sys.Stats(); st.ServersRunning != 1 || st.ServersStarted != 1 {
					t.Errorf("hibernating: ServersRunning = %d, ServersStarted = %d; want 1 and 1", st.ServersRunning, st.ServersStarted)
				}

				before := sys.Stats()
				for range 5 {
					if got := mustEntriesOf(t, s, day19); len(got) != 1 || got[0].Title != "first" {
						t.Fatalf("Entries of a hibernating list = %v", got)
					}
					if got := mustAllEntries(t, s); len(got) != 1 {
						t.Fatalf("AllEntries of a hibernating list = %v", got)
					}
				}
				checkServers(t, sys, "after reads", 0, 1, 0)
				if st := sys.Stats(); st.TableReads-before.TableReads != 10 || st.RequestsServed != before.RequestsServed {
					t.Errorf("reads of a hibernating list: %d from the table, %d served by a server; want 10 and 0",
						st.TableReads-before.TableReads, st.RequestsServed-before.RequestsServed)
				}

				if e := mustAddEntry(t, s, day19, "second"); e.ID != 2 {
					t.Errorf("AddEntry after hibernation gave id %d, want 2", e.ID)
				}
				checkServers(t, sys, "after the add that woke it", 1, 1, 1)
				if st := sys.Stats(); st.ServersStarted != 1 {
					t.Errorf("ServersStarted = %d after a wake, want 1: waking starts no server", st.ServersStarted)
				}
				checkInIDOrder(t, mustAllEntries(t, s), 1, 2)

				// The time counts from the last request, again.
				time.Sleep(time.Second / 2)
				mustAddEntry(t, s, day19, "third")
				time.Sleep(time.Second - time.Millisecond)
				checkServers(t, sys, "a second after the first add of the wake", 1, 1, 1)
				time.Sleep(2 * time.Millisecond)
				checkServers(t, sys, "a second after the last add", 0, 2, 1)
			})
		})
	}
}

// HibernateAfter's zero is 1s, and a negative value never hibernates.
func TestServer_Hibernate_DefaultAndNever(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		after time.Duration
		sleep time.Duration
		want  int64 // hibernations after sleep
	}{
		{0, time.Second - time.Millisecond, 0},
		{0, time.Second + time.Millisecond, 1},
		{-1, time.Hour, 0},
	} {
		t.Run(fmt.Sprintf("after=%v/sleep=%v", tc.after, tc.sleep), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				sys := openMemSystem(t, &todo.Options{HibernateAfter: tc.after, IdleTimeout: -1})
				mustAddEntry(t, sys.ServerProcess("l"), day19, "x")
				time.Sleep(tc.sleep)
				checkServers(t, sys, "", int(1-tc.want), tc.want, 0)
			})
		})
	}
}

// A list with no entries yet, loaded and hibernating, takes 1,000 first
// adds at once: they get the ids 1 to 1,000, and exactly one of them wakes
// the server. Several rounds, each on a new list.
func TestServer_Hibernate_ConcurrentFirstWritesWakeOnce(t *testing.T) {
	t.Parallel()
	const callers, rounds = 1000, 4
	for _, sc := range storageCases {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				sys := sc.open(t, todo.Options{HibernateAfter: time.Second, IdleTimeout: time.Hour})
				ctx := context.Background()
				for round := range rounds {
					s := sys.ServerProcess(fmt.Sprint("round ", round))
					// Loads the list, empty, and gives it a server.
					if err := s.DeleteEntry(ctx, 1); !errors.Is(err, todo.ErrEntryNotFound) {
						t.Fatalf("DeleteEntry on a new list: %v, want ErrEntryNotFound", err)
					}
					time.Sleep(2 * time.Second)
					synctest.Wait()
					before := sys.Stats()
					if before.ServersHibernating != int64(round+1) || serverGoroutines(t) != 0 {
						t.Fatalf("round %d: %d hibernating, %d server goroutines; want %d and 0", round, before.ServersHibernating, serverGoroutines(t), round+1)
					}
					checkIDRange(t, racingAdds(t, sys, s.Name(), callers, "racing", fmt.Sprint("round ", round)), 1, callers)
					checkInIDOrder(t, mustAllEntries(t, s), 1, callers)
					after := sys.Stats()
					if wakes := after.Wakes - before.Wakes; wakes != 1 {
						t.Errorf("round %d: %d callers woke the server %d times, want once", round, callers, wakes)
					}
					if after.ServersStarted != before.ServersStarted {
						t.Errorf("round %d: %d servers started by the wake, want none", round, after.ServersStarted-before.ServersStarted)
					}
					time.Sleep(2 * time.Second) // the round's server hibernates again
					if t.Failed() {
						t.Fatalf("round %d failed; stats %+v", round, sys.Stats())
					}
				}
			})
		})
	}
}

// hibernationRace has callers add to one list and read it back while its
// server hibernates as soon as it can (HibernateAfter of a nanosecond, on
// the real clock), and returns what went wrong: a change not answered, an
// id given twice or never, an acknowledged change a read did not see.
func hibernationRace(t *testing.T, sys *todo.System) (problems []string) {
	const callers, perCaller = 16, 60
	var mu sync.Mutex
	problem := func(format string, args ...any) {
		mu.Lock()
		problems = append(problems, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	ids := make(chan int, callers*perCaller)
	var wg sync.WaitGroup
	for c := range callers {
		wg.Go(func() {
			s := sys.ServerProcess("insomniac")
			for i := range perCaller {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				title := fmt.Sprintf("caller %d add %d", c, i)
				e, err := s.AddEntry(ctx, todo.Entry{Date: day19, Title: title})
				cancel()
				if err != nil {
					problem("caller %d, add %d: %v", c, i, err)
					return
				}
				ids <- e.ID
				// The change is acknowledged: every read from now on sees it.
				es, err := s.Entries(context.Background(), day19)
				if err != nil {
					problem("caller %d: Entries: %v", c, err)
					return
				}
				if !slices.ContainsFunc(es, func(x todo.Entry) bool { return x == e }) {
					problem("caller %d: entry %d, acknowledged, missing from a read of %d entries", c, e.ID, len(es))
				}
			}
		})
	}
	wg.Wait()
	close(ids)
	got := slices.Sorted(chanValues(ids))
	for i, id := range got {
		if id != i+1 {
			problem("ids given: %d at position %d of %d, want 1 to %d each once", id, i, len(got), len(got))
			break
		}
	}
	if len(got) < callers*perCaller {
		problem("%d of %d adds answered", len(got), callers*perCaller)
	}
	return problems
}

// A request that comes at the moment the server hibernates is served
// once, by that goroutine or by the one it wakes; reads never miss an
// acknowledged change.
func TestServer_Hibernate_RacingRequests_RealClock(t *testing.T) {
	t.Parallel()
	sys := openMemSystem(t, &todo.Options{HibernateAfter: time.Nanosecond, IdleTimeout: -1})
	for _, p := range hibernationRace(t, sys) {
		t.Error(p)
	}
	st := sys.Stats()
	t.Logf("stats %+v", st)
	if st.Hibernations == 0 {
		t.Error("the server never hibernated: the test raced nothing")
	}
}

// TestServer_Hibernate_RacingRequests_BrokenTwin runs the race over the
// broken twin of hibernation (see OpenInMemoryHibernatingOverMail), which ends the
// goroutine with a request just put in its mailbox: that request is never
// answered.
func TestServer_Hibernate_RacingRequests_BrokenTwin(t *testing.T) {
	t.Parallel() // its 5s are the lost requests' callers waiting out their ctx
	sys, err := todo.OpenInMemoryHibernatingOverMail(&todo.Options{HibernateAfter: time.Nanosecond, IdleTimeout: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := sys.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	problems := hibernationRace(t, sys)
	for _, p := range problems[:min(len(problems), 10)] {
		t.Logf("broken twin: %s", p)
	}
	t.Logf("broken twin: %d problems in all", len(problems))
	if len(problems) == 0 {
		t.Error("the test saw no request lost by a hibernation that ignores its mailbox")
	}
}

// IdleTimeout unloads a hibernating list: it is woken to expire, and a
// list that is read while it hibernates stays.
func TestServer_Hibernate_IdleTimeoutUnloads(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const idle = time.Minute
		sys := openMemSystem(t, &todo.Options{HibernateAfter: time.Second, IdleTimeout: idle})
		read, unread := sys.ServerProcess("read"), sys.ServerProcess("unread")
		mustAddEntry(t, read, day19, "r")
		mustAddEntry(t, unread, day19, "u")
		time.Sleep(2 * time.Second)
		checkServers(t, sys, "both hibernating", 0, 2, 0)
		for range 4 { // two minutes, a read every 30s
			time.Sleep(idle / 2)
			mustEntriesOf(t, read, day19)
		}
		synctest.Wait()
		st := sys.Stats()
		if st.ServersRunning != 1 || st.ServersExpired != 1 || st.ServersHibernating != 1 || serverGoroutines(t) != 0 {
			t.Fatalf("after 2 minutes: ServersRunning = %d, ServersExpired = %d, ServersHibernating = %d, %d goroutines; want 1, 1, 1, 0 (stats %+v)",
				st.ServersRunning, st.ServersExpired, st.ServersHibernating, serverGoroutines(t), st)
		}
		if got := mustAllEntries(t, unread); len(got) != 1 || got[0].Title != "u" {
			t.Errorf("the expired list holds %v, want its entry", got)
		}
	})
}

// MaxLoaded counts hibernating lists, and retires them like the others.
func TestServer_Hibernate_MaxLoadedCountsHibernating(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const maxLoaded, lists = 10, 30
		sys := openMemSystem(t, &todo.Options{HibernateAfter: time.Second, IdleTimeout: -1, MaxLoaded: maxLoaded})
		for i := range lists {
			mustAddEntry(t, sys.ServerProcess(fmt.Sprint("list ", i)), day19, fmt.Sprint("entry ", i))
			time.Sleep(2 * time.Second) // it hibernates before the next starts
		}
		time.Sleep(time.Second)
		synctest.Wait()
		// Every list loaded now hibernates, and still there are no more
		// than MaxLoaded. (The cap may also retire a list that is idle
		// but not yet asleep, the one just added: it counts the same.)
		st := sys.Stats()
		if st.ServersRunning > maxLoaded || st.ServersHibernating != st.ServersRunning || st.ServersEvicted < lists-maxLoaded {
			t.Errorf("%d lists, each hibernating before the next: ServersRunning = %d, ServersHibernating = %d, ServersEvicted = %d; want at most %d, all, at least %d",
				lists, st.ServersRunning, st.ServersHibernating, st.ServersEvicted, maxLoaded, lists-maxLoaded)
		}
		for i := range lists {
			if es := mustAllEntries(t, sys.ServerProcess(fmt.Sprint("list ", i))); len(es) != 1 || es[0].Title != fmt.Sprint("entry ", i) {
				t.Errorf("list %d: %v", i, es)
			}
		}
	})
}

// A mailbox starts small, grows when callers find it full, and goes with
// the server's goroutine when it hibernates.
func TestServer_Hibernate_MailboxGrowsAndGoes(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		sys, _, err := todo.OpenInMemorySlow(&todo.Options{HibernateAfter: time.Second, IdleTimeout: -1}, time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sys.Close() })
		s := sys.ServerProcess("busy")
		mustAddEntry(t, s, day19, "first")
		if c := todo.MailboxCap(sys, "busy"); c != 4 {
			t.Errorf("mailbox of a new server: capacity %d, want 4", c)
		}
		var wg sync.WaitGroup
		for range 200 {
			wg.Go(func() { mustAddEntry(t, s, day19, "crowd") })
		}
		wg.Wait()
		if c := todo.MailboxCap(sys, "busy"); c <= 4 || c > 256 {
			t.Errorf("mailbox after 200 callers at once: capacity %d, want more than 4, at most MailboxSize", c)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if c := todo.MailboxCap(sys, "busy"); c != 0 {
			t.Errorf("mailbox of a hibernating server: capacity %d, want none", c)
		}
		mustAddEntry(t, s, day19, "wakes it")
		if c := todo.MailboxCap(sys, "busy"); c != 4 {
			t.Errorf("mailbox of a woken server: capacity %d, want 4", c)
		}
	})
}

// TestSystem_Close_WritesHibernatingLists is not parallel: it checks that
// no goroutine it started outlives Close. Close wakes every hibernating
// list to retire it, and writes everything: reopened, each list holds its
// entries.
func TestSystem_Close_WritesHibernatingLists(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	const lists, perList = 50, 3
	dir := t.TempDir()
	// Async, with writes held back a minute: Close writes them.
	sys, err := todo.Open(dir, &todo.Options{Durability: todo.Async, AsyncDelay: time.Minute, HibernateAfter: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range lists {
		wg.Go(func() {
			s := sys.ServerProcess(fmt.Sprint("list ", i))
			for j := range perList {
				mustAddEntry(t, s, day19, fmt.Sprintf("entry %d of %d", j, i))
			}
		})
	}
	wg.Wait()
	hibernating := sys.Stats().ServersHibernating
	for deadline := time.Now().Add(10 * time.Second); hibernating != lists && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
		hibernating = sys.Stats().ServersHibernating
	}
	if hibernating != lists {
		t.Fatalf("%d of %d lists hibernating 10s after their last add", hibernating, lists)
	}
	if err := sys.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if st := sys.Stats(); st.ServersRunning != 0 || st.ServersHibernating != 0 {
		t.Errorf("after Close: ServersRunning = %d, ServersHibernating = %d; want 0", st.ServersRunning, st.ServersHibernating)
	}
	sys = openDirSystem(t, dir, nil)
	defer sys.Close() // before goleak looks
	for i := range lists {
		es := mustAllEntries(t, sys.ServerProcess(fmt.Sprint("list ", i)))
		checkInIDOrder(t, es, 1, perList)
		for j, e := range es {
			if want := fmt.Sprintf("entry %d of %d", j, i); e.Title != want {
				t.Errorf("list %d, entry %d: %q, want %q", i, e.ID, e.Title, want)
			}
		}
	}
}

// TestServer_MissedExpiryNotStrandedRealClock: the idle timer fires while
// the server is busy and its mailbox full, and is held, between finding
// the mailbox full and noting the miss, until the server has served
// everything and looked for missed signals. The list must still expire
// within a few IdleTimeouts: before the fix, the server then hibernated
// with the miss noted and nobody to read it, and the list stayed loaded
// until its next change.
func TestServer_MissedExpiryNotStrandedRealClock(t *testing.T) {
	const idle = 200 * time.Millisecond
	unblock := make(chan struct{})
	missed := make(chan struct{}, 1)
	onMiss := func() {
		select {
		case missed <- struct{}{}:
		default:
			return // once
		}
		close(unblock)                     // let the server serve its mailbox
		time.Sleep(100 * time.Millisecond) // and look for missed signals meanwhile
	}
	sys, err := todo.OpenInMemoryOnExpiryMissed(&todo.Options{IdleTimeout: idle, HibernateAfter: 50 * time.Millisecond, MailboxSize: 256}, onMiss)
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	ctx := context.Background()
	s := sys.ServerProcess("l")
	e, err := s.AddEntry(ctx, todo.Entry{Date: day19, Title: "a"})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { // the server, busy until the timer has found its mailbox full
		if _, err := s.UpdateEntry(ctx, e.ID, func(e todo.Entry) todo.Entry { <-unblock; return e }); err != nil {
			t.Error(err)
		}
	})
	time.Sleep(20 * time.Millisecond)
	for range 4 { // a mailbox starts with 4 slots
		wg.Go(func() {
			if _, err := s.AddEntry(ctx, todo.Entry{Date: day19, Title: "b"}); err != nil {
				t.Error(err)
			}
		})
	}
	select {
	case <-missed:
	case <-time.After(10 * time.Second):
		t.Fatal("the idle timer never found the mailbox full")
	}
	wg.Wait()
	deadline := time.Now().Add(20 * idle)
	for sys.Stats().ServersExpired == 0 && time.Now().Before(deadline) {
		time.Sleep(idle / 4)
	}
	if st := sys.Stats(); st.ServersExpired != 1 || st.ServersRunning != 0 {
		t.Fatalf("after 20 IdleTimeouts: %d running (%d hibernating), %d expired; want the list expired",
			st.ServersRunning, st.ServersHibernating, st.ServersExpired)
	}
}

// TestStats_HibernatingConsistentRealClock reads Stats while servers wake
// and hibernate many times a millisecond: ServersHibernating is never
// negative and never more than the servers running (it was the
// difference of two counters read apart, and went as low as -16).
func TestStats_HibernatingConsistentRealClock(t *testing.T) {
	sys := openMemSystem(t, &todo.Options{HibernateAfter: 20 * time.Microsecond, IdleTimeout: time.Hour})
	var stop atomic.Bool
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			s := sys.ServerProcess(fmt.Sprint("l", i))
			for !stop.Load() {
				if _, err := s.AddEntry(context.Background(), todo.Entry{Date: day19, Title: "x"}); err != nil {
					t.Error(err)
					return
				}
				time.Sleep(50 * time.Microsecond)
			}
		})
	}
	bad, reads := 0, 0
	var first todo.Stats
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); reads++ {
		if st := sys.Stats(); st.ServersHibernating < 0 || st.ServersHibernating > st.ServersRunning {
			if bad == 0 {
				first = st
			}
			bad++
		}
	}
	stop.Store(true)
	wg.Wait()
	st := sys.Stats()
	t.Logf("%d reads of Stats; %d hibernations, %d wakes", reads, st.Hibernations, st.Wakes)
	if st.Hibernations < 100 {
		t.Errorf("only %d hibernations: the test did not make servers sleep and wake", st.Hibernations)
	}
	if bad > 0 {
		t.Errorf("%d of %d Stats inconsistent; the first: ServersHibernating %d, ServersRunning %d (hibernations %d, wakes %d)",
			bad, reads, first.ServersHibernating, first.ServersRunning, first.Hibernations, first.Wakes)
	}
}

// TestServer_HibernateWakeRetireRealClock: short hibernations (30µs)
// racing adds, reads, Unload and MaxLoaded evictions (MaxLoaded 3 of 6
// lists, IdleTimeout 3ms), then Close and a reopen: every acknowledged add
// is there exactly once, and no id is given twice. (Written in review;
// 200 runs under -race passed.)
func TestServer_HibernateWakeRetireRealClock(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sys, err := todo.Open(dir, &todo.Options{Durability: todo.Async, HibernateAfter: 30 * time.Microsecond,
		IdleTimeout: 3 * time.Millisecond, MaxLoaded: 3, MailboxSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	const lists, writers, per = 6, 4, 150
	var mu sync.Mutex
	acked := map[string]map[string]int{} // list -> title -> id
	var wg sync.WaitGroup
	for l := range lists {
		acked[fmt.Sprint("l", l)] = map[string]int{}
	}
	for l := range lists {
		name := fmt.Sprint("l", l)
		for w := range writers {
			wg.Go(func() {
				s := sys.ServerProcess(name)
				for i := range per {
					title := fmt.Sprintf("w%d-%d", w, i)
					e, err := s.AddEntry(context.Background(), todo.Entry{Date: day19, Title: title})
					if err != nil {
						t.Errorf("add: %v", err)
						return
					}
					mu.Lock()
					acked[name][title] = e.ID
					mu.Unlock()
					if i%7 == 0 {
						time.Sleep(50 * time.Microsecond) // let it hibernate
					}
				}
			})
		}
		wg.Go(func() { // reader
			s := sys.ServerProcess(name)
			for range per {
				if _, err := s.Entries(context.Background(), day19); err != nil {
					t.Errorf("entries: %v", err)
				}
				time.Sleep(20 * time.Microsecond)
			}
		})
	}
	wg.Go(func() { // unloader
		for i := range 200 {
			if err := sys.Unload(context.Background(), fmt.Sprint("l", i%lists)); err != nil {
				t.Errorf("unload: %v", err)
			}
			time.Sleep(100 * time.Microsecond)
		}
	})
	wg.Wait()
	st := sys.Stats()
	t.Logf("hibernations %d wakes %d started %d evicted %d expired %d", st.Hibernations, st.Wakes, st.ServersStarted, st.ServersEvicted, st.ServersExpired)
	if st.Hibernations == 0 || st.Wakes == 0 || st.ServersEvicted == 0 {
		t.Errorf("the test raced nothing: %d hibernations, %d wakes, %d evictions", st.Hibernations, st.Wakes, st.ServersEvicted)
	}
	if err := sys.Close(); err != nil {
		t.Fatal(err)
	}
	if st := sys.Stats(); st.ServersHibernating != 0 || st.ServersRunning != 0 {
		t.Errorf("after Close: %+v", st)
	}
	sys = openDirSystem(t, dir, nil)
	for name, m := range acked {
		es := mustAllEntries(t, sys.ServerProcess(name))
		seen := map[int]bool{}
		titles := map[string]int{}
		for _, e := range es {
			if seen[e.ID] {
				t.Errorf("%s: id %d twice", name, e.ID)
			}
			seen[e.ID] = true
			titles[e.Title]++
		}
		for title, id := range m {
			if titles[title] != 1 {
				t.Errorf("%s: %q (id %d) appears %d times", name, title, id, titles[title])
			}
		}
		if len(es) != len(m) {
			t.Errorf("%s: %d entries, %d acknowledged", name, len(es), len(m))
		}
	}
}

// TestStats_RetirementsCountedOnceRealClock: lists retire by idle expiry
// and by the MaxLoaded cap at once, hibernating in between; once the
// writers stop and the retirements settle, every server started is
// running, expired or evicted, and counted once: ServersStarted ==
// ServersRunning + ServersExpired + ServersEvicted.
func TestStats_RetirementsCountedOnceRealClock(t *testing.T) {
	t.Parallel()
	sys := openMemSystem(t, &todo.Options{HibernateAfter: 30 * time.Microsecond,
		IdleTimeout: 2 * time.Millisecond, MaxLoaded: 3})
	var wg sync.WaitGroup
	for l := range 8 {
		wg.Go(func() {
			s := sys.ServerProcess(fmt.Sprint("l", l))
			for i := range 300 {
				if _, err := s.AddEntry(context.Background(), todo.Entry{Date: day19, Title: "x"}); err != nil {
					t.Error(err)
					return
				}
				if i%5 == 0 {
					time.Sleep(time.Duration(i%3) * time.Millisecond) // expire, or hibernate, or neither
				}
			}
		})
	}
	wg.Wait()
	var st todo.Stats
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if st = sys.Stats(); st.ServersStarted == st.ServersRunning+st.ServersExpired+st.ServersEvicted && st.ServersRunning == 0 {
			break
		}
	}
	t.Logf("started %d, running %d, expired %d, evicted %d; hibernations %d", st.ServersStarted, st.ServersRunning, st.ServersExpired, st.ServersEvicted, st.Hibernations)
	if st.ServersStarted != st.ServersRunning+st.ServersExpired+st.ServersEvicted {
		t.Errorf("started %d != running %d + expired %d + evicted %d", st.ServersStarted, st.ServersRunning, st.ServersExpired, st.ServersEvicted)
	}
	if st.ServersExpired == 0 || st.ServersEvicted == 0 {
		t.Errorf("the test raced nothing: %d expired, %d evicted", st.ServersExpired, st.ServersEvicted)
	}
}
