package cluster

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gotodo/todo"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Options configure a node. Name and Dir are required; every other field
// has the default written on it.
type Options struct {
	// Name names the node in the cluster: unique, stable across restarts
	// (a node's lists and its place in the cluster are found by it), at
	// most 64 bytes of letters, digits, '-', '_' and '.'.
	Name string

	// Dir is the node's data directory: the embedded server's JetStream
	// files (under jetstream/) and the peers it has learned
	// (cluster-peers), so that a restart rejoins through all of them.
	Dir string

	// ClusterAddr is the host:port the embedded server listens on for its
	// peers' routes. Port 0 picks a free one (see Node.ClusterAddr).
	// Empty means 127.0.0.1:6222.
	ClusterAddr string

	// Peers are the cluster addresses (host:port) of other nodes: at
	// least one that runs, to join the cluster. The node adds those it
	// has learned before, and every node tells the others of all the
	// rest, so one live peer is enough to join. Empty for the first node
	// of a cluster, which waits for the others.
	Peers []string

	// ClientAddr, if set, is a host:port where the embedded server also
	// accepts NATS clients (the nats command, for one): with a
	// SecretFile, only the user "todo" with the password
	// [ClientPassword] derives from the secret; without one, any client.
	// The node itself talks to its server in-process. Empty means a free
	// port on 127.0.0.1 that no client can use (the server will not
	// route without a client listener): it takes only the node's own
	// in-process connection, whose password is drawn at random at each
	// start.
	ClientAddr string

	// SecretFile is the file holding the cluster's secret, the Erlang
	// cookie's role: a node joins only nodes started with the same one.
	// Routes authenticate with a password derived from it (HMAC-SHA-256,
	// so that neither the secret nor anything that leads back to it is
	// in NATS's logs or monitoring), and the client port at ClientAddr
	// takes only the user "todo" with another password derived from it
	// (see [ClientPassword]). The secret is the file's contents without
	// the white space around it: at least 32 characters, such as
	// `openssl rand -base64 32` writes. The file must not be readable or
	// writable by group or others (chmod 600). Empty means no secret:
	// any server that reaches the cluster address may route to the node,
	// which Start allows only on loopback addresses, or with Insecure.
	SecretFile string

	// TLSCAFile, TLSCertFile and TLSKeyFile, all three or none, are PEM
	// files that make the routes TLS (1.2 at least) with certificates
	// checked both ways: the cluster's CA, and this node's certificate
	// (with its chain) and key. A node's certificate must be signed by
	// the CA, name the host or IP address its peers dial (its
	// ClusterAddr, or the address they are given in Peers), and allow
	// both server and client authentication: each node is the server of
	// the routes it accepts and the client of those it dials. A peer
	// whose certificate the CA did not sign gets no route. With a
	// SecretFile too, a peer needs both.
	TLSCAFile   string
	TLSCertFile string
	TLSKeyFile  string

	// Insecure lets a node listen for routes (ClusterAddr), or for NATS
	// clients (ClientAddr), on an address that is not a loopback one, or
	// route to Peers that are not on loopback, without a SecretFile: on
	// purpose, on a network where every machine that reaches those ports
	// may join the cluster and read and write every list. Without it,
	// Start refuses such a node.
	Insecure bool

	// NATSURL, if set, connects the node to an existing NATS cluster with
	// JetStream instead of embedding a server: ClusterAddr, Peers and
	// ClientAddr are then unused. Its servers should fsync before they
	// acknowledge (sync_interval: always), and their max_payload bounds
	// the largest list.
	NATSURL string

	// Replicas is how many servers store each list (and the ownership
	// records). Zero means 3. With fewer servers in the cluster, as many
	// as there are (but at least 2) are used until more join.
	Replicas int

	// LeaseTTL is how long a node's liveness lasts without a renewal: a
	// node that cannot renew its liveness stops serving its lists this
	// long after its last renewal (it keeps them, and serves them again
	// if its next renewal lands), and the others take them over once it
	// has been silent for LeaseTTL + ClockSkew. Every node of a cluster
	// must have the same. Zero means 4s.
	LeaseTTL time.Duration

	// ClockSkew is how far the clocks of two nodes may disagree. Zero
	// means 500ms.
	ClockSkew time.Duration

	// RequestTimeout bounds a request forwarded to another node when the
	// caller's ctx has no deadline. Zero means 5s.
	RequestTimeout time.Duration

	// AckTimeout bounds the wait for one acknowledgement from JetStream.
	// Zero means 2s.
	AckTimeout time.Duration

	// WriteTimeout is how long a write whose acknowledgement does not
	// come is published again before it is settled by a fence marker
	// (see the package doc). Zero means 5s.
	WriteTimeout time.Duration

	// System configures the node's local todo.System: idle expiry, the
	// mailboxes, the workers committing to JetStream (Workers), and the
	// largest list (MaxFileSize, at most 63 MiB in a cluster). Nil means
	// the defaults.
	System *todo.Options

	// Logger receives what the node and its embedded server report. Nil
	// means the System's Logger, or nothing.
	Logger *slog.Logger
}

