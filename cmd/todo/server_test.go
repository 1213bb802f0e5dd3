package main

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/gotodo/todo"
)

// serveLimited serves a System's lists on 127.0.0.1 with the server newServer
// builds for l and a request timeout, until the test ends, and returns
// its address.
func serveLimited(t *testing.T, l limits, timeout time.Duration) string {
	t.Helper()
	sys, err := todo.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	lists, err := listsHandler(sys, slog.New(slog.DiscardHandler), &config{timeout: timeout}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := newServer(lists, slog.New(slog.DiscardHandler), l)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Error(err)
		}
		if err := sys.Close(); err != nil {
			t.Error(err)
		}
	})
	return ln.Addr().String()
}

// TestServer_StalledBodyGets408: a request whose body stops arriving is
// answered 408 once the read timeout passes, not dropped unanswered: the
// write deadline outlasts the read deadline for every request timeout.
func TestServer_StalledBodyGets408(t *testing.T) {
	t.Parallel()
	for _, timeout := range []time.Duration{time.Second, 5 * time.Second, time.Minute} {
		if l := serverLimits(timeout); l.WriteTimeout < l.ReadTimeout+timeout {
			t.Errorf("-timeout %v: WriteTimeout %v ends before ReadTimeout %v plus the handling", timeout, l.WriteTimeout, l.ReadTimeout)
		}
	}
	addr := serveLimited(t, limitsFor(300*time.Millisecond, time.Second), time.Second)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	// 9 bytes of 100, then nothing.
	if _, err := io.WriteString(c, "POST /lists/bob/entries HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"date\":\""); err != nil {
		t.Fatal(err)
	}
	answer, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading the answer: %v (after %q)", err, answer)
	}
	if !bytes.HasPrefix(answer, []byte("HTTP/1.1 408 ")) {
		t.Fatalf("a stalled body was answered %q, want a 408", answer)
	}
}

// TestServer_AllowedHosts: on a loopback listener, a request naming a
// foreign host (DNS rebinding, or a proxy that passes its own Host on) is
// refused 421, unless -allowed-hosts names it; a page of an origin named
// by -trusted-origins may write, and other origins may not.
func TestServer_AllowedHosts(t *testing.T) {
	t.Parallel()
	sys, err := todo.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := sys.Close(); err != nil {
			t.Error(err)
		}
	})
	cfg, err := parseConfig([]string{"-allowed-hosts", "todo.example.com", "-trusted-origins", "https://todo.example.com"}, envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		cfg          *config
		host, origin string
		want         int
	}{
		{&config{timeout: time.Second}, "todo.example.com", "", 421},
		{cfg, "todo.example.com", "", 200},
		{cfg, "evil.example", "", 421},
		{cfg, "127.0.0.1", "", 200},
		{cfg, "todo.example.com", "https://todo.example.com", 200},
		{cfg, "todo.example.com", "https://evil.example", 403},
	} {
		h, err := listsHandler(sys, slog.New(slog.DiscardHandler), c.cfg, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(h) // on 127.0.0.1
		req, _ := http.NewRequest("POST", srv.URL+"/add_entry?list=bob&date=20131219&title=Dentist", nil)
		req.Host = c.host
		if c.origin != "" {
			req.Header.Set("Origin", c.origin)
			req.Header.Set("Sec-Fetch-Site", "cross-site")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		srv.Close()
		if resp.StatusCode != c.want {
			t.Errorf("allowed %q, trusted %q: Host %q, Origin %q answered %d, want %d",
				c.cfg.allowedHosts, c.cfg.trustedOrigins, c.host, c.origin, resp.StatusCode, c.want)
		}
	}
}

// TestServer_Slowloris opens 200 connections that send a request's headers
// one byte a second: the server built by newServer closes every one of
// them once ReadHeaderTimeout has passed, and keeps serving others
// meanwhile. It runs on the real clock, as the network does.
func TestServer_Slowloris(t *testing.T) {
	t.Parallel()
	l := serverLimits(5 * time.Second)
	l.ReadHeaderTimeout = time.Second
	addr := serveLimited(t, l, 5*time.Second)

	const conns = 200
	start := time.Now()
	deadline := start.Add(5 * time.Second)
	results := make(chan error, conns)
	for range conns {
		go func() { results <- dribble(addr, deadline) }()
	}
	// The server answers a well-behaved client while the dribblers hang on.
	if code, body := get(t, "GET", "http://"+addr+"/entries?list=bob&date=20131219"); code != 200 || body != "" {
		t.Errorf("a normal request among the dribblers: %d %q", code, body)
	}
	for range conns {
		if err := <-results; err != nil {
			t.Error(err)
		}
	}
	t.Logf("%d dribbling connections closed by the server in %v", conns, time.Since(start).Round(time.Millisecond))
}

// dribble sends a request's headers one byte a second and returns nil once
// the server has closed the connection, or an error if it is still open at
// deadline.
func dribble(addr string, deadline time.Time) error {
	const request = "GET /entries?list=bob&date=20131219 HTTP/1.1\r\nHost: localhost\r\nUser-Agent: slowloris\r\n\r\n"
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(deadline)
	closed := make(chan error, 1)
	go func() {
		// Whatever the server says, the connection ends with its close.
		_, err := io.Copy(io.Discard, c)
		if err == nil {
			err = io.EOF
		}
		closed <- err
	}()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for i := 0; ; i++ {
		if i < len(request) {
			c.Write([]byte{request[i]}) // fails once the server has closed
		}
		select {
		case err := <-closed:
			if ne, ok := err.(net.Error); ok && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded) {
				return errors.New("a dribbling connection is still open after 5s")
			}
			return nil // EOF or reset: closed by the server
		case <-tick.C:
		}
	}
}

// TestHealth: /healthz and todo_healthy report the watchdog's check first,
// then the System's storage, each with a fixed reason.
func TestHealth(t *testing.T) {
	t.Parallel()
	var storageErr error
	h := &health{report: func(dirProblem string) healthReport { return systemHealth(dirProblem, storageErr) }}
	for _, c := range []struct {
		watchdog, storage error
		code              int
		body              string
	}{
		{nil, nil, 200, "ok"},
		{nil, errors.New("write /data/log/1: no space left on device"), 503, "changes are not being stored"},
		{errors.New("/data was replaced by another directory"), errors.New("no space"), 503, "data directory unusable"},
		{errors.New("/data: permission denied"), nil, 503, "data directory unusable"},
	} {
		h.set(c.watchdog)
		storageErr = c.storage
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/healthz", nil))
		if w.Code != c.code || w.Body.String() != c.body || h.healthy() != (c.code == 200) {
			t.Errorf("watchdog %v, storage %v: %d %q, healthy %v", c.watchdog, c.storage, w.Code, w.Body.String(), h.healthy())
		}
		if c.code == 503 && w.Header().Get("Retry-After") == "" {
			t.Errorf("watchdog %v, storage %v: no Retry-After", c.watchdog, c.storage)
		}
	}
}
