package todo_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gotodo/todo"
	"github.com/gotodo/todo/internal/faults"
	"github.com/gotodo/todo/todohttp"
)

// mountTmpfs mounts a tmpfs of the given size (as mount's size= option
// takes it) in a fresh directory, unmounted when the test ends, and
// returns its path. It skips the test, saying why, when not run as root or
// when mount fails.
func mountTmpfs(tb testing.TB, size string) string {
	tb.Helper()
	if uid := os.Geteuid(); uid != 0 {
		tb.Skipf("skipped: mounting a tmpfs needs root; running as uid %d", uid)
	}
	mnt := filepath.Join(tb.TempDir(), "tmpfs")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		tb.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", mnt).CombinedOutput(); err != nil {
		tb.Skipf("skipped: cannot mount a tmpfs: %v: %s", err, bytes.TrimSpace(out))
	}
	// Registered after TempDir's, so this runs before the directory is
	// removed; Systems opened later are closed before it.
	tb.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			tb.Errorf("umount %s: %v: %s", mnt, err, bytes.TrimSpace(out))
		}
	})
	return mnt
}

// remount changes the options of the tmpfs mounted at mnt (ro or rw).
func remount(tb testing.TB, mnt, opt string) {
	tb.Helper()
	if out, err := exec.Command("mount", "-o", "remount,"+opt, mnt).CombinedOutput(); err != nil {
		tb.Fatalf("mount -o remount,%s %s: %v: %s", opt, mnt, err, bytes.TrimSpace(out))
	}
}

// fillDisk writes a file at p until the file system is full, then shrinks
// it by room bytes, and returns its size.
func fillDisk(tb testing.TB, p string, room int64) int64 {
	tb.Helper()
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var size int64
	for chunk := 64 << 10; chunk > 0; chunk /= 2 {
		for {
			n, err := f.Write(make([]byte, chunk))
			size += int64(n)
			if errors.Is(err, syscall.ENOSPC) {
				break
			}
			if err != nil {
				tb.Fatal(err)
			}
		}
	}
	size = max(size-room, 0)
	if err := f.Truncate(size); err != nil {
		tb.Fatal(err)
	}
	return size
}

// diskFullTitle makes titles long, so that a few entries fill the room
// left on the disk.
func diskFullTitle(i int) string { return fmt.Sprintf("entry %d %s", i, strings.Repeat("x", 200)) }

// diskFull runs the disk-full scenario on a fresh 1 MiB tmpfs with the
// store open gives, and returns what went wrong:
//
//   - a list written in an earlier session ("earlier") and one loaded
//     before the disk fills ("loaded");
//   - the disk is filled but for 16 KiB; entries are added to "bob" until
//     an add fails (after the room the log preallocated is used up too),
//     which must be with an error wrapping ENOSPC;
//   - concurrent adds on the full disk must all fail the same way;
//   - reads keep working and serve only acknowledged entries; the earlier
//     lists and their files are intact; no temp file is left over;
//     Stats().WriteErrors counts the failures (and the reopen below shows
//     that no failed add was stored);
//   - once the filler file is removed, adds succeed again;
//   - after Close and a reopen, "bob" holds exactly the acknowledged entries.
func diskFull(tb testing.TB, open func(string, *todo.Options) (*todo.System, error)) (problems []string) {
	ctx := context.Background()
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	mnt := mountTmpfs(tb, "1m")
	dir := filepath.Join(mnt, "data")
	opts := &todo.Options{Durability: todo.Fsync}

	sys := persistOpen(tb, dir, opts)
	for i := range 3 {
		persistAdd(tb, sys, "earlier", fmt.Sprint("earlier ", i))
	}
	persistClose(tb, sys)
	earlierFile := persistSnapshotPath(tb, persistPath(dir, "earlier"))

	sys, err := open(dir, opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { sys.Close() })
	for i := range 2 {
		persistAdd(tb, sys, "loaded", fmt.Sprint("loaded ", i))
	}

	filler := filepath.Join(mnt, "filler")
	size := fillDisk(tb, filler, 16<<10)
	tb.Logf("filled the disk with %d bytes, leaving 16 KiB", size)

	bob := sys.ServerProcess("bob")
	var acked []todo.Entry
	var failed error
	// The log may have zero-filled room ahead of its records before the
	// disk filled up (see lane.preallocate): adds go on until that is used
	// too. 20,000 entries of 200 bytes are four times the disk.
	for i := 0; i < 20_000 && failed == nil; i++ {
		e, err := bob.AddEntry(ctx, todo.Entry{Date: persistDay, Title: diskFullTitle(i)})
		if err != nil {
			failed = err
			break
		}
		acked = append(acked, e)
	}
	tb.Logf("%d adds acknowledged before the disk was full; the next failed with: %v", len(acked), failed)
	switch {
	case failed == nil:
		bad("20,000 adds of 200-byte entries fit on a 1 MiB disk: no add failed")
	case !errors.Is(failed, syscall.ENOSPC):
		bad("add on a full disk: %v, want an error wrapping ENOSPC", failed)
	}
	if len(acked) == 0 {
		bad("no add fit in 16 KiB")
	}

	// Every caller waiting on a failed write gets its error.
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := bob.AddEntry(ctx, todo.Entry{Date: persistDay, Title: diskFullTitle(1000 + i)})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, syscall.ENOSPC) {
			bad("concurrent add on a full disk: %v, want an error wrapping ENOSPC", err)
		}
	}

	if got := persistAll(tb, sys, "bob"); !slices.Equal(got, acked) {
		bad("on a full disk AllEntries(bob) = %d entries, want the %d acknowledged", len(got), len(acked))
	}
	if got, err := bob.Entries(ctx, persistDay); err != nil || !slices.Equal(got, acked) {
		bad("on a full disk Entries(bob) = %d entries, %v; want the %d acknowledged", len(got), err, len(acked))
	}
	if got := persistAll(tb, sys, "loaded"); len(got) != 2 {
		bad("on a full disk the loaded list has %d entries, want 2", len(got))
	}
	if got := persistAll(tb, sys, "earlier"); len(got) != 3 {
		bad("on a full disk the list written earlier has %d entries, want 3", len(got))
	}
	if got := persistSnapshotPath(tb, persistPath(dir, "earlier")); got != earlierFile {
		bad("the file of the list written earlier changed")
	}
	if left := tempFiles(tb, dir); len(left) != 0 {
		bad("on a full disk temp files are left: %v; failed writes must remove them", left)
	}
	if st := sys.Stats(); st.WriteErrors == 0 {
		bad("Stats().WriteErrors = 0 after failed writes")
	}

	if err := os.Remove(filler); err != nil {
		tb.Fatal(err)
	}
	for i := range 5 {
		e, err := bob.AddEntry(ctx, todo.Entry{Date: persistDay, Title: diskFullTitle(2000 + i)})
		if err != nil {
			bad("add after space was freed: %v", err)
			continue
		}
		acked = append(acked, e)
	}
	if err := sys.Close(); err != nil {
		bad("Close: %v", err)
	}

	sys = persistOpen(tb, dir, opts)
	if got := persistAll(tb, sys, "bob"); !slices.Equal(got, acked) {
		bad("after reopen bob has %d entries, want exactly the %d acknowledged", len(got), len(acked))
	}
	if got := persistAll(tb, sys, "earlier"); len(got) != 3 {
		bad("after reopen the list written earlier has %d entries, want 3", len(got))
	}
	if got := persistAll(tb, sys, "loaded"); len(got) != 2 {
		bad("after reopen the loaded list has %d entries, want 2", len(got))
	}
	persistClose(tb, sys)
	return problems
}

