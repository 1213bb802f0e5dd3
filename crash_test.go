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

// The crash tests run their own test binary again as a child that writes
// to a data directory until the parent kills it with SIGKILL. These
// environment variables tell TestCrashChild what to do.
const (
	crashDirEnv     = "TODO_CRASH_CHILD_DIR"        // the data directory; unset outside a child
	crashModeEnv    = "TODO_CRASH_CHILD_MODE"       // the store: see crashOpen
	crashRunEnv     = "TODO_CRASH_CHILD_RUN"        // the number of the run, put in titles
	crashDurEnv     = "TODO_CRASH_CHILD_DURABILITY" // fsync, write or async
	crashLogSizeEnv = "TODO_CRASH_CHILD_LOG_SIZE"   // Options.LogSize, in bytes; empty for the default
)

const (
	crashWriters  = 50              // goroutines writing in the child
	crashKills    = 20              // children killed per test
	crashMaxLife  = 5 * time.Second // a child still alive after this stops itself
	crashMinAcked = 50              // the parent kills after a random number of
	crashMaxAcked = 500             // acknowledged entries in [min, max]
	// crashLogSize is the LogSize of the SIGKILL loop's children: segments
	// of 4 KiB (a quarter of it) and a log over its limit after a few
	// dozen commits, so that checkpoints and segment deletions run all the
	// time and kills land in them.
	crashLogSize = 16 << 10
)

// crashLists are the lists the child writes to: a handful, so that each is
// written often and concurrently, with names that need encoding.
var crashLists = []string{"crash 0", "Crash/1", "../crash 2", "crash-3", "日本 4"}

// crashOpen returns how a child opens its data directory in a mode: the
// real store ("files") or one of its broken twins, with hook called by
// the checkpointer of those that have one.
func crashOpen(mode string) func(string, *todo.Options, todo.CheckpointHook) (*todo.System, error) {
	switch mode {
	case "files":
		return todo.OpenObserved
	case "in-place": // list files written in place, no log
		return func(dir string, o *todo.Options, _ todo.CheckpointHook) (*todo.System, error) {
			return todo.OpenInPlace(dir, o)
		}
	case "unreserved": // ids not reserved durably ahead of use
		return todo.OpenUnreserved
	case "ack-first": // commits answered before their log write
		return todo.OpenAckBeforeWrite
	case "drop-early": // segments deleted before their lists are checkpointed
		return todo.OpenDropEarly
	}
	return nil
}

// TestCrashChild is the child of the crash tests: it opens the data
// directory named by TODO_CRASH_CHILD_DIR with the store, durability and
// log size its environment names (Fsync and the default log size when
// unset) and adds entries from 50 goroutines, printing each acknowledged
// one on stdout, one line each, written at once, until it is killed (or,
// as a safety net, for crashMaxLife). With the data directory's store it
// also prints a line as each checkpoint begins, once its files are
// written, and once the segments it freed are deleted: CKPT\tbegin,
// CKPT\twritten, CKPT\tend. Outside a crash test it does nothing.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("run by the crash tests as their child")
	}
	opts := &todo.Options{Durability: todo.Fsync}
	if d := os.Getenv(crashDurEnv); d != "" {
		var err error
		if opts.Durability, err = todo.ParseDurability(d); err != nil {
			t.Fatal(err)
		}
	}
	if n := os.Getenv(crashLogSizeEnv); n != "" {
		var err error
		if opts.LogSize, err = strconv.ParseInt(n, 10, 64); err != nil {
			t.Fatal(err)
		}
	}
	open := crashOpen(os.Getenv(crashModeEnv))
	if open == nil {
		t.Fatalf("unknown mode %q", os.Getenv(crashModeEnv))
	}
	// The markers are written from the checkpointer itself, before and
	// after each step, so the last one the parent reads says where the
	// checkpointer was when the kill landed.
	sys, err := open(dir, opts, func(phase string) { os.Stdout.WriteString("CKPT\t" + phase + "\n") })
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

