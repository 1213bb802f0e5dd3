package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gotodo/todo"
	"go.uber.org/goleak"
)

// TestMain fails the run if any test leaves a goroutine behind, and
// removes the binary the process tests build.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		if binDir != "" {
			os.RemoveAll(binDir)
		}
		os.Exit(code)
	}))
}

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestParseConfig(t *testing.T) {
	t.Parallel()
	defaults := config{
		addr: "127.0.0.1:5454", data: "./persist", idle: time.Minute, durability: todo.Fsync, workers: 3,
		timeout: 5 * time.Second, shutdownTimeout: 10 * time.Second, watchdog: 5 * time.Second,
		logFormat: "text", logLevel: slog.LevelInfo,
	}
	for _, c := range []struct {
		name string
		args []string
		env  map[string]string
		want func(*config)
	}{
		{"defaults", nil, nil, func(*config) {}},
		{"3rd edition environment", nil,
			map[string]string{"TODO_HTTP_PORT": "5555", "TODO_DB_FOLDER": "/var/lib/todo", "TODO_SERVER_EXPIRY": "30"},
			func(c *config) { c.addr, c.data, c.idle = "127.0.0.1:5555", "/var/lib/todo", 30*time.Second }},
		{"expiry as a duration", nil, map[string]string{"TODO_SERVER_EXPIRY": "1m30s"},
			func(c *config) { c.idle = 90 * time.Second }},
		{"more environment", nil,
			map[string]string{"TODO_DURABILITY": "async", "TODO_WORKERS": "8", "TODO_LOG_FORMAT": "json", "TODO_LOG_LEVEL": "debug", "TODO_DEBUG_ADDR": "127.0.0.1:6060"},
			func(c *config) {
				c.durability, c.workers, c.logFormat, c.logLevel, c.debugAddr = todo.Async, 8, "json", slog.LevelDebug, "127.0.0.1:6060"
			}},
		{"flags override the environment",
			[]string{"-addr", "0.0.0.0:80", "-data", "d", "-idle", "-1", "-durability", "write", "-workers", "1", "-timeout", "1s", "-shutdown-timeout", "2s", "-watchdog", "3s", "-log-level", "warn"},
			map[string]string{"TODO_HTTP_PORT": "5555", "TODO_DB_FOLDER": "x", "TODO_SERVER_EXPIRY": "30", "TODO_DURABILITY": "async"},
			func(c *config) {
				c.addr, c.data, c.idle, c.durability, c.workers = "0.0.0.0:80", "d", -time.Second, todo.Write, 1
				c.timeout, c.shutdownTimeout, c.watchdog, c.logLevel = time.Second, 2*time.Second, 3*time.Second, slog.LevelWarn
			}},
		{"a bare port flag", []string{"-addr", "0"}, nil, func(c *config) { c.addr = "127.0.0.1:0" }},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseConfig(c.args, envOf(c.env), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			want := defaults
			c.want(&want)
			if *got != want {
				t.Errorf("got  %+v\nwant %+v", *got, want)
			}
		})
	}
}

func TestParseConfig_Errors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{nil, map[string]string{"TODO_SERVER_EXPIRY": "soon"}, `TODO_SERVER_EXPIRY="soon": want seconds or a Go duration`},
		{nil, map[string]string{"TODO_HTTP_PORT": "70000"}, "TODO_HTTP_PORT"},
		{nil, map[string]string{"TODO_WORKERS": "many"}, "TODO_WORKERS"},
		{nil, map[string]string{"TODO_DURABILITY": "paper"}, "TODO_DURABILITY"},
		{[]string{"-durability", "paper"}, nil, "want fsync, write or async"},
		{[]string{"-log-format", "xml"}, nil, "want one of text, json"},
		{[]string{"-log-level", "loud"}, nil, "-log-level"},
		{[]string{"-addr", "nocolon"}, nil, "missing port"},
		{[]string{"-workers", "-1"}, nil, "-workers -1 is negative"},
		{[]string{"-timeout", "0s"}, nil, "-timeout 0s is not positive"},
		{[]string{"-watchdog", "-1s"}, nil, "not positive"},
		{[]string{"-data", ""}, nil, "-data is empty"},
		{[]string{"-nope"}, nil, "flag provided but not defined"},
		{[]string{"-data", "d", "extra"}, nil, "unexpected arguments"},
	} {
		_, err := parseConfig(c.args, envOf(c.env), io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q %v: %v, want an error with %q", c.args, c.env, err, c.want)
		}
	}
}

