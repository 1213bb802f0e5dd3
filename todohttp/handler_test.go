package todohttp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gotodo/todo"
	"github.com/gotodo/todo/todohttp"
)

// webServer is a System served by NewHandler on a real listener on
// 127.0.0.1, with an OS-chosen port.
type webServer struct {
	*httptest.Server
	sys *todo.System
	dir string
	log *webLogBuffer
}

// startWebServer opens a System in a fresh temp dir and serves it; both
// are closed when the test ends.
func startWebServer(t testing.TB, opts *todo.Options, hopts *todohttp.HandlerOptions) *webServer {
	t.Helper()
	return startWebServerWith(t, opts, hopts, nil)
}

// startWebServerWith is startWebServer with configure called on the
// http.Server before it starts, given the logger the handler writes to.
func startWebServerWith(t testing.TB, opts *todo.Options, hopts *todohttp.HandlerOptions, configure func(*http.Server, *slog.Logger)) *webServer {
	t.Helper()
	return startWebServerIn(t, filepath.Join(t.TempDir(), "data"), opts, hopts, configure)
}

// startWebServerIn is startWebServerWith over the data directory dir.
func startWebServerIn(t testing.TB, dir string, opts *todo.Options, hopts *todohttp.HandlerOptions, configure func(*http.Server, *slog.Logger)) *webServer {
	t.Helper()
	sys, err := todo.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	logs := &webLogBuffer{}
	var ho todohttp.HandlerOptions
	if hopts != nil {
		ho = *hopts
	}
	ho.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv := httptest.NewUnstartedServer(newHandler(t, sys, &ho))
	if configure != nil {
		configure(srv.Config, ho.Logger)
	}
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		if err := sys.Close(); err != nil {
			t.Error(err)
		}
	})
	return &webServer{Server: srv, sys: sys, dir: dir, log: logs}
}

