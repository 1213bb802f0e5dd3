package todohttp_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gotodo/todo"
	"github.com/gotodo/todo/todohttp"
)

// retryStorm has clients add entries to one list through the JSON API with
// a handler timeout so short that many adds are answered 503 (their change
// may or may not have been made), each client retrying every add until it
// is answered 201, with the same Idempotency-Key when withKeys is set. It
// returns how many adds were answered 503 and how many entries the list
// holds for the adds made.
func retryStorm(t *testing.T, withKeys bool) (timeouts int64, adds, stored int) {
	const clients, perClient = 8, 25
	srv := startWebServer(t, &todo.Options{Durability: todo.Fsync}, &todohttp.HandlerOptions{Timeout: 500 * time.Microsecond})
	var timedOut atomic.Int64
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for i := range perClient {
				key := fmt.Sprintf("client-%d-add-%d", c, i)
				body := fmt.Sprintf(`{"date":"2013-12-19","title":%q}`, key)
				for attempt := 0; ; attempt++ {
					if attempt == 1000 {
						t.Errorf("%s: no 201 after 1000 tries", key)
						return
					}
					req, err := http.NewRequest("POST", srv.URL+"/lists/storm/entries", strings.NewReader(body))
					if err != nil {
						t.Error(err)
						return
					}
					if withKeys {
						req.Header.Set("Idempotency-Key", key)
					}
					resp, err := srv.Client().Do(req)
					if err != nil {
						t.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode == http.StatusCreated {
						break
					}
					if resp.StatusCode != http.StatusServiceUnavailable {
						t.Errorf("%s: status %d", key, resp.StatusCode)
						return
					}
					timedOut.Add(1)
				}
			}
		})
	}
	wg.Wait()
	// Read with no timeout to speak of: the handler's is for the storm.
	resp, err := http.Get(srv.URL + "/lists/storm/entries?limit=1000")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var page struct {
		Entries []struct{ Title string } `json:"entries"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		t.Fatal(err)
	}
	return timedOut.Load(), clients * perClient, len(page.Entries)
}

// TestHandler_IdempotencyKey_RetryStorm checks that retries with an
// Idempotency-Key never duplicate an entry, however many of the first
// tries were answered 503 after their change was made.
func TestHandler_IdempotencyKey_RetryStorm(t *testing.T) {
	timeouts, adds, stored := retryStorm(t, true)
	t.Logf("%d adds, %d answered 503 and retried, %d entries stored", adds, timeouts, stored)
	if timeouts == 0 {
		t.Error("no add timed out: the storm tested nothing")
	}
	if stored != adds {
		t.Errorf("%d entries stored for %d adds retried with their keys", stored, adds)
	}
}

// TestHandler_IdempotencyKey_RetryStorm_BrokenTwin retries without keys,
// as clients did before Idempotency-Key: the storm must then duplicate
// entries, or it cannot tell.
func TestHandler_IdempotencyKey_RetryStorm_BrokenTwin(t *testing.T) {
	timeouts, adds, stored := retryStorm(t, false)
	t.Logf("broken twin: %d adds, %d answered 503 and retried, %d entries stored", adds, timeouts, stored)
	if stored <= adds {
		t.Errorf("retries without keys stored %d entries for %d adds: no duplicate, the storm cannot tell", stored, adds)
	}
}

// TestHandler_IdempotencyKey checks the Idempotency-Key of each change of
// the JSON API: a retry with the key of a change of its kind is answered
// as the first time and changes nothing; a key reused for another kind
// (the key of an add for a PATCH, say) is answered 422 with a one-line
// reason about the header; a malformed key, or two, 400. Nothing refused
// is written.
func TestHandler_IdempotencyKey(t *testing.T) {
	t.Parallel()
	s := startWebServer(t, nil, nil)
	send := func(method, path, body string, keys ...string) webResponse {
		t.Helper()
		return s.doWith(t, method, path, "", body, http.Header{"Idempotency-Key": keys})
	}
	const entries = "/lists/bob/entries"
	steps := []struct {
		name, method, path, body, key string
		status                        int
		want                          string // the body, or a part of the reason of a refusal
	}{
		{"add", "POST", entries, `{"date":"2013-12-19","title":"Dentist"}`, "add-1", 201, `{"id":1,"date":"2013-12-19","title":"Dentist"}`},
		{"add retried", "POST", entries, `{"date":"2013-12-20","title":"other"}`, "add-1", 201, `{"id":1,"date":"2013-12-19","title":"Dentist"}`},
		{"the add's key for a PATCH", "PATCH", entries + "/1", `{"title":"x"}`, "add-1", 422, "made an add, not an update"},
		{"the add's key for a DELETE", "DELETE", entries + "/1", "", "add-1", 422, "made an add, not a delete"},
		{"add", "POST", entries, `{"date":"2013-12-19","title":"Movies"}`, "add-2", 201, `{"id":2,"date":"2013-12-19","title":"Movies"}`},
		{"update", "PATCH", entries + "/1", `{"title":"Dentist at 10"}`, "upd-1", 200, `{"id":1,"date":"2013-12-19","title":"Dentist at 10"}`},
		{"update retried", "PATCH", entries + "/1", `{"date":"2013-12-21"}`, "upd-1", 200, `{"id":1,"date":"2013-12-19","title":"Dentist at 10"}`},
		{"the update's key for a POST", "POST", entries, `{"date":"2013-12-19","title":"x"}`, "upd-1", 422, "made an update, not an add"},
		{"the update's key for a DELETE", "DELETE", entries + "/1", "", "upd-1", 422, "made an update, not a delete"},
		{"delete", "DELETE", entries + "/2", "", "del-1", 204, ""},
		{"delete retried", "DELETE", entries + "/2", "", "del-1", 204, ""},
		{"the delete's key for a PATCH", "PATCH", entries + "/1", `{"title":"x"}`, "del-1", 422, "made a delete, not an update"},
		{"the delete's key for a POST", "POST", entries, `{"date":"2013-12-19","title":"x"}`, "del-1", 422, "made a delete, not an add"},
		{"a key with a space", "POST", entries, `{"date":"2013-12-19","title":"x"}`, "has space", 400, "invalid idempotency key"},
		{"an empty key", "PATCH", entries + "/1", `{"title":"x"}`, "", 400, "invalid idempotency key"},
	}
	for _, c := range steps {
		r := send(c.method, c.path, c.body, c.key)
		if r.status != c.status {
			t.Fatalf("%s: %d %q, want %d", c.name, r.status, r.body, c.status)
		}
		if c.status < 400 {
			if strings.TrimSuffix(r.body, "\n") != c.want {
				t.Errorf("%s: %q, want %q", c.name, r.body, c.want)
			}
			continue
		}
		var e struct{ Error, Field string }
		if err := json.Unmarshal([]byte(r.body), &e); err != nil || e.Field != "Idempotency-Key" ||
			!strings.Contains(e.Error, c.want) || strings.ContainsAny(e.Error, "\r\n") {
			t.Errorf("%s: %q, want a one-line reason with %q about Idempotency-Key", c.name, r.body, c.want)
		}
	}
	if r := send("POST", entries, `{"date":"2013-12-19","title":"x"}`, "k-1", "k-2"); r.status != 400 || !strings.Contains(r.body, "given 2 times") {
		t.Errorf("two keys: %d %q, want 400", r.status, r.body)
	}
	r := s.do(t, "GET", entries, "", "")
	// New at 1, the two adds, the update and the delete made revisions 2
	// to 5: the retries and the refusals changed nothing.
	if want := `{"entries":[{"id":1,"date":"2013-12-19","title":"Dentist at 10"}],"revision":5}` + "\n"; r.body != want {
		t.Errorf("entries %q, want %q", r.body, want)
	}
}
