package cluster

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/gotodo/todo"
	"github.com/nats-io/nats.go"
)

// Forwarded requests travel over NATS request/reply to the owner's own
// subject (todo.rpc.<node>), in a compact binary form written with the
// codec's entry encoding. Per-node subjects cost one subscription per
// node, however many lists; per-list subjects would cost one per list:
// BenchmarkRPC_Subjects measured the same round trip either way, and 2.3 KB
// of heap per list subscribed over three servers (230 MiB for 100,000).

// rpcOp is what a forwarded request asks.
type rpcOp byte

const (
	rpcAdd    rpcOp = iota + 1
	rpcUpdate       // UpdateEntry: the entry's Date and Title are the patch's
	rpcDelete
	rpcEntries // one date
	rpcAll
	_        // was the read of UpdateEntry's compare-and-replace, before rpcVersion 3
	rpcPage  // a page of entries: after id, at most limit
	rpcLeave // the node named in list, under the epoch in id, has left (see announceLeave)
)

// rpcVersion is what forwarded requests and their answers start with: 3
// since UpdateEntry travels as a patch (rpcUpdate), where 2 read the
// entry and replaced it if unchanged; 4 since answers end with the list's
// revision (see todo.Watcher). A node refuses the other versions: nodes
// of both kinds cannot serve one cluster.
const rpcVersion = 4

// rpcRequest is a forwarded request.
type rpcRequest struct {
	op   rpcOp
	hops int
	// deadline is the caller's, as an absolute time: a request that
	// reaches the owner late (held in a route while the network was
	// cut, and delivered when it healed) is refused, not served after
	// its caller was told it timed out.
	deadline time.Time
	list     string
	id       int
	entry    todo.Entry // add: the entry; update: the patch's date and title; entries, page: its Date
	limit    int        // page: the most entries to return
	key      string     // add, update, delete: the caller's idempotency key, or ""
}

func (r *rpcRequest) encode() []byte {
	b := []byte{rpcVersion, byte(r.op), byte(r.hops)}
	b = binary.AppendUvarint(b, uint64(max(r.deadline.UnixMilli(), 0)))
	b = binary.AppendUvarint(b, uint64(len(r.list)))
	b = append(b, r.list...)
	b = binary.AppendUvarint(b, uint64(r.id))
	b = appendEntry(b, r.entry)
	b = binary.AppendUvarint(b, uint64(max(r.limit, 0)))
	b = binary.AppendUvarint(b, uint64(len(r.key)))
	return append(b, r.key...)
}

func decodeRequest(b []byte) (rpcRequest, error) {
	d := decoder{b: b}
	var r rpcRequest
	if v := d.byte("version"); d.err == nil && v != rpcVersion {
		d.fail("version %d, want %d", v, rpcVersion)
	}
	r.op = rpcOp(d.byte("op"))
	r.hops = int(d.byte("hops"))
	r.deadline = time.UnixMilli(int64(d.uvarint("deadline", 1<<62)))
	r.list = d.bytes("list")
	r.id = int(d.uvarint("id", todo.MaxID))
	r.entry = d.entry()
	r.limit = int(d.uvarint("limit", 1<<31))
	r.key = d.bytes("key")
	return r, d.end()
}

// Error kinds in answers: each maps back to the sentinel the owner's
// error wrapped, so that errors.Is works across nodes.
const (
	errKindNone byte = iota
	errKindNotOwner
	errKindUnavailable
	errKindNotFound
	errKindInvalidName
	errKindInvalidDate
	errKindInvalidTitle
	errKindListFull
	errKindCrashed
	errKindCorrupt
	errKindTooLarge
	errKindClosed
	errKindDeadline
	errKindCanceled
	_ // was the refused compare-and-replace of UpdateEntry
	errKindInvalidKey
	errKindKeyReused
	errKindInvalidLimit
	errKindOther
	errKindEmptyPatch
)

var errKinds = []struct {
	kind byte
	err  error
}{
	{errKindNotOwner, ErrNotOwner},
	{errKindNotFound, todo.ErrEntryNotFound},
	{errKindInvalidName, todo.ErrInvalidName},
	{errKindInvalidDate, todo.ErrInvalidDate},
	{errKindInvalidTitle, todo.ErrInvalidTitle},
	{errKindListFull, todo.ErrListFull},
	{errKindCrashed, todo.ErrCrashed},
	{errKindCorrupt, todo.ErrCorrupt},
	{errKindTooLarge, todo.ErrTooLarge},
	{errKindClosed, todo.ErrClosed},
	{errKindDeadline, context.DeadlineExceeded},
	{errKindCanceled, context.Canceled},
	{errKindInvalidKey, todo.ErrInvalidKey},
	{errKindKeyReused, todo.ErrKeyReused},
	{errKindInvalidLimit, todo.ErrInvalidLimit},
	{errKindEmptyPatch, todo.ErrEmptyPatch},
	{errKindUnavailable, todo.ErrUnavailable}, // after ErrNotOwner, which wraps it
}

