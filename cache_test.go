package todo_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
	"unicode/utf8"

	"github.com/gotodo/todo"
)

// Every time.Sleep in this file runs inside a synctest bubble: it moves the
// bubble's fake clock, instantly and exactly, and never waits for real.

// storageCases are the storages the cache tests run over: lists in memory,
// and lists in files of a fresh directory, acknowledged asynchronously.
var storageCases = []struct {
	name string
	open func(t testing.TB, o todo.Options) *todo.System
}{
	{"storage=memory", func(t testing.TB, o todo.Options) *todo.System { return openMemSystem(t, &o) }},
	{"storage=dir/durability=async", func(t testing.TB, o todo.Options) *todo.System {
		o.Durability = todo.Async
		return openDirSystem(t, t.TempDir(), &o)
	}},
}

// TestServerProcess_AddEntry_ConcurrentStartsOneServer lets 1000 callers
// loose at once on a list that has no server yet, several times over (each
// round a new list) to give a start race many chances to show.
func TestServerProcess_AddEntry_ConcurrentStartsOneServer(t *testing.T) {
	t.Parallel()
	const callers, rounds = 1000, 8
	cases := map[string]func(t *testing.T) (sys *todo.System, reopen func() *todo.System){
		"storage=memory": func(t *testing.T) (*todo.System, func() *todo.System) {
			return openMemSystem(t, nil), nil
		},
		// A large mailbox makes starting a server slower, and a race
		// between starters likelier to show.
		"storage=memory/mailbox=65536": func(t *testing.T) (*todo.System, func() *todo.System) {
			return openMemSystem(t, &todo.Options{MailboxSize: 1 << 16}), nil
		},
		"storage=dir/durability=async": func(t *testing.T) (*todo.System, func() *todo.System) {
			dir := t.TempDir()
			return openDirSystem(t, dir, &todo.Options{Durability: todo.Async}),
				func() *todo.System { return openDirSystem(t, dir, nil) }
		},
		"storage=dir/durability=fsync": func(t *testing.T) (*todo.System, func() *todo.System) {
			dir := t.TempDir()
			return openDirSystem(t, dir, &todo.Options{Durability: todo.Fsync}),
				func() *todo.System { return openDirSystem(t, dir, nil) }
		},
	}
	listName := func(round int) string {
		if round == 0 {
			return "new"
		}
		return fmt.Sprintf("new-%d", round)
	}
	for name, open := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			sys, reopen := open(t)
			for round := range rounds {
				list := listName(round)
				checkIDRange(t, racingAdds(t, sys, list, callers, "caller", list), 1, callers)
				st := sys.Stats()
				if st.ServersStarted != int64(round+1) || st.ServersRunning != int64(round+1) {
					t.Fatalf("%s: ServersStarted = %d, ServersRunning = %d; want %d and %d (one per list)",
						list, st.ServersStarted, st.ServersRunning, round+1, round+1)
				}
				checkInIDOrder(t, mustAllEntries(t, sys.ServerProcess(list)), 1, callers)
				checkInIDOrder(t, mustEntriesOf(t, sys.ServerProcess(list), day19), 1, callers)
			}
			if reopen != nil {
				if err := sys.Close(); err != nil {
					t.Fatal(err)
				}
				again := reopen()
				for round := range rounds {
					checkInIDOrder(t, mustAllEntries(t, again.ServerProcess(listName(round))), 1, callers)
				}
			}
		})
	}
}

// racingAdds has callers goroutines add an entry titled title to list,
// all let go at once, and returns the ids they were given; a failed add is
// reported as an error of label.
func racingAdds(t testing.TB, sys *todo.System, list string, callers int, title, label string) []int {
	t.Helper()
	start := make(chan struct{})
	ids := make(chan int, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			<-start
			e, err := sys.ServerProcess(list).AddEntry(context.Background(), todo.Entry{Date: day19, Title: title})
			if err != nil {
				t.Errorf("%s: caller %d: %v", label, i, err)
				return
			}
			ids <- e.ID
		})
	}
	close(start)
	wg.Wait()
	close(ids)
	return slices.Collect(chanValues(ids))
}

