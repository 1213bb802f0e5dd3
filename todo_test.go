package todo_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/gotodo/todo"
)

// The days the tests put entries on.
var (
	day19 = todo.Date{Year: 2013, Month: time.December, Day: 19}
	day20 = todo.Date{Year: 2013, Month: time.December, Day: 20}
)

// openMemSystem opens a System with in-memory storage and closes it when
// the test ends.
func openMemSystem(t testing.TB, o *todo.Options) *todo.System {
	t.Helper()
	sys, err := todo.OpenInMemory(o)
	if err != nil {
		t.Fatalf("OpenInMemory: %v", err)
	}
	t.Cleanup(func() {
		if err := sys.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return sys
}

// openDirSystem opens a System over dir and closes it when the test ends.
// The test may close it earlier: Close is idempotent.
func openDirSystem(t testing.TB, dir string, o *todo.Options) *todo.System {
	t.Helper()
	sys, err := todo.Open(dir, o)
	if err != nil {
		t.Fatalf("Open(%q): %v", dir, err)
	}
	t.Cleanup(func() {
		if err := sys.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return sys
}

func mustAddEntry(t testing.TB, s *todo.Server, d todo.Date, title string) todo.Entry {
	t.Helper()
	e, err := s.AddEntry(context.Background(), todo.Entry{Date: d, Title: title})
	if err != nil {
		t.Fatalf("AddEntry(%q, %v, %q): %v", s.Name(), d, title, err)
	}
	return e
}

func mustAllEntries(t testing.TB, s *todo.Server) []todo.Entry {
	t.Helper()
	es, err := s.AllEntries(context.Background())
	if err != nil {
		t.Fatalf("AllEntries(%q): %v", s.Name(), err)
	}
	return es
}

func mustEntriesOf(t testing.TB, s *todo.Server, d todo.Date) []todo.Entry {
	t.Helper()
	es, err := s.Entries(context.Background(), d)
	if err != nil {
		t.Fatalf("Entries(%q, %v): %v", s.Name(), d, err)
	}
	return es
}

func mustLists(t testing.TB, sys *todo.System) []string {
	t.Helper()
	names, err := sys.Lists(context.Background())
	if err != nil {
		t.Fatalf("Lists: %v", err)
	}
	return names
}

// checkIDRange fails the test unless ids holds every id of from..to exactly
// once, in any order.
func checkIDRange(t testing.TB, ids []int, from, to int) {
	t.Helper()
	got := slices.Sorted(slices.Values(ids))
	var want []int
	for id := from; id <= to; id++ {
		want = append(want, id)
	}
	if !slices.Equal(got, want) {
		t.Errorf("ids = %v, want each of %d..%d exactly once", got, from, to)
	}
}

// checkInIDOrder fails the test unless es has the ids from..to in order.
func checkInIDOrder(t testing.TB, es []todo.Entry, from, to int) {
	t.Helper()
	if len(es) != to-from+1 {
		t.Errorf("got %d entries, want %d (ids %d..%d)", len(es), to-from+1, from, to)
		return
	}
	for i, e := range es {
		if e.ID != from+i {
			t.Errorf("entry %d has id %d, want %d (entries in id order)", i, e.ID, from+i)
			return
		}
	}
}

// lockedBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type lockedBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestOpen_InvalidOptions(t *testing.T) {
	t.Parallel()
	cases := map[string]todo.Options{
		"MailboxSize=-1":      {MailboxSize: -1},
		"Workers=-1":          {Workers: -1},
		"Workers=1025":        {Workers: 1025},
		"Durability=-1":       {Durability: -1},
		"Durability=3":        {Durability: todo.Async + 1},
		"QueueSize=-1":        {QueueSize: -1},
		"MaxFileSize=-1":      {MaxFileSize: -1},
		"MailboxSize=min":     {MailboxSize: math.MinInt},
		"WatchHistory=-1":     {WatchHistory: -1},
		"WatchHistory=2^20+1": {WatchHistory: 1<<20 + 1},
		"WatchBuffer=-1":      {WatchBuffer: -1},
		"WatchBuffer>History": {WatchHistory: 10, WatchBuffer: 11},
		"MaxWatches=-1":       {MaxWatches: -1},
		"MaxListWatches=-1":   {MaxListWatches: -1},
	}
	for name, o := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "data")
			sys, err := todo.Open(dir, &o)
			if !errors.Is(err, todo.ErrInvalidOptions) {
				if sys != nil {
					sys.Close()
				}
				t.Fatalf("Open(%+v) error = %v, want ErrInvalidOptions", o, err)
			}
			if sys != nil {
				t.Errorf("Open returned a System along with %v", err)
			}
			if !strings.HasPrefix(err.Error(), "todo: ") {
				t.Errorf("error %q does not start with \"todo: \"", err)
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("Open with invalid options touched the data directory: Stat: %v", err)
			}
			if _, err := todo.OpenInMemory(&o); !errors.Is(err, todo.ErrInvalidOptions) {
				t.Errorf("OpenInMemory(%+v) error = %v, want ErrInvalidOptions", o, err)
			}
		})
	}
}

