package todohttp_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gotodo/todo"
	"github.com/gotodo/todo/todohttp"
)

// sseEvent is one event of a stream as the tests' reader parses it, from
// the format of the HTML standard's server-sent events, written here
// apart from the handler's code: an id, an event name, data, and the
// comments before it.
type sseEvent struct {
	id, event, data string
	comments        []string
	retry           string
}

// sseStream is an event stream being read.
type sseStream struct {
	resp   *http.Response
	lines  *bufio.Scanner
	cancel context.CancelFunc
}

// openStream sends GET /lists/{list}/events?query with header to url, on
// client, and returns the stream it answers 200, closed when the test
// ends; or fails the test with any other answer.
func openStream(t testing.TB, client *http.Client, url, list, query string, header http.Header) *sseStream {
	t.Helper()
	resp, cancel := getStream(t, client, url, list, query, header)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(resp.Body)
		cancel()
		t.Fatalf("GET events of %s?%s: %d %q %q", list, query, resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	return &sseStream{resp: resp, lines: bufio.NewScanner(resp.Body), cancel: cancel}
}

// getStream sends GET /lists/{list}/events?query, and returns the answer,
// whatever it is, with the cancel that ends it.
func getStream(t testing.TB, client *http.Client, url, list, query string, header http.Header) (*http.Response, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel) // before the server closes: Close waits for its requests
	req, err := http.NewRequestWithContext(ctx, "GET", url+"/lists/"+list+"/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.URL.RawQuery = query
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp, cancel
}

// next returns the stream's next block (an event, or comments or a retry
// alone), or false when the stream ended.
func (s *sseStream) next(t testing.TB) (sseEvent, bool) {
	t.Helper()
	var ev sseEvent
	var data []string
	seen := false
	for s.lines.Scan() {
		line := s.lines.Text()
		if line == "" {
			if !seen {
				continue
			}
			ev.data = strings.Join(data, "\n")
			return ev, true
		}
		seen = true
		if c, ok := strings.CutPrefix(line, ":"); ok {
			ev.comments = append(ev.comments, strings.TrimPrefix(c, " "))
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			ev.id = value
		case "event":
			ev.event = value
		case "data":
			data = append(data, value)
		case "retry":
			ev.retry = value
		default:
			t.Fatalf("a line of no known field: %q", line)
		}
	}
	if err := s.lines.Err(); err != nil && !errors.Is(err, context.Canceled) {
		t.Logf("the stream ended: %v", err)
	}
	return ev, false
}

// nextEvent returns the stream's next event that carries data, skipping
// heartbeats; it fails the test if the stream ends first.
func (s *sseStream) nextEvent(t testing.TB) sseEvent {
	t.Helper()
	for {
		ev, ok := s.next(t)
		if !ok {
			t.Fatal("the stream ended")
		}
		if ev.data != "" {
			return ev
		}
	}
}

// change decodes an event of a change, checking that its id is its
// revision.
func (ev sseEvent) change(t testing.TB) todohttp.Event {
	t.Helper()
	var c todohttp.Event
	if ev.event != "" {
		t.Fatalf("event %q, want a change (no event name): %+v", ev.event, ev)
	}
	dec := json.NewDecoder(strings.NewReader(ev.data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("data %q: %v", ev.data, err)
	}
	if again, _ := json.Marshal(c); string(again) != ev.data {
		t.Fatalf("data %q is not an Event as it encodes: %s", ev.data, again)
	}
	if ev.id != strconv.FormatInt(c.Revision, 10) {
		t.Fatalf("id %q, revision %d: want the same", ev.id, c.Revision)
	}
	return c
}

// checkRevisions returns the first way events are not the revisions after
// from up to until, each once, in order, or nil: the harness of the
// resume tests, which their broken twin proves.
func checkRevisions(events []todohttp.Event, from, until int64) error {
	for i, ev := range events {
		if ev.Revision != from+1+int64(i) {
			return fmt.Errorf("event %d has revision %d, want %d", i, ev.Revision, from+1+int64(i))
		}
	}
	if n := int64(len(events)); n != until-from {
		return fmt.Errorf("%d events after revision %d, want %d (to %d)", n, from, until-from, until)
	}
	return nil
}

// revisionOf returns the Todo-Revision of an answer, failing the test if
// it has none.
func revisionOf(t testing.TB, r webResponse) int64 {
	t.Helper()
	rev, err := strconv.ParseInt(r.header.Get(todohttp.RevisionHeader), 10, 64)
	if err != nil || rev < 1 {
		t.Fatalf("%s %q: %v", todohttp.RevisionHeader, r.header.Get(todohttp.RevisionHeader), err)
	}
	return rev
}

// TestEvents_Stream: a client reads a list with its revision, streams its
// events from there, and sees each change of the JSON API, as it was
// answered, with the revision each answer said, in order.
func TestEvents_Stream(t *testing.T) {
	t.Parallel()
	s := startWebServer(t, nil, nil)
	r := s.do(t, "POST", "/lists/bob/entries", "", `{"date":"2013-12-19","title":"Dentist"}`)
	var first todohttp.Entry
	json.Unmarshal([]byte(r.body), &first)
	if r.status != 201 || revisionOf(t, r) != 2 {
		t.Fatalf("the first add: %d %q, revision %q", r.status, r.body, r.header.Get(todohttp.RevisionHeader))
	}
	r = s.do(t, "GET", "/lists/bob/entries", "", "")
	var page todohttp.EntriesPage
	if err := json.Unmarshal([]byte(r.body), &page); err != nil || page.Revision != 2 || revisionOf(t, r) != 2 {
		t.Fatalf("the page: %q (%v), header %q; want revision 2", r.body, err, r.header.Get(todohttp.RevisionHeader))
	}

	st := openStream(t, s.Client(), s.URL, "bob", "from="+strconv.FormatInt(page.Revision, 10), nil)
	if ev, ok := st.next(t); !ok || ev.retry != "1000" || ev.data != "" {
		t.Fatalf("the stream starts with %+v, %v; want its retry alone", ev, ok)
	}
	if h := st.resp.Header; h.Get("Cache-Control") != "no-store" || h.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("the stream's headers: %v", h)
	}

	type change struct {
		method, path, body string
		kind               string
	}
	var want []todohttp.Event
	for _, c := range []change{
		{"POST", "/lists/bob/entries", `{"date":"2013-12-20","title":"Shopping"}`, "added"},
		{"PATCH", "/lists/bob/entries/1", `{"title":"Dentist at 10"}`, "updated"},
		{"DELETE", "/lists/bob/entries/2", "", "deleted"},
		{"POST", "/lists/bob/entries", `{"date":"2013-12-21","title":"Movies"}`, "added"},
	} {
		r := s.do(t, c.method, c.path, "", c.body)
		if r.status >= 300 {
			t.Fatalf("%s %s: %d %q", c.method, c.path, r.status, r.body)
		}
		e := todohttp.Entry{ID: 2, Date: "2013-12-20", Title: "Shopping"} // what the delete deletes
		if r.body != "" {
			json.Unmarshal([]byte(r.body), &e)
		}
		want = append(want, todohttp.Event{Kind: c.kind, Revision: revisionOf(t, r), Entry: e})
	}
	var got []todohttp.Event
	for range want {
		got = append(got, st.nextEvent(t).change(t))
	}
	if err := checkRevisions(got, 2, 6); err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("event %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

// TestEvents_Resume: a stream broken off and opened again with
// Last-Event-ID, as an EventSource does, goes on from the last event it
// got, with no gap and no repeat, whatever its "from" says; one opened
// with no revision starts now.
func TestEvents_Resume(t *testing.T) {
	t.Parallel()
	s := startWebServer(t, nil, nil)
	if err := resumeOver(t, s.Server, s.sys); err != nil {
		t.Fatal(err)
	}
}

// TestEvents_Resume_BrokenTwin: the resume harness catches a handler that
// ignores Last-Event-ID.
func TestEvents_Resume_BrokenTwin(t *testing.T) {
	t.Parallel()
	sys, err := todo.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	h, err := todohttp.NewHandlerIgnoringLastEventID(sys, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		sys.Close()
	})
	err = resumeOver(t, srv, sys)
	if err == nil {
		t.Fatal("the harness passed a handler that ignores Last-Event-ID")
	}
	t.Logf("caught: %v", err)
}

// resumeOver streams list bob of srv from its revision 1, takes 3 events
// of 5 changes and goes, makes 5 more, reconnects with Last-Event-ID (and
// the first "from"), and returns whether all the events it got are every
// revision from 2 to 11.
func resumeOver(t *testing.T, srv *httptest.Server, sys *todo.System) error {
	ctx := context.Background()
	add := func(n int) {
		for i := range n {
			if _, err := sys.AddEntry(ctx, "bob", todo.Entry{Date: todo.Date{Year: 2013, Month: 12, Day: 19}, Title: fmt.Sprint(i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	st := openStream(t, srv.Client(), srv.URL, "bob", "from=1", nil)
	add(5)
	var got []todohttp.Event
	for range 3 {
		got = append(got, st.nextEvent(t).change(t))
	}
	st.cancel()
	add(5)
	last := strconv.FormatInt(got[len(got)-1].Revision, 10)
	st = openStream(t, srv.Client(), srv.URL, "bob", "from=1", http.Header{"Last-Event-ID": {last}})
	for {
		c := st.nextEvent(t).change(t)
		got = append(got, c)
		if c.Revision >= 11 || len(got) > 20 {
			break
		}
	}
	return checkRevisions(got, 1, 11)
}

// TestEvents_Gone: a stream from a revision the list no longer keeps, or
// ahead of the list, gets the gone event at once, and ends; from the
// oldest kept it gets the changes after it.
func TestEvents_Gone(t *testing.T) {
	t.Parallel()
	s := startWebServer(t, &todo.Options{WatchHistory: 5}, nil)
	for i := range 20 {
		if r := s.do(t, "POST", "/add_entry", "list=bob&date=20131219&title="+strconv.Itoa(i), ""); r.status != 200 {
			t.Fatalf("add: %d %q", r.status, r.body)
		}
	}
	for _, from := range []string{"1", "15", "22"} {
		st := openStream(t, s.Client(), s.URL, "bob", "", http.Header{"Last-Event-ID": {from}})
		ev := st.nextEvent(t)
		var body todohttp.ErrorBody
		if ev.event != todohttp.GoneEvent || json.Unmarshal([]byte(ev.data), &body) != nil || !strings.Contains(body.Error, "read the list again") || body.Field != "Last-Event-ID" {
			t.Errorf("from %s of 21, keeping 5: %+v, want the gone event", from, ev)
		}
		if ev, ok := st.next(t); ok {
			t.Errorf("from %s: the stream goes on after the gone event: %+v", from, ev)
		}
	}
	st := openStream(t, s.Client(), s.URL, "bob", "from=16", nil)
	var got []todohttp.Event
	for range 5 {
		got = append(got, st.nextEvent(t).change(t))
	}
	if err := checkRevisions(got, 16, 21); err != nil {
		t.Fatal(err)
	}
}

// TestEvents_Heartbeat: a stream with nothing to send writes a comment
// every EventHeartbeat, and then the next change.
func TestEvents_Heartbeat(t *testing.T) {
	t.Parallel()
	s := startWebServer(t, nil, &todohttp.HandlerOptions{EventHeartbeat: 10 * time.Millisecond})
	st := openStream(t, s.Client(), s.URL, "bob", "", nil)
	beats := 0
	for beats < 3 {
		ev, ok := st.next(t)
		if !ok {
			t.Fatal("the stream ended")
		}
		if ev.data != "" || ev.id != "" {
			t.Fatalf("an event on a list nobody changes: %+v", ev)
		}
		if len(ev.comments) == 1 && ev.comments[0] == "heartbeat" {
			beats++
		}
	}
	if r := s.do(t, "POST", "/add_entry", "list=bob&date=20131219&title=Dentist", ""); r.status != 200 {
		t.Fatalf("add: %d %q", r.status, r.body)
	}
	if c := st.nextEvent(t).change(t); c.Revision != 2 || c.Kind != "added" || c.Entry.Title != "Dentist" {
		t.Fatalf("after the heartbeats: %+v", c)
	}
}

// TestEvents_Ends: streams end, the events before it written, when the
// System closes, and when HandlerOptions.Stopping is closed.
func TestEvents_Ends(t *testing.T) {
	t.Parallel()
	stopping := make(chan struct{})
	stopper := startWebServer(t, nil, &todohttp.HandlerOptions{Stopping: stopping})
	stopped := openStream(t, stopper.Client(), stopper.URL, "alice", "", nil)
	close(stopping)
	for ev, ok := stopped.next(t); ok; ev, ok = stopped.next(t) {
		if ev.data != "" {
			t.Errorf("an event on alice, never changed: %+v", ev)
		}
	}

	s := startWebServer(t, nil, nil)
	st := openStream(t, s.Client(), s.URL, "bob", "", nil)
	if _, err := s.sys.AddEntry(context.Background(), "bob", todo.Entry{Date: todo.Date{Year: 2013, Month: 12, Day: 19}, Title: "last"}); err != nil {
		t.Fatal(err)
	}
	if err := s.sys.Close(); err != nil {
		t.Fatal(err)
	}
	if c := st.nextEvent(t).change(t); c.Revision != 2 {
		t.Fatalf("the change before Close: %+v", c)
	}
	for ev, ok := st.next(t); ok; ev, ok = st.next(t) {
		if ev.data != "" {
			t.Errorf("after Close: %+v", ev)
		}
	}
}

// TestEvents_Refused: a stream with bad input is answered 400 in JSON,
// naming the input; other methods 405; a Service that cannot watch 501;
// past MaxListWatches 503 with Retry-After.
func TestEvents_Refused(t *testing.T) {
	t.Parallel()
	s := startWebServer(t, &todo.Options{MaxListWatches: 1}, nil)
	for _, c := range []struct {
		query  string
		header http.Header
		field  string
	}{
		{"from=-1", nil, "from"},
		{"from=abc", nil, "from"},
		{"from=01", nil, "from"},
		{"from=9007199254740992", nil, "from"},
		{"from=1&from=2", nil, "from"},
		{"since=1", nil, "since"},
		{"", http.Header{"Last-Event-ID": {"x"}}, "Last-Event-ID"},
		{"", http.Header{"Last-Event-ID": {"1", "2"}}, "Last-Event-ID"},
		{"from=1", http.Header{"Last-Event-ID": {"1.5"}}, "Last-Event-ID"},
	} {
		resp, _ := getStream(t, s.Client(), s.URL, "bob", c.query, c.header)
		b, _ := io.ReadAll(resp.Body)
		var e todohttp.ErrorBody
		if resp.StatusCode != 400 || json.Unmarshal(b, &e) != nil || e.Field != c.field {
			t.Errorf("?%s %v: %d %q, want 400 about %s", c.query, c.header, resp.StatusCode, b, c.field)
		}
	}
	if r := s.do(t, "POST", "/lists/bob/events", "", ""); r.status != 405 || r.header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST events: %d %q %v", r.status, r.body, r.header)
	}
	openStream(t, s.Client(), s.URL, "bob", "", nil)
	resp, _ := getStream(t, s.Client(), s.URL, "bob", "", nil)
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Errorf("a second stream of bob, MaxListWatches 1: %d %q", resp.StatusCode, b)
	}

	// A Service that is no todo.Watcher: no revisions, no streams.
	plain := httptest.NewServer(newHandler(t, struct{ todo.Service }{s.sys}, nil))
	defer plain.Close()
	resp, _ = getStream(t, plain.Client(), plain.URL, "bob", "", nil)
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != 501 {
		t.Errorf("events of a Service that cannot watch: %d %q, want 501", resp.StatusCode, b)
	}
	req, _ := http.NewRequest("POST", plain.URL+"/lists/carol/entries", strings.NewReader(`{"date":"2013-12-19","title":"x"}`))
	resp, err := plain.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 201 || resp.Header.Get(todohttp.RevisionHeader) != "" || strings.Contains(string(b), "revision") {
		t.Errorf("an add through a Service that cannot watch: %d %q %v", resp.StatusCode, b, resp.Header)
	}
}