// chanValues yields what c delivers until it is closed.
func chanValues[V any](c <-chan V) func(func(V) bool) {
	return func(yield func(V) bool) {
		for v := range c {
			if !yield(v) {
				return
			}
		}
	}
}

func TestCache_IdleExpiry_HandleStartsNewServer(t *testing.T) {
	t.Parallel()
	for _, sc := range storageCases {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				sys := sc.open(t, todo.Options{IdleTimeout: time.Minute})
				s := sys.ServerProcess("idle")
				other := sys.ServerProcess("other")
				mustAddEntry(t, s, day19, "before expiry")
				mustAddEntry(t, other, day19, "other")

				time.Sleep(time.Minute - time.Second)
				synctest.Wait()
				if st := sys.Stats(); st.ServersRunning != 2 || st.ServersExpired != 0 {
					t.Fatalf("just before IdleTimeout: ServersRunning = %d, ServersExpired = %d; want 2 and 0", st.ServersRunning, st.ServersExpired)
				}
				mustAddEntry(t, other, day19, "keeps other alive")

				time.Sleep(2 * time.Second)
				synctest.Wait()
				if st := sys.Stats(); st.ServersRunning != 1 || st.ServersExpired != 1 {
					t.Fatalf("just after IdleTimeout: ServersRunning = %d, ServersExpired = %d; want 1 and 1", st.ServersRunning, st.ServersExpired)
				}
				if got := mustLists(t, sys); !slices.Equal(got, []string{"idle", "other"}) {
					t.Errorf("Lists after expiry = %q, want [idle other]", got)
				}

				// The same handle starts a new server, which sees the old entry.
				if got := mustEntriesOf(t, s, day19); len(got) != 1 || got[0].Title != "before expiry" {
					t.Errorf("Entries after expiry = %v, want the entry added before", got)
				}
				if e := mustAddEntry(t, s, day19, "after expiry"); e.ID != 2 {
					t.Errorf("AddEntry after expiry gave id %d, want 2", e.ID)
				}
				checkInIDOrder(t, mustAllEntries(t, s), 1, 2)
				if st := sys.Stats(); st.ServersStarted != 3 || st.ServersRunning != 2 {
					t.Errorf("ServersStarted = %d, ServersRunning = %d; want 3 and 2", st.ServersStarted, st.ServersRunning)
				}
			})
		})
	}
}

// The idle time counts from the last request, not from the server's start.
func TestCache_IdleExpiry_CountsFromLastRequest(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		sys := openMemSystem(t, &todo.Options{IdleTimeout: time.Minute})
		s := sys.ServerProcess("l")
		mustAddEntry(t, s, day19, "at 0s")
		time.Sleep(20 * time.Second)
		mustAddEntry(t, s, day19, "at 20s")
		time.Sleep(59 * time.Second)
		synctest.Wait()
		if st := sys.Stats(); st.ServersRunning != 1 || st.ServersExpired != 0 {
			t.Fatalf("59s after the last request: ServersRunning = %d, ServersExpired = %d; want 1 and 0", st.ServersRunning, st.ServersExpired)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if st := sys.Stats(); st.ServersRunning != 0 || st.ServersExpired != 1 {
			t.Fatalf("61s after the last request: ServersRunning = %d, ServersExpired = %d; want 0 and 1", st.ServersRunning, st.ServersExpired)
		}
	})
}

func TestCache_IdleExpiry_DefaultIs60s(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		sys := openMemSystem(t, nil)
		mustAddEntry(t, sys.ServerProcess("l"), day19, "x")
		time.Sleep(59 * time.Second)
		synctest.Wait()
		if st := sys.Stats(); st.ServersRunning != 1 {
			t.Fatalf("after 59s ServersRunning = %d, want 1", st.ServersRunning)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if st := sys.Stats(); st.ServersRunning != 0 || st.ServersExpired != 1 {
			t.Fatalf("after 61s ServersRunning = %d, ServersExpired = %d; want 0 and 1", st.ServersRunning, st.ServersExpired)
		}
	})
}

