package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gotodo/todo"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Node is one member of a cluster: an embedded NATS server (or a
// connection to an existing NATS cluster), a local todo.System over the
// replicated store, and the routing that sends each request for a list
// to the node that owns it. It implements todo.Service, so an HTTP
// handler serves it as it serves a System.
//
// A Node is safe for concurrent use by multiple goroutines.
type Node struct {
	opts        Options
	seams       seams
	log         *slog.Logger
	srv         *server.Server // nil when connected to an existing cluster
	clusterAddr string
	peers       *peersFile
	nc          *nats.Conn
	js          jetstream.JetStream
	maxPayload  int

	// Set once by setup, before ready is closed; read after it.
	stream jetstream.Stream
	nodes  jetstream.KeyValue
	owners jetstream.KeyValue
	store  *store
	sys    *todo.System
	rpc    *nats.Subscription
	// watcher watches the nodes bucket; setup starts it, run's
	// watchMembers takes it over.
	watcher jetstream.KeyWatcher
	ready   chan struct{} // closed when the node can serve

	view       *view
	lease      lease
	held       heldLists
	ownerCache ownerCache
	gate       *sendGate // forwarded requests under way, by node
	stalls     inflight  // the store's calls under way, for Health
	ownerOps   inflight  // the owners bucket's calls under way, for Health
	// scaled says that every asset has Options.Replicas; scaleRefused
	// names those whose scaling JetStream refused, once said. Run's
	// goroutine only.
	scaled       bool
	scaleRefused map[string]bool
	routes       *routeLog // what the embedded server says of peers it cannot reach
	watches      watchCounts

	leaving atomic.Bool // Close has begun: the node takes no new list
	fatal   atomic.Pointer[error]

	stop chan struct{} // closed by Close: background goroutines end
	// ctx is canceled by Close: the calls to JetStream of the background
	// goroutines end with it.
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	bgMu    sync.Mutex     // guards bgDone, and wg.Add after run has begun
	bgDone  bool           // Close waits for wg: no goroutine may start
	rpcWG   sync.WaitGroup // forwarded requests being served
	rpcSem  chan struct{}
	closeMu sync.Mutex // serializes Close
	closed  bool       // guarded by closeMu

	stats nodeCounters
}

// Start starts a node: its embedded NATS server routed to its peers (or
// a connection to opts.NATSURL), then, in the background, the JetStream
// assets, its liveness and its request subscription. It returns once the
// server runs; the node answers ErrNotReady until JetStream has a quorum
// (a first node waits for a second). [Node.Ready] waits for that.
//
// Options and the ports asked for are checked before Dir is created: a
// start refused for a mistake or a port in use leaves nothing behind.
func Start(ctx context.Context, opts Options) (*Node, error) {
	return start(ctx, opts, seams{})
}