func TestRun_Commands(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if err := run(context.Background(), []string{"version"}, envOf(nil), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	// Tests are built without VCS stamping here, so the revision may be unknown.
	if !strings.HasPrefix(out.String(), "todo ") || !strings.Contains(out.String(), " revision ") {
		t.Errorf("version: %q", out.String())
	}
	out.Reset()
	if err := run(context.Background(), []string{"-h"}, envOf(nil), io.Discard, &out); err != nil || !strings.Contains(out.String(), "TODO_HTTP_PORT") {
		t.Errorf("-h: %v %q", err, out.String())
	}
	for _, args := range [][]string{{"serve"}, {"version", "x"}, {"-durability", "x"}} {
		if err := run(context.Background(), args, envOf(nil), io.Discard, io.Discard); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
}

// running is a run in a goroutine of the test, serving on 127.0.0.1 with
// an OS-chosen port and logging JSON.
type running struct {
	addr, debugAddr string
	dir             string
	cancel          context.CancelFunc
	exited          chan struct{}
	err             error // run's result, set before exited is closed
	drained         chan struct{}
	logs            syncBuffer
}

// startRun runs the command on a fresh data directory with args added,
// and waits until it listens. It is stopped when the test ends.
func startRun(t *testing.T, args ...string) *running {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{dir: dir, cancel: cancel, exited: make(chan struct{}), drained: make(chan struct{})}
	pr, pw := io.Pipe()
	args = append([]string{"-addr", "127.0.0.1:0", "-data", dir, "-log-format", "json", "-log-level", "debug"}, args...)
	go func() {
		r.err = run(ctx, args, envOf(nil), io.Discard, pw)
		pw.Close()
		close(r.exited)
	}()
	listening := make(chan [2]string, 1)
	go func() {
		defer close(r.drained)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			r.logs.Write(append(sc.Bytes(), '\n'))
			var l struct{ Msg, Addr, Debug_addr string }
			if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "listening" {
				listening <- [2]string{l.Addr, l.Debug_addr}
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.exited:
		case <-time.After(20 * time.Second):
			t.Errorf("run did not return; logs:\n%s", r.logs.String())
		}
		<-r.drained
	})
	select {
	case a := <-listening:
		r.addr, r.debugAddr = a[0], a[1]
	case <-r.exited:
		t.Fatalf("run returned %v before listening; logs:\n%s", r.err, r.logs.String())
	case <-time.After(10 * time.Second):
		t.Fatalf("not listening; logs:\n%s", r.logs.String())
	}
	return r
}

// wait waits for run to return, and returns its error.
func (r *running) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-r.exited:
		return r.err
	case <-time.After(20 * time.Second):
		t.Fatalf("run did not return; logs:\n%s", r.logs.String())
		return nil
	}
}

type syncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// get requests url with a client of its own and returns status and body.
func get(t *testing.T, method, url string) (int, string) {
	t.Helper()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestRun_ServesAndStopsGracefully(t *testing.T) {
	t.Parallel()
	r := startRun(t)
	base := "http://" + r.addr
	if code, body := get(t, "GET", base+"/entries?list=bob&date=20131219"); code != 200 || body != "" {
		t.Fatalf("GET: %d %q", code, body)
	}
	if code, body := get(t, "POST", base+"/add_entry?list=bob&date=20131219&title=Dentist"); code != 200 || body != "OK" {
		t.Fatalf("POST: %d %q", code, body)
	}
	if code, body := get(t, "GET", base+"/entries?list=bob&date=20131219"); code != 200 || body != "2013-12-19    Dentist\n" {
		t.Fatalf("GET: %d %q", code, body)
	}
	if code, body := get(t, "GET", base+"/healthz"); code != 200 || body != "ok" {
		t.Errorf("healthz: %d %q", code, body)
	}
	if code, _ := get(t, "POST", base+"/healthz"); code != 405 {
		t.Errorf("POST /healthz: %d", code)
	}
	code, body := get(t, "GET", base+"/debug/vars")
	var vars struct {
		Todo     todo.Stats
		Memstats json.RawMessage
	}
	if err := json.Unmarshal([]byte(body), &vars); code != 200 || err != nil || vars.Todo.ChangesStored != 1 || vars.Memstats == nil {
		t.Errorf("debug/vars: %d %v %+v", code, err, vars.Todo)
	}
	if code, _ := get(t, "GET", base+"/debug/pprof/"); code != 404 {
		t.Errorf("pprof is served on the main listener: %d", code)
	}

	r.cancel() // what SIGTERM does in main
	if err := r.wait(t); err != nil {
		t.Fatalf("run: %v", err)
	}
	if !strings.Contains(r.logs.String(), "every change written") {
		t.Errorf("logs:\n%s", r.logs.String())
	}
	sys, err := todo.Open(r.dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	es, err := sys.ServerProcess("bob").Entries(context.Background(), todo.Date{Year: 2013, Month: 12, Day: 19})
	if err != nil || len(es) != 1 || es[0].Title != "Dentist" {
		t.Errorf("after the stop: %v %v", es, err)
	}
}

func TestRun_DebugAddr(t *testing.T) {
	t.Parallel()
	r := startRun(t, "-debug-addr", "127.0.0.1:0")
	if r.debugAddr == "" {
		t.Fatal("no debug address logged")
	}
	for _, p := range []string{"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/goroutine?debug=1", "/debug/vars"} {
		if code, body := get(t, "GET", "http://"+r.debugAddr+p); code != 200 || body == "" {
			t.Errorf("%s: %d %q", p, code, body)
		}
	}
	if code, _ := get(t, "GET", "http://"+r.debugAddr+"/entries?list=bob&date=20131219"); code != 404 {
		t.Errorf("the lists are served on the debug listener: %d", code)
	}
}

func TestRun_DebugAddrMustBeLoopback(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	err := run(context.Background(), []string{"-addr", "127.0.0.1:0", "-data", dir, "-debug-addr", "0.0.0.0:0"}, envOf(nil), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "not a loopback address") {
		t.Fatalf("run: %v", err)
	}
}

func TestRun_ListenError(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = run(context.Background(), []string{"-addr", ln.Addr().String(), "-data", t.TempDir()}, envOf(nil), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("run: %v", err)
	}
}

// TestRun_Watchdog_* check that the command exits with an error when its
// data directory becomes unusable, instead of limping.

func TestRun_Watchdog_DirectoryRemoved(t *testing.T) {
	t.Parallel()
	r := startRun(t, "-watchdog", "20ms")
	if err := os.RemoveAll(r.dir); err != nil {
		t.Fatal(err)
	}
	err := r.wait(t)
	if err == nil || !strings.Contains(err.Error(), "data directory unusable") {
		t.Fatalf("run: %v", err)
	}
	if !strings.Contains(r.logs.String(), "cannot go on") {
		t.Errorf("the reason is not logged:\n%s", r.logs.String())
	}
}

func TestRun_Watchdog_DirectoryReplaced(t *testing.T) {
	t.Parallel()
	r := startRun(t, "-watchdog", "20ms")
	if err := os.Rename(r.dir, r.dir+".old"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(r.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := r.wait(t); err == nil || !strings.Contains(err.Error(), "replaced by another directory") {
		t.Fatalf("run: %v", err)
	}
}

func TestRun_Watchdog_NotWritable(t *testing.T) {
	t.Parallel()
	r := startRun(t, "-watchdog", "20ms")
	// Tests may run as root, whom permissions do not stop: make the
	// probe's name unusable instead.
	if err := os.Mkdir(filepath.Join(r.dir, probeName), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := r.wait(t); err == nil || !strings.Contains(err.Error(), "data directory unusable") {
		t.Fatalf("run: %v", err)
	}
}

// brokenListener fails every Accept with an error that is not temporary,
// as a listener whose socket was closed under it does.
type brokenListener struct{ net.Listener }

func (brokenListener) Accept() (net.Conn, error) { return nil, errors.New("socket gone") }

func TestServe_ListenerDies(t *testing.T) {
	t.Parallel()
	cfg, err := parseConfig(nil, envOf(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	sys, err := todo.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	err = serve(context.Background(), cfg, log, sys, brokenListener{ln}, nil)
	if err == nil || !strings.Contains(err.Error(), "died: socket gone") {
		t.Fatalf("serve: %v", err)
	}
	if _, err := sys.Lists(context.Background()); !errors.Is(err, todo.ErrClosed) {
		t.Errorf("the System was not closed: %v", err)
	}
	if !strings.Contains(logs.String(), "cannot go on") {
		t.Errorf("logs:\n%s", logs.String())
	}
}
