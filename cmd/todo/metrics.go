package main

import (
	"io"
	"log/slog"
	"maps"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gotodo/todo"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// statsMetric is one of the System's Stats as a Prometheus metric.
type statsMetric struct {
	name, help string
	kind       prometheus.ValueType
	value      func(todo.Stats) float64
}

// statsMetrics are the System's Stats, a metric each. A field added to
// todo.Stats is exported by adding its row; TestStatsMetrics_EveryField
// fails until it is.
var statsMetrics = []statsMetric{
	{"todo_list_servers", "List servers running now, one per list held in memory.", prometheus.GaugeValue,
		func(s todo.Stats) float64 { return float64(s.ServersRunning) }},
	{"todo_list_servers_started_total", "List servers started (a list loaded into memory).", prometheus.CounterValue,
		func(s todo.Stats) float64 { return float64(s.ServersStarted) }},
	{"todo_list_servers_expired_total", "List servers stopped after the idle timeout.", prometheus.CounterValue,
		func(s todo.Stats) float64 { return float64(s.ServersExpired) }},
	{"todo_list_servers_evicted_total", "List servers retired early to keep within the cap on loaded lists.", prometheus.CounterValue,
		func(s todo.Stats) float64 { return float64(s.ServersEvicted) }},
	{"todo_list_servers_hibernating", "List servers hibernating now: their lists loaded, without a goroutine.", prometheus.GaugeValue,
		func(s todo.Stats) float64 { return float64(s.ServersHibernating) }},
	{"todo_list_server_hibernations_total", "Times a list server hibernated after the hibernation delay without requests.", prometheus.CounterValue,
		func(s todo.Stats) float64 { return float64(s.Hibernations) }},
	{"todo_list_server_wakes_total", "Times a hibernating list server was woken.", prometheus.CounterValue,
		func(s todo.Stats) float64 { return float64(s.Wakes) }},
	{"todo_list_server_requests_total", "Requests answered by list servers (writes, and reads of lists not loaded).", prometheus.CounterValue,
		func(s todo.Stats) float64 { return float64(s.RequestsServed) }},
	{"todo_panics_recovered_total", "Requests that panicked and failed with ErrCrashed.", prometheus.CounterValue,
		func(s todo.Stats) float64 { return float64(s.PanicsRecovered) }},
	{"todo_table_reads_total", "Reads answered from the shared table, without a list server.", prometheus.CounterValue,
		func(s todo.Stats) float64 { return float64(s.TableReads) }},
	{"todo_mailbox_waits_total", "Calls that found a list server's mailbox full and had to wait.", prometheus.CounterValue,
		func(s todo.Stats) float64 { return float64(s.MailboxWaits) }},
	{"todo_store_commits_total", "Batches of changes committed to the store (group commits).", prometheus.CounterValue,
		func(s todo.Stats) float64 { return float64(s.Commits) }},
	{"todo_store_changes_total", "Lists' changes stored; a change holds a batch of one list's requests.", prometheus.CounterValue,
		func(s todo.Stats) float64 { return float64(s.ChangesStored) }},
	{"todo_store_write_errors_total", "Changes whose commit to the store failed.", prometheus.CounterValue,
		func(s todo.Stats) float64 { return float64(s.WriteErrors) }},
	{"todo_store_write_retries_total", "Acknowledged changes queued again for a retry after a failed commit.", prometheus.CounterValue,
		func(s todo.Stats) float64 { return float64(s.WriteRetries) }},
	{"todo_store_unstored_lists", "Lists holding acknowledged changes that failed to commit, now.", prometheus.GaugeValue,
		func(s todo.Stats) float64 { return float64(s.Unstored) }},
	{"todo_failures_total", "Failures the System and its store met (failed commits, probes, checkpoints, loads), every one, though the log has a line per fault.", prometheus.CounterValue,
		func(s todo.Stats) float64 { return float64(s.Failures) }},
	{"todo_watches", "Watches of lists open now (event streams among them).", prometheus.GaugeValue,
		func(s todo.Stats) float64 { return float64(s.Watches) }},
	{"todo_watches_behind_total", "Watches ended because they fell too far behind their list (their clients resume).", prometheus.CounterValue,
		func(s todo.Stats) float64 { return float64(s.WatchesBehind) }},
	{"todo_list_files_written_total", "List files written by checkpoints.", prometheus.CounterValue,
		func(s todo.Stats) float64 { return float64(s.FilesWritten) }},
	{"todo_checkpoints_total", "Lists checkpointed into their files.", prometheus.CounterValue,
		func(s todo.Stats) float64 { return float64(s.Checkpoints) }},
	{"todo_log_segments", "Segments of the log, now.", prometheus.GaugeValue,
		func(s todo.Stats) float64 { return float64(s.LogSegments) }},
	{"todo_log_bytes", "Bytes in the log's segments, now.", prometheus.GaugeValue,
		func(s todo.Stats) float64 { return float64(s.LogBytes) }},
}

// statsCollector exports a System's Stats, read once per scrape. It is
// safe for concurrent use.
type statsCollector struct {
	stats func() todo.Stats
	descs []*prometheus.Desc // statsMetrics' descriptions, in their order
}

func newStatsCollector(stats func() todo.Stats) *statsCollector {
	c := &statsCollector{stats: stats}
	for _, m := range statsMetrics {
		c.descs = append(c.descs, prometheus.NewDesc(m.name, m.help, nil, nil))
	}
	return c
}

func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	for i, m := range statsMetrics {
		ch <- prometheus.MustNewConstMetric(c.descs[i], m.kind, m.value(s))
	}
}