// start is Start with the seams of a test.
func start(ctx context.Context, opts Options, s seams) (*Node, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	access, err := loadAccess(&o) // security.go: before anything is created
	if err != nil {
		return nil, err
	}
	if s.everyRefusal {
		access.refusalQuiet = 0
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("cluster: start: %w", err)
	}
	if o.NATSURL == "" {
		if err := portsFree(o.ClusterAddr, o.ClientAddr); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	n := &Node{
		opts:         o,
		seams:        s,
		log:          o.Logger,
		ready:        make(chan struct{}),
		view:         newView(o.LeaseTTL + o.ClockSkew),
		stop:         make(chan struct{}),
		rpcSem:       make(chan struct{}, s.rpcWorkers()),
		routes:       newRouteLog(o.Logger, s.routeSummaryEvery),
		scaleRefused: make(map[string]bool),
	}
	n.gate = newSendGate(n.view)
	n.held.init()
	n.ownerCache.init()
	n.ctx, n.cancel = context.WithCancel(context.Background())
	if n.peers, err = openPeersFile(o.Dir); err != nil {
		return nil, err
	}
	n.maxPayload = int(min(o.System.MaxFileSize+headerRoom+1<<20, maxClusterPayload))
	if err := n.connect(ctx, access); err != nil {
		n.cancel()
		return nil, err
	}
	n.js, err = jetstream.New(n.nc, jetstream.WithPublishAsyncTimeout(o.AckTimeout), jetstream.WithDefaultTimeout(o.AckTimeout))
	if err != nil {
		n.shutdownNATS()
		n.cancel()
		return nil, fmt.Errorf("cluster: %w", err)
	}
	n.wg.Add(1)
	go n.run()
	return n, nil
}

// connect starts the embedded server, admitting whom a lets in, and
// connects to it, or connects to Options.NATSURL. When ctx ends first, it
// stops what it started and returns ctx's error.
func (n *Node) connect(ctx context.Context, a *access) error {
	o := &n.opts
	var err error
	if o.NATSURL != "" {
		n.nc, err = nats.Connect(o.NATSURL, nats.Name("todo "+o.Name), nats.MaxReconnects(-1), nats.SetCustomDialer(ctxDialer{ctx}), nats.ErrorHandler(n.natsError))
		if err == nil && ctx.Err() != nil {
			n.nc.Close()
		}
		if ctx.Err() != nil {
			return fmt.Errorf("cluster: start: %w", ctx.Err())
		}
		if err != nil {
			return fmt.Errorf("cluster: connect to %s: %w", redactURL(o.NATSURL), err)
		}
		n.maxPayload = int(n.nc.MaxPayload())
		return nil
	}
	_, port, _ := net.SplitHostPort(o.ClusterAddr)
	pick := freeAddr
	if n.seams.freeAddr != nil {
		pick = n.seams.freeAddr
	}
	for attempt := 1; ; attempt++ {
		if n.clusterAddr, err = pick(o.ClusterAddr); err != nil {
			return err
		}
		routes := append([]string{n.clusterAddr}, o.Peers...)
		routes = append(routes, n.peers.peers()...)
		slices.Sort(routes)
		routes = slices.Compact(routes)
		n.srv, err = startServer(ctx, o, a, n.clusterAddr, routes, n.maxPayload, n.routes, n.setFatal)
		if err == nil {
			break
		}
		// A port the node chose itself (the address's port was 0), which
		// another process took between freeAddr's look and the server's
		// listen: choose again, a few times. A port the user named and
		// found in use is refused at once (portsFree, above).
		if port != "0" || attempt == 5 || ctx.Err() != nil || !strings.Contains(err.Error(), syscall.EADDRINUSE.Error()) {
			return err
		}
		n.fatal.Store(nil) // the failed server's fatal error is not the node's
		n.log.Debug("cluster: the port chosen for the cluster was taken; choosing another", "addr", n.clusterAddr)
	}
	n.nc, err = nats.Connect("", nats.InProcessServer(n.srv), a.connectOption(), nats.Name("todo "+o.Name), nats.MaxReconnects(-1), nats.ErrorHandler(n.natsError))
	if err == nil && ctx.Err() != nil {
		err = fmt.Errorf("cluster: start: %w", ctx.Err())
	} else if err != nil {
		err = fmt.Errorf("cluster: connect to the embedded server: %w", err)
	}
	if err != nil {
		n.shutdownNATS()
		return err
	}
	if err := n.peers.learn(o.Peers...); err != nil {
		n.log.Warn("cluster: cannot remember peers", "err", err)
	}
	a.warn(o, n.log)
	return nil
}

// natsError logs what the connection reports on its own: a subscription
// whose messages were dropped (a slow consumer), for one.
func (n *Node) natsError(_ *nats.Conn, sub *nats.Subscription, err error) {
	subject := ""
	if sub != nil {
		subject = sub.Subject
	}
	n.log.Warn("cluster: NATS connection", "subject", subject, "err", err)
}

// ctxDialer dials the NATS servers of Options.NATSURL until Start's ctx
// ends.
type ctxDialer struct{ ctx context.Context }

func (d ctxDialer) Dial(network, address string) (net.Conn, error) {
	var nd net.Dialer
	return nd.DialContext(d.ctx, network, address)
}

// portsFree checks that the embedded server can listen on each address
// that names its port (port 0 is found free later), by listening there a
// moment: so that a port in use refuses the start before anything is
// created. The server listens again itself, an instant later.
func portsFree(addrs ...string) error {
	for _, addr := range addrs {
		if _, port, _ := net.SplitHostPort(addr); addr == "" || port == "0" {
			continue
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("cluster: %w", err)
		}
		ln.Close()
	}
	return nil
}

func (n *Node) setFatal(err error) { n.fatal.CompareAndSwap(nil, &err) }

// Ready waits until the node can serve, or ctx ends.
func (n *Node) Ready(ctx context.Context) error {
	select {
	case <-n.ready:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrNotReady, ctx.Err())
	}
}

