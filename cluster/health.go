package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/gotodo/todo"
	"github.com/nats-io/nats.go/jetstream"
)

// Health is a node's view of the cluster, for /healthz.
type Health struct {
	Node  string `json:"node"`
	Epoch uint64 `json:"epoch"` // 0 while the node serves under no lease
	Ready bool   `json:"ready"` // JetStream answered and the node has had an epoch
	// CanWrite says that the node serves its lists now: it is ready, its
	// lease holds, its server has a route to a peer, and no write of its
	// store, nor read or write of the owners bucket (which routes every
	// list not yet held, and moves lists), has waited for a quorum longer
	// than AckTimeout/2.
	CanWrite bool     `json:"can_write"`
	Reason   string   `json:"reason,omitempty"`
	Nodes    []string `json:"nodes"` // the members whose records are fresh, sorted: this node among them while its lease holds
	Routes   int      `json:"routes"`
}

// Health returns the node's view of the cluster and whether it can write.
// It reads only what the node knows already: it never waits.
func (n *Node) Health() Health {
	now := time.Now()
	h := Health{Node: n.opts.Name, Ready: n.isReady(), Epoch: n.epochNow(now)}
	h.Nodes, _ = n.view.live(now, time.Time{})
	if h.Epoch != 0 && !n.leaving.Load() && !slices.Contains(h.Nodes, n.opts.Name) {
		h.Nodes = append(h.Nodes, n.opts.Name) // its own record may not have reached its watcher yet
	}
	slices.Sort(h.Nodes)
	if h.Nodes == nil {
		h.Nodes = []string{}
	}
	if n.srv != nil {
		h.Routes = n.srv.NumRoutes()
	}
	stalled := n.stalls.stalled(now, n.opts.AckTimeout)
	ownersStalled := n.ownerOps.stalled(now, n.opts.AckTimeout)
	switch {
	case n.fatal.Load() != nil:
		h.Reason = (*n.fatal.Load()).Error()
	case n.isClosed() || n.leaving.Load():
		h.Reason = "leaving"
	case !h.Ready:
		h.Reason = "waiting for a JetStream quorum: start or join more nodes"
	case n.srv != nil && h.Routes == 0:
		h.Reason = "no route to any peer: no quorum"
	case h.Epoch == 0:
		h.Reason = "lease lapsed: its renewals get no answer (no quorum of the nodes bucket); it keeps its lists and serves them again once it renews"
	case stalled >= n.stallAfter():
		h.Reason = fmt.Sprintf("a write has waited %v for a quorum, and none went through since", stalled.Round(time.Millisecond))
	case ownersStalled >= n.stallAfter():
		h.Reason = fmt.Sprintf("a read or write of the lists' owners has waited %v for a quorum, and none went through since", ownersStalled.Round(time.Millisecond))
	default:
		h.CanWrite = true
	}
	return h
}

// stallAfter is how long a write of the store may wait for a quorum
// before the node says it cannot write.
func (n *Node) stallAfter() time.Duration { return n.opts.AckTimeout / 2 }

// inflight keeps when each operation under way began, and when one last
// went through, to say how long the store has been stalled. It is safe
// for concurrent use.
type inflight struct {
	mu     sync.Mutex // guards the fields below
	next   uint64
	ops    map[uint64]time.Time
	lastOK time.Time
	// failing is when the first of a run of operations that failed
	// without an answer began, none going through since; lastFail is
	// when the last of them failed, fails how many there were. Zero when
	// there is no such run.
	failing, lastFail time.Time
	fails             int
}

func (f *inflight) begin() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ops == nil {
		f.ops = make(map[uint64]time.Time)
	}
	f.next++
	f.ops[f.next] = time.Now()
	return f.next
}

// end ends the operation id; ok says that it went through.
func (f *inflight) end(id uint64, ok bool) {
	f.mu.Lock()
	delete(f.ops, id)
	if ok {
		f.lastOK = time.Now()
		f.failing, f.lastFail, f.fails = time.Time{}, time.Time{}, 0
	}
	f.mu.Unlock()
}

// fail ends the operation id, which failed without an answer (no leader
// took it, it timed out, the leader said it cannot answer now). Such
// failures may come quickly, one after another, and none is under way
// long: while each begins within settling of the last failure (a retry
// each second keeps a run going, and so does one made at once after a
// call that waited out its time), with none going through meanwhile, two
// or more count as a stall since the first began (see stalled). One
// alone is not a run: a quick failure once in a while says nothing.
func (f *inflight) fail(id uint64, settling time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	began, now := f.ops[id], time.Now()
	delete(f.ops, id)
	if f.failing.IsZero() || began.Sub(f.lastFail) >= settling {
		f.failing, f.fails = began, 0
	}
	if began.Before(f.failing) {
		f.failing = began
	}
	f.lastFail = now
	f.fails++
}