func errKind(err error) byte {
	if err == nil {
		return errKindNone
	}
	for _, k := range errKinds {
		if errors.Is(err, k.err) {
			return k.kind
		}
	}
	return errKindOther
}

// remoteError rebuilds an owner's error: its sentinel, and its message,
// which already names the list.
type remoteError struct {
	node string
	msg  string
	err  error
}

func (e *remoteError) Error() string { return e.msg + " (on node " + e.node + ")" }
func (e *remoteError) Unwrap() error { return e.err }

func kindError(kind byte, node, msg string) error {
	for _, k := range errKinds {
		if k.kind == kind {
			return &remoteError{node, msg, k.err}
		}
	}
	return &remoteError{node, msg, nil}
}

// rpcReply is the answer to a forwarded request.
type rpcReply struct {
	errKind byte
	errMsg  string
	entry   todo.Entry
	entries []todo.Entry
	// servedBy is the owner that served the request, with its epoch: the
	// node asked forwarded it on when the list had moved, and the caller
	// then sends the next request there straight away.
	servedBy    string
	servedEpoch uint64
	// rev is the list's revision after the change, or of the page read;
	// 0 for the other requests.
	rev int64
}

// served is where a node notes who served a forwarded request, carried
// in its ctx (see withServed).
type served struct {
	node  string
	epoch uint64
}

type servedKey struct{}

func withServed(ctx context.Context, s *served) context.Context {
	return context.WithValue(ctx, servedKey{}, s)
}

// noteServed records who served a request, if its ctx asks.
func noteServed(ctx context.Context, node string, epoch uint64) {
	if s, ok := ctx.Value(servedKey{}).(*served); ok {
		s.node, s.epoch = node, epoch
	}
}

func (r *rpcReply) encode() []byte {
	n := 32 + len(r.errMsg)
	for _, e := range r.entries {
		n += 16 + len(e.Title)
	}
	b := make([]byte, 0, n)
	b = append(b, rpcVersion, r.errKind)
	b = binary.AppendUvarint(b, uint64(len(r.errMsg)))
	b = append(b, r.errMsg...)
	b = appendEntry(b, r.entry)
	b = binary.AppendUvarint(b, uint64(len(r.entries)))
	for _, e := range r.entries {
		b = appendEntry(b, e)
	}
	b = binary.AppendUvarint(b, uint64(len(r.servedBy)))
	b = append(b, r.servedBy...)
	b = binary.AppendUvarint(b, r.servedEpoch)
	return binary.AppendUvarint(b, uint64(max(r.rev, 0)))
}

func decodeReply(b []byte) (rpcReply, error) {
	d := decoder{b: b}
	var r rpcReply
	if v := d.byte("version"); d.err == nil && v != rpcVersion {
		d.fail("version %d, want %d", v, rpcVersion)
	}
	r.errKind = d.byte("error kind")
	r.errMsg = d.bytes("message")
	r.entry = d.entry()
	count := int(d.uvarint("count", uint64(len(d.b))))
	if count > 0 && d.err == nil {
		r.entries = make([]todo.Entry, 0, count)
	}
	for i := 0; i < count && d.err == nil; i++ {
		r.entries = append(r.entries, d.entry())
	}
	r.servedBy = d.bytes("served by")
	r.servedEpoch = d.uvarint("epoch", 1<<63)
	r.rev = int64(d.uvarint("revision", todo.MaxRevision))
	return r, d.end()
}

