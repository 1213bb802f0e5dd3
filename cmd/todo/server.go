package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gotodo/todo"
	"github.com/gotodo/todo/cluster"
	"github.com/gotodo/todo/todohttp"
)

// limits are the bounds of the hardened http.Server. A zero http.Server
// has none, and 200 slowloris connections stayed open until
// ReadHeaderTimeout was set.
type limits struct {
	ReadHeaderTimeout time.Duration // to read a request's headers
	ReadTimeout       time.Duration // to read a whole request, body included
	WriteTimeout      time.Duration // from the end of the headers to the end of the answer
	IdleTimeout       time.Duration // a keep-alive connection waiting for its next request
	MaxHeaderBytes    int           // request line (with the query) and headers
}

// serverLimits are the limits for a request timeout: a request may take
// 10s to arrive, body included.
func serverLimits(timeout time.Duration) limits { return limitsFor(10*time.Second, timeout) }

// limitsFor are the limits for a request that may take read to arrive and
// timeout to be handled. The write deadline counts from the end of the
// headers, so it must cover the body's read, the handling and a little
// more: at ReadTimeout + 5s, a body stalled until the read timeout got
// no answer at all where it should get its 408 (both deadlines fell at 10s).
func limitsFor(read, timeout time.Duration) limits {
	return limits{
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       read,
		WriteTimeout:      read + timeout + 5*time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    32 << 10,
	}
}

// newServer returns an http.Server for h with the given limits, logging
// its own errors (failed accepts, for one) to log.
func newServer(h http.Handler, log *slog.Logger, l limits) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		ReadTimeout:       l.ReadTimeout,
		WriteTimeout:      l.WriteTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    l.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// listsHandler is the library's handler of svc (a System, or a cluster
// node): the original protocol and the JSON API, authenticated with auth
// (nil: no authentication), its event streams ended when stopping is
// closed (nil: never). It is the command's one handler that serves;
// config.check makes others over no Service, only to have the handler's
// options checked before anything opens.
func listsHandler(svc todo.Service, log *slog.Logger, cfg *config, auth func(*http.Request) (*todohttp.Principal, error), stopping <-chan struct{}) (http.Handler, error) {
	o := cfg.handlerOptions(log)
	o.Authenticate = auth
	o.Stopping = stopping
	return todohttp.NewHandler(svc, o)
}

// app is what the main listener serves: the library's handler, and beside
// it the command's own paths (the page, /healthz, /metrics, /debug/vars),
// every request counted in the metrics. It is safe for concurrent use.
type app struct {
	lists   http.Handler   // the library's handler, which routes its own paths
	own     *http.ServeMux // the command's paths
	metrics *metrics
}

// newApp mounts the library's handler of svc beside the command's paths:
// health answers /healthz and vars /debug/vars. With sec's tokens (sec
// may be nil: none), the lists need a token with their rights, /metrics
// the metrics right, /debug/vars the admin right, and /session signs the
// page in; /healthz and the page's files stay open, holding no list.
// Closing stopping ends the lists' event streams.
func newApp(svc todo.Service, health, vars http.Handler, m *metrics, log *slog.Logger, cfg *config, sec *security, stopping <-chan struct{}) (*app, error) {
	auth := sec.authenticate()
	lists, err := listsHandler(svc, log, cfg, auth, stopping)
	if err != nil {
		return nil, err
	}
	page := newPageHandler()
	own := http.NewServeMux()
	own.HandleFunc("GET /{$}", page.index)
	own.HandleFunc("GET /web/{name}", page.file)
	own.Handle("GET /healthz", health)
	own.Handle("GET /metrics", todohttp.RequireRights(auth, todohttp.RightMetrics, m.handler(log)))
	own.Handle("GET /debug/vars", todohttp.RequireRights(auth, todohttp.RightAdmin, vars))
	for _, p := range []string{"/{$}", "/web/{name}", "/healthz", "/metrics", "/debug/vars"} {
		own.Handle(p, methodNotAllowed("GET, HEAD"))
	}
	if auth != nil {
		s, err := newSessionHandler(auth, splitList(cfg.trustedOrigins), log)
		if err != nil {
			return nil, err
		}
		own.Handle("/session", s)
	}
	return &app{lists: lists, own: own, metrics: m}, nil
}

func (a *app) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.metrics.instrument(a.route(r.URL.Path), w, r)
}

// route sends the command's paths to its mux and every other path to the
// library's handler, which routes them itself: the original routes, which
// take nearly every request, cost no ServeMux matching here.
func (a *app) route(path string) http.Handler {
	switch {
	case path == "/", path == "/healthz", path == "/metrics", path == "/debug/vars", path == "/session", strings.HasPrefix(path, "/web/"):
		return a.own
	}
	return a.lists
}