func TestCache_IdleExpiry_NegativeNeverExpires(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		sys := openMemSystem(t, &todo.Options{IdleTimeout: -1})
		mustAddEntry(t, sys.ServerProcess("l"), day19, "x")
		time.Sleep(1000 * time.Hour)
		synctest.Wait()
		if st := sys.Stats(); st.ServersRunning != 1 || st.ServersExpired != 0 {
			t.Fatalf("ServersRunning = %d, ServersExpired = %d; want 1 and 0", st.ServersRunning, st.ServersExpired)
		}
	})
}

// Reads served from the table never reach the server, but they still keep
// it alive: a list that is read is in use.
func TestCache_IdleExpiry_TableReadsKeepServerAlive(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const idle = time.Minute
		sys := openMemSystem(t, &todo.Options{IdleTimeout: idle})
		s := sys.ServerProcess("read often")
		mustAddEntry(t, s, day19, "x")
		for range 10 { // five minutes, a read every 30s
			time.Sleep(idle / 2)
			mustEntriesOf(t, s, day19)
			synctest.Wait()
			if st := sys.Stats(); st.ServersExpired != 0 || st.ServersRunning != 1 {
				t.Fatalf("while read every 30s: ServersExpired = %d, ServersRunning = %d; want 0 and 1", st.ServersExpired, st.ServersRunning)
			}
		}
		st := sys.Stats()
		if st.TableReads != 10 || st.RequestsServed != 1 {
			t.Errorf("TableReads = %d, RequestsServed = %d; want 10 and 1", st.TableReads, st.RequestsServed)
		}
		// Without reads it expires, at the latest two timeouts after the last read.
		time.Sleep(2*idle + time.Second)
		synctest.Wait()
		if st := sys.Stats(); st.ServersExpired != 1 || st.ServersRunning != 0 {
			t.Fatalf("once reads stop: ServersExpired = %d, ServersRunning = %d; want 1 and 0", st.ServersExpired, st.ServersRunning)
		}
		if got := mustEntriesOf(t, s, day19); len(got) != 1 {
			t.Errorf("Entries after expiry = %v, want the one entry", got)
		}
	})
}

// Requests sent at the very moment a server expires are each served once,
// by the old server or by a new one, and none is lost.
func TestCache_IdleExpiry_RacingRequestsAreServedOnce(t *testing.T) {
	t.Parallel()
	for _, sc := range storageCases {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				const (
					idle    = time.Minute
					rounds  = 12
					callers = 50
				)
				sys := sc.open(t, todo.Options{IdleTimeout: idle})
				s := sys.ServerProcess("racy")
				mustAddEntry(t, s, day19, "first")
				next := 2
				for round := range rounds {
					// Land just before, exactly at, or just after the expiry.
					time.Sleep(idle + time.Duration(round%3-1))
					checkIDRange(t, racingAdds(t, sys, "racy", callers, "racing", fmt.Sprint("round ", round)), next, next+callers-1)
					next += callers
					checkInIDOrder(t, mustAllEntries(t, s), 1, next-1)
					if t.Failed() {
						t.Fatalf("round %d failed; stats %+v", round, sys.Stats())
					}
				}
				st := sys.Stats()
				if st.ServersRunning > 1 || st.ServersStarted != st.ServersExpired+st.ServersRunning {
					t.Errorf("servers: %+v", st)
				}
				t.Logf("%d rounds: %d servers started, %d expired", rounds, st.ServersStarted, st.ServersExpired)
			})
		})
	}
}

