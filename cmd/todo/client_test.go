package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gotodo/todo"
)

// The client commands are tested against a real server, run in-process
// on 127.0.0.1 (startRun), through run and report as main calls them.

// client runs a client command against the server at base and checks its
// exit status; it returns stdout.
func (r *running) client(t *testing.T, wantCode int, args ...string) string {
	t.Helper()
	code, stdout, stderr := runMain(t, map[string]string{"TODO_URL": "http://" + r.addr}, args...)
	if code != wantCode {
		t.Fatalf("todo %q: exit %d, want %d; stdout %q, stderr %q", args, code, wantCode, stdout, stderr)
	}
	if code == exitOK && stderr != "" {
		t.Errorf("todo %q: stderr %q", args, stderr)
	}
	return stdout
}

func TestClient_Session(t *testing.T) {
	t.Parallel()
	r := startRun(t)

	if out := r.client(t, exitOK, "lists"); out != "" {
		t.Errorf("lists of a new server: %q", out)
	}
	if out := r.client(t, exitOK, "add", "bob", "2013-12-19", "Dentist"); out != "1\t2013-12-19\tDentist\n" {
		t.Errorf("add: %q", out)
	}
	// The words of a title are joined; a date may be written 20131219;
	// flags may come after the arguments.
	if out := r.client(t, exitOK, "add", "bob", "20131220", "Shopping", "at", "9", "-json"); out != `{"id":2,"date":"2013-12-20","title":"Shopping at 9"}`+"\n" {
		t.Errorf("add -json: %q", out)
	}
	// A list name that needs escaping in a path.
	if out := r.client(t, exitOK, "add", "Alice's list/2", "2013-12-19", "--", "-minus"); out != "1\t2013-12-19\t-minus\n" {
		t.Errorf("add to Alice's list/2: %q", out)
	}
	today := time.Now().Format(time.DateOnly)
	if out := r.client(t, exitOK, "add", "bob", "today", "Now"); out != "3\t"+today+"\tNow\n" {
		t.Errorf("add today: %q", out)
	}

	if out := r.client(t, exitOK, "lists"); out != "Alice's list/2\nbob\n" {
		t.Errorf("lists: %q", out)
	}
	if out := r.client(t, exitOK, "entries", "bob"); out != "1\t2013-12-19\tDentist\n2\t2013-12-20\tShopping at 9\n3\t"+today+"\tNow\n" {
		t.Errorf("entries bob: %q", out)
	}
	if out := r.client(t, exitOK, "entries", "bob", "2013-12-20"); out != "2\t2013-12-20\tShopping at 9\n" {
		t.Errorf("entries bob 2013-12-20: %q", out)
	}
	if out := r.client(t, exitOK, "entries", "Alice's list/2", "20131219"); out != "1\t2013-12-19\t-minus\n" {
		t.Errorf("entries Alice's list/2: %q", out)
	}
	// The list's revision: new at 1, then three adds.
	if out := r.client(t, exitOK, "entries", "-json", "bob", "today"); out != fmt.Sprintf(`{"entries":[{"id":3,"date":%q,"title":"Now"}],"revision":4}`+"\n", today) {
		t.Errorf("entries -json: %q", out)
	}
	if out := r.client(t, exitOK, "entries", "nobody"); out != "" {
		t.Errorf("entries of a list that does not exist: %q", out)
	}

	if out := r.client(t, exitOK, "rm", "bob", "1"); out != "" {
		t.Errorf("rm: %q", out)
	}
	if out := r.client(t, exitOK, "entries", "bob", "2013-12-19"); out != "" {
		t.Errorf("entries after rm: %q", out)
	}
	// What the server refuses is exit status 1 and its reason, on one line.
	code, stdout, stderr := runMain(t, map[string]string{"TODO_URL": "http://" + r.addr}, "rm", "bob", "1")
	if code != exitFailed || stdout != "" || stderr != "todo: 404 Not Found: entry not found: id 1\n" {
		t.Errorf("rm of a deleted entry: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	code, _, stderr = runMain(t, map[string]string{"TODO_URL": "http://" + r.addr}, "add", "bob", "20131219", strings.Repeat("x", 1025))
	if code != exitFailed || stderr != "todo: 400 Bad Request: invalid title: 1025 bytes, more than 1024\n" {
		t.Errorf("add of a long title: exit %d, stderr %q", code, stderr)
	}

	// stats prints the server's counters as /debug/vars has them, one a
	// line, in the order todo.Stats declares them.
	stats := r.client(t, exitOK, "stats")
	code, body := get(t, "GET", "http://"+r.addr+"/debug/vars")
	var vars struct{ Todo todo.Stats }
	if err := json.Unmarshal([]byte(body), &vars); code != 200 || err != nil {
		t.Fatalf("GET /debug/vars: %d %v", code, err)
	}
	if want := statsLines(vars.Todo); stats != want || vars.Todo.RequestsServed == 0 {
		t.Errorf("stats:\n%s\nwant:\n%s", stats, want)
	}
	if !strings.HasPrefix(stats, "ServersRunning\t") || !strings.Contains(stats, "\nWriteErrors\t0\n") {
		t.Errorf("stats:\n%s", stats)
	}
	var raw map[string]int64
	if err := json.Unmarshal([]byte(r.client(t, exitOK, "stats", "-json")), &raw); err != nil || raw["RequestsServed"] != vars.Todo.RequestsServed {
		t.Errorf("stats -json: %v %v", raw, err)
	}
}

// TestClient_ServerFlag: -server beats TODO_URL, which beats the default;
// a bare host:port is an http URL.
func TestClient_ServerFlag(t *testing.T) {
	t.Parallel()
	r := startRun(t)
	r.client(t, exitOK, "add", "bob", "20131219", "Dentist")
	dead := closedAddr(t)
	for _, c := range []struct {
		env  map[string]string
		args []string
	}{
		{map[string]string{"TODO_URL": "http://" + dead}, []string{"lists", "-server", "http://" + r.addr}},
		{map[string]string{"TODO_URL": "http://" + r.addr}, []string{"lists"}},
		{nil, []string{"lists", "-server", r.addr}},
		{nil, []string{"lists", "-server", "http://" + r.addr + "/"}},
	} {
		code, stdout, stderr := runMain(t, c.env, c.args...)
		if code != exitOK || stdout != "bob\n" {
			t.Errorf("%v %q: exit %d, stdout %q, stderr %q", c.env, c.args, code, stdout, stderr)
		}
	}
}

// closedAddr returns an address of 127.0.0.1 where nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestClient_Unreachable(t *testing.T) {
	t.Parallel()
	addr := closedAddr(t)
	for _, args := range [][]string{{"lists"}, {"add", "bob", "20131219", "x"}, {"stats"}} {
		code, stdout, stderr := runMain(t, map[string]string{"TODO_URL": "http://" + addr}, args...)
		want := fmt.Sprintf("todo: cannot reach the server at http://%s (is it running? -server or TODO_URL name another): connect: connection refused\n", addr)
		if code != exitFailed || stdout != "" || stderr != want {
			t.Errorf("%q: exit %d, stdout %q, stderr %q, want %q", args, code, stdout, stderr, want)
		}
	}
}

// recorder is an HTTP server on 127.0.0.1 that answers from a script, for
// what the real server cannot be made to do on demand (a 503 now, a next
// page here), and records what it was sent.
type recorder struct {
	mu       sync.Mutex // guards requests
	requests []*http.Request
}

func (rec *recorder) start(t *testing.T, answer func(n int, w http.ResponseWriter, r *http.Request)) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		rec.requests = append(rec.requests, r)
		n := len(rec.requests)
		rec.mu.Unlock()
		answer(n, w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func (rec *recorder) sent() []*http.Request {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]*http.Request(nil), rec.requests...)
}

