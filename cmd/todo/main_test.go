package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
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
		addr: "127.0.0.1:5454", data: "./persist", idle: time.Minute, hibernateAfter: time.Second, durability: todo.Fsync, workers: 1, maxLoaded: 20_000,
		timeout: 5 * time.Second, shutdownTimeout: 10 * time.Second, watchdog: 5 * time.Second,
		logFormat: "text", logLevel: slog.LevelInfo, cluster: clusterConfig{lease: 4 * time.Second},
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
			[]string{"-addr", "0.0.0.0:80", "-data", "d", "-idle", "-1", "-durability", "write", "-workers", "1", "-timeout", "1s", "-shutdown-timeout", "2s", "-watchdog", "3s", "-log-level", "warn", "-insecure"},
			map[string]string{"TODO_HTTP_PORT": "5555", "TODO_DB_FOLDER": "x", "TODO_SERVER_EXPIRY": "30", "TODO_DURABILITY": "async"},
			func(c *config) {
				c.addr, c.data, c.idle, c.durability, c.workers, c.insecure = "0.0.0.0:80", "d", -time.Second, todo.Write, 1, true
				c.timeout, c.shutdownTimeout, c.watchdog, c.logLevel = time.Second, 2*time.Second, 3*time.Second, slog.LevelWarn
			}},
		{"a bare port flag", []string{"-addr", "0"}, nil, func(c *config) { c.addr = "127.0.0.1:0" }},
		{"hibernation from the environment", nil, map[string]string{"TODO_HIBERNATE_AFTER": "250ms"},
			func(c *config) { c.hibernateAfter = 250 * time.Millisecond }},
		{"hibernation never", []string{"-hibernate-after", "-1s"}, map[string]string{"TODO_HIBERNATE_AFTER": "250ms"},
			func(c *config) { c.hibernateAfter = -time.Second }},
		{"debug address on localhost", []string{"-debug-addr", "localhost:6060"}, nil, func(c *config) { c.debugAddr = "localhost:6060" }},
		{"debug address on IPv6 loopback", []string{"-debug-addr", "[::1]:6060"}, nil, func(c *config) { c.debugAddr = "[::1]:6060" }},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseConfig(c.args, envOf(c.env))
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
		want string // the whole message: one line, said once
	}{
		{nil, map[string]string{"TODO_SERVER_EXPIRY": "soon"}, `TODO_SERVER_EXPIRY="soon": want seconds or a Go duration (90s, 2m)`},
		{nil, map[string]string{"TODO_HTTP_PORT": "70000"}, `TODO_HTTP_PORT="70000": port 70000 out of range`},
		{nil, map[string]string{"TODO_WORKERS": "many"}, `TODO_WORKERS="many": not an integer`},
		{nil, map[string]string{"TODO_DURABILITY": "paper"}, `TODO_DURABILITY="paper": want fsync, write or async`},
		{[]string{"-durability", "paper"}, nil, `invalid value "paper" for flag -durability: want fsync, write or async`},
		{[]string{"-log-format", "xml"}, nil, `invalid value "xml" for flag -log-format: want text or json`},
		{[]string{"-log-level", "loud"}, nil, `invalid value "loud" for flag -log-level: want debug, info, warn or error`},
		{[]string{"-addr", "nocolon"}, nil, `invalid value "nocolon" for flag -addr: missing port in address`},
		{[]string{"-timeout", "soon"}, nil, `invalid value "soon" for flag -timeout: want a Go duration (5s, 1m30s)`},
		// Values the System would silently replace by its defaults are
		// refused, so that the log never shows a value not in force.
		{[]string{"-idle", "0"}, nil, "-idle 0 (TODO_SERVER_EXPIRY): want a positive duration, or a negative one for never"},
		{nil, map[string]string{"TODO_SERVER_EXPIRY": "0s"}, "-idle 0 (TODO_SERVER_EXPIRY): want a positive duration, or a negative one for never"},
		{[]string{"-hibernate-after", "0s"}, nil, "-hibernate-after 0 (TODO_HIBERNATE_AFTER): want a positive duration, or a negative one for never"},
		{[]string{"-workers", "0"}, nil, "-workers 0 (TODO_WORKERS): want at least 1"},
		{[]string{"-workers", "-1"}, nil, "-workers -1 (TODO_WORKERS): want at least 1"},
		{[]string{"-timeout", "0s"}, nil, "-timeout 0s (TODO_TIMEOUT): want a positive duration"},
		{[]string{"-shutdown-timeout", "-1s"}, nil, "-shutdown-timeout -1s (TODO_SHUTDOWN_TIMEOUT): want a positive duration"},
		{[]string{"-watchdog", "-1s"}, nil, "-watchdog -1s (TODO_WATCHDOG): want a positive duration"},
		{[]string{"-data", ""}, nil, "-data (TODO_DB_FOLDER) is empty"},
		{[]string{"-allowed-hosts", "todo.example.com:443"}, nil, `-allowed-hosts (TODO_ALLOWED_HOSTS): "todo.example.com:443" is not a host name or an IP address without port`},
		{nil, map[string]string{"TODO_ALLOWED_HOSTS": "ok.example, http://x"}, `-allowed-hosts (TODO_ALLOWED_HOSTS): "http://x" is not a host name or an IP address without port`},
		{[]string{"-trusted-origins", "todo.example.com"}, nil, `-trusted-origins (TODO_TRUSTED_ORIGINS): invalid origin "todo.example.com": scheme is required`},
		{[]string{"-nope"}, nil, "flag provided but not defined: -nope"},
		{[]string{"-data", "d", "extra"}, nil, `unexpected arguments ["extra"]`},
		{[]string{"-debug-addr", "0.0.0.0:6060"}, nil, "-debug-addr 0.0.0.0:6060 (TODO_DEBUG_ADDR): want a loopback address (127.0.0.1:PORT, [::1]:PORT or localhost:PORT): pprof must not be reachable from another machine"},
		{nil, map[string]string{"TODO_DEBUG_ADDR": ":6060"}, "-debug-addr :6060 (TODO_DEBUG_ADDR): want a loopback address (127.0.0.1:PORT, [::1]:PORT or localhost:PORT): pprof must not be reachable from another machine"},
		{[]string{"-debug-addr", "todo.example.com:6060"}, nil, "-debug-addr todo.example.com:6060 (TODO_DEBUG_ADDR): want a loopback address (127.0.0.1:PORT, [::1]:PORT or localhost:PORT): pprof must not be reachable from another machine"},
		{[]string{"-debug-addr", "6060"}, nil, "-debug-addr 6060 (TODO_DEBUG_ADDR): want a loopback address (127.0.0.1:PORT, [::1]:PORT or localhost:PORT): pprof must not be reachable from another machine"},
	} {
		_, err := parseConfig(c.args, envOf(c.env))
		var ue *usageError
		if !errors.As(err, &ue) || ue.command != "serve" {
			t.Errorf("%q %v: %v, want a usage error of serve", c.args, c.env, err)
			continue
		}
		if got := oneLine(err); got != c.want {
			t.Errorf("%q %v:\n got  %s\n want %s", c.args, c.env, got, c.want)
		}
	}
}

