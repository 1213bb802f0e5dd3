package todo_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gotodo/todo"
)

// lockDirEnv names the data directory TestLockChild holds; unset outside a
// child of TestLock_OtherProcess.
const lockDirEnv = "TODO_LOCK_CHILD_DIR"

// checkLocked checks that err is what Open must say about a directory
// another holder has open: an error wrapping ErrLocked that names the
// directory and says another process holds it.
func checkLocked(tb testing.TB, err error, dir string) {
	tb.Helper()
	switch {
	case err == nil:
		tb.Fatalf("Open of %s, held by another, succeeded", dir)
	case !errors.Is(err, todo.ErrLocked):
		tb.Errorf("Open of a held directory: %v, want an error wrapping ErrLocked", err)
	case !strings.Contains(err.Error(), dir):
		tb.Errorf("Open of a held directory: %q does not name %s", err, dir)
	case !strings.Contains(err.Error(), "another process"):
		tb.Errorf("Open of a held directory: %q does not say that another process holds it", err)
	}
}

// TestLock_SameProcess opens a data directory twice in one process: the
// second Open fails at once with ErrLocked and changes nothing, not even
// the temp file of a checkpoint the first System may be writing, and the
// first System goes on; after its Close, Open works and finds its entries.
func TestLock_SameProcess(t *testing.T) {
	dir := t.TempDir()
	first := persistOpen(t, dir, nil)
	acked := []todo.Entry{persistAdd(t, first, "bob", "Dentist")}

	// What a checkpoint of the first System leaves while it writes a list
	// file: a temp file beside it. A failed Open must not clear it away.
	temp := filepath.Join(filepath.Dir(persistPath(dir, "bob")), ".1.tmp")
	if err := os.MkdirAll(filepath.Dir(temp), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(temp, []byte("half a list"), 0o644); err != nil {
		t.Fatal(err)
	}

	for range 2 { // a failed Open must not release the lock either
		start := time.Now()
		second, err := todo.Open(dir, nil)
		if err == nil {
			second.Close()
		}
		checkLocked(t, err, dir)
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("the second Open took %v: it must fail at once, not wait for the lock", took)
		}
	}
	if _, err := os.Stat(temp); err != nil {
		t.Errorf("a failed Open removed the temp file of the System holding the directory: %v", err)
	}
	os.Remove(temp)

	acked = append(acked, persistAdd(t, first, "bob", "Shopping"))
	persistClose(t, first)

	again := persistOpen(t, dir, nil)
	if got := persistAll(t, again, "bob"); !slices.Equal(got, acked) {
		t.Errorf("after Close and a new Open: bob = %v, want %v", got, acked)
	}
	persistClose(t, again)
}

// TestLockChild is the child of TestLock_OtherProcess: it opens the data
// directory named by TODO_LOCK_CHILD_DIR, adds one entry with Fsync
// durability, prints "OPEN\t<id>", and holds the directory until its stdin
// closes (its parent is done with it or gone) or, as a safety net, for 30s.
// Outside that test it does nothing.
func TestLockChild(t *testing.T) {
	dir := os.Getenv(lockDirEnv)
	if dir == "" {
		t.Skip("run by TestLock_OtherProcess as its child")
	}
	sys, err := todo.Open(dir, nil)
	if err != nil {
		fmt.Printf("ERR\t%v\n", err)
		t.Fatal(err)
	}
	defer sys.Close()
	e, err := sys.ServerProcess("bob").AddEntry(context.Background(), todo.Entry{Date: persistDay, Title: "from the child"})
	if err != nil {
		fmt.Printf("ERR\t%v\n", err)
		t.Fatal(err)
	}
	fmt.Printf("OPEN\t%d\n", e.ID)
	done := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
	}
}

// TestLock_OtherProcess has a child process of the test binary hold a data
// directory: Open in the parent fails at once with ErrLocked, naming the
// directory and the holder's pid; once the child is killed with SIGKILL
// (which releases its flock with its file descriptors, whatever state it
// was in), Open works and the entry the child acknowledged is there.
func TestLock_OtherProcess(t *testing.T) {
	dir := t.TempDir()
	cmd, out := startTestChild(t, "TestLockChild", lockDirEnv+"="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer killChild(t, cmd)
	lines := bufio.NewScanner(out)
	if !lines.Scan() {
		t.Fatalf("the child printed nothing: %v", lines.Err())
	}
	var id int
	if _, err := fmt.Sscanf(lines.Text(), "OPEN\t%d", &id); err != nil {
		t.Fatalf("the child printed %q, want OPEN and an id", lines.Text())
	}

	start := time.Now()
	sys, err := todo.Open(dir, nil)
	if err == nil {
		sys.Close()
	}
	checkLocked(t, err, dir)
	if want := fmt.Sprintf("pid %d", cmd.Process.Pid); err != nil && !strings.Contains(err.Error(), want) {
		t.Errorf("Open of a directory held by a child: %q does not name the holder (%s)", err, want)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Open took %v: it must fail at once", took)
	}

	killChild(t, cmd)
	sys = persistOpen(t, dir, nil)
	if got := persistAll(t, sys, "bob"); len(got) != 1 || got[0].ID != id || got[0].Title != "from the child" {
		t.Errorf("after the holder was killed: bob = %v, want the child's entry %d", got, id)
	}
	persistClose(t, sys)
	if _, err := os.Stat(filepath.Join(dir, "LOCK")); errors.Is(err, fs.ErrNotExist) {
		t.Error("no LOCK file in the data directory: what did the child hold?")
	}
}
