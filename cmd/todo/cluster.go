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
	node       string
	addr       string // -cluster: where the embedded server takes routes
	peers      string // comma-separated, -peers and -join together
	natsURL    string
	natsAddr   string
	lease      time.Duration
	secretFile string // the cluster's secret: who may join (docs/security.md)
	caFile     string // route TLS: the cluster's CA, this node's certificate and key
	certFile   string
	keyFile    string
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
		{"cluster-secret-file", "TODO_CLUSTER_SECRET_FILE", "cluster: `file` holding the cluster's secret, the same on every node: only nodes with it join, and the NATS client port wants it (todo cluster-secret makes one); required past loopback unless -insecure", stringValue{&c.secretFile}},
		{"cluster-ca", "TODO_CLUSTER_CA", "cluster: PEM `file` of the CA that signs the nodes' route certificates: routes use TLS, verified both ways", stringValue{&c.caFile}},
		{"cluster-cert", "TODO_CLUSTER_CERT", "cluster: PEM `file` of this node's route certificate, signed by -cluster-ca, for server and client authentication", stringValue{&c.certFile}},
		{"cluster-key", "TODO_CLUSTER_KEY", "cluster: PEM `file` of the route certificate's private key", stringValue{&c.keyFile}},
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
	if n := countSet(c.caFile, c.certFile, c.keyFile); n != 0 && n != 3 {
		return errors.New("-cluster-ca, -cluster-cert and -cluster-key (TODO_CLUSTER_CA, TODO_CLUSTER_CERT, TODO_CLUSTER_KEY) go together: give all three files, or none")
	}
	if c.natsURL != "" && (c.secretFile != "" || c.caFile != "") {
		return errors.New("-cluster-secret-file and -cluster-ca protect the embedded NATS server: with -nats there is none (put the NATS cluster's credentials in its URL)")
	}
	return nil
}

func countSet(s ...string) int {
	n := 0
	for _, v := range s {
		if v != "" {
			n++
		}
	}
	return n
}

// exposure says which of the node's addresses others may reach (a
// cluster or NATS client address that is not a loopback one, or a peer
// on another machine), or "" when only this machine can, or when the
// node has no embedded server.
func (c *clusterConfig) exposure() string {
	if !c.enabled() || c.natsURL != "" {
		return ""
	}
	if !isLoopback(c.addr) {
		return fmt.Sprintf("-cluster %s is not a loopback address", c.addr)
	}
	if c.natsAddr != "" && !isLoopback(c.natsAddr) {
		return fmt.Sprintf("-nats-addr %s is not a loopback address", c.natsAddr)
	}
	for _, p := range splitList(c.peers) {
		if !isLoopback(p) {
			return fmt.Sprintf("the peer %s is not on a loopback address", p)
		}
	}
	return ""
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
		SecretFile:  c.secretFile,
		TLSCAFile:   c.caFile,
		TLSCertFile: c.certFile,
		TLSKeyFile:  c.keyFile,
		Insecure:    cfg.insecure,
		LeaseTTL:    c.lease,
		System:      cfg.systemOptions(log),
		Logger:      log,
	})
	if err != nil {
		return nil, flagNamed(err)
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
	return []any{"node", b.cfg.node, "cluster", b.Node.ClusterAddr(), "peers", b.cfg.peers,
		"cluster_secret", b.cfg.secretFile != "", "route_tls", b.cfg.caFile != ""}
}

func (b *nodeBackend) stopped() string { return "stopped: lists handed off, every change stored" }

func (b *nodeBackend) shutdown(ctx context.Context) error { return b.Node.Shutdown(ctx) }

// flagNamed is an error of cluster.Start with the Options fields it names
// said as the flags that set them.
func flagNamed(err error) error {
	if !errors.Is(err, todo.ErrInvalidOptions) {
		return err
	}
	msg := strings.TrimPrefix(err.Error(), todo.ErrInvalidOptions.Error()+": cluster: ")
	msg = strings.NewReplacer(
		"SecretFile ", "-cluster-secret-file ",
		"TLSCAFile ", "-cluster-ca ",
		"TLSCertFile ", "-cluster-cert ",
		"TLSKeyFile ", "-cluster-key ",
	).Replace(msg)
	return &renamedError{msg: msg, err: err}
}

// renamedError is err said in the command's words.
type renamedError struct {
	msg string
	err error
}

func (e *renamedError) Error() string { return e.msg }
func (e *renamedError) Unwrap() error { return e.err }