// forward sends req to node and returns its answer. A node that is gone
// (no responders), or has said it left (see departed), gives a retryable
// error: nobody got the request. A request whose answer does not come
// within ctx gives ctx's error: it may have been served, as with any call
// timeout.
func (n *Node) forward(ctx context.Context, node string, req *rpcRequest) (rpcReply, error) {
	n.stats.forwarded.Add(1)
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, n.opts.RequestTimeout)
		defer cancel()
	}
	req.deadline, _ = ctx.Deadline()
	req.key = todo.IdempotencyKey(ctx)
	if !n.gate.begin(node) {
		n.ownerCache.forget(req.list)
		return rpcReply{}, fmt.Errorf("%w: node %s has left", ErrNotOwner, node)
	}
	if n.seams.beforeSend != nil {
		n.seams.beforeSend(node)
	}
	msg, err := n.nc.RequestWithContext(ctx, rpcSubject(node), req.encode())
	n.gate.end(node)
	if errors.Is(err, nats.ErrNoResponders) {
		n.ownerCache.forget(req.list)
		return rpcReply{}, fmt.Errorf("%w: node %s does not answer", ErrNotOwner, node)
	}
	if err != nil {
		if ctx.Err() != nil {
			return rpcReply{}, fmt.Errorf("list %q: forwarded to node %s: %w", req.list, node, ctx.Err())
		}
		return rpcReply{}, fmt.Errorf("%w: forward to node %s: %w", ErrNotReady, node, err)
	}
	rep, err := decodeReply(msg.Data)
	if err != nil {
		return rpcReply{}, fmt.Errorf("cluster: answer of node %s: %w", node, err)
	}
	if rep.servedBy != "" {
		noteServed(ctx, rep.servedBy, rep.servedEpoch)
		if rep.servedBy != node && rep.servedBy != n.opts.Name {
			n.ownerCache.put(req.list, ownerRecord{rep.servedBy, rep.servedEpoch})
		}
	}
	if rep.errKind != errKindNone {
		if rep.errKind == errKindNotOwner {
			n.ownerCache.forget(req.list)
		}
		return rep, kindError(rep.errKind, node, rep.errMsg)
	}
	return rep, nil
}

// serveRPC takes a forwarded request off the subscription and serves it
// on a goroutine of its own, at most seams.rpcWorkers at once. Both the
// requests being served and those waiting are bounded: a request that
// finds every worker busy, or more than seams.rpcQueue requests waiting
// behind it, is answered at once that the node is overloaded (a retryable
// ErrUnavailable; nothing was done). Past four times that queue, NATS
// itself drops requests (a slow consumer, logged): their callers time out.
func (n *Node) serveRPC(msg *nats.Msg) {
	if n.seams.beforeDispatch != nil {
		n.seams.beforeDispatch()
	}
	if waiting, _, err := msg.Sub.Pending(); err == nil && waiting > n.seams.rpcQueue() {
		n.stats.overloaded.Add(1)
		rep := rpcReply{errKind: errKindUnavailable, errMsg: fmt.Sprintf("todo: node %s is overloaded: %d forwarded requests wait", n.opts.Name, waiting)}
		msg.Respond(rep.encode())
		return
	}
	select {
	case n.rpcSem <- struct{}{}:
	default:
		n.stats.overloaded.Add(1)
		rep := rpcReply{errKind: errKindUnavailable, errMsg: "todo: node " + n.opts.Name + " is overloaded"}
		msg.Respond(rep.encode())
		return
	}
	n.rpcWG.Add(1)
	go func() {
		defer n.rpcWG.Done()
		defer func() { <-n.rpcSem }()
		n.stats.served.Add(1)
		req, err := decodeRequest(msg.Data)
		var rep rpcReply
		if err != nil {
			rep = rpcReply{errKind: errKindOther, errMsg: "cluster: bad request: " + err.Error()}
		} else {
			rep = n.serveForwarded(&req)
		}
		msg.Respond(rep.encode())
	}()
}

