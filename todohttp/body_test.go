package todohttp_test

import (
	"bufio"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gotodo/todo/todohttp"
)

// rawResponse is an answer read off a raw connection.
type rawResponse struct {
	status int
	header http.Header
	body   string
}

// sendRaw writes req, exactly as written, on a new connection to addr,
// closes the connection's write side when closeWrite is set (the client
// is done sending, whatever its headers promised), and reads one answer.
func sendRaw(t testing.TB, addr, req string, closeWrite bool) rawResponse {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// A bound on the whole exchange, far over the server's timeouts: a
	// server that never answers fails the test instead of hanging it.
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	if closeWrite {
		if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the answer to %q: %v", req, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the answer to %q: %v", req, err)
	}
	return rawResponse{resp.StatusCode, resp.Header, string(b)}
}

// startTimedWebServer is startWebServer whose http.Server gives up on a
// request not read within readTimeout, and writes its own complaints to
// the test's log at error level, where checkNoErrors finds them.
func startTimedWebServer(t testing.TB, hopts *todohttp.HandlerOptions, readTimeout time.Duration) *webServer {
	t.Helper()
	return startWebServerWith(t, nil, hopts, func(srv *http.Server, logs *slog.Logger) {
		srv.ReadTimeout = readTimeout
		srv.ErrorLog = slog.NewLogLogger(logs.Handler(), slog.LevelError)
	})
}

// checkNoErrors fails t if anything was logged above debug level: a
// client's fault is never a server's warning or error.
func checkNoErrors(t testing.TB, s *webServer) {
	t.Helper()
	for _, line := range strings.Split(s.log.String(), "\n") {
		if strings.Contains(line, "level=ERROR") || strings.Contains(line, "level=WARN") {
			t.Errorf("logged above debug level: %s", line)
		}
	}
}

