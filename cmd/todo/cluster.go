package main

// Cluster mode: the flags that turn it on, and serving a cluster.Node
// instead of a System. See docs/cluster.md.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gotodo/todo"
	"github.com/gotodo/todo/cluster"
)

// clusterConfig is what the cluster flags ask for. Cluster mode is on when
// -cluster, -join, -peers or -nats is given; without them the command keeps
// the data directory's file store.
type clusterConfig struct {
	node     string
	addr     string // -cluster: where the embedded server takes routes
	peers    string // comma-separated, -peers and -join together
	natsURL  string
	natsAddr string
	lease    time.Duration
}

func (c *clusterConfig) enabled() bool {
	return c.addr != "" || c.peers != "" || c.natsURL != ""
}

// addClusterFlags registers the cluster flags on fs, each defaulting to
// its environment variable.
func addClusterFlags(fs *flag.FlagSet, c *clusterConfig, getenv func(string) string) error {
	vars := []struct {
		name, env, usage string
		value            flag.Value
	}{
		{"node", "TODO_NODE", "cluster: this node's `name`, unique and stable (letters, digits, - _ .)", stringValue{&c.node}},
		{"cluster", "TODO_CLUSTER", "cluster: `address` (host:port) where this node's embedded NATS server takes its peers' routes; turns cluster mode on", stringValue{&c.addr}},
		{"peers", "TODO_PEERS", "cluster: comma-separated cluster `addresses` of other nodes", listValue{&c.peers}},
		{"join", "TODO_JOIN", "cluster: the cluster `address` of a running node to join (adds it to -peers)", listValue{&c.peers}},
		{"nats", "TODO_NATS", "cluster: `URL` of an existing NATS cluster with JetStream to use instead of an embedded server", stringValue{&c.natsURL}},
		{"nats-addr", "TODO_NATS_ADDR", "cluster: `address` where the embedded server also takes NATS clients (default a free loopback port)", stringValue{&c.natsAddr}},
		{"lease", "TODO_LEASE", "cluster: how long a node's lease on its lists lasts unrenewed (a Go `duration`)", durationValue{&c.lease, false}},
	}
	for _, v := range vars {
		if s := getenv(v.env); s != "" {
			if err := v.value.Set(s); err != nil {
				return fmt.Errorf("%s=%q: %w", v.env, s, err)
			}
		}
		fs.Var(v.value, v.name, v.usage+" ["+v.env+"]")
	}
	return nil
}

// check validates the cluster flags once parsed.
func (c *clusterConfig) check() error {
	if !c.enabled() {
		if c.node != "" {
			return errors.New("-node needs -cluster, -join, -peers or -nats")
		}
		return nil
	}
	if c.node == "" {
		return errors.New("cluster mode needs -node, the node's name")
	}
	if c.addr == "" && c.natsURL == "" {
		c.addr = "127.0.0.1:0" // -join alone: any free port, learned by the peers
	}
	if c.lease < 0 {
		return fmt.Errorf("-lease %v is negative", c.lease)
	}
	return nil
}

// listValue is a comma-separated list of host:port addresses, appended
// to by each use. It is kept as a string so that config stays comparable.
type listValue struct{ p *string }

func (v listValue) String() string {
	if v.p == nil {
		return ""
	}
	return *v.p
}