// newHandler is todohttp.NewHandler, which must not fail.
func newHandler(t testing.TB, s todo.Service, opts *todohttp.HandlerOptions) http.Handler {
	t.Helper()
	h, err := todohttp.NewHandler(s, opts)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

type webResponse struct {
	status int
	header http.Header
	body   string
}

// do sends a request whose query is sent exactly as rawQuery is written.
func (s *webServer) do(t testing.TB, method, path, rawQuery, body string) webResponse {
	t.Helper()
	return s.doWith(t, method, path, rawQuery, body, nil)
}

// doWith is do with the headers in header added.
func (s *webServer) doWith(t testing.TB, method, path, rawQuery, body string, header http.Header) webResponse {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.URL.RawQuery = rawQuery
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s?%s: %v", method, path, rawQuery, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return webResponse{resp.StatusCode, resp.Header, string(b)}
}

// webLogBuffer is a bytes.Buffer safe for concurrent use, for logs.
type webLogBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (l *webLogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *webLogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// dirContents maps every file under dir to its contents, and every
// directory to "<dir>", to tell whether anything was written.
func dirContents(t testing.TB, dir string) map[string]string {
	t.Helper()
	m := make(map[string]string)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			m[rel] = "<dir>"
			return nil
		}
		b, err := os.ReadFile(p)
		m[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

const textPlain = "text/plain; charset=utf-8"

// TestHandler_OriginalTest is the original's own HTTP test.
func TestHandler_OriginalTest(t *testing.T) {
	t.Parallel()
	s := startWebServer(t, nil, nil)

	r := s.do(t, "GET", "/entries", "list=test_1&date=20131219", "")
	if r.status != 200 || r.body != "" || r.header.Get("Content-Type") != textPlain {
		t.Fatalf("GET on an empty list: %d %q %q", r.status, r.header.Get("Content-Type"), r.body)
	}
	r = s.do(t, "POST", "/add_entry", "list=test_1&date=20131219&title=Dentist", "")
	if r.status != 200 || r.body != "OK" || r.header.Get("Content-Type") != textPlain {
		t.Fatalf("POST: %d %q %q", r.status, r.header.Get("Content-Type"), r.body)
	}
	r = s.do(t, "GET", "/entries", "list=test_1&date=20131219", "")
	if r.status != 200 || r.body != "2013-12-19    Dentist\n" || r.header.Get("Content-Type") != textPlain {
		t.Fatalf("GET: %d %q %q", r.status, r.header.Get("Content-Type"), r.body)
	}
}

func TestHandler_Entries_Format(t *testing.T) {
	t.Parallel()
	s := startWebServer(t, &todo.Options{Durability: todo.Async}, nil)
	for _, q := range []string{
		"list=bob&date=20130105&title=Dentist",
		"list=bob&date=2013-01-05&title=Movies+%26+popcorn",
		"date=20130106&title=Other+day&list=bob",
		"list=bob&date=20130105&title=%C3%89l%C3%A9phant%09tab&ignored=1",
		"list=bob%2Fs&date=20130105&title=Bob's",
	} {
		if r := s.do(t, "POST", "/add_entry", q, ""); r.status != 200 || r.body != "OK" {
			t.Fatalf("POST %s: %d %q", q, r.status, r.body)
		}
	}
	want := "2013-1-5    Dentist\n2013-1-5    Movies & popcorn\n2013-1-5    Éléphant\ttab\n"
	for _, q := range []string{"list=bob&date=20130105", "list=bob&date=2013-01-05"} {
		if r := s.do(t, "GET", "/entries", q, ""); r.status != 200 || r.body != want {
			t.Errorf("GET %s: %d %q, want %q", q, r.status, r.body, want)
		}
	}
	if r := s.do(t, "GET", "/entries", "list=bob%2Fs&date=20130105", ""); r.body != "2013-1-5    Bob's\n" {
		t.Errorf("GET bob/s: %q", r.body)
	}
	r := s.do(t, "HEAD", "/entries", "list=bob&date=20130105", "")
	if r.status != 200 || r.body != "" || r.header.Get("Content-Length") != fmt.Sprint(len(want)) {
		t.Errorf("HEAD: %d %q %v", r.status, r.body, r.header)
	}
}

// TestHandler_OriginalRoutes_Paths checks that the original routes are
// matched as the handler's ServeMux matches them, whichever way the path
// is written: the handler takes a shortcut past the mux for the plain
// paths, and leaves the others to it.
func TestHandler_OriginalRoutes_Paths(t *testing.T) {
	t.Parallel()
	sys := memorySystem(t, nil)
	h := newHandler(t, sys, nil)
	const q = "?list=bob&date=20131219"
	const want = "2013-12-19    Dentist\n2013-12-19    Movies\n"
	for _, c := range []struct {
		method, target string
		status         int
		body, location string
		pattern        string
	}{
		{"POST", "/add_entry" + q + "&title=Dentist", 200, "OK", "", "POST /add_entry"},
		{"POST", "/%61dd_entry" + q + "&title=Movies", 200, "OK", "", "POST /add_entry"},
		{"GET", "/entries" + q, 200, want, "", "GET /entries"},
		{"HEAD", "/entries" + q, 200, want, "", "GET /entries"},
		{"GET", "/%65ntries" + q, 200, want, "", "GET /entries"},
		{"GET", "/entrie%73" + q, 200, want, "", "GET /entries"},
		{"GET", "//entries" + q, 307, "", "/entries" + q, "GET /entries"},
		{"GET", "/./entries" + q, 307, "", "/entries" + q, "GET /entries"},
		{"GET", "/x/../entries" + q, 307, "", "/entries" + q, "GET /entries"},
		{"GET", "/entries/" + q, 404, "not found", "", "/"},
		{"GET", "/Entries" + q, 404, "not found", "", "/"},
		{"GET", "/add_entry" + q, 405, "method GET not allowed: use POST", "", "/add_entry"},
		{"PUT", "/entries" + q, 405, "method PUT not allowed: use GET, HEAD", "", "/entries"},
	} {
		r := httptest.NewRequest(c.method, c.target, nil)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		body := rec.Body.String()
		if c.status == 307 {
			body = ""
		}
		if rec.Code != c.status || body != c.body || rec.Header().Get("Location") != c.location || r.Pattern != c.pattern {
			t.Errorf("%s %s: %d %q Location %q pattern %q, want %d %q Location %q pattern %q",
				c.method, c.target, rec.Code, body, rec.Header().Get("Location"), r.Pattern,
				c.status, c.body, c.location, c.pattern)
		}
		if c.status == 200 && (rec.Header().Get("Content-Type") != textPlain || rec.Header().Get("X-Content-Type-Options") != "nosniff" ||
			c.method == "GET" && rec.Header().Get("Content-Length") != fmt.Sprint(len(c.body))) {
			t.Errorf("%s %s: header %v", c.method, c.target, rec.Header())
		}
	}
}

func TestHandler_NotFound(t *testing.T) {
	t.Parallel()
	s := startWebServer(t, nil, nil)
	for _, p := range []string{"/", "/foo", "/add_entry/", "/entries/x", "/lists/bob", "/lists/bob/entries/1/x", "/healthz"} {
		for _, m := range []string{"GET", "POST"} {
			r := s.do(t, m, p, "list=bob&date=20131219&title=x", "")
			if r.status != 404 || r.body != "not found" || r.header.Get("Content-Type") != textPlain {
				t.Errorf("%s %s: %d %q %q", m, p, r.status, r.header.Get("Content-Type"), r.body)
			}
		}
	}
}

func TestHandler_MethodNotAllowed(t *testing.T) {
	t.Parallel()
	s := startWebServer(t, nil, nil)
	for _, c := range []struct {
		method, path, allow string
		json                bool
	}{
		{"GET", "/add_entry", "POST", false},
		{"PUT", "/add_entry", "POST", false},
		{"POST", "/entries", "GET, HEAD", false},
		{"DELETE", "/entries", "GET, HEAD", false},
		{"POST", "/lists", "GET, HEAD", true},
		{"DELETE", "/lists/bob/entries", "GET, HEAD, POST", true},
		{"GET", "/lists/bob/entries/1", "PATCH, DELETE", true},
		{"POST", "/lists/bob/entries/1", "PATCH, DELETE", true},
	} {
		r := s.do(t, c.method, c.path, "list=bob&date=20131219&title=x", "")
		if r.status != 405 || r.header.Get("Allow") != c.allow {
			t.Errorf("%s %s: %d Allow %q, want 405 Allow %q", c.method, c.path, r.status, r.header.Get("Allow"), c.allow)
		}
		ct := r.header.Get("Content-Type")
		if c.json && (ct != "application/json" || !strings.HasPrefix(r.body, `{"error":"method `+c.method+` not allowed`)) ||
			!c.json && (ct != textPlain || !strings.HasPrefix(r.body, "method "+c.method+" not allowed")) {
			t.Errorf("%s %s: %q %q", c.method, c.path, ct, r.body)
		}
		if r := s.do(t, "OPTIONS", c.path, "", ""); r.status != 204 || r.header.Get("Allow") != c.allow {
			t.Errorf("OPTIONS %s: %d Allow %q", c.path, r.status, r.header.Get("Allow"))
		}
	}
	// Nothing was added by any of them.
	if r := s.do(t, "GET", "/entries", "list=bob&date=20131219", ""); r.body != "" {
		t.Errorf("entries after wrong methods: %q", r.body)
	}
}

// TestHandler_BadInput checks that bad input is answered with its status
// and reason and writes nothing to disk.
func TestHandler_BadInput(t *testing.T) {
	t.Parallel()
	s := startWebServer(t, &todo.Options{Durability: todo.Fsync}, &todohttp.HandlerOptions{MaxBody: 1 << 10, MaxTitle: 999})
	// Something on disk already, so that a rewrite of it would show.
	if r := s.do(t, "POST", "/add_entry", "list=bob&date=20131219&title=Dentist", ""); r.status != 200 {
		t.Fatal(r)
	}
	long := strings.Repeat("a", 256)
	for _, c := range []struct {
		name, method, path, query, body string
		status                          int
		reason                          string // a substring of the reason
		field                           string // the JSON error's field
	}{
		{"no query", "POST", "/add_entry", "", "", 400, `missing query parameter "list"`, ""},
		{"no list", "POST", "/add_entry", "date=20131219&title=x", "", 400, `missing query parameter "list"`, ""},
		{"no date", "POST", "/add_entry", "list=bob&title=x", "", 400, `missing query parameter "date"`, ""},
		{"no title", "POST", "/add_entry", "list=bob&date=20131219", "", 400, `missing query parameter "title"`, ""},
		{"empty list", "POST", "/add_entry", "list=&date=20131219&title=x", "", 400, `empty query parameter "list"`, ""},
		{"empty date", "POST", "/add_entry", "list=bob&date=&title=x", "", 400, `empty query parameter "date"`, ""},
		{"empty title", "POST", "/add_entry", "list=bob&date=20131219&title=", "", 400, `empty query parameter "title"`, ""},
		{"February 30", "POST", "/add_entry", "list=bob&date=20130230&title=x", "", 400, `invalid date "20130230": no such day`, ""},
		{"month 13", "POST", "/add_entry", "list=bob&date=20131301&title=x", "", 400, `invalid date "20131301"`, ""},
		{"short ISO date", "POST", "/add_entry", "list=bob&date=2013-2-3&title=x", "", 400, `invalid date "2013-2-3"`, ""},
		{"word date", "POST", "/add_entry", "list=bob&date=tomorrow&title=x", "", 400, `invalid date "tomorrow"`, ""},
		{"semicolon", "POST", "/add_entry", "list=bob;x&date=20131219&title=x", "", 400, "bad query: invalid semicolon separator in query", ""},
		{"bad escape", "POST", "/add_entry", "list=bob&date=20131219&title=%zz", "", 400, `bad query: invalid URL escape "%zz"`, ""},
		{"repeated list", "POST", "/add_entry", "list=a&list=b&date=20131219&title=x", "", 400, `query parameter "list" given 2 times`, ""},
		{"repeated title", "POST", "/add_entry", "list=a&date=20131219&title=x&title=y", "", 400, `query parameter "title" given 2 times`, ""},
		{"NUL in list", "POST", "/add_entry", "list=b%00b&date=20131219&title=x", "", 400, "contains a NUL byte", ""},
		{"NUL in title", "POST", "/add_entry", "list=bob&date=20131219&title=x%00", "", 400, "invalid title: contains the control character U+0000", ""},
		{"bad UTF-8 in list", "POST", "/add_entry", "list=b%FFb&date=20131219&title=x", "", 400, "not valid UTF-8", ""},
		{"bad UTF-8 in title", "POST", "/add_entry", "list=bob&date=20131219&title=%C3", "", 400, "invalid title: not valid UTF-8", ""},
		{"newline in title", "POST", "/add_entry", "list=bob&date=20131219&title=a%0A2013-12-19++++forged", "", 400, "control character U+000A", ""},
		{"title over cap", "POST", "/add_entry", "list=bob&date=20131219&title=" + strings.Repeat("t", 1000), "", 400, "title is 1000 bytes, more than 999", ""},
		{"title over the library's cap", "POST", "/add_entry", "list=bob&date=20131219&title=" + strings.Repeat("t", todo.MaxTitle+1), "", 400, "invalid title: 1025 bytes, more than 1024", ""},
		{"title of spaces", "POST", "/add_entry", "list=bob&date=20131219&title=+%09+", "", 400, "invalid title: nothing but spaces or invisible characters", ""},
		{"title of zero-width spaces", "POST", "/add_entry", "list=bob&date=20131219&title=%E2%80%8B%E2%80%8B", "", 400, "invalid title: nothing but spaces or invisible characters", ""},
		{"list over 255 bytes", "POST", "/add_entry", "list=" + long + "&date=20131219&title=x", "", 400, "256 bytes, more than 255", ""},
		{"GET no list", "GET", "/entries", "date=20131219", "", 400, `missing query parameter "list"`, ""},
		{"GET no date", "GET", "/entries", "list=bob", "", 400, `missing query parameter "date"`, ""},
		{"GET bad date", "GET", "/entries", "list=bob&date=20131232", "", 400, `invalid date "20131232"`, ""},
		{"GET semicolon", "GET", "/entries", "list=bob&date=20131219;", "", 400, "bad query", ""},
		{"GET bad escape", "GET", "/entries", "list=%&date=20131219", "", 400, "bad query", ""},
		{"GET repeated date", "GET", "/entries", "list=bob&date=20131219&date=20131220", "", 400, `query parameter "date" given 2 times`, ""},
		{"GET NUL list", "GET", "/entries", "list=%00&date=20131219", "", 400, "contains a NUL byte", ""},
		{"GET long list", "GET", "/entries", "list=" + long + "&date=20131219", "", 400, "256 bytes", ""},

		{"JSON unknown field", "POST", "/lists/bob/entries", "", `{"date":"2013-12-19","title":"x","id":7}`, 400, `unknown field "id"`, "body"},
		{"JSON trailing data", "POST", "/lists/bob/entries", "", `{"date":"2013-12-19","title":"x"} {}`, 400, "data after the object", "body"},
		{"JSON array", "POST", "/lists/bob/entries", "", `[]`, 400, "bad JSON body", "body"},
		{"JSON truncated", "POST", "/lists/bob/entries", "", `{"date":"2013-12-19"`, 400, "bad JSON body", "body"},
		{"JSON empty body", "POST", "/lists/bob/entries", "", "", 400, "empty body", "body"},
		{"JSON bad UTF-8", "POST", "/lists/bob/entries", "", "{\"date\":\"2013-12-19\",\"title\":\"\xff\"}", 400, "not valid UTF-8", "body"},
		{"JSON body over cap", "POST", "/lists/bob/entries", "", `{"date":"2013-12-19","title":"` + strings.Repeat("t", 2000) + `"}`, 413, "body over 1024 bytes", "body"},
		{"JSON no title", "POST", "/lists/bob/entries", "", `{"date":"2013-12-19"}`, 400, `missing or empty "title"`, "title"},
		{"JSON no date", "POST", "/lists/bob/entries", "", `{"title":"x"}`, 400, `missing or empty "date"`, "date"},
		{"JSON bad date", "POST", "/lists/bob/entries", "", `{"date":"2013-02-29","title":"x"}`, 400, `invalid date "2013-02-29"`, "date"},
		{"JSON NUL title", "POST", "/lists/bob/entries", "", `{"date":"2013-12-19","title":"a\u0000"}`, 400, "invalid title: contains the control character U+0000", "title"},
		{"JSON newline title", "POST", "/lists/bob/entries", "", `{"date":"2013-12-19","title":"a\nb"}`, 400, "control character", "title"},
		{"JSON NUL list", "POST", "/lists/b%00b/entries", "", `{"date":"2013-12-19","title":"x"}`, 400, "contains a NUL byte", "list"},
		{"JSON long list", "POST", "/lists/" + long + "/entries", "", `{"date":"2013-12-19","title":"x"}`, 400, "256 bytes", "list"},
		{"JSON unknown parameter", "POST", "/lists/bob/entries", "x=1", `{"date":"2013-12-19","title":"x"}`, 400, `unknown query parameter "x"`, "x"},
		{"JSON semicolon", "POST", "/lists/bob/entries", "a;b", `{"date":"2013-12-19","title":"x"}`, 400, "bad query", ""},
		{"JSON GET bad date", "GET", "/lists/bob/entries", "date=2013-13-01", "", 400, "invalid date", "date"},
		{"JSON GET empty date", "GET", "/lists/bob/entries", "date=", "", 400, `empty query parameter "date"`, "date"},
		{"JSON GET repeated date", "GET", "/lists/bob/entries", "date=20131219&date=20131219", "", 400, "given 2 times", "date"},
		{"PATCH word id", "PATCH", "/lists/bob/entries/one", "", `{"title":"y"}`, 400, `entry id "one" is not a decimal integer`, "id"},
		{"PATCH padded id", "PATCH", "/lists/bob/entries/01", "", `{"title":"y"}`, 400, "not a decimal integer", "id"},
		{"PATCH huge id", "PATCH", "/lists/bob/entries/99999999999999999999999", "", `{"title":"y"}`, 400, "not a decimal integer", "id"},
		{"PATCH unknown id", "PATCH", "/lists/bob/entries/999", "", `{"title":"y"}`, 404, "entry not found: id 999", "id"},
		{"PATCH nothing", "PATCH", "/lists/bob/entries/1", "", `{}`, 400, "nothing to change", "body"},
		{"PATCH bad date", "PATCH", "/lists/bob/entries/1", "", `{"date":"20131332"}`, 400, "invalid date", "date"},
		{"PATCH empty title", "PATCH", "/lists/bob/entries/1", "", `{"title":""}`, 400, `missing or empty "title"`, "title"},
		{"PATCH unknown field", "PATCH", "/lists/bob/entries/1", "", `{"titel":"y"}`, 400, `unknown field "titel"`, "body"},
		{"DELETE unknown id", "DELETE", "/lists/bob/entries/2", "", "", 404, "entry not found: id 2", "id"},
		{"DELETE negative id", "DELETE", "/lists/bob/entries/-1", "", "", 404, "entry not found", "id"},
		{"DELETE word id", "DELETE", "/lists/bob/entries/x1", "", "", 400, "not a decimal integer", "id"},
		{"DELETE unknown list", "DELETE", "/lists/nobody/entries/1", "", "", 404, "entry not found", "id"},

		// JSON bodies are read strictly where encoding/json is lenient.
		{"JSON case-folded field", "POST", "/lists/bob/entries", "", `{"date":"2013-12-19","TITLE":"x"}`, 400, `unknown field "TITLE": field names are case-sensitive, did you mean "title"?`, "body"},
		{"JSON duplicate key", "POST", "/lists/bob/entries", "", `{"date":"2013-12-19","title":"x","title":"y"}`, 400, `field "title" given twice`, "title"},
		{"JSON duplicate key after null", "POST", "/lists/bob/entries", "", `{"title":null,"date":"2013-12-19","title":"x"}`, 400, `field "title" given twice`, "title"},
		{"JSON lone high surrogate", "POST", "/lists/bob/entries", "", `{"date":"2013-12-19","title":"\ud800"}`, 400, `"title" holds a lone UTF-16 surrogate escape`, "title"},
		{"JSON lone high surrogate, then text", "POST", "/lists/bob/entries", "", `{"date":"2013-12-19","title":"\uD800x"}`, 400, "lone UTF-16 surrogate", "title"},
		{"JSON lone low surrogate", "POST", "/lists/bob/entries", "", `{"date":"2013-12-19","title":"a\udc00"}`, 400, "lone UTF-16 surrogate", "title"},
		{"JSON reversed pair", "POST", "/lists/bob/entries", "", `{"date":"2013-12-19","title":"\udc00\ud800"}`, 400, "lone UTF-16 surrogate", "title"},
		{"JSON high surrogate, then a letter escape", "POST", "/lists/bob/entries", "", `{"date":"2013-12-19","title":"\ud800\u0041"}`, 400, "lone UTF-16 surrogate", "title"},
		{"JSON lone surrogate in a name", "POST", "/lists/bob/entries", "", `{"date":"2013-12-19","title":"x","\ud800":"y"}`, 400, "member name holds a lone UTF-16 surrogate", "body"},
		{"JSON number title", "POST", "/lists/bob/entries", "", `{"date":"2013-12-19","title":5}`, 400, `"title" must be a string`, "title"},
		{"JSON object title", "POST", "/lists/bob/entries", "", `{"date":"2013-12-19","title":{"a":1}}`, 400, `"title" must be a string`, "title"},
		{"JSON array date", "POST", "/lists/bob/entries", "", `{"date":["2013-12-19"],"title":"x"}`, 400, `"date" must be a string`, "date"},
		{"JSON bad token", "POST", "/lists/bob/entries", "", `{"date":"2013-12-19","title":"x",}`, 400, "bad JSON body: invalid character", "body"},
		{"PATCH case-folded field", "PATCH", "/lists/bob/entries/1", "", `{"Title":"y"}`, 400, `unknown field "Title"`, "body"},
		{"PATCH duplicate key", "PATCH", "/lists/bob/entries/1", "", `{"title":"y","title":"z"}`, 400, `field "title" given twice`, "title"},
		{"PATCH lone surrogate", "PATCH", "/lists/bob/entries/1", "", `{"title":"\udfff"}`, 400, "lone UTF-16 surrogate", "title"},
		{"PATCH newline title", "PATCH", "/lists/bob/entries/1", "", `{"title":"a\r\nb"}`, 400, "invalid title: contains the control character U+000D", "title"},
		{"POST blank title", "POST", "/lists/bob/entries", "", `{"date":"2013-12-19","title":"\u200b \u3000"}`, 400, "invalid title: nothing but spaces", "title"},
		{"PATCH blank title", "PATCH", "/lists/bob/entries/1", "", `{"title":" "}`, 400, "invalid title: nothing but spaces", "title"},
		{"PATCH title over cap", "PATCH", "/lists/bob/entries/1", "", `{"title":"` + strings.Repeat("t", 1000) + `"}`, 400, "title is 1000 bytes, more than 999", "title"},

		// Pages: a limit and a cursor, each checked.
		{"lists limit 0", "GET", "/lists", "limit=0", "", 400, "limit 0 is not in 1..1000", "limit"},
		{"lists limit 1001", "GET", "/lists", "limit=1001", "", 400, "limit 1001 is not in 1..1000", "limit"},
		{"lists limit word", "GET", "/lists", "limit=ten", "", 400, `limit "ten" is not a decimal integer`, "limit"},
		{"lists limit with sign", "GET", "/lists", "limit=%2B5", "", 400, `limit "+5" is not a decimal integer`, "limit"},
		{"lists limit padded", "GET", "/lists", "limit=05", "", 400, "not a decimal integer", "limit"},
		{"lists limit empty", "GET", "/lists", "limit=", "", 400, `empty query parameter "limit"`, "limit"},
		{"lists limit twice", "GET", "/lists", "limit=1&limit=2", "", 400, `query parameter "limit" given 2 times`, "limit"},
		{"lists after empty", "GET", "/lists", "after=", "", 400, `empty query parameter "after"`, "after"},
		{"lists after NUL", "GET", "/lists", "after=a%00", "", 400, "bad cursor: invalid list name", "after"},
		{"lists unknown parameter", "GET", "/lists", "cursor=bob", "", 400, `unknown query parameter "cursor"`, "cursor"},
		{"entries limit 0", "GET", "/lists/bob/entries", "limit=0", "", 400, "limit 0 is not in 1..1000", "limit"},
		{"entries limit huge", "GET", "/lists/bob/entries", "limit=99999999999999999999", "", 400, "not a decimal integer", "limit"},
		{"entries after negative", "GET", "/lists/bob/entries", "after=-1", "", 400, "after -1 is not in 0..9007199254740991", "after"},
		{"entries after over MaxID", "GET", "/lists/bob/entries", "after=9007199254740992", "", 400, "is not in 0..9007199254740991", "after"},
		{"entries after word", "GET", "/lists/bob/entries", "after=one", "", 400, `after "one" is not a decimal integer`, "after"},
		{"entries after empty", "GET", "/lists/bob/entries", "after=", "", 400, `empty query parameter "after"`, "after"},
		{"entries after twice", "GET", "/lists/bob/entries", "after=1&after=2", "", 400, "given 2 times", "after"},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := dirContents(t, s.dir)
			r := s.do(t, c.method, c.path, c.query, c.body)
			after := dirContents(t, s.dir)
			if r.status != c.status {
				t.Errorf("status %d, want %d (%q)", r.status, c.status, r.body)
			}
			reason := r.body
			isJSON := strings.HasPrefix(c.path, "/lists")
			if isJSON {
				var e struct{ Error, Field string }
				if err := json.Unmarshal([]byte(r.body), &e); err != nil || r.header.Get("Content-Type") != "application/json" {
					t.Fatalf("not a JSON error: %q %q %v", r.header.Get("Content-Type"), r.body, err)
				}
				reason = e.Error
				if e.Field != c.field {
					t.Errorf("field %q, want %q", e.Field, c.field)
				}
			} else if r.header.Get("Content-Type") != textPlain {
				t.Errorf("Content-Type %q", r.header.Get("Content-Type"))
			}
			if !strings.Contains(reason, c.reason) || strings.ContainsAny(reason, "\r\n") {
				t.Errorf("reason %q, want one line with %q", reason, c.reason)
			}
			if !maps.Equal(before, after) {
				t.Errorf("the data directory changed:\nbefore %q\nafter  %q", before, after)
			}
		})
	}
	if r := s.do(t, "GET", "/entries", "list=bob&date=20131219", ""); r.body != "2013-12-19    Dentist\n" {
		t.Errorf("bob after bad input: %q", r.body)
	}
	if names, err := s.sys.Lists(context.Background()); err != nil || len(names) != 1 {
		t.Errorf("lists after bad input: %q %v", names, err)
	}
}

func TestHandler_JSONAPI(t *testing.T) {
	t.Parallel()
	s := startWebServer(t, nil, nil)
	type entry struct {
		ID    int    `json:"id"`
		Date  string `json:"date"`
		Title string `json:"title"`
	}
	decode := func(r webResponse, v any) {
		t.Helper()
		if r.header.Get("Content-Type") != "application/json" {
			t.Fatalf("Content-Type %q", r.header.Get("Content-Type"))
		}
		dec := json.NewDecoder(strings.NewReader(r.body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			t.Fatalf("%q: %v", r.body, err)
		}
	}
	var lists struct{ Lists []string }
	r := s.do(t, "GET", "/lists", "", "")
	if decode(r, &lists); r.status != 200 || r.body != "{\"lists\":[]}\n" {
		t.Fatalf("GET /lists on nothing: %d %q", r.status, r.body)
	}

	r = s.do(t, "POST", "/lists/Bob's%20list/entries", "", `{"date":"2013-12-19","title":"Dentist"}`)
	if r.status != 201 || r.body != `{"id":1,"date":"2013-12-19","title":"Dentist"}`+"\n" ||
		r.header.Get("Location") != "/lists/Bob%27s%20list/entries/1" {
		t.Fatalf("POST: %d %q %v", r.status, r.body, r.header)
	}
	r = s.do(t, "POST", "/lists/Bob's%20list/entries", "", ` {"title":"Shopping","date":"20131220"} `)
	var e entry
	if decode(r, &e); r.status != 201 || e != (entry{2, "2013-12-20", "Shopping"}) {
		t.Fatalf("POST: %d %+v", r.status, e)
	}
	r = s.do(t, "POST", "/lists/a%2Fb/entries", "", `{"date":"2013-12-19","title":"Slash"}`)
	if r.status != 201 {
		t.Fatalf("POST a/b: %d %q", r.status, r.body)
	}

	var got struct {
		Entries  []entry
		Revision int64
	}
	r = s.do(t, "GET", "/lists/Bob's%20list/entries", "", "")
	if decode(r, &got); r.status != 200 || len(got.Entries) != 2 || got.Entries[1] != (entry{2, "2013-12-20", "Shopping"}) {
		t.Fatalf("GET all: %d %q", r.status, r.body)
	}
	r = s.do(t, "GET", "/lists/Bob's%20list/entries", "date=2013-12-19", "")
	if decode(r, &got); len(got.Entries) != 1 || got.Entries[0] != (entry{1, "2013-12-19", "Dentist"}) {
		t.Fatalf("GET one date: %q", r.body)
	}
	r = s.do(t, "GET", "/lists/nobody/entries", "", "")
	if r.status != 200 || r.body != "{\"entries\":[],\"revision\":1}\n" { // a new list is at revision 1
		t.Fatalf("GET an empty list: %d %q", r.status, r.body)
	}

	r = s.do(t, "PATCH", "/lists/Bob's%20list/entries/1", "", `{"title":"Dentist, again"}`)
	if decode(r, &e); r.status != 200 || e != (entry{1, "2013-12-19", "Dentist, again"}) {
		t.Fatalf("PATCH title: %d %q", r.status, r.body)
	}
	r = s.do(t, "PATCH", "/lists/Bob's%20list/entries/1", "", `{"date":"2013-12-20","title":null}`)
	if decode(r, &e); r.status != 200 || e != (entry{1, "2013-12-20", "Dentist, again"}) {
		t.Fatalf("PATCH date: %d %q", r.status, r.body)
	}
	// The original protocol sees what the JSON API did.
	if r := s.do(t, "GET", "/entries", "list=Bob's+list&date=20131220", ""); r.body != "2013-12-20    Dentist, again\n2013-12-20    Shopping\n" {
		t.Fatalf("original GET: %q", r.body)
	}

	r = s.do(t, "DELETE", "/lists/Bob's%20list/entries/2", "", "")
	if r.status != 204 || r.body != "" {
		t.Fatalf("DELETE: %d %q", r.status, r.body)
	}
	if r := s.do(t, "DELETE", "/lists/Bob's%20list/entries/2", "", ""); r.status != 404 {
		t.Fatalf("DELETE again: %d %q", r.status, r.body)
	}
	r = s.do(t, "GET", "/lists/Bob's%20list/entries", "", "")
	if decode(r, &got); len(got.Entries) != 1 || got.Entries[0].ID != 1 || got.Revision != 6 {
		// new at 1, two adds to the list, two PATCHes and the DELETE
		t.Fatalf("GET after DELETE: %q", r.body)
	}

	r = s.do(t, "GET", "/lists", "", "")
	if decode(r, &lists); r.status != 200 || strings.Join(lists.Lists, "|") != "Bob's list|a/b" {
		t.Fatalf("GET /lists: %d %q", r.status, r.body)
	}
}

// TestHandler_Concurrent adds over many connections at once; every add
// answered OK is there.
func TestHandler_Concurrent(t *testing.T) {
	t.Parallel()
	s := startWebServer(t, &todo.Options{Durability: todo.Write}, nil)
	const clients, each = 16, 25
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for i := range each {
				q := fmt.Sprintf("list=list_%d&date=20131219&title=t%d_%d", c%4, c, i)
				req, _ := http.NewRequest("POST", s.URL+"/add_entry?"+q, nil)
				resp, err := s.Client().Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || string(b) != "OK" {
					t.Errorf("%s: %d %q", q, resp.StatusCode, b)
				}
			}
		})
	}
	wg.Wait()
	total := 0
	for l := range 4 {
		r := s.do(t, "GET", "/entries", fmt.Sprintf("list=list_%d&date=20131219", l), "")
		total += strings.Count(r.body, "\n")
	}
	if total != clients*each {
		t.Errorf("%d entries, want %d", total, clients*each)
	}
}