func (n *Node) isReady() bool {
	select {
	case <-n.ready:
		return true
	default:
		return false
	}
}

// Name returns the node's name.
func (n *Node) Name() string { return n.opts.Name }

// ClusterAddr returns the address the node's server takes routes on, with
// the port picked when Options.ClusterAddr asked for port 0; empty when
// the node connects to an existing cluster.
func (n *Node) ClusterAddr() string { return n.clusterAddr }

// System returns the node's local System, or nil before the node is
// ready. Calls made on it directly bypass the routing: they are for
// reading its Stats.
func (n *Node) System() *todo.System {
	if !n.isReady() {
		return nil
	}
	return n.sys
}

// run sets the node up, then keeps its liveness, its view of the members
// and its lists' placement, until Close.
func (n *Node) run() {
	defer n.wg.Done()
	if !n.setupUntilReady() {
		return
	}
	watchCtx, cancelWatch := context.WithCancel(context.Background())
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.watchMembers(watchCtx)
	}()
	defer cancelWatch()
	// Renewals have a goroutine of their own: a rebalance that hands
	// off hundreds of lists takes seconds, and must not let the lease
	// lapse.
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.keepLease()
	}()
	maintain := time.NewTicker(time.Second)
	defer maintain.Stop()
	var placed uint64 // the view version the lists were last all placed for
	for {
		select {
		case <-n.stop:
			return
		case <-maintain.C:
			n.maintain()
			// A rebalance that left a list behind (its unload failed)
			// tries again on the next tick, not at the next view change.
			if v := n.view.versionNow(); v != placed && n.rebalance() {
				placed = v
			}
		}
	}
}

// setupUntilReady creates or finds the JetStream assets, retrying until
// the cluster has a quorum, then begins the node's first epoch and
// subscribes to its requests. It reports false if Close came first.
//
// Until the servers have routed to each other and elected their leaders
// (the meta group's, then each stream's: on a restart, each waits out a
// Raft election timeout of 4-9s), JetStream's API answers nothing and an
// attempt waits out its timeout. The attempts are therefore short (250ms,
// doubling up to 1s), and follow each other within 100ms, so that a node
// is ready within a second or so of its leaders: attempts whose timeouts
// doubled up to 6s kept a restarted cluster answering 503 for 3s after
// its last leader was elected. Only after 10 attempts in vain may they
// grow longer (up to 3 AckTimeouts), for a machine too loaded to answer
// within a second. An attempt that times out leaves what it created in
// place: the next one finds it.
func (n *Node) setupUntilReady() bool {
	timeout := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := n.setup(timeout)
		if err == nil {
			close(n.ready)
			n.log.Info("cluster: node ready", "node", n.opts.Name, "epoch", n.lease.kept())
			return true
		}
		n.log.Debug("cluster: not ready yet", "node", n.opts.Name, "err", err)
		select {
		case <-n.stop:
			return false
		case <-time.After(100 * time.Millisecond):
		}
		limit := min(time.Second, n.opts.AckTimeout)
		if attempt >= 10 {
			limit = 3 * n.opts.AckTimeout
		}
		timeout = max(min(2*timeout, limit), timeout)
	}
}