func (v listValue) Set(s string) error {
	for _, a := range splitList(s) {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return err
		}
	}
	if *v.p != "" && s != "" {
		s = *v.p + "," + s
	}
	*v.p = s
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// serveCluster is run in cluster mode: it starts the node, serves it on
// cfg.addr until ctx ends, then leaves the cluster gracefully.
func serveCluster(ctx context.Context, cfg *config, log *slog.Logger) error {
	c := &cfg.cluster
	node, err := cluster.Start(ctx, cluster.Options{
		Name:        c.node,
		Dir:         cfg.data,
		ClusterAddr: c.addr,
		Peers:       splitList(c.peers),
		ClientAddr:  c.natsAddr,
		NATSURL:     c.natsURL,
		LeaseTTL:    c.lease,
		System: &todo.Options{
			IdleTimeout: cfg.idle,
			Durability:  cfg.durability,
			Workers:     cfg.workers,
			Logger:      log,
		},
		Logger: log,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return errors.Join(err, node.Close())
	}
	srv := newServer(clusterHandler(node, log, cfg.timeout), log, serverLimits(cfg.timeout))
	served := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			served <- fmt.Errorf("the listener on %s died: %w", ln.Addr(), err)
		}
	})
	log.Info("listening", "addr", ln.Addr().String(), "node", c.node, "cluster", node.ClusterAddr(),
		"peers", c.peers, "data", cfg.data, "pid", os.Getpid())
	var cause error
	select {
	case <-ctx.Done():
		log.Info("stopping: leaving the cluster", "cause", context.Cause(ctx).Error())
	case cause = <-served:
		log.Error("stopping: cannot go on", "err", cause)
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		srv.Close()
	}
	wg.Wait()
	err = node.Close()
	if err == nil {
		log.Info("stopped: lists handed off, every change stored")
	}
	return errors.Join(cause, err)
}

// clusterHandler serves a node: the lists, /healthz with the node's view
// of the cluster, and /debug/vars with its Stats.
func clusterHandler(node *cluster.Node, log *slog.Logger, timeout time.Duration) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", serviceHandler(node, log, timeout))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		h := node.Health()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if !h.CanWrite {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		json.NewEncoder(w).Encode(h)
	})
	mux.HandleFunc("GET /debug/vars", func(w http.ResponseWriter, r *http.Request) {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		st := node.Stats()
		body, _ := json.MarshalIndent(struct {
			Cmdline  []string          `json:"cmdline"`
			Memstats *runtime.MemStats `json:"memstats"`
			Todo     todo.Stats        `json:"todo"`
			Cluster  cluster.Stats     `json:"cluster"`
		}{os.Args, &ms, st.System, st}, "", " ")
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Write(append(body, '\n'))
	})
	return mux
}