// TestDiskFull is the disk-full scenario of diskFull on the real store:
// it must find nothing wrong.
func TestDiskFull(t *testing.T) {
	for _, p := range diskFull(t, todo.Open) {
		t.Error(p)
	}
}

// TestDiskFull_BrokenTwin runs the disk-full scenario over a store that
// swallows the errors of its writes, the way a careless writer would, to
// show that the scenario sees acknowledged entries that were never
// written.
func TestDiskFull_BrokenTwin(t *testing.T) {
	swallowing := func(dir string, o *todo.Options) (*todo.System, error) {
		return todo.OpenHooked(dir, o, func(_ string, _, _ int, save func() error) error {
			_ = save() // the bug of the twin: the error is dropped
			return nil
		})
	}
	problems := diskFull(t, swallowing)
	for _, p := range problems {
		t.Logf("broken twin: %s", p)
	}
	if len(problems) == 0 {
		t.Error("the scenario saw nothing wrong with a store that swallows write errors")
	}
}

// TestDiskFull_Async fills the disk under Async durability, where adds are
// acknowledged from memory and written in the background: the background
// write fails (once the room the log preallocated is used up), and Close
// retries it. If the space came back,
// the retry writes everything; if not, Close reports the loss with an
// error wrapping ENOSPC.
func TestDiskFull_Async(t *testing.T) {
	for _, freed := range []bool{true, false} {
		t.Run(fmt.Sprintf("freed=%v", freed), func(t *testing.T) {
			mnt := mountTmpfs(t, "1m")
			dir := filepath.Join(mnt, "data")
			failures := make(chan error, 100)
			hook := func(_ string, _, _ int, save func() error) error {
				err := save()
				if err != nil {
					select {
					case failures <- err:
					default:
					}
				}
				return err
			}
			// AsyncDelay -1: background writes go as soon as a worker is free.
			sys, err := todo.OpenHooked(dir, &todo.Options{Durability: todo.Async, AsyncDelay: -1}, hook)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { sys.Close() })
			persistAdd(t, sys, "bob", diskFullTitle(0))
			filler := filepath.Join(mnt, "filler")
			fillDisk(t, filler, 0)
			// The log may have zero-filled room ahead of its records from
			// before the disk filled up (see lane.preallocate): add until a
			// background write fails, which it must well before 20,000
			// entries of 200 bytes, four times the disk.
			var acked []todo.Entry
			var failure error
			for i := 1; i <= 20_000 && failure == nil; i++ {
				e, err := sys.ServerProcess("bob").AddEntry(context.Background(), todo.Entry{Date: persistDay, Title: diskFullTitle(i)})
				if err != nil {
					// An add that reserves ids waits for its write, which fails
					// too: not acknowledged, and as good a sign of a full disk.
					failure = err
					break
				}
				acked = append(acked, e)
				select {
				case failure = <-failures:
				default:
				}
			}
			if failure == nil {
				select {
				case failure = <-failures:
				case <-time.After(30 * time.Second):
					t.Fatalf("%d adds on a full disk and no write failed in 30s", len(acked))
				}
			}
			if !errors.Is(failure, syscall.ENOSPC) {
				t.Fatalf("write on a full disk: %v, want ENOSPC", failure)
			}
			t.Logf("%d adds acknowledged on the full disk before a write failed", len(acked))
			if got := persistAll(t, sys, "bob"); len(got) != 1+len(acked) {
				t.Errorf("on a full disk bob serves %d entries, want %d", len(got), 1+len(acked))
			}
			if freed {
				if err := os.Remove(filler); err != nil {
					t.Fatal(err)
				}
				if err := sys.Close(); err != nil {
					t.Errorf("Close after space came back: %v", err)
				}
				sys = persistOpen(t, dir, nil)
				if got := persistAll(t, sys, "bob"); len(got) != 1+len(acked) || !slices.Equal(got[1:], acked) {
					t.Errorf("after reopen bob has %d entries, want all %d", len(got), 1+len(acked))
				}
				return
			}
			if err := sys.Close(); !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "bob") {
				t.Errorf("Close on a full disk with unwritten changes: %v, want an error naming the list and wrapping ENOSPC", err)
			}
		})
	}
}