func TestOpen_ZeroAndNilOptionsWork(t *testing.T) {
	t.Parallel()
	for name, o := range map[string]*todo.Options{"nil": nil, "zero": {}} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			sys := openDirSystem(t, t.TempDir(), o)
			s := sys.ServerProcess("Bob's list")
			mustAddEntry(t, s, day19, "Dentist")
			if got := mustEntriesOf(t, s, day19); len(got) != 1 || got[0].Title != "Dentist" {
				t.Errorf("Entries = %v, want the Dentist entry", got)
			}
		})
	}
}

// A MailboxSize that Open accepts must not make a later call panic: it is
// either refused by Open or it works.
func TestOpen_HugeMailboxSize(t *testing.T) {
	t.Parallel()
	sys, err := todo.OpenInMemory(&todo.Options{MailboxSize: math.MaxInt})
	if err != nil {
		if !errors.Is(err, todo.ErrInvalidOptions) {
			t.Fatalf("OpenInMemory error = %v, want nil or ErrInvalidOptions", err)
		}
		return
	}
	defer sys.Close()
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Errorf("Open accepted MailboxSize %d, then AddEntry panicked: %v", math.MaxInt, r)
			}
		}()
		sys.ServerProcess("l").AddEntry(context.Background(), todo.Entry{Date: day19, Title: "x"})
	}()
}

func TestParseDurability(t *testing.T) {
	t.Parallel()
	for _, d := range []todo.Durability{todo.Fsync, todo.Write, todo.Async} {
		got, err := todo.ParseDurability(d.String())
		if err != nil || got != d {
			t.Errorf("ParseDurability(%q) = %v, %v; want %v", d.String(), got, err, d)
		}
	}
	if s := (todo.Durability(0)).String(); s != "fsync" {
		t.Errorf("the zero Durability is %q, want fsync", s)
	}
	for _, s := range []string{"", "FSYNC", "sync", "Durability(7)", todo.Durability(7).String(), " async"} {
		if d, err := todo.ParseDurability(s); !errors.Is(err, todo.ErrInvalidOptions) {
			t.Errorf("ParseDurability(%q) = %v, %v; want ErrInvalidOptions", s, d, err)
		}
	}
}