// debugHandler is what the -debug-addr listener serves: pprof,
// /debug/vars and /metrics. The pprof endpoints are written here on
// runtime/pprof rather than taken from net/http/pprof, whose import
// registers them on the default mux.
func debugHandler(b backend, m *metrics, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/pprof/", pprofIndex)
	mux.HandleFunc("GET /debug/pprof/cmdline", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprint(w, strings.Join(os.Args, "\x00"))
	})
	mux.HandleFunc("GET /debug/pprof/profile", pprofCPU)
	mux.Handle("GET /debug/vars", varsHandler(b))
	mux.Handle("GET /metrics", m.handler(log))
	return mux
}

// pprofIndex lists the profiles, or serves the one named in the path
// (/debug/pprof/goroutine?debug=1), as net/http/pprof does.
func pprofIndex(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/debug/pprof/")
	if name == "" {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		for _, p := range pprof.Profiles() {
			fmt.Fprintf(w, "%s %d\n", p.Name(), p.Count())
		}
		return
	}
	p := pprof.Lookup(name)
	if p == nil {
		http.Error(w, "unknown profile", http.StatusNotFound)
		return
	}
	debug, _ := strconv.Atoi(r.FormValue("debug"))
	if debug > 0 {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	} else {
		w.Header().Set("Content-Type", "application/octet-stream")
	}
	p.WriteTo(w, debug)
}

// pprofCPU serves a CPU profile of ?seconds= (default 30, at most 120).
func pprofCPU(w http.ResponseWriter, r *http.Request) {
	sec, err := strconv.Atoi(r.FormValue("seconds"))
	if err != nil || sec <= 0 {
		sec = 30
	}
	sec = min(sec, 120)
	w.Header().Set("Content-Type", "application/octet-stream")
	if err := pprof.StartCPUProfile(w); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	select {
	case <-time.After(time.Duration(sec) * time.Second):
	case <-r.Context().Done():
	}
	pprof.StopCPUProfile()
}

// debugVars is what /debug/vars answers: what expvar's handler does, the
// process's command line and memory statistics, with the System's Stats
// added under "todo", and a cluster node's under "cluster".
type debugVars struct {
	Cmdline  []string          `json:"cmdline"`
	Memstats *runtime.MemStats `json:"memstats"`
	Todo     todo.Stats        `json:"todo"`
	Cluster  *cluster.Stats    `json:"cluster,omitempty"`
}

// varsHandler serves b's debugVars. It does not import expvar, whose init
// registers /debug/vars on net/http's default mux, and a System's Stats
// are not global, so run may serve several Systems in one process (as its
// tests do) without a clash.
func varsHandler(b backend) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := debugVars{Cmdline: os.Args, Memstats: new(runtime.MemStats)}
		runtime.ReadMemStats(v.Memstats)
		b.vars(&v)
		body, err := json.MarshalIndent(v, "", " ")
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Write(append(body, '\n'))
	})
}

func methodNotAllowed(allow string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	})
}

// health is what /healthz answers: the outcome of the watchdog's last
// check of the data directory, and the backend's own health. It is safe
// for concurrent use.
type health struct {
	// report is the backend's health, given the watchdog's verdict ("" when
	// the directory is fine); nil means the directory's verdict alone.
	report func(dirProblem string) healthReport
	// insecure adds that the server runs -insecure to every answer.
	insecure bool

	mu  sync.Mutex // guards err
	err error      // the watchdog's last check
}

// healthReport is one answer of /healthz.
type healthReport struct {
	ok          bool // 200, else 503
	contentType string
	retryAfter  string // seconds, on a 503
	body        []byte
}

// systemHealth is one node's health: the watchdog's verdict first, then
// whether the System stores its changes (storage is its Health). The
// reasons are fixed strings: the errors behind them may hold paths, which
// the log has.
func systemHealth(dirProblem string, storage error) healthReport {
	problem := dirProblem
	if problem == "" && storage != nil {
		problem = "changes are not being stored"
	}
	r := healthReport{ok: problem == "", contentType: "text/plain; charset=utf-8", retryAfter: "5", body: []byte(problem)}
	if r.ok {
		r.body = []byte("ok")
	}
	return r
}

func (h *health) set(err error) {
	h.mu.Lock()
	h.err = err
	h.mu.Unlock()
}

