package todo_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gotodo/todo"
)

// The crash test runs its own test binary again as a child that writes to
// a data directory until the parent kills it with SIGKILL. These
// environment variables tell TestCrashChild what to do.
const (
	crashDirEnv  = "TODO_CRASH_CHILD_DIR"  // the data directory; unset outside a child
	crashModeEnv = "TODO_CRASH_CHILD_MODE" // "files" (the real store) or "in-place" (the broken twin)
	crashRunEnv  = "TODO_CRASH_CHILD_RUN"  // the number of the run, put in titles
)

const (
	crashWriters  = 50              // goroutines writing in the child
	crashKills    = 20              // children killed per test
	crashMaxLife  = 5 * time.Second // a child still alive after this stops itself
	crashMinAcked = 50              // the parent kills after a random number of
	crashMaxAcked = 500             // acknowledged entries in [min, max]
)

// crashLists are the lists the child writes to: a handful, so that each is
// written often and concurrently, with names that need encoding.
var crashLists = []string{"crash 0", "Crash/1", "../crash 2", "crash-3", "日本 4"}

// TestCrashChild is the child of the crash tests: it opens the data
// directory named by TODO_CRASH_CHILD_DIR with Fsync durability and adds
// entries from 50 goroutines, printing each acknowledged one on stdout,
// one line each, written at once, until it is killed (or, as a safety net,
// for crashMaxLife). Outside a crash test it does nothing.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("run by TestCrash_KillNine as its child")
	}
	open := todo.Open
	if os.Getenv(crashModeEnv) == "in-place" {
		open = todo.OpenInPlace
	}
	sys, err := open(dir, &todo.Options{Durability: todo.Fsync})
	if err != nil {
		fmt.Fprintf(os.Stdout, "ERR\topen: %v\n", err)
		t.Fatal(err)
	}
	defer sys.Close()
	ctx, cancel := context.WithTimeout(context.Background(), crashMaxLife)
	defer cancel()
	run := os.Getenv(crashRunEnv)
	var wg sync.WaitGroup
	for g := range crashWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				list := crashLists[(g+i)%len(crashLists)]
				// A long title makes files large enough that a kill can land
				// in the middle of writing one.
				title := fmt.Sprintf("run-%s-writer-%d-add-%d-%s", run, g, i, strings.Repeat("x", 40))
				e, err := sys.ServerProcess(list).AddEntry(ctx, todo.Entry{Date: persistDay, Title: title})
				if ctx.Err() != nil {
					return
				}
				var line string
				if err != nil {
					line = fmt.Sprintf("ERR\t%q\t%q\n", list, err.Error())
				} else {
					line = fmt.Sprintf("ACK\t%q\t%d\t%q\n", list, e.ID, e.Title)
				}
				// One write of a short line to a pipe is atomic, so lines
				// from different goroutines never interleave.
				if _, werr := os.Stdout.WriteString(line); werr != nil || err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
}

// crashRun is what one child did before it was killed.
type crashRun struct {
	acked  []ackedEntry // every acknowledged entry it printed
	errs   []string     // every failed add it printed
	killed bool         // killed by the parent, not stopped by itself
	stderr string
}

// runCrashChild starts a child on dir, kills it with SIGKILL once it has
// printed killAfter acknowledged entries, and returns what it printed.
func runCrashChild(tb testing.TB, dir, mode string, run, killAfter int) crashRun {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1", "-test.timeout=1m")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashModeEnv+"="+mode, crashRunEnv+"="+strconv.Itoa(run))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	var r crashRun
	lines := bufio.NewScanner(out)
	for lines.Scan() {
		line := lines.Text()
		switch {
		case strings.HasPrefix(line, "ACK\t"):
			a, err := parseAck(line)
			if err != nil {
				tb.Errorf("child printed %q: %v", line, err)
				continue
			}
			r.acked = append(r.acked, a)
			if len(r.acked) == killAfter && !r.killed {
				if err := cmd.Process.Kill(); err != nil {
					tb.Errorf("kill: %v", err)
				}
				r.killed = true
				// Read on: lines printed before the kill are acknowledged too.
			}
		case strings.HasPrefix(line, "ERR\t"):
			r.errs = append(r.errs, line)
		}
	}
	if err := lines.Err(); err != nil {
		tb.Errorf("reading the child's output: %v", err)
	}
	err = cmd.Wait()
	r.stderr = stderr.String()
	var exit *exec.ExitError
	switch {
	case r.killed && !errors.As(err, &exit):
		tb.Errorf("child killed, then Wait: %v", err)
	case !r.killed && err != nil:
		tb.Errorf("child stopped by itself with %v; stderr:\n%s", err, r.stderr)
	}
	return r
}

// parseAck parses a line ACK\t"list"\tid\t"title".
func parseAck(line string) (ackedEntry, error) {
	f := strings.Split(line, "\t")
	if len(f) != 4 {
		return ackedEntry{}, errors.New("want 4 fields")
	}
	list, err := strconv.Unquote(f[1])
	if err != nil {
		return ackedEntry{}, err
	}
	id, err := strconv.Atoi(f[2])
	if err != nil {
		return ackedEntry{}, err
	}
	title, err := strconv.Unquote(f[3])
	if err != nil {
		return ackedEntry{}, err
	}
	return ackedEntry{list, id, title}, nil
}