func (n *Node) setup(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(n.ctx, timeout)
	defer cancel()
	var err error
	if n.stream == nil {
		if n.stream, err = n.ensureStream(ctx); err != nil {
			return fmt.Errorf("the lists' stream: %w", err)
		}
	}
	if n.nodes == nil {
		if n.nodes, err = n.ensureBucket(ctx, nodesBucket, time.Hour); err != nil {
			return fmt.Errorf("the nodes bucket: %w", err)
		}
	}
	if n.owners == nil {
		owners, err := n.ensureBucket(ctx, ownersBucket, 0)
		if err != nil {
			return fmt.Errorf("the owners bucket: %w", err)
		}
		ops := &n.ownerOps
		if n.seams.ownersUnwatched {
			ops = new(inflight) // the broken twin: Health does not see them
		}
		n.owners = watchedKV{owners, ops, n.opts.AckTimeout, n.seams.ownersHold}
	}
	if n.lease.valid(time.Now()) == 0 {
		if _, err := n.renew(ctx); err != nil {
			return fmt.Errorf("the first epoch: %w", err)
		}
	}
	if n.sys == nil {
		n.store = newStore(n.js, n.stream, &n.opts, n.maxPayload)
		n.store.lost = n.unloadLost
		n.store.released = n.held.released
		n.store.noFence = n.seams.noFence
		n.store.batches.Store(n.stream.CachedInfo().Config.AllowAtomicPublish && !n.seams.noBatches)
		if n.seams.sendBatch != nil {
			n.store.sendBatch = n.seams.sendBatch
		}
		if n.seams.batchMsgs != 0 {
			n.store.batchMsgs = n.seams.batchMsgs
		}
		if n.sys, err = todo.OpenStore(watchedStore{n.store, &n.stalls}, n.opts.System); err != nil {
			return err
		}
	}
	if n.watcher == nil {
		if err := n.syncView(ctx); err != nil {
			return fmt.Errorf("the watch of the nodes bucket: %w", err)
		}
	}
	if n.rpc == nil {
		if n.rpc, err = n.nc.Subscribe(rpcSubject(n.opts.Name), n.serveRPC); err != nil {
			return err
		}
		// The hard bound of the requests waiting (see serveRPC).
		n.rpc.SetPendingLimits(4*n.seams.rpcQueue(), 64<<20)
	}
	return nil
}

// replicas returns how many replicas to ask for now: Options.Replicas, or
// as many servers as JetStream has, but at least 2 (a 2-node cluster).
func (n *Node) replicaChoices() []int {
	var rs []int
	for r := n.opts.Replicas; r >= min(2, n.opts.Replicas); r-- {
		rs = append(rs, r)
	}
	return rs
}

func (n *Node) streamConfig(replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        listsStream,
		Subjects:    []string{listPrefix + ">"},
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
		MaxMsgSize:  int32(n.maxPayload),
		AllowDirect: false, // reads go to the leader: a replica may lag
		DenyDelete:  true,
		Duplicates:  2 * time.Minute,
		// A commit is one atomic batch (see batch.go).
		AllowAtomicPublish: !n.seams.noBatches,
	}
}

// ensureStream finds the lists' stream or creates it with as many
// replicas as the cluster can hold now (maintain adds the others later).
// An existing stream is never scaled down.
func (n *Node) ensureStream(ctx context.Context) (jetstream.Stream, error) {
	s, err := n.js.Stream(ctx, listsStream)
	if err == nil {
		return n.allowBatches(ctx, s)
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, err
	}
	for _, r := range n.replicaChoices() {
		if s, err = n.js.CreateStream(ctx, n.streamConfig(r)); err == nil || errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			if err != nil {
				return n.js.Stream(ctx, listsStream)
			}
			return s, nil
		}
		var apiErr *jetstream.APIError
		if !errors.As(err, &apiErr) {
			return nil, err
		}
	}
	return nil, err
}

// allowBatches lets a stream made by an earlier version, without atomic
// batches, take them. A server that refuses (or, older than 2.12, does not
// know them and leaves them out of the config it answers) keeps the stream
// as it is: the store then writes one list at a time.
func (n *Node) allowBatches(ctx context.Context, s jetstream.Stream) (jetstream.Stream, error) {
	cfg := s.CachedInfo().Config
	if cfg.AllowAtomicPublish || n.seams.noBatches {
		return s, nil
	}
	cfg.AllowAtomicPublish = true
	_, err := n.js.UpdateStream(ctx, cfg)
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		n.log.Warn("cluster: the lists' stream cannot take atomic batches: writing one list at a time", "err", err)
		return s, nil
	}
	if err != nil {
		return nil, err
	}
	n.log.Info("cluster: the lists' stream now takes atomic batches")
	return n.js.Stream(ctx, listsStream)
}

func (n *Node) bucketConfig(name string, ttl time.Duration, replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{Bucket: name, History: 1, TTL: ttl, Storage: jetstream.FileStorage, Replicas: replicas}
}