// runMain runs the command as main does, and returns its exit status and
// what it printed.
func runMain(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code = report(run(ctx, args, envOf(env), &out, &errOut), &errOut)
	return code, out.String(), errOut.String()
}

// TestRun_HelpAndVersion: what a user asks for goes to stdout, with exit
// status 0, so that `todo -h | less` shows it.
func TestRun_HelpAndVersion(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		want []string // in stdout
	}{
		{[]string{"help"}, []string{"Usage:", "todo entries LIST [DATE]", "todo add LIST DATE TITLE", "Exit status: 0 done; 1 failed", "TODO_URL"}},
		{[]string{"-h"}, []string{"Usage:", "todo serve [flags]"}},
		{[]string{"-help"}, []string{"Usage:", "todo serve [flags]"}},
		{[]string{"--help"}, []string{"Usage:", "todo serve [flags]"}},
		{[]string{"help", "serve"}, []string{"Usage: todo serve [flags]", "-addr address", "[TODO_HTTP_PORT] (default 127.0.0.1:5454)", "-durability mode", "-version"}},
		{[]string{"serve", "-h"}, []string{"Usage: todo serve [flags]", "-addr address"}},
		{[]string{"-addr", "127.0.0.1:0", "-h"}, []string{"Usage: todo serve [flags]"}},
		{[]string{"help", "add"}, []string{"Usage: todo add LIST DATE TITLE [flags]", "-server URL", "TODO_URL", "Exit status"}},
		{[]string{"add", "--help"}, []string{"Usage: todo add LIST DATE TITLE [flags]"}},
		{[]string{"entries", "-h"}, []string{"Usage: todo entries LIST [DATE] [flags]", "-json"}},
		{[]string{"help", "help"}, []string{"Usage: todo help [COMMAND]"}},
		{[]string{"version"}, []string{"todo ", " revision "}},
		{[]string{"-version"}, []string{"todo ", " revision "}},
		{[]string{"--version"}, []string{"todo ", " revision "}},
		{[]string{"serve", "-version"}, []string{"todo ", " revision "}},
	} {
		code, stdout, stderr := runMain(t, nil, c.args...)
		if code != exitOK || stderr != "" {
			t.Errorf("%q: exit %d, stderr %q", c.args, code, stderr)
		}
		for _, w := range c.want {
			if !strings.Contains(stdout, w) {
				t.Errorf("%q: stdout has no %q:\n%s", c.args, w, stdout)
			}
		}
	}
}