func TestHandler_CorruptFile(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	damageListFile(t, dir, "broken")
	s := startWebServerIn(t, dir, nil, nil, nil)
	for _, c := range []struct{ method, path, query, body string }{
		{"GET", "/entries", "list=broken&date=20131219", ""},
		{"POST", "/add_entry", "list=broken&date=20131219&title=x", ""},
		{"GET", "/lists/broken/entries", "", ""},
		{"POST", "/lists/broken/entries", "", `{"date":"2013-12-19","title":"x"}`},
	} {
		r := s.do(t, c.method, c.path, c.query, c.body)
		if r.status != 500 || !strings.Contains(r.body, `list \"broken\" cannot be read`) && !strings.Contains(r.body, `list "broken" cannot be read`) {
			t.Errorf("%s %s: %d %q", c.method, c.path, r.status, r.body)
		}
		if strings.Contains(r.body, s.dir) || strings.Contains(r.body, ".todo") {
			t.Errorf("%s %s: the answer leaks the path: %q", c.method, c.path, r.body)
		}
	}
	if logs := s.log.String(); !strings.Contains(logs, "corrupt list file") || !strings.Contains(logs, "list=broken") {
		t.Errorf("not logged: %s", logs)
	}
	// Other lists keep working.
	if r := s.do(t, "POST", "/add_entry", "list=fine&date=20131219&title=x", ""); r.status != 200 {
		t.Errorf("another list: %d %q", r.status, r.body)
	}
	if r := s.do(t, "GET", "/entries", "list=fine&date=20131219", ""); r.body != "2013-12-19    x\n" {
		t.Errorf("another list: %d %q", r.status, r.body)
	}
	if r := s.do(t, "GET", "/entries", "list=broken&date=20131219", ""); r.status != 500 {
		t.Errorf("the broken list was served: %d %q", r.status, r.body)
	}
}