func (n *Node) ensureBucket(ctx context.Context, name string, ttl time.Duration) (jetstream.KeyValue, error) {
	kv, err := n.js.KeyValue(ctx, name)
	if err == nil || !errors.Is(err, jetstream.ErrBucketNotFound) {
		return kv, err
	}
	for _, r := range n.replicaChoices() {
		if kv, err = n.js.CreateKeyValue(ctx, n.bucketConfig(name, ttl, r)); err == nil {
			return kv, nil
		}
		if errors.Is(err, jetstream.ErrBucketExists) {
			return n.js.KeyValue(ctx, name)
		}
		var apiErr *jetstream.APIError
		if !errors.As(err, &apiErr) {
			return nil, err
		}
	}
	return nil, err
}

// maintain scales the assets up to Options.Replicas once the cluster has
// the servers for it, and writes down the peers the node has learned.
func (n *Node) maintain() {
	if n.srv != nil {
		if err := n.peers.learn(n.view.clusterAddrs()...); err != nil {
			n.log.Warn("cluster: cannot remember peers", "err", err)
		}
		n.tickRoutes()
	}
	if !n.scaled {
		n.scaled = n.scaleUp()
	}
}

// scaleUp raises each of the lists' stream and the two buckets that has
// fewer than Options.Replicas to it, each on its own (one that failed, or
// whose answer was lost, is tried again on the next tick while the others
// are done), and reports whether all three have them. It is done once: an
// asset is never scaled down. An asset's config is kept as the cluster
// holds it, but for its replicas. The whole takes at most AckTimeout.
func (n *Node) scaleUp() bool {
	ctx, cancel := context.WithTimeout(n.ctx, n.opts.AckTimeout)
	defer cancel()
	all := true
	for _, name := range []string{listsStream, "KV_" + nodesBucket, "KV_" + ownersBucket} {
		s, err := n.js.Stream(ctx, name)
		if err != nil {
			return false // no answer now: the next tick
		}
		cfg := s.CachedInfo().Config
		if cfg.Replicas >= n.opts.Replicas {
			continue
		}
		all = false
		cfg.Replicas = n.opts.Replicas
		_, err = n.js.UpdateStream(ctx, cfg)
		var apiErr *jetstream.APIError
		switch {
		case err == nil:
			n.log.Info("cluster: stored on more servers", "asset", name, "replicas", n.opts.Replicas)
		case errors.As(err, &apiErr) && !n.scaleRefused[name]:
			// Not enough servers yet, most often: said once, tried each tick.
			n.scaleRefused[name] = true
			n.log.Info("cluster: cannot store on more servers yet", "asset", name, "replicas", n.opts.Replicas, "err", err)
		case err != nil && ctx.Err() != nil:
			return false
		}
	}
	return all
}

// tickRoutes tells the route log what the node knows of its peers: their
// names by address, from the view, and which the server routes to now.
func (n *Node) tickRoutes() {
	rz, err := n.srv.Routez(nil)
	if err != nil {
		return
	}
	routed := make(map[string]bool)
	for _, r := range rz.Routes {
		routed[r.RemoteName] = true
		if r.DidSolicit {
			routed[net.JoinHostPort(r.IP, strconv.Itoa(r.Port))] = true
		}
	}
	n.routes.tick(time.Now(), n.view.addrNames(), func(peer string) bool { return routed[peer] })
}