// The same race on the real clock, as often as possible: with a timeout of
// a nanosecond every server expires as soon as it is idle, so the callers
// race with retiring servers all the time.
func TestCache_IdleExpiry_RacingRequests_RealClock(t *testing.T) {
	t.Parallel()
	// A mailbox of one is full most of the time: the idle timer then finds
	// no room for its signal and leaves it to the server.
	for _, mailbox := range []int{0, 1} {
		t.Run(fmt.Sprintf("mailbox=%d", mailbox), func(t *testing.T) {
			t.Parallel()
			const callers, perCaller = 16, 40
			sys := openMemSystem(t, &todo.Options{IdleTimeout: time.Nanosecond, MailboxSize: mailbox})
			ids := make(chan int, callers*perCaller)
			var wg sync.WaitGroup
			for range callers {
				wg.Go(func() {
					s := sys.ServerProcess("churn")
					for range perCaller {
						e, err := s.AddEntry(context.Background(), todo.Entry{Date: day19, Title: "x"})
						if err != nil {
							t.Error(err)
							return
						}
						ids <- e.ID
						if _, err := s.Entries(context.Background(), day19); err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			close(ids)
			checkIDRange(t, slices.Collect(chanValues(ids)), 1, callers*perCaller)
			checkInIDOrder(t, mustAllEntries(t, sys.ServerProcess("churn")), 1, callers*perCaller)
			t.Logf("stats %+v", sys.Stats())
		})
	}
}

// A handle that outlives its list's server must not keep the list in
// memory: expiry is what frees it.
func TestCache_IdleExpiry_HandleDoesNotKeepList(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		sys := openMemSystem(t, &todo.Options{IdleTimeout: time.Minute})
		s := sys.ServerProcess("kept")
		mustAddEntry(t, s, day19, "x")
		if !todo.HandleHoldsList(s, false) {
			t.Fatal("the handle does not remember its running server: the check below proves nothing")
		}
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		if st := sys.Stats(); st.ServersExpired != 1 {
			t.Fatalf("ServersExpired = %d, want 1", st.ServersExpired)
		}
		if todo.HandleHoldsList(s, true) {
			t.Error("an expired server's list is still reachable from a handle")
		}
		if got := mustAllEntries(t, s); len(got) != 1 {
			t.Errorf("after expiry the handle reads %v, want the one entry", got)
		}
	})
}

// With Async durability a change is acknowledged before its file is
// written. A server that expires right after must not let the next server
// of the list load the older state: acknowledged entries would be lost and
// their ids given out again.
func TestCache_IdleExpiry_AsyncKeepsAcknowledgedEntries(t *testing.T) {
	t.Parallel()
	const adds = 100
	opts := todo.Options{Durability: todo.Async, IdleTimeout: time.Nanosecond}
	for name, open := range map[string]func(t *testing.T) (*todo.System, func() *todo.System){
		"storage=memory": func(t *testing.T) (*todo.System, func() *todo.System) {
			return openMemSystem(t, &opts), nil
		},
		"storage=dir": func(t *testing.T) (*todo.System, func() *todo.System) {
			dir := t.TempDir()
			return openDirSystem(t, dir, &opts), func() *todo.System { return openDirSystem(t, dir, nil) }
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			sys, reopen := open(t)
			s := sys.ServerProcess("async")
			for i := 1; i <= adds; i++ {
				e := mustAddEntry(t, s, day19, "x")
				if e.ID != i {
					t.Fatalf("entry #%d acknowledged with id %d (an id given out twice: the restarted server loaded a state older than what was acknowledged); stats %+v",
						i, e.ID, sys.Stats())
				}
			}
			checkInIDOrder(t, mustAllEntries(t, s), 1, adds)
			if reopen != nil {
				if err := sys.Close(); err != nil {
					t.Fatal(err)
				}
				checkInIDOrder(t, mustAllEntries(t, reopen().ServerProcess("async")), 1, adds)
			}
		})
	}
}

// badNames are names that every call must refuse with ErrInvalidName.
var badNames = map[string]string{
	"empty":                         "",
	"256 bytes":                     strings.Repeat("a", 256),
	"256 bytes of multi-byte runes": strings.Repeat("€", 85) + "a",
	"invalid UTF-8":                 "\xff",
	"truncated rune":                "list\xe2\x82",
	"NUL":                           "a\x00b",
	"only NUL":                      "\x00",
}

func TestServerProcess_InvalidName(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sys := openDirSystem(t, dir, nil)
	mustAddEntry(t, sys.ServerProcess("existing"), day19, "x")
	ctx := context.Background()
	for what, name := range badNames {
		s := sys.ServerProcess(name)
		if s.Name() != name {
			t.Errorf("%s: Name() = %q, want %q", what, s.Name(), name)
		}
		check := func(method string, err error) {
			t.Helper()
			if !errors.Is(err, todo.ErrInvalidName) {
				t.Errorf("%s: %s(%q) error = %v, want ErrInvalidName", what, method, name, err)
			}
		}
		_, err := s.AddEntry(ctx, todo.Entry{Date: day19, Title: "x"})
		check("AddEntry", err)
		_, err = s.Entries(ctx, day19)
		check("Entries", err)
		_, err = s.AllEntries(ctx)
		check("AllEntries", err)
		_, err = s.UpdateEntry(ctx, 1, func(e todo.Entry) todo.Entry { return e })
		check("UpdateEntry", err)
		check("DeleteEntry", s.DeleteEntry(ctx, 1))
		// The handle itself is bad, whatever the call carries.
		_, err = s.AddEntry(ctx, todo.Entry{})
		check("AddEntry with a zero Date", err)
	}
	if got := mustLists(t, sys); !slices.Equal(got, []string{"existing"}) {
		t.Errorf("Lists = %q, want only [existing]", got)
	}
	if st := sys.Stats(); st.ServersStarted != 1 || st.RequestsServed != 1 {
		t.Errorf("invalid names reached the servers: %+v", st)
	}
	if err := sys.Close(); err != nil {
		t.Fatal(err)
	}
	if got := mustLists(t, openDirSystem(t, dir, nil)); !slices.Equal(got, []string{"existing"}) {
		t.Errorf("after reopening, Lists = %q, want only [existing]", got)
	}
}

// Names that look like paths, devices or near-duplicates are ordinary
// lists: stored apart, listed exactly, never outside the data directory.
func TestServerProcess_OddNamesAreOrdinaryLists(t *testing.T) {
	t.Parallel()
	longest := strings.Repeat("€", 85) // 255 bytes
	if len(longest) != todo.MaxNameLen || !utf8.ValidString(longest) {
		t.Fatalf("bad fixture: %d bytes", len(longest))
	}
	names := []string{
		"../../etc/passwd", "a/b", "a%2Fb", "/", "\\", "..\\..\\x", "CON", "con", "NUL", "LPT1",
		".", "..", "...", " ", "tmp", "Bob's list", "bob's list", "a", "A", "ß", "ss",
		longest, longest[:todo.MaxNameLen-3] + "abc", strings.Repeat("z", todo.MaxNameLen),
		"line\nbreak", "tab\t", "%41", "a.todo",
	}
	parent := t.TempDir()
	dir := filepath.Join(parent, "data")
	sys := openDirSystem(t, dir, &todo.Options{Durability: todo.Write})
	for _, n := range names {
		mustAddEntry(t, sys.ServerProcess(n), day19, strconv.Quote(n)) // a title is one line: the name, quoted
	}
	want := slices.Sorted(slices.Values(names))
	if got := mustLists(t, sys); !slices.Equal(got, want) {
		t.Errorf("Lists = %q\nwant %q", got, want)
	}
	if err := sys.Close(); err != nil {
		t.Fatal(err)
	}

	sys = openDirSystem(t, dir, nil)
	if got := mustLists(t, sys); !slices.Equal(got, want) {
		t.Errorf("after reopening, Lists = %q\nwant %q", got, want)
	}
	for _, n := range names {
		got := mustAllEntries(t, sys.ServerProcess(n))
		if len(got) != 1 || got[0].Title != strconv.Quote(n) || got[0].ID != 1 {
			t.Errorf("list %q holds %v, want its one entry titled with its name", n, got)
		}
	}
	entries, err := os.ReadDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "data" {
		var got []string
		for _, e := range entries {
			got = append(got, e.Name())
		}
		t.Errorf("the data directory's parent holds %q, want only [data]", got)
	}
}

// TestSystem_Unload stops a list's server on demand: its changes are
// stored first (even Async ones, still waiting out their delay), the
// server leaves the registry, and the next request loads the list anew
// and goes on from the same ids.
func TestSystem_Unload(t *testing.T) {
	for _, d := range []todo.Durability{todo.Fsync, todo.Async} {
		t.Run("durability="+d.String(), func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			sys := openDirSystem(t, dir, &todo.Options{Durability: d, AsyncDelay: time.Minute})
			s := sys.ServerProcess("bob")
			first := mustAddEntry(t, s, day19, "first")
			second := mustAddEntry(t, s, day19, "second")
			if err := sys.Unload(ctx, "bob"); err != nil {
				t.Fatalf("Unload: %v", err)
			}
			if st := sys.Stats(); st.ServersRunning != 0 || st.Unstored != 0 {
				t.Errorf("after Unload: %d servers running, %d lists unstored; want 0 and 0", st.ServersRunning, st.Unstored)
			}
			if err := sys.Unload(ctx, "never started"); err != nil {
				t.Errorf("Unload of a list with no server: %v", err)
			}
			third := mustAddEntry(t, s, day19, "third")
			if third.ID != second.ID+1 {
				t.Errorf("after Unload the next id is %d, want %d", third.ID, second.ID+1)
			}
			if got := mustAllEntries(t, s); !slices.Equal(got, []todo.Entry{first, second, third}) {
				t.Errorf("after Unload and an add: %v", got)
			}
			canceled, cancel := context.WithCancel(ctx)
			cancel()
			if err := sys.Unload(canceled, "bob"); !errors.Is(err, context.Canceled) {
				t.Errorf("Unload with an ended ctx: %v, want context.Canceled", err)
			}
			if err := sys.Close(); err != nil {
				t.Fatal(err)
			}
			if err := sys.Unload(ctx, "bob"); !errors.Is(err, todo.ErrClosed) {
				t.Errorf("Unload after Close: %v, want ErrClosed", err)
			}
		})
	}
}