// stalled returns how long the store has been stalled at now: how long
// the oldest operation under way has waited, unless one went through
// since it began and it has waited less than settling (a write whose
// acknowledgement is late does not stop the others); 0 when none is under
// way. An operation under way for settling or longer has waited out its
// acknowledgement and is being settled or tried again: the lists it
// commits wait with it, and the store counts as stalled whatever the
// others do (a partition that cut the lists' stream's leader off left a
// node saying it could write while writes to a quarter of its lists,
// behind one commit being settled, timed out).
//
// A run of two or more operations that failed without an answer, the
// last within settling of now, counts as a stall since the first began,
// whatever is under way.
func (f *inflight) stalled(now time.Time, settling time.Duration) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	var run time.Duration
	if f.fails >= 2 && now.Sub(f.lastFail) < settling {
		run = now.Sub(f.failing)
	}
	var oldest time.Time
	for _, t := range f.ops {
		if oldest.IsZero() || t.Before(oldest) {
			oldest = t
		}
	}
	if oldest.IsZero() {
		return run
	}
	if waited := now.Sub(oldest); waited >= settling || !f.lastOK.After(oldest) {
		return max(run, waited)
	}
	return max(run, now.Sub(f.lastOK))
}

// watchedStore is the node's store as its System sees it: every Load and
// Commit is timed while it waits for JetStream, so that Health can say
// when writes stall (the lists' stream elects a leader, or has no quorum)
// before they fail.
type watchedStore struct {
	*store
	ops *inflight
}

func (s watchedStore) Load(ctx context.Context, list string) (todo.ListState, error) {
	id := s.ops.begin()
	st, err := s.store.Load(ctx, list)
	s.ops.end(id, err == nil)
	return st, err
}

func (s watchedStore) Commit(ctx context.Context, batch []todo.Change, sync bool) {
	id := s.ops.begin()
	s.store.Commit(ctx, batch, sync)
	stored := slices.ContainsFunc(batch, func(c todo.Change) bool { return c.Err == nil && len(c.Ops) > 0 })
	s.ops.end(id, stored)
}

// watchedKV is the owners bucket as the node's routing sees it: every
// read and write is timed while it waits for JetStream, as watchedStore
// times the store's, so that Health says when the bucket stalls (it elects
// a leader, or has no quorum). Routing a list not held here, claiming one
// and handing one off all wait on it: a node whose store went through
// while its owner records stalled answered 200 while writes sent to it
// timed out (TestCluster_Partition, after the heal).
//
// A write the bucket answered, even with a refusal (a revision that moved
// on, a key that exists), went through: the bucket has a leader. A read
// answered proves nothing of the kind (the bucket allows direct reads,
// which the node's own replica answers without a leader), so it only ends
// its wait. A call that failed without an answer begins or continues a
// run of failures, which counts as a stall however quick each one was
// (see inflight.fail); one its caller gave up on counts for nothing.
type watchedKV struct {
	jetstream.KeyValue
	ops      *inflight
	settling time.Duration // AckTimeout
	hold     func()        // seams.ownersHold
}

// begin counts a call under way, and holds it where a test asks to.
func (kv watchedKV) begin() (uint64, time.Time) {
	id, began := kv.ops.begin(), time.Now()
	if kv.hold != nil {
		kv.hold()
	}
	return id, began
}

// done ends the call id, made with ctx at began, that returned err;
// write says whether it was a write. A call its caller gave up on
// (canceled, or a deadline shorter than AckTimeout ran out: a client that
// went away) says nothing of the bucket.
func (kv watchedKV) done(ctx context.Context, id uint64, began time.Time, err error, write bool) {
	if err != nil && ctx.Err() != nil && !gaveTime(ctx, began, kv.settling) {
		kv.ops.end(id, false)
		return
	}
	if !answered(err) {
		kv.ops.fail(id, kv.settling)
		return
	}
	kv.ops.end(id, write)
}

// gaveTime reports whether ctx, which ended, gave its call, begun at
// began, at least d: a deadline that far is the bucket's failure to
// answer in time, not the caller's haste.
func gaveTime(ctx context.Context, began time.Time, d time.Duration) bool {
	deadline, ok := ctx.Deadline()
	return ok && errors.Is(ctx.Err(), context.DeadlineExceeded) && deadline.Sub(began) >= d
}

func (kv watchedKV) Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	id, began := kv.begin()
	e, err := kv.KeyValue.Get(ctx, key)
	kv.done(ctx, id, began, err, false)
	return e, err
}

func (kv watchedKV) Create(ctx context.Context, key string, value []byte, opts ...jetstream.KVCreateOpt) (uint64, error) {
	id, began := kv.begin()
	rev, err := kv.KeyValue.Create(ctx, key, value, opts...)
	kv.done(ctx, id, began, err, true)
	return rev, err
}

func (kv watchedKV) Update(ctx context.Context, key string, value []byte, last uint64) (uint64, error) {
	id, began := kv.begin()
	rev, err := kv.KeyValue.Update(ctx, key, value, last)
	kv.done(ctx, id, began, err, true)
	return rev, err
}

// answered reports whether a call of the bucket that returned err had an
// answer from JetStream: it went through, or JetStream refused it. A 503
// (no leader now, a new leader not ready to check a revision) is no
// answer.
func answered(err error) bool {
	var apiErr *jetstream.APIError
	return err == nil || errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyExists) || errors.As(err, &apiErr) && apiErr.Code != 503
}