// current is what /healthz answers now.
func (h *health) current() healthReport {
	h.mu.Lock()
	err := h.err
	h.mu.Unlock()
	problem := ""
	if err != nil {
		problem = "data directory unusable"
	}
	var r healthReport
	if h.report == nil {
		r = systemHealth(problem, nil)
	} else {
		r = h.report(problem)
	}
	if h.insecure {
		r = insecureHealth(r)
	}
	return r
}

// healthy reports whether /healthz answers ok.
func (h *health) healthy() bool { return h.current().ok }

func (h *health) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rep := h.current()
	w.Header().Set("Content-Type", rep.contentType)
	w.Header().Set("Cache-Control", "no-store")
	if !rep.ok {
		w.Header().Set("Retry-After", rep.retryAfter)
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	w.Write(rep.body)
}

// listenLoopback listens on addr, which must be a loopback address: what
// is served there (pprof) must not be reachable from another machine.
// check refuses any other address before anything starts; this is the
// last word on a name (localhost) the resolver answers for.
func listenLoopback(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	if a, ok := ln.Addr().(*net.TCPAddr); !ok || !a.IP.IsLoopback() {
		ln.Close()
		return nil, fmt.Errorf("-debug-addr %s is not a loopback address", addr)
	}
	return ln, nil
}

// backend is what a server serves: one node's System (systemBackend), or
// a cluster node (nodeBackend, in cluster.go). What differs between the
// two is behind it; serve is the one lifecycle both go through.
type backend interface {
	todo.Service
	// dir is the data directory, which the watchdog checks.
	dir() string
	// health is what /healthz answers, given the watchdog's verdict on the
	// data directory ("" when it is fine).
	health(dirProblem string) healthReport
	// stats are the local System's counters, for /metrics.
	stats() todo.Stats
	// vars fills in what /debug/vars shows of the backend.
	vars(v *debugVars)
	// logAttrs are what "listening" logs of the backend, besides what
	// every server logs.
	logAttrs() []any
	// stopped is what is logged of a stop that lost nothing.
	stopped() string
	// shutdown stops the backend within ctx, storing every change.
	shutdown(ctx context.Context) error
}

// opener opens the backend cfg asks for. It is called once the listeners
// are open, so a port in use leaves nothing behind.
type opener func(ctx context.Context, cfg *config, log *slog.Logger) (backend, error)

// systemBackend serves one node: a System over the data directory.
type systemBackend struct{ *todo.System }

func openSystem(ctx context.Context, cfg *config, log *slog.Logger) (backend, error) {
	sys, err := todo.Open(cfg.data, cfg.systemOptions(log))
	if err != nil {
		return nil, withRepairHint(err, cfg.data)
	}
	return systemBackend{sys}, nil
}

func (s systemBackend) dir() string { return s.Dir() }
func (s systemBackend) health(dirProblem string) healthReport {
	return systemHealth(dirProblem, s.Health())
}
func (s systemBackend) stats() todo.Stats                  { return s.Stats() }
func (s systemBackend) vars(v *debugVars)                  { v.Todo = s.Stats() }
func (s systemBackend) logAttrs() []any                    { return nil }
func (s systemBackend) stopped() string                    { return "stopped: every change written" }
func (s systemBackend) shutdown(ctx context.Context) error { return s.Shutdown(ctx) }

// serve is the lifecycle of a server, one node or a cluster node: it
// listens (first, so that a port in use leaves no data directory behind),
// opens what open opens, and serves it (serveOn).
func serve(ctx context.Context, cfg *config, log *slog.Logger, open opener) error {
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return err
	}
	var debugLn net.Listener
	if cfg.debugAddr != "" {
		if debugLn, err = listenLoopback(cfg.debugAddr); err != nil {
			return errors.Join(err, ln.Close())
		}
	}
	closeListeners := func(err error) error {
		errs := []error{err, ln.Close()}
		if debugLn != nil {
			errs = append(errs, debugLn.Close())
		}
		return errors.Join(errs...)
	}
	// The tokens file and the certificate are read before the backend
	// opens: one refused leaves no data directory behind.
	sec, err := openSecurity(cfg, log)
	if err != nil {
		return closeListeners(err)
	}
	b, err := open(ctx, cfg, log)
	if err != nil {
		return closeListeners(err)
	}
	return serveOn(ctx, cfg, log, b, ln, debugLn, sec)
}