// watchMembers keeps the view of the members up to date from the nodes
// bucket, from the watcher setup made, watching again whenever a watch
// ends or lags.
func (n *Node) watchMembers(ctx context.Context) {
	w := n.watcher
	// Checked every LeaseTTL/8, a lag is found within LeaseTTL/4 of the
	// renewal that did not come through: well before anyone's silence
	// could make this node take a live member for dead.
	check := time.NewTicker(n.opts.LeaseTTL / 8)
	defer check.Stop()
	for {
		n.follow(ctx, w, check.C)
		w.Stop()
		for {
			if ctx.Err() != nil {
				return
			}
			var err error
			if w, err = n.nodes.WatchAll(ctx); err == nil {
				break
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
}

// follow applies a watch's updates to the view until the watch ends, ctx
// ends, or the watch lags: a renewal of this node's own, acknowledged at
// least one check ago, has not come through it. That is how a watch whose
// consumer died with its server shows (JetStream's ordered consumer
// notices only after two missed heartbeats, 10s), and meanwhile every
// member's record would age in the view, this node's own included.
func (n *Node) follow(ctx context.Context, w jetstream.KeyWatcher, check <-chan time.Time) {
	var due uint64 // the revision of a renewal the watch should have delivered
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e != nil {
				n.view.update(e)
			}
		case <-check:
			if due != 0 && n.view.revisionOf(n.opts.Name) < due {
				n.log.Debug("cluster: the watch of the nodes bucket lags: watching again", "node", n.opts.Name)
				return
			}
			due = n.lease.revision()
		case <-ctx.Done():
			return
		}
	}
}

// syncView starts the watcher of the nodes bucket and waits until it has
// delivered every member: a node routes by its view, and one that routed
// before its view held the others would claim every list for itself.
func (n *Node) syncView(ctx context.Context) error {
	w, err := n.nodes.WatchAll(ctx)
	if err != nil {
		return err
	}
	for {
		select {
		case e := <-w.Updates():
			if e == nil { // the end of the initial values
				n.watcher = w
				return nil
			}
			n.view.update(e)
		case <-ctx.Done():
			w.Stop()
			return ctx.Err()
		}
	}
}

// keepLease renews the node's liveness every LeaseTTL/4 until Close.
// After a renewal that failed it tries again sooner, every LeaseTTL/16:
// a node whose lease lapsed while the nodes bucket elected a leader serves
// its lists again as soon as the new leader takes renewals.
func (n *Node) keepLease() {
	period := n.opts.LeaseTTL / 4
	retry := max(n.opts.LeaseTTL/16, 50*time.Millisecond)
	next := time.NewTimer(period)
	defer next.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-next.C:
		}
		if n.seams.frozen != nil && n.seams.frozen.Load() {
			next.Reset(period)
			continue
		}
		if n.seams.muted != nil && n.seams.muted.Load() {
			n.lease.failure()
			next.Reset(retry)
			continue
		}
		if n.renewOnce() {
			next.Reset(period)
		} else {
			next.Reset(retry)
		}
	}
}

// renewOnce renews the node's liveness and reports whether it did; when
// that began a new epoch (the others declared this node dead), the lists
// held under the old one are let go.
func (n *Node) renewOnce() bool {
	ctx, cancel := context.WithTimeout(n.ctx, n.opts.AckTimeout)
	defer cancel()
	ended, err := n.renew(ctx)
	if err != nil {
		n.lease.failure()
		n.log.Debug("cluster: renewal failed", "node", n.opts.Name, "err", err)
		return false
	}
	if ended != 0 {
		n.log.Warn("cluster: declared dead while its lease had lapsed: letting go of every list held", "node", n.opts.Name, "epoch", ended)
		for _, list := range n.held.all() {
			n.unloadLost(list)
		}
	}
	return true
}

// epochNow returns the epoch the node serves under now, or 0 when its
// lease has lapsed (see lease.valid). A test's frozen node (seams.frozen)
// serves under its epoch whatever its lease says: it does not know.
func (n *Node) epochNow(now time.Time) uint64 {
	if n.seams.frozen != nil && n.seams.frozen.Load() {
		return n.lease.kept()
	}
	return n.lease.valid(now)
}

// unloadLost unloads a list the node no longer owns, in the background:
// its requests in flight fail with ErrNotOwner (the store refuses their
// commits) and the next ones find the owner.
func (n *Node) unloadLost(list string) {
	n.log.Debug("cluster: list lost", "node", n.opts.Name, "list", list)
	n.stats.lost.Add(1)
	n.ownerCache.forget(list)
	if !n.held.startMoving(list) {
		return
	}
	n.bgMu.Lock()
	defer n.bgMu.Unlock()
	if n.bgDone {
		return // closing: the System's Close lets go of every list
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.held.waitIdle(list)
		ctx, cancel := context.WithTimeout(context.Background(), n.opts.WriteTimeout+2*n.opts.AckTimeout)
		defer cancel()
		if err := n.sys.Unload(ctx, list); err != nil && !errors.Is(err, todo.ErrClosed) {
			n.log.Warn("cluster: unload of a lost list", "list", list, "err", err)
		}
		n.held.drop(list)
	}()
}

// shutdownNATS closes the connection and the embedded server.
func (n *Node) shutdownNATS() {
	if n.nc != nil {
		n.nc.Close()
	}
	if n.srv != nil {
		n.srv.Shutdown()
		n.srv.WaitForShutdown()
	}
}