func TestSystem_Lists_StoredAndLoadedSorted(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	old := openDirSystem(t, dir, &todo.Options{Durability: todo.Write})
	mustAddEntry(t, old.ServerProcess("d"), day19, "stored")
	mustAddEntry(t, old.ServerProcess("b"), day19, "stored")
	mustAddEntry(t, old.ServerProcess("B"), day19, "stored")
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	sys := openDirSystem(t, dir, &todo.Options{Durability: todo.Async})
	if got, want := mustLists(t, sys), []string{"B", "b", "d"}; !slices.Equal(got, want) {
		t.Errorf("Lists before any load = %q, want %q", got, want)
	}
	if st := sys.Stats(); st.ServersStarted != 0 {
		t.Errorf("Lists started %d servers, want 0", st.ServersStarted)
	}
	mustAddEntry(t, sys.ServerProcess("c"), day19, "loaded")
	mustAddEntry(t, sys.ServerProcess("a"), day19, "loaded")
	mustAddEntry(t, sys.ServerProcess("b"), day19, "both")
	if got, want := mustLists(t, sys), []string{"B", "a", "b", "c", "d"}; !slices.Equal(got, want) {
		t.Errorf("Lists = %q, want %q", got, want)
	}
}

func TestSystem_Lists_InMemory(t *testing.T) {
	t.Parallel()
	sys := openMemSystem(t, nil)
	if got := mustLists(t, sys); len(got) != 0 {
		t.Errorf("Lists of a new System = %q, want none", got)
	}
	for _, n := range []string{"zed", "Alice", "bob", "ålborg"} {
		mustAddEntry(t, sys.ServerProcess(n), day19, "x")
	}
	if got, want := mustLists(t, sys), []string{"Alice", "bob", "zed", "ålborg"}; !slices.Equal(got, want) {
		t.Errorf("Lists = %q, want %q", got, want)
	}
}

func TestSystem_TwoSystemsAreIndependent(t *testing.T) {
	t.Parallel()
	one := openMemSystem(t, nil)
	two, err := todo.OpenInMemory(nil)
	if err != nil {
		t.Fatal(err)
	}
	a, b := one.ServerProcess("shared name"), two.ServerProcess("shared name")
	mustAddEntry(t, a, day19, "one-1")
	mustAddEntry(t, a, day19, "one-2")
	if e := mustAddEntry(t, b, day19, "two-1"); e.ID != 1 {
		t.Errorf("first entry of the second System has id %d, want 1", e.ID)
	}
	if got := mustAllEntries(t, b); len(got) != 1 || got[0].Title != "two-1" {
		t.Errorf("second System sees %v, want only its own entry", got)
	}
	if got := mustAllEntries(t, a); len(got) != 2 || got[0].Title != "one-1" || got[1].Title != "one-2" {
		t.Errorf("first System sees %v, want only its own two entries", got)
	}
	if s1, s2 := one.Stats(), two.Stats(); s1.ServersStarted != 1 || s2.ServersStarted != 1 || s1.RequestsServed != 2 || s2.RequestsServed != 1 {
		t.Errorf("Stats are not independent: %+v and %+v", s1, s2)
	}

	if err := two.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.AddEntry(context.Background(), todo.Entry{Date: day19, Title: "late"}); !errors.Is(err, todo.ErrClosed) {
		t.Errorf("AddEntry on the closed System: %v, want ErrClosed", err)
	}
	if e := mustAddEntry(t, a, day19, "one-3"); e.ID != 3 {
		t.Errorf("after closing the other System, AddEntry gave id %d, want 3", e.ID)
	}
}

func TestSystem_Close_Idempotent(t *testing.T) {
	t.Parallel()
	sys, err := todo.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	mustAddEntry(t, sys.ServerProcess("l"), day19, "x")
	for i := range 3 {
		if err := sys.Close(); err != nil {
			t.Errorf("Close #%d: %v", i+1, err)
		}
	}
	// Concurrent Closes of a fresh System all return nil.
	sys, err = todo.OpenInMemory(nil)
	if err != nil {
		t.Fatal(err)
	}
	mustAddEntry(t, sys.ServerProcess("l"), day19, "x")
	errs := make(chan error, 8)
	for range cap(errs) {
		go func() { errs <- sys.Close() }()
	}
	for range cap(errs) {
		if err := <-errs; err != nil {
			t.Errorf("concurrent Close: %v", err)
		}
	}
}