// seams are what a test may change in a node beyond its Options: the
// broken twins. Start uses none; export_test.go gives them to the tests.
type seams struct {
	noFence bool // the store publishes without the fence: the broken twin of the stale-owner test
	// noBatches makes the node an earlier version's: the lists' stream it
	// creates takes no atomic batches, and it changes no existing one.
	noBatches bool
	// sendBatch, if set, publishes the store's atomic batches in place of
	// sendBatch: a batch whose answer is lost, or whose commit comes late.
	sendBatch func(ctx context.Context, js jetstream.JetStream, msgs []*nats.Msg) (uint64, error)
	// batchMsgs, if set, is the most messages the store puts in a batch,
	// in place of the server's limit: a batch the server refuses.
	batchMsgs int
	// everyRefusal logs every refused route or client, as the embedded
	// server does: the broken twin of the test that one is logged once.
	everyRefusal bool
	// frozen, while it holds true, stops the node's renewals and makes it
	// serve as if its lease held: a node that does not know it has been
	// given up on (a long GC pause, a frozen VM). Nil in production.
	frozen *atomic.Bool
	// muted, while it holds true, makes each renewal fail as one that
	// gets no answer: a node cut off from the nodes bucket, or one whose
	// leader is being elected. Nil in production.
	muted *atomic.Bool
	// workers bounds the forwarded requests served at once, queue those
	// waiting to be (see serveRPC); 0 means the defaults.
	workers, queue int
	// routeSummaryEvery is how often a peer still unreachable is summed
	// up in the log; 0 means a minute.
	routeSummaryEvery time.Duration
	// beforeDispatch, if set, is called by serveRPC before it looks at a
	// forwarded request: a test holds the dispatch there.
	beforeDispatch func()
	// freeAddr, if set, chooses the cluster address in place of freeAddr
	// when the port asked for is 0: a port another process takes before
	// the server listens on it.
	freeAddr func(addr string) (string, error)
	// beforeSend, if set, is called by forward with the node a request
	// goes to, once the request counts as under way and before it is
	// sent: a test holds a request there.
	beforeSend func(node string)
	// announcing, if set, is called when the node, leaving, begins to
	// tell its peers so (see announceLeave).
	announcing func()
	// noLeaveNotice makes the broken twin of a graceful leave: the node
	// leaves without telling its peers, whose requests sent to it in
	// that moment are lost.
	noLeaveNotice bool
	// ownersHold, if set, is called by each read or write of the owners
	// bucket before it is sent, once it counts as under way: a test holds
	// it there, as a bucket electing a leader would.
	ownersHold func()
	// ownersUnwatched makes the broken twin of Health's watch of the
	// owners bucket: its calls are held (ownersHold) but not counted.
	ownersUnwatched bool
}

const (
	defaultRPCWorkers = 1024
	defaultRPCQueue   = 4096
)

func (s seams) rpcWorkers() int {
	if s.workers > 0 {
		return s.workers
	}
	return defaultRPCWorkers
}

func (s seams) rpcQueue() int {
	if s.queue > 0 {
		return s.queue
	}
	return defaultRPCQueue
}

// maxClusterPayload is the largest message NATS takes (max_payload caps
// at 64 MiB); a list must fit in one, with its headers.
const maxClusterPayload = 64 << 20

func (o *Options) withDefaults() (Options, error) {
	c := *o
	if c.Name == "" {
		return c, errInvalidOptions("Name is empty")
	}
	if len(c.Name) > 64 {
		return c, errInvalidOptions("Name %q is over 64 bytes", c.Name)
	}
	for _, r := range c.Name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return c, errInvalidOptions("Name %q: only letters, digits, '-', '_' and '.'", c.Name)
		}
	}
	if c.Dir == "" {
		return c, errInvalidOptions("Dir is empty")
	}
	if c.ClusterAddr == "" {
		c.ClusterAddr = "127.0.0.1:6222"
	}
	if c.NATSURL == "" {
		if err := checkHostPort("ClusterAddr", c.ClusterAddr); err != nil {
			return c, err
		}
		for _, p := range c.Peers {
			if err := checkHostPort("Peers", p); err != nil {
				return c, err
			}
		}
		if c.ClientAddr != "" {
			if err := checkHostPort("ClientAddr", c.ClientAddr); err != nil {
				return c, err
			}
		}
	}
	if err := c.checkAccess(); err != nil { // security.go
		return c, err
	}
	if c.Replicas == 0 {
		c.Replicas = 3
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		return c, errInvalidOptions("Replicas %d is not in 1..5", c.Replicas)
	}
	defaults := []struct {
		p *time.Duration
		d time.Duration
	}{
		{&c.LeaseTTL, 4 * time.Second},
		{&c.ClockSkew, 500 * time.Millisecond},
		{&c.RequestTimeout, 5 * time.Second},
		{&c.AckTimeout, 2 * time.Second},
		{&c.WriteTimeout, 5 * time.Second},
	}
	for _, d := range defaults {
		if *d.p == 0 {
			*d.p = d.d
		}
		if *d.p < 0 {
			return c, errInvalidOptions("a timeout is negative: %v", *d.p)
		}
	}
	if c.LeaseTTL < 500*time.Millisecond {
		return c, errInvalidOptions("LeaseTTL %v is under 500ms", c.LeaseTTL)
	}
	var sys todo.Options
	if c.System != nil {
		sys = *c.System
	}
	if sys.MaxFileSize == 0 {
		sys.MaxFileSize = 16 << 20
	}
	if sys.MaxFileSize > maxClusterPayload-headerRoom-1<<20 {
		return c, errInvalidOptions("System.MaxFileSize %d: a list must fit in one NATS message, at most %d bytes", sys.MaxFileSize, maxClusterPayload-headerRoom-1<<20)
	}
	if c.Logger == nil {
		c.Logger = sys.Logger
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if sys.Logger == nil {
		sys.Logger = c.Logger
	}
	c.System = &sys
	return c, nil
}

func checkHostPort(field, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errInvalidOptions("%s %q: %v", field, addr, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return errInvalidOptions("%s %q: bad port", field, addr)
	}
	_ = host
	return nil
}