// serveForwarded serves a request another node forwarded here, with what
// is left of its caller's deadline.
func (n *Node) serveForwarded(req *rpcRequest) (rep rpcReply) {
	// The caller's deadline, bounded: a clock far off must not make a
	// request wait for ever.
	deadline := req.deadline
	if limit := time.Now().Add(time.Hour); deadline.After(limit) {
		deadline = limit
	}
	if !time.Now().Before(deadline) {
		n.stats.late.Add(1)
		return rpcReply{errKind: errKindDeadline, errMsg: fmt.Sprintf("list %q: the request reached node %s after its deadline", req.list, n.opts.Name)}
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if req.key != "" {
		ctx = todo.WithIdempotencyKey(ctx, req.key)
	}
	var by served
	ctx = withServed(ctx, &by)
	defer func() { rep.servedBy, rep.servedEpoch = by.node, by.epoch }()
	var err error
	switch req.op {
	case rpcAdd:
		rep.entry, rep.rev, err = n.addEntry(ctx, req.list, req.entry, req.hops)
	case rpcUpdate:
		rep.entry, rep.rev, err = n.updateEntry(ctx, req.list, req.id, todo.Patch{Date: req.entry.Date, Title: req.entry.Title}, req.hops)
	case rpcDelete:
		rep.rev, err = n.deleteEntry(ctx, req.list, req.id, req.hops)
	case rpcEntries:
		rep.entries, err = n.appendEntries(ctx, req.list, nil, req.entry.Date, req.hops)
	case rpcAll:
		rep.entries, err = n.allEntries(ctx, req.list, req.hops)
	case rpcPage:
		rep.entries, rep.rev, err = n.entriesPage(ctx, req.list, req.entry.Date, req.id, req.limit, req.hops)
	case rpcLeave:
		n.departed(req.list, uint64(req.id))
		return rep
	default:
		err = fmt.Errorf("cluster: unknown request %d", req.op)
	}
	if errors.Is(err, todo.ErrClosed) {
		// This node is leaving, not the caller's: the list is served
		// elsewhere next.
		err = fmt.Errorf("%w: node %s is leaving", ErrNotOwner, n.opts.Name)
	}
	if err != nil {
		rep.errKind, rep.errMsg = errKind(err), err.Error()
	}
	return rep
}

// A node that leaves gracefully must not lose a request sent to it: NATS
// delivers a message to the subscribers it knows of when the message
// reaches their server, and drops one that reaches the server after the
// node has unsubscribed. Its peers route requests to it until they learn
// that it left, and their views learn that through a watch, a moment
// after it withdrew: a request sent in that moment was dropped, and its
// caller waited out its whole deadline (TestNode_JoinAndLeave, "forwarded
// to node n4: context deadline exceeded": the leaving node never received
// it). So the node tells each peer that it has left (announceLeave), and
// a peer answers only once it sends no request there and has none under
// way (departed): after every answer, nothing more can come, and every
// request that came is answered before the node unsubscribes.

// announceLeave tells every other member that this node has left, and
// waits for their answers, until ctx ends or RequestTimeout passes. A
// member that does not answer is down or cut off: it sends nothing here.
func (n *Node) announceLeave(ctx context.Context) {
	if n.seams.noLeaveNotice {
		return
	}
	if n.seams.announcing != nil {
		n.seams.announcing()
	}
	ctx, cancel := context.WithTimeout(ctx, n.opts.RequestTimeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	req := rpcRequest{op: rpcLeave, deadline: deadline, list: n.opts.Name, id: int(n.lease.kept())}
	data := req.encode()
	var wg sync.WaitGroup
	for _, peer := range n.view.others(n.opts.Name) {
		wg.Go(func() {
			if _, err := n.nc.RequestWithContext(ctx, rpcSubject(peer), data); err != nil && !errors.Is(err, nats.ErrNoResponders) {
				n.log.Warn("cluster: a peer did not answer that this node leaves", "node", n.opts.Name, "peer", peer, "err", err)
			}
		})
	}
	wg.Wait()
}

// departed takes note that node has left under epoch: the view takes it
// for gone, and no request is sent to it any more (until it comes back
// under another epoch). It returns once none is under way.
func (n *Node) departed(node string, epoch uint64) {
	n.view.leave(node, epoch)
	n.gate.close(node, epoch)
}

// sendGate counts the requests under way to each node, and closes to a
// node that has left. It is safe for concurrent use.
type sendGate struct {
	view *view

	mu     sync.Mutex // guards flight and left
	idle   sync.Cond  // signalled when a node's flight drops to 0
	flight map[string]int
	left   map[string]uint64 // node → the epoch it left under
}

func newSendGate(v *view) *sendGate {
	g := &sendGate{view: v, flight: make(map[string]int), left: make(map[string]uint64)}
	g.idle.L = &g.mu
	return g
}

// begin reports whether a request may be sent to node, and if so counts
// it under way until end. It may not once node has left, until the view
// knows it under another epoch.
func (g *sendGate) begin(node string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if epoch, ok := g.left[node]; ok {
		if now := g.view.epochOf(node); now == 0 || now == epoch {
			return false
		}
		delete(g.left, node) // it came back
	}
	g.flight[node]++
	return true
}

func (g *sendGate) end(node string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.flight[node]--; g.flight[node] == 0 {
		delete(g.flight, node)
		g.idle.Broadcast()
	}
}

// close closes the gate to node, which left under epoch, and waits until
// no request to it is under way.
func (g *sendGate) close(node string, epoch uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.left[node] = epoch
	for g.flight[node] > 0 {
		g.idle.Wait()
	}
}
