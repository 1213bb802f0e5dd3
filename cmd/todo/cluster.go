package main

// Cluster mode: the flags that turn it on, and serving a cluster.Node
// instead of a System. See docs/cluster.md.

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

// clusterFlags are the cluster flags of c, part of serve's.
func clusterFlags(c *clusterConfig) []serveFlag {
	return []serveFlag{
		{"node", "TODO_NODE", "cluster: this node's `name`, unique and stable (letters, digits, - _ .)", stringValue{&c.node}},
		{"cluster", "TODO_CLUSTER", "cluster: `address` (host:port) where this node's embedded NATS server takes its peers' routes; turns cluster mode on", stringValue{&c.addr}},
		{"peers", "TODO_PEERS", "cluster: comma-separated cluster `addresses` of other nodes", listValue{&c.peers}},
		{"join", "TODO_JOIN", "cluster: the cluster `address` of a running node to join (adds it to -peers)", listValue{&c.peers}},
		{"nats", "TODO_NATS", "cluster: `URL` of an existing NATS cluster with JetStream to use instead of an embedded server", stringValue{&c.natsURL}},
		{"nats-addr", "TODO_NATS_ADDR", "cluster: `address` where the embedded server also takes NATS clients (default a free loopback port)", stringValue{&c.natsAddr}},
		{"lease", "TODO_LEASE", "cluster: how long a node's lease on its lists lasts unrenewed (a Go `duration`)", durationValue{&c.lease, false}},
	}
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
	if c.lease <= 0 {
		return fmt.Errorf("-lease %v: want a positive duration, such as 4s", c.lease)
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
			IdleTimeout:    cfg.idle,
			HibernateAfter: cfg.hibernateAfter,
			Durability:     cfg.durability,
			Workers:        cfg.workers,
			Logger:         log,
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
	h, err := clusterHandler(node, log, cfg)
	if err != nil {
		return errors.Join(err, ln.Close(), node.Close())
	}
	srv := newServer(h, log, serverLimits(cfg.timeout))
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

// clusterHandler serves a node as the command serves a System: the
// library's handler over the node (any node answers for any list), the
// web page, /metrics, /healthz with the node's view of the cluster, and
// /debug/vars with its Stats.
func clusterHandler(node *cluster.Node, log *slog.Logger, cfg *config) (http.Handler, error) {
	health := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := node.Health()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if !h.CanWrite {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		json.NewEncoder(w).Encode(h)
	})
	vars := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
	m := newMetrics(func() todo.Stats { return node.Stats().System }, func() bool { return node.Health().CanWrite })
	return newApp(node, health, vars, m, log, cfg)
}