// checkAllClosed fails the test unless every call on sys returns ErrClosed.
func checkAllClosed(t testing.TB, sys *todo.System, name string) {
	t.Helper()
	ctx := context.Background()
	s := sys.ServerProcess(name)
	if _, err := s.AddEntry(ctx, todo.Entry{Date: day19, Title: "late"}); !errors.Is(err, todo.ErrClosed) {
		t.Errorf("AddEntry after Close: %v, want ErrClosed", err)
	}
	if _, err := s.Entries(ctx, day19); !errors.Is(err, todo.ErrClosed) {
		t.Errorf("Entries after Close: %v, want ErrClosed", err)
	}
	if _, err := s.AllEntries(ctx); !errors.Is(err, todo.ErrClosed) {
		t.Errorf("AllEntries after Close: %v, want ErrClosed", err)
	}
	if _, err := s.UpdateEntry(ctx, 1, func(e todo.Entry) todo.Entry { return e }); !errors.Is(err, todo.ErrClosed) {
		t.Errorf("UpdateEntry after Close: %v, want ErrClosed", err)
	}
	if err := s.DeleteEntry(ctx, 1); !errors.Is(err, todo.ErrClosed) {
		t.Errorf("DeleteEntry after Close: %v, want ErrClosed", err)
	}
	if _, err := sys.Lists(ctx); !errors.Is(err, todo.ErrClosed) {
		t.Errorf("Lists after Close: %v, want ErrClosed", err)
	}
	if _, err := sys.ServerProcess("never seen").AllEntries(ctx); !errors.Is(err, todo.ErrClosed) {
		t.Errorf("AllEntries of a new list after Close: %v, want ErrClosed", err)
	}
}

