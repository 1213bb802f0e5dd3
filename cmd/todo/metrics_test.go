package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gotodo/todo"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape reads base's /metrics, which must be in the text exposition
// format, and parses it.
func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("GET /metrics: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("GET /metrics is not in the exposition format: %v\n%s", err, body)
	}
	return families
}

// metricValue returns the value of the metric of family name whose labels
// are labels (name, value, ...), and whether there is one.
func metricValue(families map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f := families[name]
	if f == nil {
		return 0, false
	}
	for _, m := range f.Metric {
		if !hasLabels(m, labels) {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		case m.Untyped != nil:
			return m.Untyped.GetValue(), true
		}
	}
	return 0, false
}

func hasLabels(m *dto.Metric, labels []string) bool {
	if len(m.Label) != len(labels)/2 {
		return false
	}
	for i := 0; i < len(labels); i += 2 {
		if !slices.ContainsFunc(m.Label, func(l *dto.LabelPair) bool {
			return l.GetName() == labels[i] && l.GetValue() == labels[i+1]
		}) {
			return false
		}
	}
	return true
}

func TestMetrics_Exposition(t *testing.T) {
	t.Parallel()
	r := startRun(t)
	base := "http://" + r.addr
	for _, req := range [][2]string{
		{"POST", "/add_entry?list=bob&date=20131219&title=Dentist"},
		{"GET", "/entries?list=bob&date=20131219"},
		{"GET", "/entries?list=bob&date=20131219"},
		{"GET", "/entries?list=bob"}, // 400: no date
		{"GET", "/lists/bob/entries"},
		{"GET", "/nowhere"},
		{"GET", "/"},
		{"GET", "/web/app.js"},
		{"GET", "/healthz"},
	} {
		get(t, req[0], base+req[1])
	}
	// The Stats, as /debug/vars has them just before and just after the
	// scrape: the store may work in the background in between.
	debugVars := func() todo.Stats {
		code, body := get(t, "GET", base+"/debug/vars")
		var vars struct{ Todo todo.Stats }
		if err := json.Unmarshal([]byte(body), &vars); code != 200 || err != nil {
			t.Fatalf("GET /debug/vars: %d %v", code, err)
		}
		return vars.Todo
	}
	statsBefore := debugVars()
	families := scrape(t, base)
	statsAfter := debugVars()

	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"todo_http_requests_total", []string{"route", "POST /add_entry", "code", "200"}, 1},
		{"todo_http_requests_total", []string{"route", "GET /entries", "code", "200"}, 2},
		{"todo_http_requests_total", []string{"route", "GET /entries", "code", "400"}, 1},
		{"todo_http_requests_total", []string{"route", "GET /lists/{list}/entries", "code", "200"}, 1},
		{"todo_http_requests_total", []string{"route", "GET /{$}", "code", "200"}, 1},
		{"todo_http_requests_total", []string{"route", "GET /web/{name}", "code", "200"}, 1},
		{"todo_http_requests_total", []string{"route", "GET /healthz", "code", "200"}, 1},
		{"todo_http_requests_total", []string{"route", "GET /debug/vars", "code", "200"}, 1}, // the one before the scrape
		{"todo_http_request_duration_seconds", []string{"route", "GET /entries"}, 3},
		{"todo_http_request_duration_seconds", []string{"route", "POST /add_entry"}, 1},
		{"todo_http_requests_in_flight", nil, 1}, // the scrape itself
		{"todo_healthy", nil, 1},
	} {
		if got, ok := metricValue(families, c.name, c.labels...); !ok || got != c.want {
			t.Errorf("%s%q = %v (found: %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	// The unknown path is the library's 404, under its catch-all pattern.
	if got, _ := metricValue(families, "todo_http_requests_total", "route", "/", "code", "404"); got != 1 {
		t.Errorf("404 of /nowhere counted %v times", got)
	}
	for _, m := range statsMetrics {
		lo, hi := m.value(statsBefore), m.value(statsAfter)
		if got, ok := metricValue(families, m.name); !ok || got < min(lo, hi) || got > max(lo, hi) {
			t.Errorf("%s = %v (found: %v), want %v to %v, as /debug/vars has it", m.name, got, ok, lo, hi)
		}
		wantType := dto.MetricType_COUNTER
		if m.kind == prometheus.GaugeValue {
			wantType = dto.MetricType_GAUGE
		}
		if f := families[m.name]; f != nil && f.GetType() != wantType {
			t.Errorf("%s is a %v, want a %v", m.name, f.GetType(), wantType)
		}
	}
	for _, name := range []string{"go_goroutines", "go_gc_duration_seconds", "go_memstats_heap_alloc_bytes", "go_build_info",
		"process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds"} {
		if families[name] == nil {
			t.Errorf("no %s", name)
		}
	}

	// A request moves the counters: the HTTP ones and the System's.
	get(t, "POST", base+"/add_entry?list=bob&date=20131219&title=Again")
	after := scrape(t, base)
	if got, _ := metricValue(after, "todo_http_requests_total", "route", "POST /add_entry", "code", "200"); got != 2 {
		t.Errorf("after a second add, POST /add_entry 200 counted %v times", got)
	}
	before, _ := metricValue(families, "todo_list_server_requests_total")
	if got, _ := metricValue(after, "todo_list_server_requests_total"); got <= before {
		t.Errorf("todo_list_server_requests_total %v after an add, %v before", got, before)
	}
	if got, _ := metricValue(after, "todo_http_requests_total", "route", "GET /metrics", "code", "200"); got != 1 {
		t.Errorf("the first scrape counted %v times", got)
	}
}

// A list whose server hibernates shows in the gauge of hibernating
// servers and the counter of hibernations; the change that wakes it, in
// the counter of wakes.
func TestMetrics_Hibernation(t *testing.T) {
	t.Parallel()
	r := startRun(t, "-hibernate-after", "1ms")
	base := "http://" + r.addr
	get(t, "POST", base+"/add_entry?list=bob&date=20131219&title=Dentist")
	value := func(name string) float64 {
		got, ok := metricValue(scrape(t, base), name)
		if !ok {
			t.Fatalf("no %s", name)
		}
		return got
	}
	for deadline := time.Now().Add(10 * time.Second); value("todo_list_servers_hibernating") != 1; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("todo_list_servers_hibernating is not 1 10s after the only add")
		}
	}
	if got := value("todo_list_server_hibernations_total"); got != 1 {
		t.Errorf("todo_list_server_hibernations_total = %v, want 1", got)
	}
	get(t, "POST", base+"/add_entry?list=bob&date=20131219&title=Again")
	if got := value("todo_list_server_wakes_total"); got != 1 {
		t.Errorf("todo_list_server_wakes_total = %v after the add that woke it, want 1", got)
	}
}