// TestReadOnly opens a data directory on a file system that became
// read-only while no System had it open (a running System holds its log
// and its lock open for writing, and the kernel refuses to remount a file
// system read-only under open writers; write failures while running are
// the disk-full tests' business): Open fails at once with an error that
// wraps EROFS and names the directory, and once the file system is
// read-write again, Open works and every acknowledged entry is there.
func TestReadOnly(t *testing.T) {
	ctx := context.Background()
	mnt := mountTmpfs(t, "1m")
	dir := filepath.Join(mnt, "data")
	sys := persistOpen(t, dir, nil)
	acked := []todo.Entry{persistAdd(t, sys, "bob", "before")}
	persistClose(t, sys)

	remount(t, mnt, "ro")
	if sys, err := todo.Open(dir, nil); !errors.Is(err, syscall.EROFS) || !strings.Contains(fmt.Sprint(err), dir) {
		t.Errorf("Open on a read-only file system: %v, want an error wrapping EROFS naming %s", err, dir)
		if err == nil {
			sys.Close()
		}
	}
	remount(t, mnt, "rw")

	sys = persistOpen(t, dir, nil)
	acked = append(acked, persistAdd(t, sys, "bob", "after"))
	persistClose(t, sys)
	sys = persistOpen(t, dir, nil)
	if got := persistAll(t, sys, "bob"); !slices.Equal(got, acked) {
		t.Errorf("after reopen bob = %v, want exactly %v", got, acked)
	}
	if got, err := sys.Lists(ctx); err != nil || !slices.Equal(got, []string{"bob"}) {
		t.Errorf("Lists = %q, %v; want only bob", got, err)
	}
	persistClose(t, sys)
}

// These environment variables tell TestDiskFullAsyncChild what to do.
const (
	asyncFullDirEnv    = "TODO_ASYNC_FULL_CHILD_DIR"    // the data directory; unset outside a child
	asyncFullFillerEnv = "TODO_ASYNC_FULL_CHILD_FILLER" // the file that fills the disk
	asyncFullTwinEnv   = "TODO_ASYNC_FULL_CHILD_TWIN"   // "1": the pool retries only at Close
)

// asyncFullLists are the lists TestDiskFullAsyncChild adds to: several, so
// that none of them gives out its 1,024 reserved ids (reserving the next
// range needs the disk).
var asyncFullLists = []string{"async 0", "async 1", "async 2", "async 3"}

// errorLines is a slog.Handler that notes when each record of level Error
// or more was logged.
type errorLines struct {
	mu *sync.Mutex
	at *[]time.Time
}

func newErrorLines() errorLines { return errorLines{new(sync.Mutex), new([]time.Time)} }

func (h errorLines) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelError }
func (h errorLines) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	*h.at = append(*h.at, r.Time)
	h.mu.Unlock()
	return nil
}
func (h errorLines) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h errorLines) WithGroup(string) slog.Handler      { return h }

// since returns how many lines were logged from t on.
func (h errorLines) since(t time.Time) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, at := range *h.at {
		if !at.Before(t) {
			n++
		}
	}
	return n
}

