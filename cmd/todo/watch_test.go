package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// watchRun is a `todo watch` running in a goroutine of the test, as main
// runs it: its stdout and stderr come a line at a time.
type watchRun struct {
	stdout, stderr chan string
	cancel         context.CancelFunc
	code           chan int // its exit status, once it returned
}

// startWatch runs `todo watch args...` against the server at addr until
// the test ends, or it exits.
func startWatch(t *testing.T, addr string, args ...string) *watchRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	outR, outW := io.Pipe()
	errR, errW := io.Pipe()
	w := &watchRun{stdout: lines(outR), stderr: lines(errR), cancel: cancel, code: make(chan int, 1)}
	go func() {
		err := run(ctx, append([]string{"watch"}, args...), envOf(map[string]string{"TODO_URL": "http://" + addr}), outW, errW)
		code := report(err, errW)
		outW.Close()
		errW.Close()
		w.code <- code
	}()
	t.Cleanup(func() {
		cancel()
		for range w.stdout {
		}
		for range w.stderr {
		}
	})
	return w
}

// lines sends the lines read from r, and closes the channel at its end.
func lines(r io.Reader) chan string {
	ch := make(chan string, 100)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			ch <- sc.Text()
		}
	}()
	return ch
}

// next returns the next line of ch, failing the test if ch ends first, or
// if no line comes for long: the watch hangs.
func next(t *testing.T, what string, ch chan string) string {
	t.Helper()
	select {
	case line, ok := <-ch:
		if !ok {
			t.Fatalf("%s ended", what)
		}
		return line
	case <-time.After(30 * time.Second):
		t.Fatalf("no line on %s", what)
		return ""
	}
}

// listRevision reads a list's revision as `todo entries -json` prints it.
func listRevision(t *testing.T, r *running, list string) string {
	t.Helper()
	var page struct{ Revision int64 }
	out := r.client(t, exitOK, "entries", "-json", list)
	if err := json.Unmarshal([]byte(out), &page); err != nil || page.Revision < 1 {
		t.Fatalf("entries -json %s: %q, %v", list, out, err)
	}
	return strconv.FormatInt(page.Revision, 10)
}

// TestWatch_CLI: todo watch prints the adds, edits and deletes made by
// other clients, in order, as they come; goes on over a restart of the
// server, from where it stopped; and exits 1, saying so, when the server
// no longer keeps the changes it asks for.
func TestWatch_CLI(t *testing.T) {
	t.Parallel()
	r := startRun(t)
	r.client(t, exitOK, "add", "bob", "2013-12-19", "Dentist")
	w := startWatch(t, r.addr, "bob", "-from", listRevision(t, r, "bob"))

	r.client(t, exitOK, "add", "bob", "2013-12-20", "Shopping")
	req, _ := http.NewRequest("PATCH", "http://"+r.addr+"/lists/bob/entries/1", strings.NewReader(`{"title":"Dentist at 10"}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	r.client(t, exitOK, "rm", "bob", "2")
	for _, want := range []string{
		"added\t2\t2013-12-20\tShopping",
		"updated\t1\t2013-12-19\tDentist at 10",
		"deleted\t2\t2013-12-20\tShopping",
	} {
		if got := next(t, "watch's stdout", w.stdout); got != want {
			t.Fatalf("watch printed %q, want %q", got, want)
		}
	}

	// The server restarts on the same address: the watch reconnects, and
	// goes on after the last change it printed.
	r.cancel()
	if err := r.wait(t); err != nil {
		t.Fatalf("the first server: %v", err)
	}
	if line := next(t, "watch's stderr", w.stderr); !strings.Contains(line, "the server ended the stream; reconnecting") {
		t.Fatalf("watch's stderr: %q, want that it reconnects", line)
	}
	r2 := startRun(t, "-addr", r.addr, "-data", r.dir)
	for line := next(t, "watch's stderr", w.stderr); !strings.Contains(line, "reconnected, after revision 5"); line = next(t, "watch's stderr", w.stderr) {
		if !strings.Contains(line, "reconnecting") {
			t.Fatalf("watch's stderr: %q", line)
		}
	}
	r2.client(t, exitOK, "add", "bob", "2013-12-21", "Movies")
	if got, want := next(t, "watch's stdout", w.stdout), "added\t3\t2013-12-21\tMovies"; got != want {
		t.Fatalf("after the restart, watch printed %q, want %q", got, want)
	}
	w.cancel()
	if code := <-w.code; code != exitOK {
		t.Fatalf("an interrupted watch exits %d, want 0", code)
	}

	// From a revision from before the restart: gone.
	gone := startWatch(t, r2.addr, "bob", "-from", "2")
	if line := next(t, "stderr", gone.stderr); !strings.Contains(line, "no longer keeps the changes after revision 2") {
		t.Fatalf("a watch from before the restart: %q", line)
	}
	if code := <-gone.code; code != exitFailed {
		t.Fatalf("a watch from before the restart exits %d, want 1", code)
	}

	// JSON, as the server sends it.
	j := startWatch(t, r2.addr, "bob", "-json", "-from", listRevision(t, r2, "bob"))
	r2.client(t, exitOK, "rm", "bob", "3")
	if got, want := next(t, "stdout", j.stdout), `{"kind":"deleted","revision":7,"entry":{"id":3,"date":"2013-12-21","title":"Movies"}}`; got != want {
		t.Fatalf("watch -json printed %q, want %q", got, want)
	}
}

// TestWatch_CLIRefused: a watch the command line or the server refuses
// exits at once.
func TestWatch_CLIRefused(t *testing.T) {
	t.Parallel()
	r := startRun(t)
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"watch"}, exitUsage, "watch wants LIST"},
		{[]string{"watch", "bob", "alice"}, exitUsage, "got 2 arguments"},
		{[]string{"watch", "-from", "-1", "bob"}, exitUsage, "want a revision"},
		{[]string{"watch", "-from", "x", "bob"}, exitUsage, "invalid value"},
		{[]string{"watch", "-from", "99", "bob"}, exitFailed, "no longer keeps the changes after revision 99"},
	} {
		code, _, stderr := runMain(t, map[string]string{"TODO_URL": "http://" + r.addr}, c.args...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("todo %q: exit %d, stderr %q; want %d and %q", c.args, code, stderr, c.code, c.want)
		}
	}
	code, _, stderr := runMain(t, map[string]string{"TODO_URL": "http://127.0.0.1:1"}, "watch", "bob")
	if code != exitFailed || !strings.Contains(stderr, "cannot reach the server") {
		t.Errorf("a watch of no server: exit %d, stderr %q", code, stderr)
	}
}