// TestHandler_Overload keeps a list's server busy: a request waiting for
// it past the handler's timeout is answered 503 with Retry-After.
func TestHandler_Overload(t *testing.T) {
	t.Parallel()
	s := startWebServer(t, &todo.Options{MailboxSize: 1}, &todohttp.HandlerOptions{Timeout: 50 * time.Millisecond})
	ctx := context.Background()
	busy := s.sys.ServerProcess("busy")
	if _, err := busy.AddEntry(ctx, todo.Entry{Date: todo.Date{Year: 2013, Month: 12, Day: 19}, Title: "x"}); err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	blocked := make(chan error, 1)
	go func() {
		_, err := busy.UpdateEntry(ctx, 1, func(e todo.Entry) todo.Entry {
			close(entered)
			<-release
			return e
		})
		blocked <- err
	}()
	<-entered
	r := s.do(t, "POST", "/add_entry", "list=busy&date=20131219&title=y", "")
	if r.status != 503 || r.header.Get("Retry-After") == "" || !strings.Contains(r.body, "busy") {
		t.Errorf("original POST: %d %v %q", r.status, r.header, r.body)
	}
	r = s.do(t, "POST", "/lists/busy/entries", "", `{"date":"2013-12-19","title":"y"}`)
	if r.status != 503 || r.header.Get("Retry-After") == "" || !strings.HasPrefix(r.body, `{"error":`) {
		t.Errorf("JSON POST: %d %v %q", r.status, r.header, r.body)
	}
	close(release)
	if err := <-blocked; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(s.log.String(), "timed out") {
		t.Errorf("overload not logged: %s", s.log.String())
	}
}