// pollUntil calls cond every 10ms until it holds or timeout has passed,
// and reports whether it held: for the state of another part of the
// System (a background retry, a worker's backoff) that no call can wait
// for.
func pollUntil(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// TestDiskFullAsyncChild is the child of TestDiskFull_AsyncRetriesWhileRunning.
// On the data directory TODO_ASYNC_FULL_CHILD_DIR, with Async durability
// and a 20ms AsyncDelay, it adds an entry to each list, fills the disk
// (TODO_ASYNC_FULL_CHILD_FILLER), and adds entries until the background
// commits fail; it checks that Health reports ENOSPC, that adds are then
// refused (ErrStoreFailing), not acknowledged, that Stats counts the lists
// left unstored and the failed retries as they go on, and that at most a
// few error lines a second are logged meanwhile. Then it
// removes the filler and waits, up to 10s, without calling Close, until
// nothing is unstored and Health is nil. It prints every acknowledged
// entry (ACK), every check that failed (FAIL), and DONE at the end, and
// then waits to be killed. Outside that test it does nothing.
func TestDiskFullAsyncChild(t *testing.T) {
	dir := os.Getenv(asyncFullDirEnv)
	if dir == "" {
		t.Skip("run by TestDiskFull_AsyncRetriesWhileRunning as its child")
	}
	ctx := context.Background()
	fail := func(format string, args ...any) { fmt.Printf("FAIL\t"+format+"\n", args...) }
	logged := newErrorLines()
	open := todo.Open
	if os.Getenv(asyncFullTwinEnv) == "1" {
		open = todo.OpenRetryOnlyAtClose
	}
	sys, err := open(dir, &todo.Options{Durability: todo.Async, AsyncDelay: 20 * time.Millisecond, Logger: slog.New(logged)})
	if err != nil {
		fail("Open: %v", err)
		t.Fatal(err)
	}
	n := 0
	// add adds an entry and prints it when acknowledged. Once the disk is
	// full, a refusal that wraps ErrStoreFailing and ENOSPC is what the pool
	// owes (the failure became known between the caller's look at Health
	// and its add): add reports it to the fill loop, which stops there; any
	// other error is a failed check.
	add := func(full bool) (refused bool) {
		list := asyncFullLists[n%len(asyncFullLists)]
		title := diskFullTitle(n)
		n++
		e, err := sys.ServerProcess(list).AddEntry(ctx, todo.Entry{Date: persistDay, Title: title})
		if full && errors.Is(err, todo.ErrStoreFailing) && errors.Is(err, syscall.ENOSPC) {
			return true
		}
		if err != nil {
			fail("add %d: %v", n, err)
			return false
		}
		fmt.Printf("ACK\t%q\t%d\t%q\n", list, e.ID, e.Title)
		return false
	}
	for range asyncFullLists {
		add(false) // the first add of a list reserves its ids, on a disk with room
	}

	fillDisk(t, os.Getenv(asyncFullFillerEnv), 0)
	filled := time.Now()
	// The log keeps room it zero-filled ahead of its records; once that is
	// used up, the background commits fail.
	failing := func() bool { return sys.Health() != nil && sys.Stats().Unstored > 0 }
	for n < 3000 && !failing() {
		if add(true) {
			break
		}
		if n%100 == 0 {
			pollUntil(25*time.Millisecond, failing) // a commit or two, for the worker
		}
	}
	if !pollUntil(5*time.Second, failing) {
		fail("%d entries added on a full disk, and no commit failed: Health %v, %+v", n, sys.Health(), sys.Stats())
		fmt.Println("DONE")
		select {}
	}
	st := sys.Stats()
	if err := sys.Health(); !errors.Is(err, syscall.ENOSPC) {
		fail("Health on a full disk: %v, want an error wrapping ENOSPC", err)
	}
	for range 8 { // refused, not acknowledged, once the failure is known
		list := asyncFullLists[n%len(asyncFullLists)]
		n++
		e, err := sys.ServerProcess(list).AddEntry(ctx, todo.Entry{Date: persistDay, Title: diskFullTitle(n)})
		if err == nil {
			fail("add %d on a full disk, Health %v: acknowledged as entry %d of %q, want it refused", n, sys.Health(), e.ID, list)
			fmt.Printf("ACK\t%q\t%d\t%q\n", list, e.ID, e.Title)
		} else if !errors.Is(err, todo.ErrStoreFailing) || !errors.Is(err, syscall.ENOSPC) {
			fail("add %d on a full disk: %v, want an error wrapping ErrStoreFailing and ENOSPC", n, err)
		}
	}
	// The retries go on while the System runs, with backoff: three more
	// failures take 50+100+200ms, and far more is allowed for.
	if !pollUntil(10*time.Second, func() bool { return sys.Stats().WriteErrors >= st.WriteErrors+3 }) {
		fail("WriteErrors went from %d to %d in 10s on a full disk: the failed commits are not retried", st.WriteErrors, sys.Stats().WriteErrors)
	}
	pollUntil(time.Second, func() bool { return false }) // let the failures go on a while
	failed, lines := time.Since(filled), logged.since(filled)
	now := sys.Stats()
	if now.Unstored == 0 || now.WriteRetries <= st.WriteRetries {
		fail("after %v on a full disk: Unstored %d, WriteRetries %d → %d; want lists unstored and retries counted", failed, now.Unstored, st.WriteRetries, now.WriteRetries)
	}
	if limit := 3 * (int(failed/time.Second) + 1); lines > limit || lines == 0 {
		fail("%d error lines logged in %v of failing commits; want at least one, and at most %d", lines, failed, limit)
	}
	fmt.Printf("INFO\t%d adds; %v with the disk full: %d changes failed to commit, %d of them after the first failures were seen, %d retried; %d error lines logged\n",
		n, failed.Round(time.Millisecond), now.WriteErrors, now.WriteErrors-st.WriteErrors, now.WriteRetries, lines)

	if err := os.Remove(os.Getenv(asyncFullFillerEnv)); err != nil {
		fail("removing the filler: %v", err)
	}
	freed := time.Now()
	if !pollUntil(10*time.Second, func() bool { return sys.Stats().Unstored == 0 && sys.Health() == nil }) {
		fail("10s after space came back: Unstored %d, Health %v; want everything stored without Close", sys.Stats().Unstored, sys.Health())
	} else {
		fmt.Printf("INFO\tstored %v after space came back\n", time.Since(freed).Round(time.Millisecond))
	}
	fmt.Println("DONE")
	select {} // until killed (the test binary's -test.timeout is the safety net)
}

// asyncFullRun runs TestDiskFullAsyncChild on a fresh 1 MiB tmpfs, kills it
// with SIGKILL by its pid once it is done, opens its data directory, and
// returns what went wrong: the child's failed checks, and the
// acknowledged entries missing after the kill.
func asyncFullRun(t *testing.T, twin bool) (problems []string, missing int) {
	mnt := mountTmpfs(t, "1m")
	dir := filepath.Join(mnt, "data")
	env := []string{asyncFullDirEnv + "=" + dir, asyncFullFillerEnv + "=" + filepath.Join(mnt, "filler")}
	if twin {
		env = append(env, asyncFullTwinEnv+"=1")
	}
	cmd, out := startTestChild(t, "TestDiskFullAsyncChild", env...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer killChild(t, cmd)
	var acked []ackedEntry
	done := false
	lines := bufio.NewScanner(out)
	for !done && lines.Scan() {
		line := lines.Text()
		switch {
		case strings.HasPrefix(line, "ACK\t"):
			a, err := parseAck(line)
			if err != nil {
				t.Fatalf("child printed %q: %v", line, err)
			}
			acked = append(acked, a)
		case strings.HasPrefix(line, "FAIL\t"):
			problems = append(problems, "child: "+strings.TrimPrefix(line, "FAIL\t"))
		case strings.HasPrefix(line, "INFO\t"):
			t.Log("child: " + strings.TrimPrefix(line, "INFO\t"))
		case line == "DONE":
			done = true
		}
	}
	killChild(t, cmd)
	if !done {
		t.Fatalf("the child ended before it was done; stderr:\n%s", cmd.Stderr)
	}
	// The filler is gone: reopening needs no room the child did not leave.
	os.Remove(filepath.Join(mnt, "filler"))
	gone := missingEntries(t, dir, acked)
	t.Logf("%d entries acknowledged, %d missing after the kill", len(acked), len(gone))
	if len(gone) > 0 {
		problems = append(problems, fmt.Sprintf("%d of %d acknowledged entries missing after the kill, e.g. %+v", len(gone), len(acked), gone[0]))
	}
	return problems, len(gone)
}

// TestDiskFull_AsyncRetriesWhileRunning is the second defect of issue 8:
// with Async durability, changes acknowledged while the disk is full must
// be stored once space returns while the System runs, not at Close. A
// child fills a small tmpfs, adds entries (acknowledged at once) until
// the background commits fail, and checks what the System reports
// meanwhile (Health, Stats.Unstored, WriteErrors growing, a few error
// lines a second); then space returns and the child waits, without
// Close, until everything is stored. Killed with SIGKILL then, it must
// have lost no acknowledged entry.
func TestDiskFull_AsyncRetriesWhileRunning(t *testing.T) {
	problems, _ := asyncFullRun(t, false)
	for _, p := range problems {
		t.Error(p)
	}
}

// TestDiskFull_AsyncRetriesWhileRunning_BrokenTwin runs it with a pool that
// retries failed Async commits only at Close (see OpenRetryOnlyAtClose), as
// the seed did: the kill must lose the entries acknowledged on the full
// disk.
func TestDiskFull_AsyncRetriesWhileRunning_BrokenTwin(t *testing.T) {
	t.Parallel() // its 20s are the child's polls timing out, which need no CPU
	problems, missing := asyncFullRun(t, true)
	for _, p := range problems {
		t.Logf("broken twin: %s", p)
	}
	if missing == 0 {
		t.Error("a pool that retries only at Close lost nothing in the kill: the test cannot see it")
	}
}

// TestDiskFull_KillMidAppend fills a small tmpfs but for 64 KiB and runs
// the crash test's child on it (50 writers, Fsync): its appends fail with
// ENOSPC once the room is used, and the parent kills it with SIGKILL at
// its first failed add, or a little later, while the other writers' appends
// and the cutting back of failed ones are under way. With the space freed,
// Open must succeed (no torn or half-cut record that it refuses), every
// acknowledged entry must be there, and adds must work again. Three
// rounds, on one data directory.
func TestDiskFull_KillMidAppend(t *testing.T) {
	mnt := mountTmpfs(t, "1m")
	dir := filepath.Join(mnt, "data")
	filler := filepath.Join(mnt, "filler")
	var acked []ackedEntry
	for round := range 3 {
		fillDisk(t, filler, 64<<10)
		c := crashChild{mode: "files", killAfterErrs: 1 + 5*round}
		r := runCrashChild(t, dir, c, round, 1<<30)
		if !r.killed {
			t.Fatalf("round %d: the child's adds never failed on a disk with 64 KiB left", round)
		}
		for _, e := range r.errs {
			if !strings.Contains(e, syscall.ENOSPC.Error()) {
				t.Errorf("round %d: an add failed other than for the full disk: %s", round, e)
			}
		}
		t.Logf("round %d: %d adds acknowledged; killed at failed add %d (%d printed before it died)", round, len(r.acked), c.killAfterErrs, len(r.errs))
		acked = append(acked, r.acked...)
		if err := os.Remove(filler); err != nil {
			t.Fatal(err)
		}
		for _, p := range crashCheck(t, dir, acked) {
			t.Errorf("round %d: %s", round, p)
		}
		sys := persistOpen(t, dir, nil)
		for _, list := range crashLists {
			e := persistAdd(t, sys, list, fmt.Sprint("after round ", round))
			acked = append(acked, ackedEntry{list, e.ID, e.Title})
		}
		persistClose(t, sys)
	}
}

// ---- A server on a full disk (issue 18), in a child process ----

// These environment variables tell TestDiskFullServerChild what to do.
const (
	fullServerDirEnv  = "TODO_FULL_SERVER_CHILD_DIR"  // the data directory; unset outside a child
	fullServerModeEnv = "TODO_FULL_SERVER_CHILD_MODE" // the durability: fsync, write or async
	fullServerTwinEnv = "TODO_FULL_SERVER_CHILD_TWIN" // a broken twin (see todo.OpenBroken), or ""
)

// lineWriter writes whole lines to stdout from many goroutines.
type lineWriter struct{ mu *sync.Mutex }

func (w lineWriter) printf(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	line = strings.ReplaceAll(line, "\n", " ")
	w.mu.Lock()
	defer w.mu.Unlock()
	fmt.Println(line)
}

// lineLogger is a slog.Handler that prints each record as "LOG level
// message" on a line.
type lineLogger struct{ out lineWriter }

func (h lineLogger) Enabled(context.Context, slog.Level) bool { return true }
func (h lineLogger) Handle(_ context.Context, r slog.Record) error {
	var err string
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "err" {
			err = a.Value.String()
		}
		return true
	})
	h.out.printf("LOG\t%s\t%s\t%s", r.Level, r.Message, err)
	return nil
}
func (h lineLogger) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h lineLogger) WithGroup(string) slog.Handler      { return h }

