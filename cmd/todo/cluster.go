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
	"strings"
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

// nodeBackend serves a cluster node: the library's handler over the node
// (any node answers for any list), /healthz with the node's view of the
// cluster, /debug/vars and /metrics with its Stats.
type nodeBackend struct {
	*cluster.Node
	data string // the node's data directory
	cfg  *clusterConfig
}

// openNode starts the cluster node cfg asks for. It returns once the
// node's server runs; the node answers 503 until it has a quorum.
func openNode(ctx context.Context, cfg *config, log *slog.Logger) (backend, error) {
	c := &cfg.cluster
	node, err := cluster.Start(ctx, cluster.Options{
		Name:        c.node,
		Dir:         cfg.data,
		ClusterAddr: c.addr,
		Peers:       splitList(c.peers),
		ClientAddr:  c.natsAddr,
		NATSURL:     c.natsURL,
		LeaseTTL:    c.lease,
		System:      cfg.systemOptions(log),
		Logger:      log,
	})
	if err != nil {
		return nil, err
	}
	return &nodeBackend{Node: node, data: cfg.data, cfg: c}, nil
}

func (b *nodeBackend) dir() string { return b.data }

// health is the node's view of the cluster, as JSON, with the watchdog's
// verdict as its reason when there is one.
func (b *nodeBackend) health(dirProblem string) healthReport {
	h := b.Node.Health()
	if dirProblem != "" {
		h.CanWrite, h.Reason = false, dirProblem
	}
	body, _ := json.Marshal(h)
	return healthReport{ok: h.CanWrite, contentType: "application/json", retryAfter: "1", body: append(body, '\n')}
}

func (b *nodeBackend) stats() todo.Stats { return b.Node.Stats().System }

func (b *nodeBackend) vars(v *debugVars) {
	st := b.Node.Stats()
	v.Todo, v.Cluster = st.System, &st
}

func (b *nodeBackend) logAttrs() []any {
	return []any{"node", b.cfg.node, "cluster", b.Node.ClusterAddr(), "peers", b.cfg.peers}
}

func (b *nodeBackend) stopped() string { return "stopped: lists handed off, every change stored" }

func (b *nodeBackend) shutdown(ctx context.Context) error { return b.Node.Shutdown(ctx) }