// Shutdown leaves the cluster gracefully, as net/http's Server.Shutdown
// stops a server: the node takes no new list (the others are told it is
// leaving), hands every list it holds to the node that should have it next
// (each list is drained and its last change stored; no data is copied),
// withdraws its liveness so that the others take over at once, answers the
// forwarded requests it has received, and shuts its System down, storing
// every change queued. Then it closes: it stops its server and joins every
// goroutine. After it every call returns todo.ErrClosed.
//
// ctx bounds the waiting: when it ends, the lists not yet handed off stay
// where they are stored, for the others to take over, and Shutdown goes on
// to close, and returns an error wrapping ctx's (joined with the System's,
// if any). The withdrawal of the node's liveness, one write, is tried even
// then: without it the others would wait out its lease. Shutdown and Close
// are idempotent: after the first, they return nil.
func (n *Node) Shutdown(ctx context.Context) error {
	return n.shutdown(ctx, func() error { return n.sys.Shutdown(ctx) })
}

// shutdown is the lifecycle of Shutdown and Close, which differ in how the
// System ends: Shutdown retries failing commits until ctx ends, Close
// makes its few attempts (see [todo.System.Close]), so that a node with no
// quorum left still closes.
func (n *Node) shutdown(ctx context.Context, endSystem func() error) error {
	n.closeMu.Lock()
	defer n.closeMu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
	n.leaving.Store(true)
	var errs []error
	if n.isReady() {
		left := n.handOffAll(ctx)
		n.withdraw(context.WithoutCancel(ctx))
		n.announceLeave(ctx)
		drained := n.drainRPC(ctx)
		if err := ctx.Err(); err != nil && (left > 0 || !drained) {
			errs = append(errs, errCutShort(left, drained, err))
		}
	}
	n.stopBackground()
	if n.sys != nil {
		n.store.stopping()
		errs = append(errs, endSystem())
	}
	n.shutdownNATS()
	return errors.Join(errs...)
}

// errCutShort says what a Shutdown whose ctx ended (cause) left undone.
func errCutShort(left int, drained bool, cause error) error {
	var undone []string
	if left > 0 {
		undone = append(undone, fmt.Sprintf("%d lists not handed off (stored, for the others to take over)", left))
	}
	if !drained {
		undone = append(undone, "forwarded requests left unanswered")
	}
	return fmt.Errorf("cluster: shutdown cut short, %s: %w", strings.Join(undone, ", "), cause)
}

// Close is Shutdown without a deadline, except that the System makes
// only the few attempts of [todo.System.Close] to store what keeps
// failing, rather than retrying for ever.
func (n *Node) Close() error {
	return n.shutdown(context.Background(), func() error { return n.sys.Close() })
}

// withdraw deletes the node's liveness record: the others take its lists
// over at once instead of waiting out its lease.
func (n *Node) withdraw(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, n.opts.AckTimeout)
	defer cancel()
	if err := n.nodes.Delete(ctx, encodeName(n.opts.Name)); err != nil {
		n.log.Warn("cluster: cannot withdraw liveness; the others wait out the lease", "err", err)
	}
}

// drainRPC answers the forwarded requests already received, for up to
// RequestTimeout or until ctx ends, then stops taking them. It reports
// whether every one was answered.
func (n *Node) drainRPC(ctx context.Context) bool {
	defer n.rpc.Unsubscribe()
	closed := n.rpc.StatusChanged(nats.SubscriptionClosed)
	if err := n.rpc.Drain(); err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, n.opts.RequestTimeout)
	defer cancel()
	select {
	case <-closed: // every request received was handed to serveRPC
	case <-ctx.Done():
		return false
	}
	served := make(chan struct{})
	go func() {
		n.rpcWG.Wait()
		close(served)
	}()
	select {
	case <-served:
		return true
	case <-ctx.Done():
		return false // stopBackground waits for them
	}
}

// stopBackground ends the node's background goroutines and waits for
// them, and for the forwarded requests being served.
func (n *Node) stopBackground() {
	close(n.stop)
	n.cancel()
	n.bgMu.Lock()
	n.bgDone = true
	n.bgMu.Unlock()
	n.wg.Wait()
	n.rpcWG.Wait()
}