// crashChild says how a crash test's child runs and when it is killed.
type crashChild struct {
	mode       string          // the store, as crashOpen takes it
	durability todo.Durability // Fsync unless set
	logSize    int64           // Options.LogSize; 0 for the default
	// killAt, when set, has the parent kill the child as soon as it
	// prints that checkpoint marker ("begin" or "written") once killAfter
	// entries are acknowledged, rather than at the killAfter-th
	// acknowledgement.
	killAt string
	// killAfterErrs, when set, has the parent kill the child at that
	// many failed adds, if they come before killAfter acknowledgements.
	killAfterErrs int
}

// crashRun is what one child did before it was killed.
type crashRun struct {
	acked  []ackedEntry // every acknowledged entry it printed
	errs   []string     // every failed add it printed
	killed bool         // killed by the parent, not stopped by itself
	stderr string
	// checkpoints counts the checkpoints it began; lastPhase is the last
	// checkpoint marker it printed: "begin" or "written" when the kill
	// landed in the middle of a checkpoint.
	checkpoints int
	lastPhase   string
}

// runCrashChild starts a child on dir, kills it with SIGKILL when c says
// (after killAfter acknowledged entries, by default), and returns what it
// printed.
func runCrashChild(tb testing.TB, dir string, c crashChild, run, killAfter int) crashRun {
	tb.Helper()
	env := []string{crashDirEnv + "=" + dir, crashModeEnv + "=" + c.mode, crashRunEnv + "=" + strconv.Itoa(run),
		crashDurEnv + "=" + c.durability.String()}
	if c.logSize > 0 {
		env = append(env, crashLogSizeEnv+"="+strconv.FormatInt(c.logSize, 10))
	}
	cmd, out := startTestChild(tb, "TestCrashChild", env...)
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	var r crashRun
	kill := func() {
		if r.killed {
			return
		}
		if err := cmd.Process.Kill(); err != nil {
			tb.Errorf("kill: %v", err)
		}
		r.killed = true
		// Read on: lines printed before the kill are acknowledged too.
	}
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
			if len(r.acked) == killAfter && c.killAt == "" {
				kill()
			}
		case strings.HasPrefix(line, "ERR\t"):
			r.errs = append(r.errs, line)
			if len(r.errs) == c.killAfterErrs {
				kill()
			}
		case strings.HasPrefix(line, "CKPT\t"):
			r.lastPhase = strings.TrimPrefix(line, "CKPT\t")
			if r.lastPhase == "begin" {
				r.checkpoints++
			}
			if r.lastPhase == c.killAt && len(r.acked) >= killAfter {
				kill()
			}
		}
	}
	if err := lines.Err(); err != nil {
		tb.Errorf("reading the child's output: %v", err)
	}
	err := cmd.Wait()
	r.stderr = cmd.Stderr.(*bytes.Buffer).String()
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
// entry acknowledged by any of them must still be there. Children with a
// small log (c.logSize) are killed, every other run, as a checkpoint
// begins or once its files are written, rather than at a random
// acknowledgement, so that kills land in checkpoints; it logs how many
// did. It returns the number of kills after
// which the check found a problem.
func crashKillNine(t testing.TB, c crashChild, fresh bool, report func(kill int, problems []string)) (bad int) {
	dir := t.TempDir()
	var acked []ackedEntry
	kills, total, checkpoints, firstBad := 0, 0, 0, -1
	inCheckpoint := make(map[string]int) // kills by the checkpoint phase they landed in
	for run := range crashKills {
		if fresh {
			dir = t.TempDir()
			acked = nil
		}
		killAfter := crashMinAcked + rand.IntN(crashMaxAcked-crashMinAcked+1)
		rc := c
		if c.logSize > 0 {
			rc.killAt = [4]string{"begin", "", "written", ""}[run%4]
		}
		r := runCrashChild(t, dir, rc, run, killAfter)
		if len(r.errs) > 0 {
			msg := fmt.Sprintf("run %d: %d adds failed in the child, e.g. %s", run, len(r.errs), r.errs[0])
			if c.mode == "files" {
				t.Error(msg)
			} else {
				t.Log(msg)
			}
		}
		if r.killed {
			kills++
			if r.lastPhase == "begin" || r.lastPhase == "written" {
				inCheckpoint[r.lastPhase]++
			}
		}
		total += len(r.acked)
		checkpoints += r.checkpoints
		acked = append(acked, r.acked...)
		problems := crashCheck(t, dir, acked)
		if len(problems) > 0 {
			if bad++; bad == 1 {
				firstBad = run
			}
		}
		report(run, problems)
	}
	first := ""
	if bad > 0 {
		first = fmt.Sprintf(" (the first: kill %d)", firstBad)
	}
	t.Logf("%s: %d children, %d killed with SIGKILL, %d acknowledged entries, %d kills left a problem%s",
		c.mode, crashKills, kills, total, bad, first)
	if c.logSize > 0 {
		// "begin": after the checkpoint took its lists and before its files
		// were all renamed into place; "written": after that, before the
		// segments it freed were deleted.
		t.Logf("%s: %d checkpoints begun; %d kills landed in one: %d while its files were being written, %d between their rename and the segments' delete",
			c.mode, checkpoints, inCheckpoint["begin"]+inCheckpoint["written"], inCheckpoint["begin"], inCheckpoint["written"])
		if c.mode == "files" && checkpoints == 0 {
			t.Error("no checkpoint began in any child: the small log did not do its job")
		}
	}
	if kills == 0 {
		t.Error("no child was killed: the test tested nothing")
	}
	return bad
}