// TestSystem_Close_StopsEverything is not parallel: it checks that no
// goroutine it started outlives Close.
func TestSystem_Close_StopsEverything(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	for _, dur := range []todo.Durability{todo.Fsync, todo.Async} {
		sys, err := todo.Open(t.TempDir(), &todo.Options{Durability: dur, Workers: 4})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for i := range 50 {
			wg.Go(func() {
				s := sys.ServerProcess(string(rune('a' + i%26)))
				if _, err := s.AddEntry(context.Background(), todo.Entry{Date: day19, Title: "x"}); err != nil {
					t.Error(err)
				}
				if _, err := s.Entries(context.Background(), day19); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if st := sys.Stats(); st.ServersRunning != 26 {
			t.Errorf("%v: ServersRunning = %d, want 26", dur, st.ServersRunning)
		}
		if err := sys.Close(); err != nil {
			t.Fatalf("%v: Close: %v", dur, err)
		}
		if st := sys.Stats(); st.ServersRunning != 0 {
			t.Errorf("%v: after Close ServersRunning = %d, want 0", dur, st.ServersRunning)
		}
		checkAllClosed(t, sys, "a")
	}
}

// TestSystem_Close_AnswersQueuedRequests blocks a list's server in the
// write of its first add (a write the add waits for in every durability:
// with Async it reserves the ids the list gives out), queues requests
// behind it, closes the System and releases the write: Close waits for
// it, and every queued call returns, either acknowledged (and then
// durable) or ErrClosed. (Close does not wait for an updater that never
// returns: see TestServer_UpdateEntry_StuckUpdater.)
func TestSystem_Close_AnswersQueuedRequests(t *testing.T) {
	t.Parallel()
	for _, dur := range []todo.Durability{todo.Fsync, todo.Async} {
		t.Run("durability="+dur.String(), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			var acked []todo.Entry
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				entered, release := make(chan struct{}), make(chan struct{})
				var held atomic.Bool
				hook := func(list string, lastID, entries int, save func() error) error {
					if held.CompareAndSwap(false, true) {
						close(entered)
						<-release
					}
					return save()
				}
				sys, err := todo.OpenHooked(dir, &todo.Options{Durability: dur, MailboxSize: 4, IdleTimeout: -1}, hook)
				if err != nil {
					t.Fatal(err)
				}
				s := sys.ServerProcess("queued")

				type result struct {
					e   todo.Entry
					err error
				}
				first := make(chan result, 1)
				go func() {
					e, err := s.AddEntry(ctx, todo.Entry{Date: day19, Title: "first"})
					first <- result{e, err}
				}()
				<-entered

				// 4 requests fill the mailbox, 6 more wait for room.
				// The deadline only turns a hang into a failure: on the fake
				// clock it passes only if the calls block for good.
				queuedCtx, cancel := context.WithTimeout(ctx, time.Minute)
				defer cancel()
				results := make(chan result, 10)
				for i := range cap(results) {
					go func() {
						e, err := s.AddEntry(queuedCtx, todo.Entry{Date: day20, Title: "queued " + string(rune('0'+i))})
						results <- result{e, err}
					}()
				}
				synctest.Wait()
				if st := sys.Stats(); st.MailboxWaits != 6 {
					t.Errorf("MailboxWaits = %d, want 6 (10 callers, mailbox of 4)", st.MailboxWaits)
				}

				closed := make(chan error, 1)
				go func() { closed <- sys.Close() }()
				synctest.Wait() // Close is now waiting for the blocked write
				select {
				case err := <-closed:
					t.Fatalf("Close returned %v while a write was still going on", err)
				default:
				}
				if _, err := s.AddEntry(ctx, todo.Entry{Date: day19, Title: "after Close began"}); !errors.Is(err, todo.ErrClosed) {
					t.Errorf("AddEntry after Close began: %v, want ErrClosed", err)
				}

				close(release)
				if r := <-first; r.err != nil {
					t.Errorf("the AddEntry being written when Close began: %v", r.err)
				} else {
					acked = append(acked, r.e)
				}
				for range cap(results) {
					r := <-results
					switch {
					case r.err == nil:
						acked = append(acked, r.e)
					case !errors.Is(r.err, todo.ErrClosed):
						t.Errorf("queued AddEntry: %v, want success or ErrClosed", r.err)
					}
				}
				if err := <-closed; err != nil {
					t.Errorf("Close: %v", err)
				}
				if err := sys.Close(); err != nil {
					t.Errorf("second Close: %v", err)
				}
				checkAllClosed(t, sys, "queued")
			})

			sys := openDirSystem(t, dir, nil)
			got := mustAllEntries(t, sys.ServerProcess("queued"))
			slices.SortFunc(acked, func(a, b todo.Entry) int { return a.ID - b.ID })
			if !slices.Equal(got, acked) {
				t.Errorf("after reopening, the list holds\n%v\nwant the acknowledged entries\n%v", got, acked)
			}
		})
	}
}

// TestOpen_DataIsPrivate checks that what a System writes under its data
// directory (the directory, the fan-out directories, list files, the
// log's segments, the lock) is readable by the server's user alone, with
// the umask at 0: lists are not encrypted at rest (docs/security.md), so
// they must not be left open to every local user.
func TestOpen_DataIsPrivate(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	dir := filepath.Join(t.TempDir(), "data")
	sys, err := todo.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := sys.AddEntry(ctx, "bob", todo.Entry{Date: day19, Title: "Dentist"}); err != nil {
		t.Fatal(err)
	}
	if err := sys.Close(); err != nil { // checkpoints bob into its file
		t.Fatal(err)
	}
	seen := 0
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		seen++
		if perm := info.Mode().Perm(); perm&0o077 != 0 {
			t.Errorf("%s has mode %v: group or others may read it", p, perm)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen < 5 { // dir, LOCK, log/, a segment, a fan-out directory, bob's file
		t.Errorf("only %d paths under %s: the test looked at too little", seen, dir)
	}
}