func TestHandler_Closed(t *testing.T) {
	t.Parallel()
	s := startWebServer(t, nil, nil)
	if err := s.sys.Close(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ method, path, query string }{
		{"POST", "/add_entry", "list=bob&date=20131219&title=x"},
		{"GET", "/entries", "list=bob&date=20131219"},
		{"GET", "/lists", ""},
	} {
		r := s.do(t, c.method, c.path, c.query, "")
		if r.status != 503 || r.header.Get("Retry-After") != "1" || !strings.Contains(r.body, "shutting down") {
			t.Errorf("%s %s after Close: %d %v %q", c.method, c.path, r.status, r.header, r.body)
		}
	}
}

// damageListFile has a System write the file of the list called name (a
// name of lower-case letters) in dir, as Close does, and then overwrites
// the file with garbage.
func damageListFile(t *testing.T, dir, name string) {
	t.Helper()
	sys, err := todo.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sys.AddEntry(context.Background(), name, todo.Entry{Date: todo.Date{Year: 2013, Month: 12, Day: 19}, Title: "x"}); err != nil {
		t.Fatal(err)
	}
	if err := sys.Close(); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*", name+".todo"))
	if err != nil || len(files) != 1 {
		t.Fatalf("the file of list %q: %v %v, want one", name, files, err)
	}
	if err := os.WriteFile(files[0], []byte("TODO\x01\x00\x00\x00garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// FuzzOriginalRoutes sends any raw query to both original routes, straight
// to the handler and over a real connection: the answer is never a 5xx
// other than 503, and an add answered OK can be read back.
func FuzzOriginalRoutes(f *testing.F) {
	for _, q := range []string{
		"list=bob&date=20131219&title=Dentist",
		"list=bob&date=2013-12-19&title=Dentist",
		"",
		"list=bob;x&date=20131219&title=x",
		"list=%zz&date=20131219&title=x",
		"list=a&list=b&date=20131219&title=x",
		"list=%00&date=20131219&title=x",
		"list=bob&date=20131219&title=%FF",
		"list=bob&date=20130229&title=x",
		"list=bob&date=20131219&title=a%0Ab",
		"list=%2E%2E%2F%2E%2E&date=00010101&title=+",
		"list=con&date=99991231&title=%E2%80%AE",
		"date=20131219&title=x&list=" + strings.Repeat("%C3%A9", 128),
		"list=a+b&date=20131219&title=#frag",
		"list=é&date=20131219&title=x y",
	} {
		f.Add(q)
	}
	s := startWebServer(f, &todo.Options{Durability: todo.Async}, nil)
	h := newHandler(f, s.sys, nil)
	f.Fuzz(func(t *testing.T, raw string) {
		check := func(how, method, path string, status int, body string) {
			t.Helper()
			if status >= 500 && status != 503 {
				t.Fatalf("%s %s %s?%q: %d %q", how, method, path, raw, status, body)
			}
			if status != 200 && (body == "" || strings.ContainsAny(body, "\r\n")) {
				t.Fatalf("%s %s %s?%q: %d with reason %q", how, method, path, raw, status, body)
			}
		}
		wire := wireQuery(raw)
		var added bool
		for _, route := range []struct{ method, path string }{{"POST", "/add_entry"}, {"GET", "/entries"}} {
			req := httptest.NewRequest(route.method, route.path, nil)
			req.URL.RawQuery = raw
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			check("direct", route.method, route.path, rec.Code, rec.Body.String())
			if route.method == "POST" && rec.Code == 200 {
				added = true
			}

			r := s.do(t, route.method, route.path, wire, "")
			check("wire", route.method, route.path, r.status, r.body)
		}
		if !added {
			return
		}
		q, err := url.ParseQuery(raw)
		if err != nil {
			t.Fatalf("%q was added but does not parse: %v", raw, err)
		}
		d, err := todo.ParseDate(q.Get("date"))
		if err != nil {
			t.Fatalf("%q was added with a bad date: %v", raw, err)
		}
		r := s.do(t, "GET", "/entries", url.Values{"list": {q.Get("list")}, "date": {q.Get("date")}}.Encode(), "")
		line := fmt.Sprintf("%d-%d-%d    %s\n", d.Year, d.Month, d.Day, q.Get("title"))
		if r.status != 200 || !strings.Contains("\n"+r.body, "\n"+line) {
			t.Fatalf("%q was added but GET answers %d %q, without %q", raw, r.status, r.body, line)
		}
	})
}

// wireQuery escapes the bytes of raw that cannot travel in a request line,
// leaving what url.ParseQuery makes of it unchanged.
func wireQuery(raw string) string {
	var b strings.Builder
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c <= ' ' || c >= 0x7f || c == '#' {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// TestNewHandler_Options checks that HandlerOptions are validated as
// Options are: a value out of range is an error naming the field, never
// replaced by a default.
func TestNewHandler_Options(t *testing.T) {
	t.Parallel()
	sys := memorySystem(t, nil)
	for _, c := range []struct {
		name string
		opts *todohttp.HandlerOptions
		want string // a substring of the error; empty: no error
	}{
		{"nil", nil, ""},
		{"zero", &todohttp.HandlerOptions{}, ""},
		{"no timeout", &todohttp.HandlerOptions{Timeout: -1}, ""},
		{"largest", &todohttp.HandlerOptions{MaxTitle: todo.MaxTitle, MaxBody: 64 << 20}, ""},
		{"smallest", &todohttp.HandlerOptions{MaxTitle: 1, MaxBody: 1}, ""},
		{"hosts", &todohttp.HandlerOptions{AllowedHosts: []string{"*", "todo.example.com", "Todo.Example.com.", "192.0.2.1", "2001:db8::1", "my_host"}}, ""},
		{"origins", &todohttp.HandlerOptions{TrustedOrigins: []string{"https://app.example.com", "http://localhost:3000"}}, ""},
		{"negative MaxTitle", &todohttp.HandlerOptions{MaxTitle: -1}, "MaxTitle -1 is not in 1..1024"},
		{"MaxTitle over the library's", &todohttp.HandlerOptions{MaxTitle: todo.MaxTitle + 1}, "MaxTitle 1025 is not in 1..1024"},
		{"negative MaxBody", &todohttp.HandlerOptions{MaxBody: -5}, "MaxBody -5 is not in 1..67108864"},
		{"MaxBody over 64 MiB", &todohttp.HandlerOptions{MaxBody: 64<<20 + 1}, "MaxBody 67108865"},
		{"negative EventHeartbeat", &todohttp.HandlerOptions{EventHeartbeat: -time.Second}, "EventHeartbeat -1s is below 0"},
		{"host with port", &todohttp.HandlerOptions{AllowedHosts: []string{"todo.example.com:443"}}, `AllowedHosts: "todo.example.com:443"`},
		{"host as URL", &todohttp.HandlerOptions{AllowedHosts: []string{"https://todo.example.com"}}, "AllowedHosts"},
		{"bracketed address", &todohttp.HandlerOptions{AllowedHosts: []string{"[::1]"}}, "AllowedHosts"},
		{"empty host", &todohttp.HandlerOptions{AllowedHosts: []string{""}}, "AllowedHosts"},
		{"host with space", &todohttp.HandlerOptions{AllowedHosts: []string{"a b"}}, "AllowedHosts"},
		{"origin without scheme", &todohttp.HandlerOptions{TrustedOrigins: []string{"app.example.com"}}, "TrustedOrigins"},
		{"origin with path", &todohttp.HandlerOptions{TrustedOrigins: []string{"https://app.example.com/x"}}, "TrustedOrigins"},
	} {
		h, err := todohttp.NewHandler(sys, c.opts)
		switch {
		case c.want == "" && (err != nil || h == nil):
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (!errors.Is(err, todo.ErrInvalidOptions) || !strings.Contains(err.Error(), c.want) || h != nil):
			t.Errorf("%s: %v, want an ErrInvalidOptions with %q", c.name, err, c.want)
		}
	}
	if _, err := todohttp.NewHandler(nil, nil); !errors.Is(err, todo.ErrInvalidOptions) {
		t.Errorf("no Service: %v", err)
	}
}

// TestNewHandler_MaxTitle checks that a MaxTitle is the cap, to the byte.
func TestNewHandler_MaxTitle(t *testing.T) {
	t.Parallel()
	s := startWebServer(t, &todo.Options{Durability: todo.Async}, &todohttp.HandlerOptions{MaxTitle: 3})
	if r := s.do(t, "POST", "/add_entry", "list=bob&date=20131219&title=abc", ""); r.status != 200 {
		t.Errorf("3 bytes: %d %q", r.status, r.body)
	}
	if r := s.do(t, "POST", "/add_entry", "list=bob&date=20131219&title=abcd", ""); r.status != 400 {
		t.Errorf("4 bytes: %d %q", r.status, r.body)
	}
}