// TestHandler_BadBodies sends, over raw connections, bodies that are the
// client's fault: cut short, badly chunked, too large, or stalled past
// the server's read timeout. Each is answered 400, 408 or 413 with a
// one-line JSON reason, none is logged above debug level, and nothing is
// written. A good body sent the same way is the control.
func TestHandler_BadBodies(t *testing.T) {
	t.Parallel()
	const readTimeout = 500 * time.Millisecond
	s := startTimedWebServer(t, &todohttp.HandlerOptions{MaxBody: 1 << 10}, readTimeout)
	addr := s.Listener.Addr().String()
	host := "Host: " + addr + "\r\n"
	const good = `{"date":"2013-12-19","title":"Dentist"}` // 39 bytes
	if r := s.do(t, "POST", "/lists/bob/entries", "", good); r.status != 201 {
		t.Fatalf("the first entry: %d %q", r.status, r.body)
	}
	chunk := func(s string) string { return strconv.FormatInt(int64(len(s)), 16) + "\r\n" + s + "\r\n" }
	for _, c := range []struct {
		name       string
		req        string
		closeWrite bool
		status     int
		reason     string
	}{
		{"control: whole body", "POST /lists/bob/entries HTTP/1.1\r\n" + host +
			"Content-Length: 39\r\n\r\n" + good, false, 201, ""},
		{"control: whole chunked body", "POST /lists/bob/entries HTTP/1.1\r\n" + host +
			"Transfer-Encoding: chunked\r\n\r\n" + chunk(good[:10]) + chunk(good[10:]) + "0\r\n\r\n", false, 201, ""},
		{"9 of 100 bytes, then the client is done", "POST /lists/bob/entries HTTP/1.1\r\n" + host +
			"Content-Length: 100\r\n\r\n" + good[:9], true, 400, "body ended early"},
		{"9 of 100 bytes, then nothing", "POST /lists/bob/entries HTTP/1.1\r\n" + host +
			"Content-Length: 100\r\n\r\n" + good[:9], false, 408, "body not received before the read timeout"},
		{"no byte of 39, then nothing", "POST /lists/bob/entries HTTP/1.1\r\n" + host +
			"Content-Length: 39\r\n\r\n", false, 408, "read timeout"},
		{"PATCH: 5 of 20 bytes, then the client is done", "PATCH /lists/bob/entries/1 HTTP/1.1\r\n" + host +
			"Content-Length: 20\r\n\r\n" + `{"tit`, true, 400, "body ended early"},
		{"chunk size not hex", "POST /lists/bob/entries HTTP/1.1\r\n" + host +
			"Transfer-Encoding: chunked\r\n\r\nzz\r\n" + good + "\r\n0\r\n\r\n", false, 400, "body cannot be read"},
		{"chunk longer than its size", "POST /lists/bob/entries HTTP/1.1\r\n" + host +
			"Transfer-Encoding: chunked\r\n\r\n5\r\n" + good + "\r\n0\r\n\r\n", false, 400, "body cannot be read"},
		{"chunked, cut in a chunk", "POST /lists/bob/entries HTTP/1.1\r\n" + host +
			"Transfer-Encoding: chunked\r\n\r\n27\r\n" + good[:20], true, 400, "body ended early"},
		{"chunked, no last chunk", "POST /lists/bob/entries HTTP/1.1\r\n" + host +
			"Transfer-Encoding: chunked\r\n\r\n" + chunk(good), true, 400, "body ended early"},
		{"chunked, stalled", "POST /lists/bob/entries HTTP/1.1\r\n" + host +
			"Transfer-Encoding: chunked\r\n\r\n" + chunk(good[:10]), false, 408, "read timeout"},
		{"Content-Length over the cap, no body sent", "POST /lists/bob/entries HTTP/1.1\r\n" + host +
			"Content-Length: 1000000\r\n\r\n", false, 413, "body over 1024 bytes"},
		{"chunked over the cap", "POST /lists/bob/entries HTTP/1.1\r\n" + host +
			"Transfer-Encoding: chunked\r\n\r\n" + chunk(`{"date":"2013-12-19","title":"`) +
			chunk(strings.Repeat("t", 2000)) + chunk(`"}`) + "0\r\n\r\n", false, 413, "body over 1024 bytes"},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := dirContents(t, s.dir)
			r := sendRaw(t, addr, c.req, c.closeWrite)
			if r.status != c.status {
				t.Fatalf("status %d, want %d: %q", r.status, c.status, r.body)
			}
			if c.status == 201 {
				return
			}
			var e struct{ Error, Field string }
			if err := json.Unmarshal([]byte(r.body), &e); err != nil || r.header.Get("Content-Type") != "application/json" {
				t.Fatalf("not a JSON error: %q %q %v", r.header.Get("Content-Type"), r.body, err)
			}
			if !strings.Contains(e.Error, c.reason) || strings.ContainsAny(e.Error, "\r\n") || e.Field != "body" {
				t.Errorf("error %q field %q, want one line with %q, field body", e.Error, e.Field, c.reason)
			}
			if after := dirContents(t, s.dir); !maps.Equal(before, after) {
				t.Errorf("the data directory changed")
			}
		})
	}
	// Two controls were added to the first entry, and nothing else.
	r := s.do(t, "GET", "/lists/bob/entries", "", "")
	if n := strings.Count(r.body, `"id"`); r.status != 200 || n != 3 {
		t.Errorf("bob has %d entries, want 3: %q", n, r.body)
	}
	checkNoErrors(t, s)
	if !strings.Contains(s.log.String(), "level=DEBUG") {
		t.Errorf("the refusals were not logged at debug level: %s", s.log.String())
	}
}

// TestHandler_BadBodies_OriginalRoutes checks that the original routes,
// which read only their query, answer a request whose body is broken as
// the book's server does: by its query, without waiting for the body.
func TestHandler_BadBodies_OriginalRoutes(t *testing.T) {
	t.Parallel()
	s := startTimedWebServer(t, nil, 500*time.Millisecond)
	addr := s.Listener.Addr().String()
	for _, req := range []string{
		"POST /add_entry?list=bob&date=20131219&title=a HTTP/1.1\r\nHost: " + addr + "\r\nContent-Length: 100\r\n\r\n123456789",
		"POST /add_entry?list=bob&date=20131219&title=b HTTP/1.1\r\nHost: " + addr + "\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
	} {
		if r := sendRaw(t, addr, req, false); r.status != 200 || r.body != "OK" {
			t.Errorf("%q: %d %q", req, r.status, r.body)
		}
	}
	if r := s.do(t, "GET", "/entries", "list=bob&date=20131219", ""); r.body != "2013-12-19    a\n2013-12-19    b\n" {
		t.Errorf("entries: %q", r.body)
	}
	checkNoErrors(t, s)
}