// TestSystem_MaxLoaded_BoundsMemory reads 100,000 lists that do not exist,
// then writes and reads 100,000 distinct lists, with MaxLoaded 1,000:
//
//   - the reads of lists that do not exist start no server and keep
//     nothing: the goroutines and the heap do not grow;
//   - while the lists are written, no more than MaxLoaded and an eighth
//     are loaded at any moment (the cap retires lists behind the starts,
//     on a goroutine of its own, and starts wait past that), and once it
//     has caught up, at most MaxLoaded;
//   - afterwards the goroutines are at most MaxLoaded more than before,
//     and the heap, once the retired lists are checkpointed, stays under
//     32 MiB (on the machine this was written on: about 10 MiB);
//   - every list keeps its entry, read back from its file.
func TestSystem_MaxLoaded_BoundsMemory(t *testing.T) {
	const (
		names     = 100_000
		maxLoaded = 1_000
		workers   = 32
		heapBound = 32 << 20
	)
	if testing.Short() {
		t.Skip("writes 100,000 lists")
	}
	ctx := context.Background()
	// Every list written gets a file of its own when its server retires:
	// 100,000 file creations take over a minute on this machine's ext4, a
	// second on a tmpfs. The files are not what is measured here.
	dir := t.TempDir()
	if os.Geteuid() == 0 {
		dir = filepath.Join(mountTmpfs(t, "2g"), "data") // 100,000 files of a page each
	} else {
		t.Log("not root: the lists are written to", dir, "which is slower")
	}
	sys := openDirSystem(t, dir, &todo.Options{MaxLoaded: maxLoaded})
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	parallel := func(fn func(i int)) {
		var next atomic.Int64
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for i := int(next.Add(1) - 1); i < names; i = int(next.Add(1) - 1) {
					fn(i)
				}
			})
		}
		wg.Wait()
	}
	goroutines, heapBefore := runtime.NumGoroutine(), heap()

	parallel(func(i int) {
		if es, err := sys.ServerProcess(fmt.Sprint("ghost ", i)).Entries(ctx, day19); err != nil || len(es) != 0 {
			t.Errorf("reading a list that does not exist: %v, %v", es, err)
		}
	})
	if st := sys.Stats(); st.ServersStarted != 0 {
		t.Errorf("100,000 reads of lists that do not exist started %d servers, want none", st.ServersStarted)
	}
	// A few goroutines of the runtime or of earlier tests may come and
	// go: the bound only allows for those, not for one per list read.
	if g, h := runtime.NumGoroutine(), heap(); g > goroutines+8 || h > heapBefore+1<<20 {
		t.Errorf("after 100,000 reads of lists that do not exist: %d goroutines (%d before), heap %d KiB (%d before)",
			g, goroutines, h>>10, heapBefore>>10)
	}

	var peak atomic.Int64
	parallel(func(i int) {
		s := sys.ServerProcess(fmt.Sprint("list ", i))
		if _, err := s.AddEntry(ctx, todo.Entry{Date: day19, Title: fmt.Sprint("entry of ", i)}); err != nil {
			t.Errorf("AddEntry: %v", err)
		}
		if es, err := s.Entries(ctx, day19); err != nil || len(es) != 1 {
			t.Errorf("reading a list just written: %v, %v", es, err)
		}
		if n := sys.Stats().ServersRunning; n > peak.Load() {
			peak.Store(n) // racy maximum: good enough for a bound this loose
		}
	})
	t.Logf("at most %d lists loaded at once while writing %d (MaxLoaded %d)", peak.Load(), names, maxLoaded)
	if peak.Load() > maxLoaded+maxLoaded/8+1 {
		t.Errorf("%d lists loaded at once, more than MaxLoaded (%d) and an eighth", peak.Load(), maxLoaded)
	}
	// The cap retires lists on its own goroutine: give it time to catch up.
	for deadline := time.Now().Add(30 * time.Second); sys.Stats().ServersRunning > maxLoaded && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	todo.WaitCheckpoints(sys)
	st := sys.Stats()
	g, h := runtime.NumGoroutine(), heap()
	t.Logf("after writing %d lists: %d running, %d evicted, %d goroutines (%d before), heap %d KiB (%d before), RSS %s",
		names, st.ServersRunning, st.ServersEvicted, g, goroutines, h>>10, heapBefore>>10, rss())
	if st.ServersRunning > maxLoaded {
		t.Errorf("%d lists loaded, more than MaxLoaded (%d)", st.ServersRunning, maxLoaded)
	}
	if g > goroutines+maxLoaded+8 {
		t.Errorf("%d goroutines, more than the %d before and one per loaded list", g, goroutines)
	}
	if h > heapBound {
		t.Errorf("heap %d KiB, more than the bound of %d KiB", h>>10, heapBound>>10)
	}
	for i := 0; i < names; i += 997 {
		if es := mustAllEntries(t, sys.ServerProcess(fmt.Sprint("list ", i))); len(es) != 1 || es[0].Title != fmt.Sprint("entry of ", i) {
			t.Errorf("list %d after its server was retired: %v", i, es)
		}
	}
}

// rss returns the process's resident set size as /proc reports it, or
// "unknown".
func rss() string {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strings.Join(strings.Fields(v), " ")
		}
	}
	return "unknown"
}