// TestDiskFullServerChild is the child of TestDiskFull_Server: the HTTP
// face (package todohttp) of a System on the data directory
// TODO_FULL_SERVER_CHILD_DIR, with the durability and broken twin its
// other variables name, on 127.0.0.1, the System and the handler logging
// to one logger. It prints the address (ADDR), each log record (LOG),
// each change of System.Health (HEALTH failing or ok) and of the number
// of lists with changes not yet committed (PENDING n), noticed within
// 5ms, and, with Async durability, each change acknowledged (201)
// although Health reported a failure both before the request reached the
// handler and after it was answered (ACKFAIL). Then it serves until
// killed. Outside that test it does nothing.
func TestDiskFullServerChild(t *testing.T) {
	dir := os.Getenv(fullServerDirEnv)
	if dir == "" {
		t.Skip("run by TestDiskFull_Server as its child")
	}
	out := lineWriter{new(sync.Mutex)}
	d, err := todo.ParseDurability(os.Getenv(fullServerModeEnv))
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(lineLogger{out})
	sys, err := todo.OpenBroken(dir, &todo.Options{Durability: d, Logger: logger}, os.Getenv(fullServerTwinEnv))
	if err != nil {
		t.Fatal(err)
	}
	h, err := todohttp.NewHandler(sys, &todohttp.HandlerOptions{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	watched := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		failing := sys.Health() != nil
		rec := &statusRecorder{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		if d == todo.Async && rec.status == http.StatusCreated && failing && sys.Health() != nil {
			out.printf("ACKFAIL\t%s", r.URL.Path)
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go (&http.Server{Handler: watched, ReadHeaderTimeout: 5 * time.Second}).Serve(ln)
	out.printf("ADDR\t%s", ln.Addr())
	var was error
	pending := -1
	for { // until killed (the test binary's -test.timeout is the safety net)
		now := sys.Health()
		switch {
		case now != nil && was == nil:
			out.printf("HEALTH\tfailing\t%v", now)
		case now == nil && was != nil:
			out.printf("HEALTH\tok")
		}
		was = now
		if n := todo.Uncommitted(sys); n != pending {
			out.printf("PENDING\t%d", n)
			pending = n
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// statusRecorder notes the status a handler answered with.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

// fullServer is the parent's view of a TestDiskFullServerChild.
type fullServer struct {
	base   string
	events chan fullEvent // HEALTH and PENDING, in the child's order
	// What the events read so far said last.
	failing bool
	pending int

	mu       sync.Mutex  // guards the fields below
	logs     []time.Time // when each log line arrived
	logText  []string
	ackFails int
}

// fullEvent is a HEALTH ("failing", "ok") or PENDING line of the child.
type fullEvent struct {
	kind, value string
}

// logsBetween returns the log lines that arrived between from and to.
func (s *fullServer) logsBetween(from, to time.Time) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var lines []string
	for i, at := range s.logs {
		if !at.Before(from) && at.Before(to) {
			lines = append(lines, s.logText[i])
		}
	}
	return lines
}

// read reads the child's lines until it ends.
func (s *fullServer) read(lines *bufio.Scanner, addr chan<- string) {
	for lines.Scan() {
		f := strings.Split(lines.Text(), "\t")
		switch f[0] {
		case "ADDR":
			addr <- f[1]
		case "HEALTH", "PENDING":
			s.events <- fullEvent{f[0], f[1]}
		case "LOG":
			s.mu.Lock()
			s.logs = append(s.logs, time.Now())
			s.logText = append(s.logText, strings.Join(f[1:], " "))
			s.mu.Unlock()
		case "ACKFAIL":
			s.mu.Lock()
			s.ackFails++
			s.mu.Unlock()
		}
	}
	close(s.events)
}

// await reads the child's events for up to timeout until cond holds of
// what they say, and reports whether it did.
func (s *fullServer) await(timeout time.Duration, cond func(failing bool, pending int) bool) bool {
	deadline := time.After(timeout)
	for !cond(s.failing, s.pending) {
		select {
		case e, ok := <-s.events:
			if !ok {
				return false
			}
			switch e.kind {
			case "HEALTH":
				s.failing = e.value == "failing"
			case "PENDING":
				s.pending, _ = strconv.Atoi(e.value)
			}
		case <-deadline:
			return false
		}
	}
	return true
}

// fullLoad is HTTP clients adding entries to the child's lists.
type fullLoad struct {
	s       *fullServer
	stop    chan struct{}
	wg      sync.WaitGroup
	mu      sync.Mutex
	acked   []ackedEntry
	refused map[int]int // status → count, of adds not acknowledged
	sent    atomic.Int64
}

// start starts n clients, each adding to a list of its own.
func (l *fullLoad) start(t *testing.T, n int) {
	l.stop, l.refused = make(chan struct{}), make(map[int]int)
	client := &http.Client{Timeout: 30 * time.Second}
	for c := range n {
		list := fmt.Sprint("full ", c)
		l.wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				title := fmt.Sprintf("%d %s", i, diskFullTitle(c))
				status, e, err := postEntry(client, l.s.base, list, title)
				l.sent.Add(1)
				l.mu.Lock()
				switch {
				case err != nil:
					t.Errorf("POST to %q: %v", list, err)
				case status == http.StatusCreated:
					l.acked = append(l.acked, ackedEntry{list, e.ID, e.Title})
				default:
					l.refused[status]++
				}
				l.mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
}

func (l *fullLoad) halt() {
	close(l.stop)
	l.wg.Wait()
}

func (l *fullLoad) counts() (acked int, refused map[int]int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked), maps.Clone(l.refused)
}

// postEntry adds an entry through the JSON API, and returns the status
// and, when it is 201, the entry.
func postEntry(client *http.Client, base, list, title string) (int, todohttp.Entry, error) {
	body, _ := json.Marshal(todohttp.AddBody{Date: "2013-12-19", Title: title})
	resp, err := client.Post(base+"/lists/"+url.PathEscape(list)+"/entries", "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, todohttp.Entry{}, err
	}
	defer resp.Body.Close()
	var e todohttp.Entry
	if resp.StatusCode == http.StatusCreated {
		err = json.NewDecoder(resp.Body).Decode(&e)
	} else {
		io.Copy(io.Discard, resp.Body)
	}
	return resp.StatusCode, e, err
}

// fullServerResult is what fullServerRun saw.
type fullServerResult struct {
	problems []string
	ackFails int           // changes acknowledged while Health said failing
	healthy  time.Duration // from freeing the disk to HEALTH ok; 0: not within 10s
	lines    int           // log lines while the disk was full
}

// fullServerLinesPerPeriod bounds the log lines a full disk may cause per
// faults.Period: two per kind of fault (a failure line, a recovery line)
// for the few kinds a full disk touches (the System's commits, the
// store's checkpoints, the handler's refused changes), with room.
const fullServerLinesPerPeriod = 8

// fullServerRun runs TestDiskFullServerChild with durability d and the
// broken twin twin on a fresh 2 MiB tmpfs, as an operator saw it in
// issue 18:
//
//   - 8 HTTP clients add entries, each to a list of its own; once 300
//     are acknowledged, the disk is filled; the child says when Health
//     reports the failure (within 30s: the log first uses the room it
//     preallocated), and the disk is filled again, to take what the
//     failed write gave back;
//   - the clients go on until 400 more adds were answered: each must be
//     refused (507); with Async durability, none may be acknowledged
//     while Health reports the failure (the child checks each 201);
//   - the clients stop, the disk is freed, and Health must be nil again
//     within 10s with no client's write (a bound, not a measurement);
//   - the log lines from filling to freeing are at most
//     fullServerLinesPerPeriod for each faults.Period begun;
//   - the child is killed with SIGKILL, and every acknowledged entry
//     must be in its data directory.
func fullServerRun(t *testing.T, d todo.Durability, twin string) (r fullServerResult) {
	bad := func(format string, args ...any) { r.problems = append(r.problems, fmt.Sprintf(format, args...)) }
	mnt := mountTmpfs(t, "2m")
	dir := filepath.Join(mnt, "data")
	cmd, stdout := startTestChild(t, "TestDiskFullServerChild",
		fullServerDirEnv+"="+dir, fullServerModeEnv+"="+d.String(), fullServerTwinEnv+"="+twin)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer killChild(t, cmd)
	s := &fullServer{events: make(chan fullEvent, 1<<16)}
	addr := make(chan string, 1)
	go s.read(bufio.NewScanner(stdout), addr)
	select {
	case a := <-addr:
		s.base = "http://" + a
	case <-time.After(30 * time.Second):
		t.Fatalf("the child printed no address in 30s; stderr:\n%s", cmd.Stderr)
	}

	load := &fullLoad{s: s}
	load.start(t, 8)
	if !pollUntil(30*time.Second, func() bool { n, _ := load.counts(); return n >= 300 }) {
		load.halt()
		t.Fatalf("300 adds not acknowledged in 30s on a disk with room")
	}
	filled := time.Now()
	fillDisk(t, filepath.Join(mnt, "filler"), 0)
	if !s.await(30*time.Second, func(failing bool, _ int) bool { return failing }) {
		load.halt()
		t.Fatalf("30s after the disk was filled, under load, Health reports no failure")
	}
	fillDisk(t, filepath.Join(mnt, "filler 2"), 0) // what the failed write gave back
	ackedBefore, _ := load.counts()
	sent := load.sent.Load()
	pollUntil(30*time.Second, func() bool { return load.sent.Load() >= sent+400 })
	load.halt()
	acked, refused := load.counts()
	t.Logf("%v: %d adds acknowledged before Health reported the failure; then %d more, and refused: %v", d, ackedBefore, acked-ackedBefore, refused)
	if refused[http.StatusInsufficientStorage] == 0 {
		bad("no add answered 507 on the full disk: %v", refused)
	}
	for status, n := range refused {
		if status != http.StatusInsufficientStorage {
			bad("%d adds answered %d on the full disk, want 507", n, status)
		}
	}

	for _, f := range []string{"filler", "filler 2"} {
		if err := os.Remove(filepath.Join(mnt, f)); err != nil {
			t.Fatal(err)
		}
	}
	freed := time.Now()
	if s.await(10*time.Second, func(failing bool, _ int) bool { return !failing }) {
		r.healthy = time.Since(freed)
		t.Logf("%v: Health nil %v after space returned, with no client's write", d, r.healthy.Round(time.Millisecond))
	} else {
		bad("10s after space returned, with no client's write, Health still reports a failure")
	}
	// Async changes acknowledged before the failure and not yet committed
	// are committed within AsyncDelay of space returning (the unit test
	// TestSystem_AsyncRefusedWhileStoreFails holds it to that on a fake
	// clock); 10s is the bound of this test.
	if !s.await(10*time.Second, func(_ bool, pending int) bool { return pending == 0 }) {
		bad("10s after space returned, %d lists still have changes not committed", s.pending)
	}
	lines := s.logsBetween(filled, freed)
	r.lines = len(lines)
	if limit := fullServerLinesPerPeriod * (1 + int(freed.Sub(filled)/faults.Period)); r.lines > limit {
		bad("%d log lines in the %v the disk was full, want at most %d", r.lines, freed.Sub(filled).Round(time.Millisecond), limit)
	}
	t.Logf("%v: %d log lines in the %v the disk was full, e.g. %q", d, r.lines, freed.Sub(filled).Round(time.Millisecond), lines[:min(len(lines), 3)])
	s.mu.Lock()
	r.ackFails = s.ackFails
	s.mu.Unlock()
	if r.ackFails > 0 {
		bad("%d adds acknowledged while Health reported the failure", r.ackFails)
	}

	killChild(t, cmd)
	if gone := missingEntries(t, dir, load.acked); len(gone) > 0 {
		bad("%d of %d acknowledged entries missing after SIGKILL, e.g. %+v", len(gone), len(load.acked), gone[0])
	}
	return r
}

// TestDiskFull_Server is issue 18's full disk under a server: with Async
// durability no add is acknowledged while the disk is known to be full,
// and every one acknowledged before is stored once space returns; in every
// durability, health comes back by itself, the log has a few lines per
// fault, and a SIGKILL loses nothing acknowledged (see fullServerRun).
func TestDiskFull_Server(t *testing.T) {
	for _, d := range []todo.Durability{todo.Async, todo.Fsync, todo.Write} {
		t.Run(d.String(), func(t *testing.T) {
			for _, p := range fullServerRun(t, d, "").problems {
				t.Error(p)
			}
		})
	}
}

// The broken twins of TestDiskFull_Server: each must be caught. They
// run in parallel: the one that never probes waits out its 10s.
func TestDiskFull_Server_BrokenTwins(t *testing.T) {
	for _, c := range []struct {
		twin   string
		d      todo.Durability
		caught func(fullServerResult) bool
	}{
		{"ack-while-failing", todo.Async, func(r fullServerResult) bool { return r.ackFails > 0 }},
		{"no-probe", todo.Fsync, func(r fullServerResult) bool { return r.healthy == 0 }},
		{"log-every-failure", todo.Fsync, func(r fullServerResult) bool { return len(r.problems) > 0 && r.lines > fullServerLinesPerPeriod }},
	} {
		t.Run(c.twin, func(t *testing.T) {
			t.Parallel()
			r := fullServerRun(t, c.d, c.twin)
			for _, p := range r.problems {
				t.Logf("broken twin: %s", p)
			}
			if !c.caught(r) {
				t.Errorf("the broken twin %q went unseen: %+v", c.twin, r)
			}
		})
	}
}

// TestDiskFull_ShutdownLosesNothing is issue 18's SIGTERM on a full disk
// with Fsync durability, which said that lists "lost their last changes"
// and failed, although the next start had every entry: lists that leave
// memory while the disk is full (their release cannot be written) hold
// nothing acknowledged that is not stored, and Shutdown, giving those
// releases up, returns nil. After space returns, a reopen has every
// acknowledged entry.
func TestDiskFull_ShutdownLosesNothing(t *testing.T) {
	ctx := context.Background()
	mnt := mountTmpfs(t, "1m")
	dir := filepath.Join(mnt, "data")
	sys := persistOpen(t, dir, &todo.Options{Durability: todo.Fsync})
	// 40 lists of long names, each with records in the log: their
	// releases take more than the page the log's last write may have
	// left room in.
	var lists []string
	for i := range 40 {
		lists = append(lists, fmt.Sprintf("%02d %s", i, strings.Repeat("n", 200)))
	}
	var acked []ackedEntry
	add := func(i int) error {
		list := lists[i%len(lists)]
		e, err := sys.ServerProcess(list).AddEntry(ctx, todo.Entry{Date: persistDay, Title: diskFullTitle(i)})
		if err == nil {
			acked = append(acked, ackedEntry{list, e.ID, e.Title})
		}
		return err
	}
	for i := range len(lists) {
		if err := add(i); err != nil {
			t.Fatal(err)
		}
	}
	fillDisk(t, filepath.Join(mnt, "filler"), 0)
	var err error
	for i := len(lists); i < 20_000 && err == nil; i++ { // until the room the log preallocated is used up
		err = add(i)
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("adds on a full disk: %v, want ENOSPC", err)
	}
	fillDisk(t, filepath.Join(mnt, "filler 2"), 0) // what the failed write gave back
	unload, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	for _, list := range lists {
		wg.Go(func() { sys.Unload(unload, list) }) // waits for the retries of its release until ctx ends
	}
	wg.Wait()
	if st := sys.Stats(); st.Unstored == 0 {
		t.Fatalf("every list's release was stored on a full disk: the test cannot see Shutdown give one up")
	}
	stop, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := sys.Shutdown(stop); err != nil {
		t.Errorf("Shutdown on a full disk with nothing acknowledged unstored: %v, want nil", err)
	}
	for _, f := range []string{"filler", "filler 2"} {
		if err := os.Remove(filepath.Join(mnt, f)); err != nil {
			t.Fatal(err)
		}
	}
	if gone := missingEntries(t, dir, acked); len(gone) > 0 {
		t.Errorf("%d of %d acknowledged entries missing after the reopen", len(gone), len(acked))
	}
}
