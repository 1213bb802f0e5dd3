package todo_test

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
)

// retryStorm has clients add entries to one list through the JSON API with
// a handler timeout so short that many adds are answered 503 (their change
// may or may not have been made), each client retrying every add until it
// is answered 201, with the same Idempotency-Key when withKeys is set. It
// returns how many adds were answered 503 and how many entries the list
// holds for the adds made.
func retryStorm(t *testing.T, withKeys bool) (timeouts int64, adds, stored int) {
	const clients, perClient = 8, 25
	srv := startWebServer(t, &todo.Options{Durability: todo.Fsync}, &todo.HandlerOptions{Timeout: 500 * time.Microsecond})
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
