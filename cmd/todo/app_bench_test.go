package main

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gotodo/todo"
)

// discardWriter is the cheapest http.ResponseWriter, as in the root's
// BenchmarkHandler: it keeps the status and counts the body.
type discardWriter struct {
	header http.Header
	status int
	n      int
}

func (w *discardWriter) Header() http.Header { return w.header }

func (w *discardWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *discardWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.n += len(p)
	return len(p), nil
}

func (w *discardWriter) WriteString(s string) (int, error) {
	return w.Write([]byte(s)) // does not allocate: w.Write keeps nothing
}

func (w *discardWriter) reset() {
	clear(w.header)
	w.status, w.n = 0, 0
}

// BenchmarkApp measures what the command adds to the library's handler on
// the original routes: its routing beside the library (no ServeMux
// matching for the library's paths) and the metrics of every request.
// impl=library is the library's handler called directly, impl=app the
// command's handler in front of the same one, in the same run. The lists
// are in memory (Async durability), so that only the HTTP layers are
// measured.
func BenchmarkApp(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	for _, route := range []struct{ name, method, target string }{
		{"entries", "GET", "/entries?list=bob&date=20131219"},
		{"add_entry", "POST", "/add_entry?list=bob&date=20131219&title=Dentist"},
	} {
		for _, impl := range []string{"library", "app"} {
			b.Run("route="+route.name+"/impl="+impl, func(b *testing.B) {
				sys, err := todo.Open(b.TempDir(), &todo.Options{Durability: todo.Async})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { sys.Close() })
				for range 3 { // a day of three entries, as the root's benchmark reads
					if _, err := sys.ServerProcess("bob").AddEntry(ctx, todo.Entry{Date: todo.Date{Year: 2013, Month: time.December, Day: 19}, Title: "Dentist"}); err != nil {
						b.Fatal(err)
					}
				}
				log := slog.New(slog.DiscardHandler)
				var h http.Handler
				if impl == "library" {
					h, err = listsHandler(sys, log, &config{timeout: 5 * time.Second}, nil, nil)
				} else {
					h, err = newApp(sys, &health{}, varsHandler(systemBackend{sys}), newMetrics(sys.Stats, func() bool { return true }), log, &config{timeout: 5 * time.Second}, nil, nil)
				}
				if err != nil {
					b.Fatal(err)
				}
				r := httptest.NewRequest(route.method, route.target, nil).WithContext(ctx)
				r.Host = "127.0.0.1:5454" // as a local client sends it; httptest's is example.com
				w := &discardWriter{header: http.Header{}}
				for range 10 { // warm up the pools and the metrics of the route
					w.reset()
					h.ServeHTTP(w, r)
				}
				if w.status != http.StatusOK {
					b.Fatalf("%s %s: %d", route.method, route.target, w.status)
				}
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					w.reset()
					h.ServeHTTP(w, r)
				}
				b.StopTimer()
				if w.status != http.StatusOK {
					b.Fatalf("status %d", w.status)
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
			})
		}
	}
}

// TestApp_OriginalRoutesCostNoAllocation: the command's handler allocates
// nothing more than the library's on the original routes. It is the
// allocation half of BenchmarkApp, as a test, so that a change that makes
// every request allocate fails here rather than in a benchmark nobody ran.
func TestApp_OriginalRoutesCostNoAllocation(t *testing.T) {
	if raceEnabled {
		t.Skip("counting allocations needs a build without -race: the race detector's sync.Pool drops items on purpose")
	}
	sys, err := todo.Open(t.TempDir(), &todo.Options{Durability: todo.Async})
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	log := slog.New(slog.DiscardHandler)
	lists, err := listsHandler(sys, log, &config{timeout: 5 * time.Second}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	app, err := newApp(sys, &health{}, varsHandler(systemBackend{sys}), newMetrics(sys.Stats, func() bool { return true }), log, &config{timeout: 5 * time.Second}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"/entries?list=bob&date=20131219", "/add_entry?list=bob&date=20131219&title=Dentist"} {
		method := "GET"
		if target[1] == 'a' {
			method = "POST"
		}
		r := httptest.NewRequest(method, target, nil)
		r.Host = "127.0.0.1:5454" // as a local client sends it; httptest's is example.com
		w := &discardWriter{header: http.Header{}}
		allocs := func(h http.Handler) float64 {
			return testing.AllocsPerRun(200, func() {
				w.reset()
				h.ServeHTTP(w, r)
			})
		}
		allocs(app) // warm up pools, the list, the metrics of the route
		library, command := allocs(lists), allocs(app)
		// AllocsPerRun counts the allocations of every goroutine, the
		// list's server among them, whose batches may differ between two
		// runs by a fraction of an allocation per request: half of one is
		// noise, one more per request is the command's.
		if w.status != http.StatusOK || command > library+0.5 {
			t.Errorf("%s %s: %d; %.1f allocations through the command's handler, %.1f through the library's", method, target, w.status, command, library)
		}
	}
}

// BenchmarkInstrument measures the metrics of one request alone, around a
// handler that does nothing.
func BenchmarkInstrument(b *testing.B) {
	m := newMetrics(func() todo.Stats { return todo.Stats{} }, func() bool { return true })
	noop := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	r := httptest.NewRequest("GET", "/entries", nil)
	r.Pattern = "GET /entries"
	w := &discardWriter{header: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		m.instrument(noop, w, r)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// BenchmarkInstrumentParallel is BenchmarkInstrument from a goroutine per
// core at once, as a loaded server counts its requests: what the cores
// share (the in-flight count, the route's counter and histogram) is
// fought over.
func BenchmarkInstrumentParallel(b *testing.B) {
	m := newMetrics(func() todo.Stats { return todo.Stats{} }, func() bool { return true })
	noop := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		r := httptest.NewRequest("GET", "/entries", nil)
		r.Pattern = "GET /entries"
		w := &discardWriter{header: http.Header{}}
		for pb.Next() {
			m.instrument(noop, w, r)
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}