// TestRun_Mistakes: a mistake prints one line and a hint on stderr, once,
// nothing on stdout, and exits 2; the line never stutters.
func TestRun_Mistakes(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		env  map[string]string
		line string // the first line of stderr
		hint string
	}{
		{[]string{"frob"}, nil, `todo: unknown command "frob"`, "Run 'todo help' for usage."},
		{[]string{"-nope"}, nil, "todo: flag provided but not defined: -nope", "Run 'todo help serve' for usage."},
		{[]string{"serve", "x"}, nil, `todo: unexpected arguments ["x"]`, "Run 'todo help serve' for usage."},
		{[]string{"-durability", "bogus"}, nil, `todo: invalid value "bogus" for flag -durability: want fsync, write or async`, "Run 'todo help serve' for usage."},
		{nil, map[string]string{"TODO_DURABILITY": "bogus"}, `todo: TODO_DURABILITY="bogus": want fsync, write or async`, "Run 'todo help serve' for usage."},
		{[]string{"-idle", "0"}, nil, "todo: -idle 0 (TODO_SERVER_EXPIRY): want a positive duration, or a negative one for never", "Run 'todo help serve' for usage."},
		{[]string{"version", "x"}, nil, `todo: version takes no arguments, got ["x"]`, "Run 'todo help version' for usage."},
		{[]string{"help", "frob"}, nil, `todo: no help for "frob": it is not a command`, "Run 'todo help' for usage."},
		{[]string{"help", "a", "b"}, nil, "todo: help takes one command, got 2 arguments", "Run 'todo help help' for usage."},
		{[]string{"lists", "x"}, nil, `todo: lists wants no arguments, got 1: ["x"]`, "Run 'todo help lists' for usage."},
		{[]string{"entries"}, nil, "todo: entries wants LIST [DATE]", "Run 'todo help entries' for usage."},
		{[]string{"entries", "bob", "20131219", "x"}, nil, `todo: entries wants LIST [DATE], got 3 arguments: ["bob" "20131219" "x"]`, "Run 'todo help entries' for usage."},
		{[]string{"entries", "bob", "yesterday"}, nil, `todo: date "yesterday": want 2013-12-19, 20131219 or today`, "Run 'todo help entries' for usage."},
		{[]string{"add", "bob", "20131219"}, nil, "todo: add wants LIST DATE TITLE", "Run 'todo help add' for usage."},
		{[]string{"add", "bob", "20130230", "Dentist"}, nil, `todo: date "20130230": want 2013-12-19, 20131219 or today`, "Run 'todo help add' for usage."},
		{[]string{"rm", "bob", "one"}, nil, `todo: entry id "one" is not a positive integer`, "Run 'todo help rm' for usage."},
		{[]string{"rm", "bob", "1", "-frob"}, nil, "todo: flag provided but not defined: -frob", "Run 'todo help rm' for usage."},
		{[]string{"lists", "-server", "ftp://x"}, nil, `todo: -server "ftp://x": want an http or https URL`, "Run 'todo help lists' for usage."},
		{[]string{"stats"}, map[string]string{"TODO_URL": "http://x/?a=b"}, `todo: TODO_URL "http://x/?a=b": want no query or fragment`, "Run 'todo help stats' for usage."},
	} {
		code, stdout, stderr := runMain(t, c.env, c.args...)
		want := c.line + "\n" + c.hint + "\n"
		if code != exitUsage || stdout != "" || stderr != want {
			t.Errorf("%q %v: exit %d, stdout %q, stderr:\n%s\nwant exit 2 and:\n%s", c.args, c.env, code, stdout, stderr, want)
		}
	}
}