// TestClient_RetriesWritesWithTheSameKey: a write answered 503 is sent
// again, with the same Idempotency-Key, so that the server applies it
// once; a read is not retried; a refusal other than 503 is not retried.
func TestClient_RetriesWritesWithTheSameKey(t *testing.T) {
	t.Parallel()
	var rec recorder
	url := rec.start(t, func(n int, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if n < 3 {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `{"error":"list \"bob\" is busy: timed out"}`)
			return
		}
		w.WriteHeader(http.StatusCreated)
		fmt.Fprint(w, `{"id":7,"date":"2013-12-19","title":"Dentist"}`)
	})
	code, stdout, stderr := runMain(t, map[string]string{"TODO_URL": url}, "add", "bob", "20131219", "Dentist")
	if code != exitOK || stdout != "7\t2013-12-19\tDentist\n" {
		t.Fatalf("add: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	reqs := rec.sent()
	if len(reqs) != 3 {
		t.Fatalf("%d requests, want 3", len(reqs))
	}
	key := reqs[0].Header.Get("Idempotency-Key")
	if len(key) != 36 {
		t.Errorf("Idempotency-Key %q is not a UUID", key)
	}
	for i, r := range reqs {
		if r.Method != "POST" || r.URL.Path != "/lists/bob/entries" || r.Header.Get("Idempotency-Key") != key {
			t.Errorf("request %d: %s %s key %q, want POST /lists/bob/entries key %q", i, r.Method, r.URL.Path, r.Header.Get("Idempotency-Key"), key)
		}
	}

	// Each command has a key of its own.
	var rec2 recorder
	url2 := rec2.start(t, func(n int, w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	for range 2 {
		if code, _, stderr := runMain(t, map[string]string{"TODO_URL": url2}, "rm", "bob", "1"); code != exitOK {
			t.Fatalf("rm: %d %q", code, stderr)
		}
	}
	if reqs := rec2.sent(); len(reqs) != 2 || reqs[0].Header.Get("Idempotency-Key") == reqs[1].Header.Get("Idempotency-Key") {
		t.Errorf("two commands, keys %q and %q", reqs[0].Header.Get("Idempotency-Key"), reqs[1].Header.Get("Idempotency-Key"))
	}

	// A 503 to a read, or a 400 to a write, is the answer.
	for _, c := range []struct {
		status int
		args   []string
		want   string
	}{
		{http.StatusServiceUnavailable, []string{"lists"}, "todo: 503 Service Unavailable: shutting down\n"},
		{http.StatusBadRequest, []string{"add", "bob", "20131219", "x"}, "todo: 400 Bad Request: shutting down\n"},
	} {
		var rec recorder
		url := rec.start(t, func(n int, w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(c.status)
			fmt.Fprint(w, `{"error":"shutting down"}`)
		})
		code, _, stderr := runMain(t, map[string]string{"TODO_URL": url}, c.args...)
		if code != exitFailed || stderr != c.want || len(rec.sent()) != 1 {
			t.Errorf("%q answered %d: exit %d, stderr %q, %d requests; want exit 1, %q, 1 request", c.args, c.status, code, stderr, len(rec.sent()), c.want)
		}
	}
}

// TestClient_FollowsNext: the lists and entries commands follow a page's
// "next", whether it is a cursor (sent back as "after") or a path, and
// print every page.
func TestClient_FollowsNext(t *testing.T) {
	t.Parallel()
	var rec recorder
	url := rec.start(t, func(n int, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch q := r.URL.Query(); {
		case q.Get("limit") == "" || (q.Get("limit") != "1000" && q.Get("after") != "c"):
			// The listing commands ask for the largest page, and keep
			// asking for it, but where the server's next link says.
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"error":"limit %q: want the largest page"}`, q.Get("limit"))
		case r.URL.Path == "/lists" && q.Get("after") == "":
			fmt.Fprint(w, `{"lists":["a","b"],"next":"b"}`)
		case r.URL.Path == "/lists" && q.Get("after") == "b":
			fmt.Fprint(w, `{"lists":["c"],"next":"/lists?after=c&limit=2"}`)
		case r.URL.Path == "/lists" && q.Get("after") == "c" && q.Get("limit") == "2":
			fmt.Fprint(w, `{"lists":["d"]}`)
		case r.URL.EscapedPath() == "/lists/a%2Fb/entries" && q.Get("date") == "2013-12-19" && q.Get("after") == "":
			fmt.Fprint(w, `{"entries":[{"id":1,"date":"2013-12-19","title":"one"}],"next":1}`)
		case r.URL.EscapedPath() == "/lists/a%2Fb/entries" && q.Get("date") == "2013-12-19" && q.Get("after") == "1":
			fmt.Fprint(w, `{"entries":[{"id":2,"date":"2013-12-19","title":"two"}],"next":null}`)
		default:
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprintf(w, `{"error":"unexpected %s"}`, r.URL)
		}
	})
	env := map[string]string{"TODO_URL": url}
	if code, stdout, stderr := runMain(t, env, "lists"); code != exitOK || stdout != "a\nb\nc\nd\n" {
		t.Errorf("lists: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if code, stdout, stderr := runMain(t, env, "entries", "a/b", "20131219"); code != exitOK || stdout != "1\t2013-12-19\tone\n2\t2013-12-19\ttwo\n" {
		t.Errorf("entries: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}
