package todohttp_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/gotodo/todo"
	"github.com/gotodo/todo/todohttp"
)

// fullStore is a memStore whose commits fail with ENOSPC while full is
// set, as on a full disk.
type fullStore struct {
	*memStore
	full atomic.Bool
}

func (s *fullStore) Commit(ctx context.Context, batch []todo.Change, sync bool) {
	if !s.full.Load() {
		s.memStore.Commit(ctx, batch, sync)
		return
	}
	for i := range batch {
		batch[i].Err = fmt.Errorf("todo: log segment 1.seg: %w", syscall.ENOSPC)
	}
}

// Probe fails as the commits do: a todo.Prober.
func (s *fullStore) Probe(context.Context) error {
	if s.full.Load() {
		return syscall.ENOSPC
	}
	return nil
}

// lineCount is an io.Writer that keeps the lines written to it.
type lineCount struct {
	mu    sync.Mutex
	lines []string
}

func (l *lineCount) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for line := range strings.Lines(string(p)) {
		l.lines = append(l.lines, strings.TrimSpace(line))
	}
	return len(p), nil
}

// notStoredLines serves 500 adds over 8 clients while the store is
// full, each answered 507, then one that succeeds once it has room, with
// the handler newHandler makes, and returns the lines the handler logged
// at info level and above.
func notStoredLines(t *testing.T, newHandler func(todo.Service, *todohttp.HandlerOptions) (http.Handler, error)) []string {
	store := &fullStore{memStore: &memStore{lists: make(map[string]todo.ListState)}}
	sys, err := todo.OpenStore(store, nil) // Fsync: each add waits for its commit
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	logged := &lineCount{}
	h, err := newHandler(sys, &todohttp.HandlerOptions{Logger: slog.New(slog.NewTextHandler(logged, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	post := func(i int) int {
		resp, err := http.Post(srv.URL+fmt.Sprintf("/add_entry?list=bob&date=20131219&title=t%d", i), "", nil)
		if err != nil {
			t.Error(err)
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	store.full.Store(true)
	var wg sync.WaitGroup
	for c := range 8 {
		wg.Go(func() {
			for i := range 500 / 8 {
				if status := post(c*1000 + i); status != http.StatusInsufficientStorage {
					t.Errorf("an add on a full disk: %d, want 507", status)
				}
			}
		})
	}
	wg.Wait()
	store.full.Store(false)
	if status := post(0); status != http.StatusOK {
		t.Errorf("an add once there is room: %d, want 200", status)
	}
	logged.mu.Lock()
	defer logged.mu.Unlock()
	return logged.lines
}

// The handler logs the 507s of a full disk once per fault: the first,
// with its cause, and one line when a change succeeds again (issue 18:
// 290-385 error lines a second).
func TestHandler_LogsOncePerFault(t *testing.T) {
	t.Parallel()
	lines := notStoredLines(t, todohttp.NewHandler)
	if len(lines) != 2 || !strings.Contains(lines[0], `level=ERROR msg="todo: list not stored"`) || !strings.Contains(lines[0], "no space left on device") ||
		!strings.Contains(lines[1], `level=INFO msg="todo: changes accepted again (after `) || !strings.Contains(lines[1], "failures=496") {
		t.Errorf("496 adds answered 507 logged %d lines, want the first failure and the recovery:\n%s", len(lines), strings.Join(lines, "\n"))
	}
}

// TestHandler_LogsOncePerFault_BrokenTwin runs it with a handler that
// logs every failure, as it did before.
func TestHandler_LogsOncePerFault_BrokenTwin(t *testing.T) {
	t.Parallel()
	if lines := notStoredLines(t, todohttp.NewHandlerLoggingEveryFailure); len(lines) <= 2 {
		t.Errorf("a handler logging every failure logged %d lines: the test cannot see it", len(lines))
	}
}

// A change refused because the store is failing (Async durability,
// ErrStoreFailing) is answered 507 with a one-line reason.
func TestHandler_StoreFailing(t *testing.T) {
	t.Parallel()
	store := &fullStore{memStore: &memStore{lists: make(map[string]todo.ListState)}}
	sys, err := todo.OpenStore(store, &todo.Options{Durability: todo.Async})
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	srv := httptest.NewServer(newHandler(t, sys, nil))
	defer srv.Close()
	post := func(list string) (int, string) {
		resp, err := http.Post(srv.URL+"/lists/"+list+"/entries", "application/json", strings.NewReader(`{"date":"2013-12-19","title":"x"}`))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(body)
	}
	if status, _ := post("bob"); status != http.StatusCreated {
		t.Fatalf("first add: %d", status)
	}
	store.full.Store(true)
	// A first add to a list reserves its ids, and waits for that commit,
	// which fails: the System is failing from then on.
	if status, body := post("alice"); status != http.StatusInsufficientStorage || !strings.Contains(body, "cannot be stored") {
		t.Fatalf("an add reserving ids on a full disk: %d %q, want 507", status, body)
	}
	status, body := post("bob")
	want := `{"error":"list \"bob\": cannot be stored now: storage is failing"}` + "\n"
	if status != http.StatusInsufficientStorage || body != want {
		t.Errorf("an add while the store fails: %d %q, want 507 %q", status, body, want)
	}
}