// crashCheck opens dir after a kill and returns what is wrong: acknowledged
// entries that are missing or changed, lists that cannot be read, names
// that were never written, and temp files left over.
func crashCheck(tb testing.TB, dir string, acked []ackedEntry) (problems []string) {
	tb.Helper()
	ctx := context.Background()
	sys, err := todo.Open(dir, nil)
	if err != nil {
		return []string{fmt.Sprintf("Open: %v", err)}
	}
	defer func() {
		if err := sys.Close(); err != nil {
			problems = append(problems, fmt.Sprintf("Close: %v", err))
		}
	}()
	if left := tempFiles(tb, dir); len(left) != 0 {
		// Only Open's own checkpoints of what it replayed may be writing one.
		todo.WaitCheckpoints(sys)
		if left := tempFiles(tb, dir); len(left) != 0 {
			problems = append(problems, fmt.Sprintf("temp files after Open and its checkpoints: %v", left))
		}
	}
	names, err := sys.Lists(ctx)
	if err != nil {
		problems = append(problems, fmt.Sprintf("Lists: %v", err))
	}
	stored := make(map[string]map[int]string)
	for _, n := range names {
		known := false
		for _, l := range crashLists {
			known = known || l == n
		}
		if !known {
			problems = append(problems, fmt.Sprintf("Lists has %q, never written", n))
		}
		es, err := sys.ServerProcess(n).AllEntries(ctx)
		if err != nil {
			problems = append(problems, fmt.Sprintf("list %q unreadable: %v", n, err))
		}
		stored[n] = make(map[int]string)
		for _, e := range es {
			stored[n][e.ID] = e.Title
		}
	}
	missing := 0
	for _, a := range acked {
		if title, ok := stored[a.list][a.id]; !ok || title != a.title {
			if missing++; missing <= 3 {
				problems = append(problems, fmt.Sprintf("acknowledged %+v, found %q", a, title))
			}
		}
	}
	if missing > 3 {
		problems = append(problems, fmt.Sprintf("... %d acknowledged entries missing in all", missing))
	}
	return problems
}

// crashKillNine kills crashKills children, each at a random moment, and
// checks the data directory after each kill. With fresh set each child
// gets a new directory; otherwise all of them continue on one, each
// starting from what the last one left when it was killed, and every
// entry acknowledged by any of them must still be there. It returns the
// number of kills after which the check found a problem.
func crashKillNine(t testing.TB, mode string, fresh bool, report func(kill int, problems []string)) (bad int) {
	dir := t.TempDir()
	var acked []ackedEntry
	kills, total := 0, 0
	for run := range crashKills {
		if fresh {
			dir = t.TempDir()
			acked = nil
		}
		killAfter := crashMinAcked + rand.IntN(crashMaxAcked-crashMinAcked+1)
		r := runCrashChild(t, dir, mode, run, killAfter)
		if len(r.errs) > 0 {
			msg := fmt.Sprintf("run %d: %d adds failed in the child, e.g. %s", run, len(r.errs), r.errs[0])
			if mode == "files" {
				t.Error(msg)
			} else {
				t.Log(msg)
			}
		}
		if r.killed {
			kills++
		}
		total += len(r.acked)
		acked = append(acked, r.acked...)
		problems := crashCheck(t, dir, acked)
		if len(problems) > 0 {
			bad++
		}
		report(run, problems)
	}
	t.Logf("%s: %d children, %d killed with SIGKILL, %d acknowledged entries, %d kills left a problem", mode, crashKills, kills, total, bad)
	if kills == 0 {
		t.Error("no child was killed: the test tested nothing")
	}
	return bad
}

// TestCrash_KillNine is the crash durability test: 20 times, a child
// writes from 50 goroutines with Fsync durability and is killed with
// SIGKILL after a random number (50 to 500) of acknowledged entries. After
// each kill the data directory, the same one for all 20 children, is
// opened and must hold every entry any child acknowledged, with no
// unreadable file and no temp file left over.
func TestCrash_KillNine(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 20 child processes")
	}
	crashKillNine(t, "files", false, func(run int, problems []string) {
		for _, p := range problems {
			t.Errorf("after kill %d: %s", run, p)
		}
	})
}

// TestCrash_KillNine_BrokenTwin runs the harness of TestCrash_KillNine
// over the broken twin of the store, which writes list files in place
// (truncate, then write in small pieces, no temp file, no rename, no
// fsync), with a fresh directory per kill. It passes when the harness sees
// the twin lose data, proving that it can. Run it with TODO_BROKEN_TWINS=1.
func TestCrash_KillNine_BrokenTwin(t *testing.T) {
	if os.Getenv("TODO_BROKEN_TWINS") != "1" {
		t.Skip("broken twin: set TODO_BROKEN_TWINS=1 to run it")
	}
	bad := crashKillNine(t, "in-place", true, func(run int, problems []string) {
		for _, p := range problems {
			t.Logf("after kill %d: %s", run, p)
		}
	})
	if bad == 0 {
		t.Errorf("writing in place lost nothing in %d kills: the harness cannot see a torn file", crashKills)
	}
}

// startTestChild prepares a child process that runs the test binary's test
// called test, alone, with env added to the environment, and returns it
// with a pipe of its stdout; the caller starts it. Its stderr is kept for
// killChild to show.
func startTestChild(tb testing.TB, test string, env ...string) (*exec.Cmd, io.ReadCloser) {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.count=1", "-test.timeout=2m")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = new(bytes.Buffer)
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	return cmd, out
}

// killChild kills a started child with SIGKILL, if it has not been waited
// for yet, and waits for it. Calling it again does nothing.
func killChild(tb testing.TB, cmd *exec.Cmd) {
	tb.Helper()
	if cmd.Process == nil || cmd.ProcessState != nil {
		return
	}
	if err := cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		tb.Errorf("kill %d: %v", cmd.Process.Pid, err)
	}
	err := cmd.Wait()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		tb.Errorf("wait for %d: %v", cmd.Process.Pid, err)
	}
}