// latencyBuckets are the bounds of the request latency histogram, in
// seconds: a read of a loaded list takes tens of microseconds, an fsynced
// write about a millisecond, a request that times out 5 s.
var latencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// metrics are the server command's Prometheus metrics, on a registry of
// its own (never the global one: run may serve several Systems in one
// process, as its tests do). It is safe for concurrent use.
type metrics struct {
	registry *prometheus.Registry
	requests *prometheus.CounterVec   // by route and code
	latency  *prometheus.HistogramVec // by route
	// inFlight counts the requests being answered, exported as a gauge
	// read at each scrape: an atomic add, where a prometheus.Gauge's Inc
	// and Dec are compare-and-swap loops over a float, which the cores
	// answering requests fight over.
	inFlight atomic.Int64
	// epoch is when the metrics were made: a request's time is read as
	// the monotonic time since then, one clock read at each end, where
	// time.Now reads the wall clock too.
	epoch time.Time

	// routes caches the counter and histogram of each route and code,
	// so that a request costs no allocation: WithLabelValues allocates.
	// It is copied on write, under mu; readers load it without a lock.
	routes   atomic.Pointer[map[routeCode]routeMetrics]
	mu       sync.Mutex     // serializes writers of routes, and guards patterns
	patterns map[string]int // the routes counted apart, and how many codes each has

	writers sync.Pool // of *statusWriter
}

type routeCode struct {
	route string
	code  int
}

type routeMetrics struct {
	requests prometheus.Counter
	latency  prometheus.Observer
}

// newMetrics registers the System's Stats, whether the server is healthy,
// the HTTP metrics, and the Go runtime and process collectors.
func newMetrics(stats func() todo.Stats, healthy func() bool) *metrics {
	m := &metrics{registry: prometheus.NewRegistry(), patterns: make(map[string]int), epoch: time.Now()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "todo_http_requests_total",
		Help: "HTTP requests answered, by route (the ServeMux pattern that matched) and status code.",
	}, []string{"route", "code"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "todo_http_request_duration_seconds",
		Help:    "Time to answer an HTTP request, by route, from the handler's start to its return.",
		Buckets: latencyBuckets,
	}, []string{"route"})
	inFlight := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "todo_http_requests_in_flight",
		Help: "HTTP requests being answered now.",
	}, func() float64 { return float64(m.inFlight.Load()) })
	m.registry.MustRegister(
		newStatsCollector(stats),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "todo_healthy",
			Help: "1 when GET /healthz answers ok, 0 when it answers 503: the data directory is unusable, or changes are not being stored.",
		}, func() float64 {
			if healthy() {
				return 1
			}
			return 0
		}),
		m.requests, m.latency, inFlight,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewBuildInfoCollector(),
	)
	empty := map[routeCode]routeMetrics{}
	m.routes.Store(&empty)
	return m
}

// handler serves the metrics in the exposition format.
func (m *metrics) handler(log *slog.Logger) http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelError),
		ErrorHandling: promhttp.ContinueOnError, // a metric that fails must not hide the others
	})
}

// instrument serves r with h and counts it under the route h matched:
// r.Pattern, which a ServeMux sets on the request it is given (and the
// library's handler sets on the routes it answers without one). A request
// no pattern matched counts under "unmatched".
func (m *metrics) instrument(h http.Handler, w http.ResponseWriter, r *http.Request) {
	m.inFlight.Add(1)
	sw, _ := m.writers.Get().(*statusWriter)
	if sw == nil {
		sw = &statusWriter{}
	}
	sw.ResponseWriter, sw.status = w, 0
	start := time.Since(m.epoch)
	returned := false
	defer func() {
		// Deferred, so that a handler that panics (net/http recovers it,
		// and http.ErrAbortHandler is such a panic) is still counted: as
		// a 500 when it wrote nothing.
		elapsed := time.Since(m.epoch) - start
		status := sw.status
		if status == 0 {
			status = http.StatusOK
			if !returned {
				status = http.StatusInternalServerError
			}
		}
		sw.ResponseWriter = nil
		m.writers.Put(sw)
		rm := m.route(r.Pattern, status)
		rm.requests.Inc()
		rm.latency.Observe(elapsed.Seconds())
		m.inFlight.Add(-1)
	}()
	h.ServeHTTP(sw, r)
	returned = true
}

// maxRoutes bounds the routes counted apart. The patterns of the muxes are
// few, but a ServeMux may report a redirect's path as its pattern: past
// the bound, a new route counts as "other", so that no client can make
// the series grow without end.
const maxRoutes = 200

// route returns the metrics of a route and status code, made on first use.
func (m *metrics) route(pattern string, code int) routeMetrics {
	if pattern == "" {
		pattern = "unmatched"
	}
	key := routeCode{pattern, code}
	if rm, ok := (*m.routes.Load())[key]; ok {
		return rm
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	routes := *m.routes.Load()
	if rm, ok := routes[key]; ok {
		return rm
	}
	if m.patterns[pattern] == 0 && len(m.patterns) >= maxRoutes {
		pattern = "other"
		key = routeCode{pattern, code}
		if rm, ok := routes[key]; ok {
			return rm
		}
	}
	m.patterns[pattern]++
	rm := routeMetrics{
		requests: m.requests.WithLabelValues(pattern, strconv.Itoa(code)),
		latency:  m.latency.WithLabelValues(pattern),
	}
	next := maps.Clone(routes)
	next[key] = rm
	m.routes.Store(&next)
	return rm
}

// statusWriter records the status code a handler answers.
type statusWriter struct {
	http.ResponseWriter
	status int // 0 until the handler writes its header or body
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 { // 1xx answers are not the final one
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

// WriteString passes io.WriteString through without the copy to []byte
// it would otherwise make.
func (w *statusWriter) WriteString(s string) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return io.WriteString(w.ResponseWriter, s)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