// serveOn serves b on ln (and the debug handler on debugLn, if not nil)
// until ctx ends, the listener dies or the data directory becomes
// unusable; then it stops the servers gracefully, shuts b down, and
// returns why it stopped (nil for ctx) joined with the shutdown's error.
// Each of the two steps of the stop, the requests in flight and b's
// shutdown, is bounded by -shutdown-timeout.
func serveOn(ctx context.Context, cfg *config, log *slog.Logger, b backend, ln, debugLn net.Listener, sec *security) error {
	// abandon closes what serveOn was given, when it cannot start.
	abandon := func(err error) error {
		errs := []error{err, ln.Close()}
		if debugLn != nil {
			errs = append(errs, debugLn.Close())
		}
		stopCtx, cancel := context.WithTimeout(context.Background(), cfg.shutdownTimeout)
		defer cancel()
		return errors.Join(append(errs, b.shutdown(stopCtx))...)
	}
	// The directory's identity is taken here, not in the watchdog's
	// goroutine, so that it is known before "listening" is logged: a
	// directory replaced after that is always caught.
	want, err := os.Stat(b.dir())
	if err != nil {
		return abandon(fmt.Errorf("data directory unusable: %w", err))
	}
	h := &health{report: b.health, insecure: sec != nil && sec.insecure}
	m := newMetrics(b.stats, h.healthy)
	// Event streams never end on their own: Shutdown, which waits for
	// every request, ends them first, and their clients reconnect.
	stopping := make(chan struct{})
	a, err := newApp(b, h, varsHandler(b), m, log, cfg, sec, stopping)
	if err != nil {
		return abandon(err)
	}
	srv := newServer(a, log, serverLimits(cfg.timeout))
	srv.RegisterOnShutdown(func() { close(stopping) })
	serveLn := srv.Serve
	if sec.tls() {
		srv.TLSConfig = sec.cert.tlsConfig()
		serveLn = func(ln net.Listener) error { return srv.ServeTLS(ln, "", "") } // HTTP/2 included
	}
	fatal := make(chan error, 2) // the two goroutines that may fail send at most once each
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := serveLn(ln); !errors.Is(err, http.ErrServerClosed) {
			fatal <- fmt.Errorf("the listener on %s died: %w", ln.Addr(), err)
		}
	})

	var debugSrv *http.Server
	debugAddr := ""
	if debugLn != nil {
		debugAddr = debugLn.Addr().String()
		l := serverLimits(cfg.timeout)
		l.WriteTimeout = 0 // CPU profiles and traces take as long as asked
		debugSrv = newServer(debugHandler(b, m, log), log, l)
		wg.Go(func() {
			// The debug listener is not something to die for.
			if err := debugSrv.Serve(debugLn); !errors.Is(err, http.ErrServerClosed) {
				log.Error("debug listener died", "addr", debugAddr, "err", err)
			}
		})
	}

	watchCtx, stopWatch := context.WithCancel(context.Background())
	defer stopWatch()
	wg.Go(func() {
		if err := watchDir(watchCtx, b.dir(), want, cfg.watchdog, h, log); err != nil {
			fatal <- err
		}
	})
	hup, stopHangups := sec.catchHangups()
	defer stopHangups()
	wg.Go(func() { sec.reloadOnHangups(watchCtx, hup, log) })

	// Every value logged is the one in force: parseConfig refuses those
	// the System would replace by a default.
	sec.warn(cfg, ln.Addr().String(), log)
	log.Info("listening", append([]any{"addr", ln.Addr().String(), "debug_addr", debugAddr, "data", b.dir(),
		"durability", cfg.durability.String(), "workers", cfg.workers, "max_loaded", cfg.maxLoaded, "idle", cfg.idleString(),
		"hibernate_after", cfg.hibernateAfter.String(), "timeout", cfg.timeout.String(), "shutdown_timeout", cfg.shutdownTimeout.String(),
		"watchdog", cfg.watchdog.String(), "pid", os.Getpid()}, append(sec.logAttrs(), b.logAttrs()...)...)...)

	var cause error
	select {
	case <-ctx.Done():
		log.Info("stopping", "cause", context.Cause(ctx).Error())
	case cause = <-fatal:
		log.Error("stopping: cannot go on", "err", cause)
	}
	stopWatch()

	httpCtx, cancel := context.WithTimeout(context.Background(), cfg.shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(httpCtx); err != nil {
		log.Warn("in-flight requests cut short", "err", err)
		srv.Close()
	}
	if debugSrv != nil {
		debugSrv.Close()
	}
	wg.Wait()

	stopCtx, cancelStop := context.WithTimeout(context.Background(), cfg.shutdownTimeout)
	defer cancelStop()
	err = b.shutdown(stopCtx)
	if err != nil {
		log.Error("closing the lists", "err", err)
	} else {
		log.Info(b.stopped())
	}
	return errors.Join(cause, err)
}