// serviceHandler serves the original protocol and the JSON API's list
// routes over any todo.Service.
//
// It stands in for todo.NewHandler, which takes a *todo.System on this
// branch; once NewHandler takes a todo.Service, serve
// todo.NewHandler(node, ...) instead and delete this function.
func serviceHandler(svc todo.Service, log *slog.Logger, timeout time.Duration) http.Handler {
	mux := http.NewServeMux()
	fail := func(w http.ResponseWriter, err error, isJSON bool) {
		status := http.StatusInternalServerError
		switch {
		case errors.Is(err, todo.ErrInvalidName), errors.Is(err, todo.ErrInvalidDate), errors.Is(err, todo.ErrInvalidTitle), errors.Is(err, errBadInput):
			status = http.StatusBadRequest
		case errors.Is(err, todo.ErrEntryNotFound):
			status = http.StatusNotFound
		case errors.Is(err, todo.ErrUnavailable), errors.Is(err, todo.ErrClosed),
			errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
			status = http.StatusServiceUnavailable
			w.Header().Set("Retry-After", "1")
		case errors.Is(err, todo.ErrTooLarge):
			status = http.StatusInsufficientStorage
		default:
			log.Error("request failed", "err", err)
		}
		msg := strings.ReplaceAll(strings.TrimPrefix(err.Error(), "todo: "), "\n", " ")
		if isJSON {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			json.NewEncoder(w).Encode(map[string]string{"error": msg})
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(status)
		fmt.Fprint(w, msg)
	}
	withTimeout := func(h func(context.Context, http.ResponseWriter, *http.Request)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			ctx, cancel := context.WithTimeout(r.Context(), timeout)
			defer cancel()
			h(ctx, w, r)
		}
	}
	mux.Handle("POST /add_entry", withTimeout(func(ctx context.Context, w http.ResponseWriter, r *http.Request) {
		q, err := url.ParseQuery(r.URL.RawQuery)
		var e todo.Entry
		if err == nil {
			e.Date, err = todo.ParseDate(q.Get("date"))
		}
		if err == nil {
			e.Title, err = oneParam(q, "title")
		}
		var list string
		if err == nil {
			list, err = oneParam(q, "list")
		}
		if err == nil {
			_, err = svc.AddEntry(ctx, list, e)
		}
		if err != nil {
			fail(w, err, false)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprint(w, "OK")
	}))
	mux.Handle("GET /entries", withTimeout(func(ctx context.Context, w http.ResponseWriter, r *http.Request) {
		q, err := url.ParseQuery(r.URL.RawQuery)
		var d todo.Date
		var list string
		var entries []todo.Entry
		if err == nil {
			d, err = todo.ParseDate(q.Get("date"))
		}
		if err == nil {
			list, err = oneParam(q, "list")
		}
		if err == nil {
			entries, err = svc.AppendEntries(ctx, list, nil, d)
		}
		if err != nil {
			fail(w, err, false)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		for _, e := range entries {
			fmt.Fprintf(w, "%d-%d-%d    %s\n", e.Date.Year, e.Date.Month, e.Date.Day, e.Title)
		}
	}))
	mux.Handle("GET /lists", withTimeout(func(ctx context.Context, w http.ResponseWriter, r *http.Request) {
		names, err := svc.Lists(ctx)
		if err != nil {
			fail(w, err, true)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string][]string{"lists": append([]string{}, names...)})
	}))
	type entryJSON struct {
		ID    int    `json:"id"`
		Date  string `json:"date"`
		Title string `json:"title"`
	}
	toJSON := func(e todo.Entry) entryJSON { return entryJSON{e.ID, e.Date.String(), e.Title} }
	mux.Handle("GET /lists/{list}/entries", withTimeout(func(ctx context.Context, w http.ResponseWriter, r *http.Request) {
		entries, err := svc.AllEntries(ctx, r.PathValue("list"))
		if err != nil {
			fail(w, err, true)
			return
		}
		out := make([]entryJSON, len(entries))
		for i, e := range entries {
			out[i] = toJSON(e)
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string][]entryJSON{"entries": out})
	}))
	mux.Handle("POST /lists/{list}/entries", withTimeout(func(ctx context.Context, w http.ResponseWriter, r *http.Request) {
		var body struct{ Date, Title string }
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
		dec.DisallowUnknownFields()
		err := dec.Decode(&body)
		if err != nil {
			err = fmt.Errorf("%w: bad JSON body: %v", errBadInput, err)
		}
		var e todo.Entry
		if err == nil {
			e.Date, err = todo.ParseDate(body.Date)
		}
		if err == nil && body.Title == "" {
			err = fmt.Errorf("%w: empty title", errBadInput)
		}
		if err == nil {
			e.Title = body.Title
			e, err = svc.AddEntry(ctx, r.PathValue("list"), e)
		}
		if err != nil {
			fail(w, err, true)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(toJSON(e))
	}))
	mux.Handle("DELETE /lists/{list}/entries/{id}", withTimeout(func(ctx context.Context, w http.ResponseWriter, r *http.Request) {
		id, err := strconv.Atoi(r.PathValue("id"))
		if err != nil {
			err = fmt.Errorf("%w: entry id %q is not a decimal integer", errBadInput, r.PathValue("id"))
		} else {
			err = svc.DeleteEntry(ctx, r.PathValue("list"), id)
		}
		if err != nil {
			fail(w, err, true)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, "not found")
	})
	return mux
}

var errBadInput = errors.New("bad input")

// oneParam returns the one non-empty value of key in q.
func oneParam(q url.Values, key string) (string, error) {
	vs := q[key]
	if len(vs) != 1 || vs[0] == "" {
		return "", fmt.Errorf("%w: want one non-empty %q", errBadInput, key)
	}
	return vs[0], nil
}