func TestOneLine(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		err  error
		want string
	}{
		{errors.New("todo: invalid options: durability"), "invalid options: durability"},
		{fmt.Errorf("open: %w", errors.New("todo: corrupt data")), "open: corrupt data"},
		{errors.Join(errors.New("listen: in use"), errors.New("todo: system closed")), "listen: in use; system closed"},
		{errors.New("two\nlines\n"), "two; lines"},
	} {
		if got := oneLine(c.err); got != c.want {
			t.Errorf("oneLine(%q) = %q, want %q", c.err, got, c.want)
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

// wait waits for run to return, and for its logs to be read, and returns
// its error.
func (r *running) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-r.exited:
		<-r.drained // every line run wrote is in r.logs
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

// TestRun_RefusedStartLeavesNothing: a start refused for a mistake in the
// command line (exit 2, with the hint) or a port in use (exit 1) says why
// and creates no data directory: the flags are checked and the ports
// listened on before anything is made, in both modes.
func TestRun_RefusedStartLeavesNothing(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { busy.Close() }) // after the parallel subtests
	inUse := busy.Addr().String()
	cluster := []string{"-node", "n1", "-cluster", "127.0.0.1:0", "-insecure"}
	for _, c := range []struct {
		name string
		args []string
		code int
		says string
	}{
		{"bad flag", []string{"-durability", "bogus"}, exitUsage, "want fsync, write or async"},
		{"bad flag, cluster", append([]string{"-lease", "0s"}, cluster...), exitUsage, "-lease 0s"},
		{"debug address not loopback", []string{"-debug-addr", "0.0.0.0:0"}, exitUsage, "-debug-addr 0.0.0.0:0 (TODO_DEBUG_ADDR): want a loopback address"},
		{"debug address on every interface", []string{"-debug-addr", ":0"}, exitUsage, "want a loopback address"},
		{"debug address not loopback, cluster", append([]string{"-debug-addr", "0.0.0.0:0"}, cluster...), exitUsage, "want a loopback address"},
		{"port in use", []string{"-addr", inUse}, exitFailed, "address already in use"},
		{"port in use, cluster", append([]string{"-addr", inUse}, cluster...), exitFailed, "address already in use"},
		{"debug port in use", []string{"-debug-addr", inUse}, exitFailed, "address already in use"},
		{"cluster port in use", []string{"-node", "n1", "-cluster", inUse, "-insecure"}, exitFailed, "address already in use"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "data")
			code, stdout, stderr := runMain(t, nil, append([]string{"-addr", "127.0.0.1:0", "-data", dir}, c.args...)...)
			hint := strings.HasSuffix(stderr, "Run 'todo help serve' for usage.\n")
			if code != c.code || stdout != "" || !strings.Contains(stderr, c.says) || hint != (c.code == exitUsage) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d and %q, with the hint only for a mistake", code, stdout, stderr, c.code, c.says)
			}
			if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a refused start left %s behind (stat: %v)", dir, err)
			}
		})
	}
}

// TestRun_DataDirLocked runs a second server on the data directory of a
// running one: it must exit non-zero at once, saying that another process
// holds the directory, and leave the first one serving.
func TestRun_DataDirLocked(t *testing.T) {
	t.Parallel()
	r := startRun(t)
	code, stdout, stderr := runMain(t, nil, "-addr", "127.0.0.1:0", "-data", r.dir)
	if code != exitFailed || stdout != "" || !strings.Contains(stderr, r.dir) || !strings.Contains(stderr, "another process") {
		t.Errorf("second server on %s: exit %d, stdout %q, stderr %q; want exit 1 and a line naming the directory and another process", r.dir, code, stdout, stderr)
	}
	t.Logf("the second server said: %s", strings.TrimSpace(stderr))
	if code, body := get(t, "POST", "http://"+r.addr+"/add_entry?list=bob&date=20131219&title=Dentist"); code != 200 || body != "OK" {
		t.Errorf("the first server after the second failed: %d %q", code, body)
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
	cfg, err := parseConfig(nil, envOf(nil))
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
	err = serveOn(context.Background(), cfg, log, systemBackend{sys}, brokenListener{ln}, nil, nil)
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