// TestCrash_KillNine is the crash durability test: 20 times, a child
// writes from 50 goroutines with Fsync durability and is killed with
// SIGKILL after a random number (50 to 500) of acknowledged entries, every
// other time at the first checkpoint that begins, or has written its
// files, after that. The log is
// small (crashLogSize), so checkpoints and segment deletions run all the
// time. After each kill the data directory, the same one for all 20
// children, is opened and must hold every entry any child acknowledged,
// with no unreadable file and no temp file left over.
func TestCrash_KillNine(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 20 child processes")
	}
	crashKillNine(t, crashChild{mode: "files", logSize: crashLogSize}, false, func(run int, problems []string) {
		for _, p := range problems {
			t.Errorf("after kill %d: %s", run, p)
		}
	})
}

// brokenCrashTwin runs the harness of TestCrash_KillNine over a broken
// twin of the store and passes when the harness sees it lose data,
// proving that it can.
func brokenCrashTwin(t *testing.T, c crashChild, fresh bool, what string) {
	bad := crashKillNine(t, c, fresh, func(run int, problems []string) {
		for _, p := range problems {
			t.Logf("after kill %d: %s", run, p)
		}
	})
	if bad == 0 {
		t.Errorf("%s lost nothing in %d kills: the harness cannot see it", what, crashKills)
	}
}

// TestCrash_KillNine_BrokenTwin runs the harness over the broken twin of
// the store that writes list files in place (truncate, then write in small
// pieces, no temp file, no rename, no fsync, no log), with a fresh
// directory per kill.
func TestCrash_KillNine_BrokenTwin(t *testing.T) {
	brokenCrashTwin(t, crashChild{mode: "in-place"}, true, "writing in place")
}

// TestCrash_KillNine_AckFirst_BrokenTwin runs the harness, small log
// included, over a store that answers a commit's callers first and then
// appends its records to the log and fdatasyncs them (see
// OpenAckBeforeWrite): what a kill lands between is lost.
func TestCrash_KillNine_AckFirst_BrokenTwin(t *testing.T) {
	brokenCrashTwin(t, crashChild{mode: "ack-first", logSize: crashLogSize}, false, "acknowledging before the log write")
}

// TestCrash_KillNine_DropEarly_BrokenTwin runs the harness, small log
// included, over a store that deletes the log's sealed segments as each
// checkpoint begins, before the lists with records in them are written to
// their files (see OpenDropEarly): what a kill lands
// between is lost.
func TestCrash_KillNine_DropEarly_BrokenTwin(t *testing.T) {
	brokenCrashTwin(t, crashChild{mode: "drop-early", logSize: crashLogSize}, false, "deleting segments before their lists are checkpointed")
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