// TestStatsMetrics_EveryField: every field of todo.Stats is exported, by
// one row of statsMetrics. A field added to Stats fails it until its row
// is written.
func TestStatsMetrics_EveryField(t *testing.T) {
	t.Parallel()
	var s todo.Stats
	v := reflect.ValueOf(&s).Elem()
	for i := range v.NumField() {
		v.Field(i).SetInt(int64(i + 1)) // each field a value of its own
	}
	seen := make(map[float64]string)
	for _, m := range statsMetrics {
		got := m.value(s)
		if other, ok := seen[got]; ok {
			t.Errorf("%s and %s export the same field", m.name, other)
		}
		seen[got] = m.name
		if !strings.HasPrefix(m.name, "todo_") || (m.kind == prometheus.CounterValue) != strings.HasSuffix(m.name, "_total") {
			t.Errorf("%s: a counter's name ends in _total, a gauge's does not, and both start with todo_", m.name)
		}
	}
	for i := range v.NumField() {
		if _, ok := seen[float64(i+1)]; !ok {
			t.Errorf("todo.Stats.%s is not exported in /metrics: add its row to statsMetrics", v.Type().Field(i).Name)
		}
	}
}

// TestMetrics_Instrument: the status recorded is the one written, 200 for
// a handler that writes only a body, and 500 for one that panics before
// writing.
func TestMetrics_Instrument(t *testing.T) {
	t.Parallel()
	m := newMetrics(func() todo.Stats { return todo.Stats{} }, func() bool { return true })
	mux := http.NewServeMux()
	mux.HandleFunc("GET /teapot", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	mux.HandleFunc("GET /body", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "body") })
	mux.HandleFunc("GET /panic", func(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) })
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { m.instrument(mux, w, r) })
	for _, p := range []string{"/teapot", "/body", "/panic", "/none"} {
		func() {
			defer func() { recover() }()
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", p, nil))
		}()
	}
	srv := httptest.NewServer(m.handler(slog.New(slog.DiscardHandler)))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range [][2]string{{"GET /teapot", "418"}, {"GET /body", "200"}, {"GET /panic", "500"}, {"unmatched", "404"}} {
		if got, _ := metricValue(families, "todo_http_requests_total", "route", c[0], "code", c[1]); got != 1 {
			t.Errorf("%s %s counted %v times", c[0], c[1], got)
		}
	}
	if got, _ := metricValue(families, "todo_http_requests_in_flight"); got != 0 {
		t.Errorf("%v requests in flight after they all returned", got)
	}
}

// TestMetrics_RoutesBounded: however many patterns are reported, the
// routes counted apart stay bounded, the rest counted as "other".
func TestMetrics_RoutesBounded(t *testing.T) {
	t.Parallel()
	m := newMetrics(func() todo.Stats { return todo.Stats{} }, func() bool { return true })
	for i := range 3 * maxRoutes {
		m.route(fmt.Sprintf("/redirect/%d", i), 301).requests.Inc()
	}
	m.route("/redirect/0", 301).requests.Inc() // counted apart before the bound
	families, err := m.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := make(map[string]float64)
	for _, f := range families {
		if f.GetName() != "todo_http_requests_total" {
			continue
		}
		for _, metric := range f.Metric {
			for _, l := range metric.Label {
				if l.GetName() == "route" {
					counts[l.GetValue()] += metric.Counter.GetValue()
				}
			}
		}
	}
	if len(counts) != maxRoutes+1 || counts["other"] != 2*maxRoutes || counts["/redirect/0"] != 2 {
		t.Errorf("%d routes, other %v, /redirect/0 %v; want %d routes, other %d, /redirect/0 2", len(counts), counts["other"], counts["/redirect/0"], maxRoutes+1, 2*maxRoutes)
	}
}
