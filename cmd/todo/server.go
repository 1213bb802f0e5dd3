package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
// node): the original protocol and the JSON API. It is the command's only
// call of todohttp.NewHandler.
func listsHandler(svc todo.Service, log *slog.Logger, cfg *config) (http.Handler, error) {
	return todohttp.NewHandler(svc, cfg.handlerOptions(log))
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
// health answers /healthz and vars /debug/vars.
func newApp(svc todo.Service, health, vars http.Handler, m *metrics, log *slog.Logger, cfg *config) (*app, error) {
	lists, err := listsHandler(svc, log, cfg)
	if err != nil {
		return nil, err
	}
	page := newPageHandler()
	own := http.NewServeMux()
	own.HandleFunc("GET /{$}", page.index)
	own.HandleFunc("GET /web/{name}", page.file)
	own.Handle("GET /healthz", health)
	own.Handle("GET /metrics", m.handler(log))
	own.Handle("GET /debug/vars", vars)
	for _, p := range []string{"/{$}", "/web/{name}", "/healthz", "/metrics", "/debug/vars"} {
		own.Handle(p, methodNotAllowed("GET, HEAD"))
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
	case path == "/", path == "/healthz", path == "/metrics", path == "/debug/vars", strings.HasPrefix(path, "/web/"):
		return a.own
	}
	return a.lists
}

// debugHandler is what the -debug-addr listener serves: pprof,
// /debug/vars and /metrics. The pprof endpoints are written here on
// runtime/pprof rather than taken from net/http/pprof, whose import
// registers them on the default mux.
func debugHandler(sys *todo.System, m *metrics, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/pprof/", pprofIndex)
	mux.HandleFunc("GET /debug/pprof/cmdline", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprint(w, strings.Join(os.Args, "\x00"))
	})
	mux.HandleFunc("GET /debug/pprof/profile", pprofCPU)
	mux.Handle("GET /debug/vars", varsHandler(sys))
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

// varsHandler serves what expvar's handler does, the process's command
// line and memory statistics, with this System's Stats added under "todo".
// It does not import expvar, whose init registers /debug/vars on
// net/http's default mux, and a System's Stats are not global, so run may
// serve several Systems in one process (as its tests do) without a clash.
func varsHandler(sys *todo.System) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		body, err := json.MarshalIndent(struct {
			Cmdline  []string          `json:"cmdline"`
			Memstats *runtime.MemStats `json:"memstats"`
			Todo     todo.Stats        `json:"todo"`
		}{os.Args, &ms, sys.Stats()}, "", " ")
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
// check of the data directory, and whether the System stores its
// changes. It is safe for concurrent use.
type health struct {
	storage func() error // the System's Health; nil means none to ask

	mu  sync.Mutex // guards err
	err error      // the watchdog's last check
}

func (h *health) set(err error) {
	h.mu.Lock()
	h.err = err
	h.mu.Unlock()
}

// problem returns what is wrong, as /healthz says it, or "".
func (h *health) problem() string {
	h.mu.Lock()
	err := h.err
	h.mu.Unlock()
	if err != nil {
		return "data directory unusable"
	}
	if h.storage != nil && h.storage() != nil {
		return "changes are not being stored"
	}
	return ""
}

// healthy reports whether /healthz answers ok.
func (h *health) healthy() bool { return h.problem() == "" }

func (h *health) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	// The reasons are fixed strings: the errors behind them may hold paths,
	// which the log has.
	if p := h.problem(); p != "" {
		w.Header().Set("Retry-After", "5")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, p)
		return
	}
	io.WriteString(w, "ok")
}

// listenLoopback listens on addr, which must be a loopback address: what
// is served there (pprof) must not be reachable from another machine.
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

// serve serves sys on ln (and the debug handler on debugLn, if not nil)
// until ctx ends, the listener dies or the data directory becomes
// unusable; then it stops the servers gracefully, closes sys, and returns
// why it stopped (nil for ctx) joined with Close's error.
func serve(ctx context.Context, cfg *config, log *slog.Logger, sys *todo.System, ln, debugLn net.Listener) error {
	// The directory's identity is taken here, not in the watchdog's
	// goroutine, so that it is known before "listening" is logged: a
	// directory replaced after that is always caught.
	// abandon closes what serve was given, when it cannot start.
	abandon := func(err error) error {
		errs := []error{err, ln.Close()}
		if debugLn != nil {
			errs = append(errs, debugLn.Close())
		}
		return errors.Join(append(errs, sys.Close())...)
	}
	want, err := os.Stat(sys.Dir())
	if err != nil {
		return abandon(fmt.Errorf("data directory unusable: %w", err))
	}
	h := &health{storage: sys.Health}
	m := newMetrics(sys.Stats, h.healthy)
	a, err := newApp(sys, h, varsHandler(sys), m, log, cfg)
	if err != nil {
		return abandon(err)
	}
	srv := newServer(a, log, serverLimits(cfg.timeout))
	fatal := make(chan error, 2) // the two goroutines that may fail send at most once each
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			fatal <- fmt.Errorf("the listener on %s died: %w", ln.Addr(), err)
		}
	})

	var debugSrv *http.Server
	debugAddr := ""
	if debugLn != nil {
		debugAddr = debugLn.Addr().String()
		l := serverLimits(cfg.timeout)
		l.WriteTimeout = 0 // CPU profiles and traces take as long as asked
		debugSrv = newServer(debugHandler(sys, m, log), log, l)
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
		if err := watchDir(watchCtx, sys.Dir(), want, cfg.watchdog, h, log); err != nil {
			fatal <- err
		}
	})

	// Every value logged is the one in force: parseConfig refuses those
	// the System would replace by a default.
	log.Info("listening", "addr", ln.Addr().String(), "debug_addr", debugAddr, "data", sys.Dir(),
		"durability", cfg.durability.String(), "workers", cfg.workers, "max_loaded", cfg.maxLoaded, "idle", cfg.idleString(),
		"timeout", cfg.timeout.String(), "shutdown_timeout", cfg.shutdownTimeout.String(),
		"watchdog", cfg.watchdog.String(), "pid", os.Getpid())

	var cause error
	select {
	case <-ctx.Done():
		log.Info("stopping", "cause", context.Cause(ctx).Error())
	case cause = <-fatal:
		log.Error("stopping: cannot go on", "err", cause)
	}
	stopWatch()

	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Warn("in-flight requests cut short", "err", err)
		srv.Close()
	}
	if debugSrv != nil {
		debugSrv.Close()
	}
	wg.Wait()

	err = sys.Close()
	if err != nil {
		log.Error("closing the lists", "err", err)
	} else {
		log.Info("stopped: every change written")
	}
	return errors.Join(cause, err)
}
