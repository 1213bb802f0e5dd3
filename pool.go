package todo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gotodo/todo/internal/faults"
)

// pool is the bounded pool of goroutines that hand the lists' changes to
// the Store, the Go form of Todo.Database and its workers. A list's name is
// hashed to one worker, so the changes of one list never reorder. A worker
// keeps at most one pending change per list, to which later changes of the
// list are appended (coalescing), and commits everything queued to it in
// one Store.Commit (group commit): every caller waiting on any of those
// lists is answered by that one commit.
//
// A change whose caller was answered already (Async durability) is never
// dropped: when its commit fails it stays queued and is retried with
// backoff while the System runs, and while it closes, until its closer
// gives it up (see close).
//
// Once a commit has failed, the pool is failing (see health) until a
// commit, or a probe of the store, succeeds with nothing acknowledged
// left waiting for a retry. Meanwhile no Async change is acknowledged:
// each is refused with ErrStoreFailing, so that what a crash can lose on
// a full disk stays what was acknowledged before the failure, and the
// backlog what fitted in memory then (see refusal). While nothing
// acknowledged waits for a retry, whose commits would find out, the
// pool's prober asks the store, if it is a Prober, whether it can store
// again (see probeLoop), so that health comes back with no client's
// write.
//
// A pool is safe for concurrent use by multiple goroutines.
type pool struct {
	store    Store
	log      *slog.Logger
	stats    *counters
	async    bool          // Async durability: changes wait up to delay to share a commit
	events   bool          // the store keeps the events of changes (an EventKeeper)
	sync     bool          // commits are fsynced (Fsync, Async), not only written (Write)
	delay    time.Duration // Async: how long a change waits to share a commit
	queueCap int
	knobs    knobs // the tests' seams (see knobs); zero in production
	workers  []*worker
	wg       sync.WaitGroup
	closed   chan struct{} // closed when close begins: stop delaying

	// maxBackoff bounds the wait before a retry or a probe (see
	// backoffCap).
	maxBackoff time.Duration
	// prober is the store, when it is a Prober (see probeLoop), and
	// probeWake pokes probeLoop after a failed commit.
	prober    Prober
	probeWake chan struct{}

	// Set by close before it closes closed, and read by the workers once
	// they are closing: how their retries end (see close).
	closeAttempts int             // failed commits after which a change is given up; 0: no limit
	giveUp        <-chan struct{} // closed when the changes still failing are to be given up

	// failing is the error of the latest failed commit or probe, until a
	// commit or a probe succeeds with nothing acknowledged waiting for a
	// retry, or nil (see System.Health).
	failing  atomic.Pointer[error]
	unstored atomic.Int64 // lists holding acknowledged changes that failed to commit
	faults   *faults.Log  // the System's, shared with its other parts

	lostMu sync.Mutex // guards lost
	lost   []error    // acknowledged changes given up while closing
}

// worker commits the changes of the lists hashed to it.
type worker struct {
	p *pool

	// mu guards every field below it; cond is broadcast when the queue,
	// closing, or the set of lists being committed changes.
	mu         sync.Mutex
	cond       sync.Cond
	queue      []string            // lists with a pending change, oldest first
	pending    map[string]*pending // the uncommitted changes of each queued list
	committing map[string]*pending // what the worker is committing now, by list
	closing    bool
	retryAt    time.Time     // acknowledged changes that failed wait until then
	backoff    time.Duration // the wait after the next failure
	// regroup is how many lists the next commit waits for, until
	// regroupBy at the latest, and at most maxRegroupWait (see
	// waitRegroup).
	regroup   int
	regroupBy time.Time

	wake chan struct{} // cut a delay short: a caller waits, or the queue is full

	// Reused by the worker from batch to batch.
	taken []*pending
	batch []Change
	errs  []error
	free  []*pending  // settled, for enqueue to reuse (see newPending); guarded by mu
	timer *time.Timer // sleep's, owned by the worker goroutine
}

// maxFreePending bounds the settled pendings a worker keeps for reuse.
const maxFreePending = 256

// newPending returns an empty pending change of list, one a commit
// settled if there is one: with every caller waiting (Fsync), each
// change of each list is a pending of its own. Only Async changes wait
// for their delay, counted from since. w.mu must be held.
func (w *worker) newPending(list string) *pending {
	var pd *pending
	if n := len(w.free); n > 0 {
		pd, w.free = w.free[n-1], w.free[:n-1]
	} else {
		pd = new(pending)
	}
	pd.list = list
	if w.p.async {
		pd.since = time.Now()
	}
	return pd
}

// freePending keeps a pending that a commit settled, and that nothing
// refers to any more, for newPending. w.mu must be held.
func (w *worker) freePending(pd *pending) {
	if len(w.free) < maxFreePending {
		*pd = pending{}
		w.free = append(w.free, pd)
	}
}

// pending is the uncommitted changes of one list: first those already
// acknowledged to their callers (Async), which must be stored whatever
// happens, then at most one change whose caller waits for the commit (its
// server waits, so there is never a second).
//
// Plain adds (without an idempotency key), nearly every change, are not
// kept one by one: ids only grow, so the entries they added are those of
// the list's state from the first one's id on, which a commit reads from
// the state (see record). ops holds the other changes, in order.
type pending struct {
	list       string
	ops        []Op      // the changes but plain adds
	events     []Event   // every change's event, kept for an EventKeeper only
	ackedEvent int       // events[:ackedEvent] are acknowledged
	added      int       // the id of the first acknowledged plain add, or 0
	waitAdded  int       // the id of the waited-for change's first plain add, or 0
	state      ListState // the list after every change
	acked      int       // ops[:acked] are acknowledged
	ackedState ListState // the list after the acknowledged changes
	done       chan<- error
	sync       bool      // the waited-for change must be fsynced even with Write durability
	release    bool      // the list left memory: tell the store after this commit
	flushing   bool      // someone waits for the list to be stored: commit without delay
	since      time.Time // when the oldest change of it was queued (Async)
	attempts   int       // failed commits of the acknowledged ops
}

func newPool(st Store, o config, stats *counters, fl *faults.Log) *pool {
	p := &pool{
		store:      st,
		log:        o.Logger,
		stats:      stats,
		async:      o.Durability == Async,
		events:     isEventKeeper(st),
		sync:       o.Durability != Write,
		delay:      o.AsyncDelay,
		queueCap:   o.QueueSize,
		closed:     make(chan struct{}),
		knobs:      o.knobs,
		maxBackoff: backoffCap(o.Options),
		probeWake:  make(chan struct{}, 1),
		faults:     fl,
	}
	if pr, ok := st.(Prober); ok && !o.knobs.noProbe {
		p.prober = pr
		p.wg.Add(1)
		go p.probeLoop()
	}
	for range o.Workers {
		w := &worker{
			p:          p,
			pending:    make(map[string]*pending),
			committing: make(map[string]*pending),
			wake:       make(chan struct{}, 1),
		}
		w.cond.L = &w.mu
		p.workers = append(p.workers, w)
		p.wg.Add(1)
		go w.run()
	}
	return p
}

func isEventKeeper(st Store) bool {
	_, ok := st.(EventKeeper)
	return ok
}

// worker returns the worker of a list, always the same one: an FNV-1a
// hash of its name (inline: a []byte of the name for hash/fnv would
// escape to the heap) modulo the workers.
func (p *pool) worker(list string) *worker {
	if len(p.workers) == 1 {
		return p.workers[0]
	}
	h := uint32(2166136261)
	for i := 0; i < len(list); i++ {
		h = (h ^ uint32(list[i])) * 16777619
	}
	return p.workers[h%uint32(len(p.workers))]
}

// save queues a change of a list: ops, its operations but plain adds;
// added, the id of its first plain add, or 0; the list's state after
// them, which holds every entry the change added from that id on; and
// the events of its changes, kept only for an EventKeeper. ops and events
// are copied: the caller may reuse them. With wait set it returns once the
// change is committed, fsynced if sync is set or the durability asks,
// with the commit's error; done receives that error and must have room
// for it. Without wait the change counts as acknowledged: save returns
// once it is queued. When the worker's queue is full, save waits for
// room.
func (p *pool) save(list string, ops []Op, added int, state ListState, events []Event, wait, sync bool, done chan error) error {
	if !wait {
		var err error
		if wait, err = p.refusal(); err != nil {
			return err
		}
	}
	w := p.worker(list)
	w.mu.Lock()
	pd := w.enqueue(list)
	pd.ops = append(pd.ops, ops...)
	if p.events {
		pd.events = append(pd.events, events...)
	}
	pd.state = state
	pd.release = false
	if wait {
		pd.done, pd.sync, pd.waitAdded = done, sync, added
		w.poke()
	} else {
		if pd.added == 0 {
			pd.added = added
		}
		pd.acked, pd.ackedState, pd.ackedEvent = len(pd.ops), state, len(pd.events)
	}
	w.mu.Unlock()
	if !wait {
		return nil
	}
	return <-done
}

// refusal decides what becomes of an Async change while the pool is
// failing: it is refused, with an error wrapping ErrStoreFailing and the
// failure's own error, or, when nothing else would find out that the
// store works again (no Prober, nothing acknowledged waiting for a
// retry), it is committed as the caller waits (wait), as with Fsync
// durability, and answered with its commit's outcome. While the pool is
// not failing, the change is acknowledged at once: nil, false.
func (p *pool) refusal() (wait bool, err error) {
	failing := p.failing.Load()
	if failing == nil || p.knobs.ackWhileFailing {
		return false, nil
	}
	if p.prober == nil && p.unstored.Load() == 0 {
		return true, nil
	}
	return false, fmt.Errorf("%w: %w", ErrStoreFailing, *failing)
}

// release queues the news that a list left memory after the changes queued
// before, so that the store may let go of it.
func (p *pool) release(list string, state ListState) {
	w := p.worker(list)
	w.mu.Lock()
	pd := w.enqueue(list)
	pd.state, pd.release = state, true
	if pd.done == nil { // no change waits: it is acknowledged
		pd.ackedState = state
	}
	w.mu.Unlock()
}

// enqueue returns the pending change of list, queuing a new one if it has
// none, after waiting for room in the queue. w.mu must be held.
func (w *worker) enqueue(list string) *pending {
	if pd := w.pending[list]; pd != nil {
		return pd
	}
	for len(w.queue) >= w.p.queueCap && !w.closing {
		w.poke() // a full queue is committed without delay
		w.cond.Wait()
	}
	pd := w.newPending(list)
	w.pending[list] = pd
	w.queue = append(w.queue, list)
	w.cond.Broadcast()
	return pd
}

// poke cuts the worker's wait for a delay or a backoff short.
func (w *worker) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// load returns the newest state of a list: the one still waiting to be
// committed (with Async durability a server that stopped may have left
// one behind), or else the stored one. It is how a new server of a list
// reads the changes of the one before it. A list whose release is being
// committed is loaded once that is done, so that the store sees the
// release before the load.
func (p *pool) load(ctx context.Context, list string) (ListState, error) {
	w := p.worker(list)
	w.mu.Lock()
	for {
		if pd := w.pending[list]; pd != nil {
			pd.release = false // loaded again: not released after all
			st := pd.state
			w.mu.Unlock()
			return st, nil
		}
		pd := w.committing[list]
		if pd == nil {
			break
		}
		if !pd.release {
			st := pd.state
			w.mu.Unlock()
			return st, nil
		}
		w.cond.Wait()
	}
	w.mu.Unlock()
	// Nothing is pending, and nothing new can be: the list's only writer
	// is the server that asks.
	return p.store.Load(ctx, list)
}

// flush waits until nothing of a list is queued or being committed, or
// until ctx ends. Acknowledged changes whose commit fails stay queued, so
// flush waits for their retry.
func (p *pool) flush(ctx context.Context, list string) error {
	w := p.worker(list)
	stop := context.AfterFunc(ctx, func() {
		w.mu.Lock()
		w.cond.Broadcast()
		w.mu.Unlock()
	})
	defer stop()
	w.mu.Lock()
	defer w.mu.Unlock()
	for {
		pd := w.pending[list]
		if pd == nil && w.committing[list] == nil {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if pd != nil && !pd.flushing {
			pd.flushing = true
			w.poke()
		}
		w.cond.Wait()
	}
}

// unstoredLists returns the names of the lists whose newest state, with
// entries, is not committed yet.
func (p *pool) unstoredLists() []string {
	var names []string
	for _, w := range p.workers {
		w.mu.Lock()
		for _, m := range []map[string]*pending{w.pending, w.committing} {
			for name, pd := range m {
				if len(pd.state.Entries) > 0 {
					names = append(names, name)
				}
			}
		}
		w.mu.Unlock()
	}
	return names
}

// run is the worker goroutine: collect what is due, commit it, settle the
// outcome, until the pool closes and nothing is left.
func (w *worker) run() {
	defer w.p.wg.Done()
	for {
		taken, ok := w.collect()
		if !ok {
			return
		}
		start := time.Now()
		errs := w.commit(taken)
		w.settle(taken, errs, time.Since(start))
	}
}

// collect waits until some queued change is due and takes every due one
// (group commit), or reports false once the pool is closing and nothing
// is queued. A change is due at once if its caller waits, the queue is
// full or the pool closes; an acknowledged change (Async) once it has
// waited out the delay, and, after a failed commit, the backoff, which a
// closing pool waits out only while its retries go on (see
// closingBackoff).
func (w *worker) collect() ([]*pending, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for {
		for len(w.queue) == 0 && !w.closing {
			w.cond.Wait()
		}
		if len(w.queue) == 0 {
			return nil, false
		}
		now := time.Now()
		if w.waitRegroup(now) {
			continue
		}
		taken, next := w.takeDue(now)
		if len(taken) > 0 {
			w.cond.Broadcast() // room in the queue
			return taken, true
		}
		// A delay ends when closing begins; once closing, what is left to
		// wait for is a retry's backoff, which ends when it is given up.
		var cut <-chan struct{} = w.p.closed
		if w.closing {
			cut = w.p.giveUp
		}
		w.mu.Unlock()
		w.sleep(next.Sub(now), cut)
		w.mu.Lock()
	}
}

// waitRegroup waits, once, for the callers the last commit answered to
// queue their next changes, and reports whether it did (the caller looks
// at the queue again). w.mu must be held; it is released while waiting.
//
// Callers waiting on a commit come back with their next change as soon
// as it answers them, but a worker that collects at once takes only those
// who arrived while it committed: the callers split into two groups that
// take turns, and each fdatasync carries half of them. Waiting up to half
// a commit's time for the answered callers puts most of them in every
// commit (measured with 64 callers over 1,000 lists: 29 changes per
// commit without the wait, 35 with a quarter, 43 with half, 50 with a
// whole commit's time, which then waits too long; half is the fastest).
// The list servers do the same for callers of one list (see
// proc.waitRegroup).
func (w *worker) waitRegroup(now time.Time) bool {
	if w.regroup == 0 || w.closing {
		return false
	}
	if len(w.queue) >= w.regroup || !now.Before(w.regroupBy) {
		w.regroup = 0
		return false
	}
	by := w.regroupBy
	w.mu.Unlock()
	w.sleep(by.Sub(now), w.p.closed) // each change queued with a waiter pokes
	w.mu.Lock()
	return true
}

// takeDue moves the due pending changes from the queue to committing and
// returns them; when none is due, it returns when the first will be.
// w.mu must be held.
//
// A commit made because something is due also takes every acknowledged
// change (Async) that has waited half its delay, and is committed a
// little early: otherwise, with changes coming to many lists all the
// time, each list's delay ends at its own moment, and the worker commits
// one list or two at a time, an fdatasync each, for ever (measured under
// scripts/load.sh: commits back to back, and the worker's scan of the
// queue for what is due, a seventh of the server's CPU). So commits come
// at most about every half delay, each with half the lists.
func (w *worker) takeDue(now time.Time) (taken []*pending, next time.Time) {
	full := len(w.queue) >= w.p.queueCap
	backingOff := now.Before(w.retryAt) && (!w.closing || w.closingBackoff())
	horizon := now
	if w.p.async && w.p.delay > 0 && !backingOff {
		for _, list := range w.queue {
			if !w.dueAt(w.pending[list], full, backingOff).After(now) {
				horizon = now.Add(w.p.delay / 2)
				break
			}
		}
	}
	taken = w.taken[:0]
	kept := w.queue[:0]
	for _, list := range w.queue {
		pd := w.pending[list]
		if at := w.dueAt(pd, full, backingOff); at.After(horizon) {
			if next.IsZero() || at.Before(next) {
				next = at
			}
			kept = append(kept, list)
			continue
		}
		delete(w.pending, list)
		w.committing[list] = pd
		taken = append(taken, pd)
	}
	clear(w.queue[len(kept):])
	w.queue = kept
	w.taken = taken
	return taken, next
}

// dueAt returns when pd is due to be committed: the zero time when it is
// due now, whatever the clock says (its caller waits, the queue is full,
// or the pool closes), or when its delay ends (Async), at once (another
// durability, or someone flushes it), or, when it failed, when the
// worker's backoff ends. w.mu must be held.
func (w *worker) dueAt(pd *pending, full, backingOff bool) time.Time {
	if pd.done != nil || full || w.closing && (pd.attempts == 0 || !backingOff) {
		return time.Time{}
	}
	at := pd.since.Add(w.p.delay)
	if !w.p.async || pd.flushing || w.closing {
		at = pd.since
	}
	if backingOff && at.Before(w.retryAt) {
		at = w.retryAt
	}
	return at
}

// sleep waits for d, or until poked or cut is closed.
func (w *worker) sleep(d time.Duration, cut <-chan struct{}) {
	if w.timer == nil {
		w.timer = time.NewTimer(d)
	} else {
		w.timer.Reset(d)
	}
	defer w.timer.Stop()
	select {
	case <-w.timer.C:
	case <-w.wake:
	case <-cut:
	}
}

// hasAcked reports whether pd holds acknowledged changes.
func (pd *pending) hasAcked() bool { return pd.acked > 0 || pd.added != 0 }

// record returns the operations a commit of pd stores: its changes but
// plain adds, in order, then a put of each entry the plain adds added, as
// the list now holds it. Replayed in this order they make the list pd's
// state: puts and deletes are by id, and the last of an id wins, so the
// adds' puts may come last though other changes came after them (an
// update or a delete of an added entry put it in ops, and its put, if it
// is still there, is its newest value). Only the entries added are
// copied, once, as the commit is made; the adds themselves copied
// nothing.
func (pd *pending) record() []Op {
	from := pd.added
	if pd.waitAdded != 0 && (from == 0 || pd.waitAdded < from) {
		from = pd.waitAdded
	}
	if from == 0 {
		return pd.ops
	}
	i, _ := findID(pd.state.Entries, from)
	added := pd.state.Entries[i:]
	if len(added) == 0 {
		return pd.ops
	}
	ops := make([]Op, len(pd.ops), len(pd.ops)+len(added))
	copy(ops, pd.ops)
	for _, e := range added {
		ops = append(ops, Op{Entry: e})
	}
	return ops
}

// commit hands the taken changes to the store in one Commit and returns
// each one's error.
func (w *worker) commit(taken []*pending) []error {
	batch := w.batch[:0]
	sync := w.p.sync
	for _, pd := range taken {
		batch = append(batch, Change{List: pd.list, Ops: pd.record(), State: pd.state, Events: pd.events, Release: pd.release})
		sync = sync || pd.sync
	}
	w.p.store.Commit(context.Background(), batch, sync)
	w.p.stats.commits.Add(1)
	errs := w.errs[:0]
	for i := range batch {
		errs = append(errs, batch[i].Err)
	}
	clear(batch) // let the ops and states go
	w.batch, w.errs = batch[:0], errs
	return errs
}

// settle answers the callers waiting on a commit, which took took, and
// keeps the acknowledged changes whose commit failed for a retry. A
// failure makes the pool failing before it is logged or answered, so
// that no Async change is acknowledged from then on (see refusal).
func (w *worker) settle(taken []*pending, errs []error, took time.Duration) {
	p := w.p
	var failure error
	answered := 0
	w.mu.Lock()
	for i := range taken {
		if err := errs[i]; err != nil && failure == nil && !w.isMoved(err) {
			failure = err
			p.failing.Store(&failure)
		}
	}
	for i, pd := range taken {
		delete(w.committing, pd.list)
		err := errs[i]
		if err == nil {
			p.stats.changesStored.Add(1) // counted before its caller hears of it
		}
		if pd.done != nil {
			pd.done <- err // its caller rolls back on an error
			answered++
		}
		if err == nil {
			if pd.attempts > 0 {
				p.unstored.Add(-1)
			}
			w.freePending(pd)
			continue
		}
		p.stats.writeErrors.Add(1)
		if w.isMoved(err) {
			w.moved(pd, err)
			continue
		}
		p.faults.Error(faultStore, "todo: cannot store", err, "list", pd.list)
		if pd.hasAcked() || pd.release {
			w.keep(pd, err)
			continue
		}
		if pd.attempts > 0 {
			p.unstored.Add(-1)
		}
		w.freePending(pd)
	}
	w.setBackoff(failure)
	if answered > 1 && failure == nil {
		w.regroup = answered
		w.regroupBy = time.Now().Add(min(took/2, maxRegroupWait))
	}
	clear(taken)
	w.cond.Broadcast()
	w.mu.Unlock()
	switch {
	case failure != nil:
		p.pokeProber()
	case p.unstored.Load() == 0:
		p.recovered(p.failing.Load())
	}
}

// faultStore is the kind of fault (see package faults) of failed commits
// and probes; faultMoved, of acknowledged changes lost because their list
// moved to another writer.
const (
	faultStore = "store"
	faultMoved = "moved"
)

// isMoved reports whether err refused a change because another writer
// has its list now.
func (w *worker) isMoved(err error) bool {
	return errors.Is(err, ErrListMoved) && !w.p.knobs.movedFails
}

// moved settles pd, whose commit was refused because another writer has
// its list now (ErrListMoved): no commit of it can succeed, and the store
// works, so it is not kept for a retry. What it held acknowledged is lost,
// and logged; a release the store took all the same. w.mu is held.
func (w *worker) moved(pd *pending, err error) {
	p := w.p
	if pd.hasAcked() {
		p.faults.Error(faultMoved, "todo: acknowledged changes lost: their list moved to another writer before they were stored", err, "list", pd.list)
	}
	if pd.attempts > 0 {
		p.unstored.Add(-1)
	}
	w.freePending(pd)
}

// recovered ends the failure whose error is failing, unless another
// failure has come since: the pool stores again.
func (p *pool) recovered(failing *error) {
	if failing != nil && p.failing.CompareAndSwap(failing, nil) {
		p.faults.Recovered(faultStore, "todo: storing again")
	}
}

// pokeProber has probeLoop look at the pool's state again.
func (p *pool) pokeProber() {
	select {
	case p.probeWake <- struct{}{}:
	default:
	}
}

// probeLoop is the pool's goroutine that finds out when a failing store
// can store again, while nothing acknowledged waits for a retry whose
// commit would: in Fsync and Write durability, where a failed change is
// rolled back and nothing is retried, and in Async after a failed commit
// that only reserved ids. It asks the store, a Prober (the pool runs it
// only over one), with the backoff of retries, and ends the failure when a
// probe succeeds. It returns once the pool closes.
func (p *pool) probeLoop() {
	defer p.wg.Done()
	var backoff time.Duration
	for {
		failing := p.failing.Load()
		if failing == nil || p.unstored.Load() > 0 {
			backoff = 0
			select {
			case <-p.probeWake:
				continue
			case <-p.closed:
				return
			}
		}
		backoff = p.nextBackoff(backoff)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-p.closed:
			t.Stop()
			return
		}
		if p.failing.Load() != failing || p.unstored.Load() > 0 {
			continue // a commit answered meanwhile
		}
		if err := p.prober.Probe(context.Background()); err != nil {
			p.faults.Error(faultStore, "todo: cannot store", err, "probe", true)
			p.failing.CompareAndSwap(failing, &err)
			continue
		}
		p.recovered(failing)
	}
}

// closeAttempts is how many times, counting those before it began, Close
// commits an acknowledged change that keeps failing before it gives it up.
const closeAttempts = 2

// keep queues again the acknowledged part of a change whose commit failed,
// before any change of the list queued meanwhile, for a retry. w.mu must
// be held.
func (w *worker) keep(pd *pending, err error) {
	p := w.p
	pd.ops, pd.state, pd.events = pd.ops[:pd.acked], pd.ackedState, pd.events[:pd.ackedEvent]
	pd.done, pd.sync, pd.waitAdded = nil, false, 0
	if pd.attempts++; pd.attempts == 1 {
		p.unstored.Add(1)
	}
	if w.closing && w.givingUp(pd) {
		p.unstored.Add(-1)
		// A release alone holds nothing acknowledged: the store keeps
		// what it has of the list, and nothing is lost.
		if pd.hasAcked() {
			p.lose(fmt.Errorf("todo: list %q lost its last changes: %w", pd.list, err))
		}
		return
	}
	p.stats.writeRetries.Add(1)
	newer := w.pending[pd.list]
	if newer == nil {
		w.pending[pd.list] = pd
		w.queue = append(w.queue, pd.list)
		return
	}
	// The list's server went on: its newer changes go after these.
	if !newer.hasAcked() {
		newer.ackedState = pd.ackedState
	}
	newer.ops = append(pd.ops[:pd.acked:pd.acked], newer.ops...)
	newer.acked += pd.acked
	newer.events = append(pd.events[:pd.ackedEvent:pd.ackedEvent], newer.events...)
	newer.ackedEvent += pd.ackedEvent
	if pd.added != 0 { // ids only grow: these adds come first
		newer.added = pd.added
	}
	newer.since, newer.attempts = pd.since, pd.attempts
}

// setBackoff sets when the acknowledged changes that failed are retried:
// after a wait that doubles with every failed commit (see nextBackoff),
// and is forgotten after a commit that succeeds. w.mu must be held.
func (w *worker) setBackoff(failure error) {
	if failure == nil {
		w.backoff, w.retryAt = 0, time.Time{}
		return
	}
	w.backoff = w.p.nextBackoff(w.backoff)
	if h := w.p.knobs.retryBackoff; h != nil {
		w.backoff = h(w.backoff)
	}
	w.retryAt = time.Now().Add(w.backoff)
}

// minBackoff and maxBackoff bound the wait before a retry of failed
// changes or a probe of a failing store.
const minBackoff, maxBackoff = 50 * time.Millisecond, time.Second

// nextBackoff returns the wait after one that was b: twice as long, from
// minBackoff up to the pool's cap.
func (p *pool) nextBackoff(b time.Duration) time.Duration {
	return min(max(2*b, minBackoff), p.maxBackoff)
}

// backoffCap returns the longest wait before a retry or a probe: a
// second, or with Async durability AsyncDelay if that is shorter (but not
// under minBackoff), so that the changes acknowledged before a failure
// are committed again within AsyncDelay of the store working again, as
// they would have been without it.
func backoffCap(o Options) time.Duration {
	if o.Durability == Async {
		return min(max(o.AsyncDelay, minBackoff), maxBackoff)
	}
	return maxBackoff
}

// closingBackoff reports whether a closing worker waits out the backoff
// before it retries a change that failed, as a running one does: while
// Shutdown's retries go on. Close retries at once, a few times. w.mu must
// be held.
func (w *worker) closingBackoff() bool {
	return w.p.closeAttempts == 0 && !isClosed(w.p.giveUp)
}

// givingUp reports whether a closing worker gives up an acknowledged
// change that just failed: after closeAttempts failures (Close), or once
// giveUp is closed (Shutdown's ctx ended). w.mu must be held.
func (w *worker) givingUp(pd *pending) bool {
	p := w.p
	return p.closeAttempts > 0 && pd.attempts >= p.closeAttempts || isClosed(p.giveUp)
}

// isClosed reports whether ch is closed; a nil ch never is.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// lose records that acknowledged changes are lost, for Close to report.
func (p *pool) lose(err error) {
	p.lostMu.Lock()
	p.lost = append(p.lost, err)
	p.lostMu.Unlock()
}

// health returns the error of the latest failed commit or probe while it
// has not been followed by a commit or a probe that succeeded with
// nothing acknowledged waiting for a retry.
func (p *pool) health() error {
	if err := p.failing.Load(); err != nil {
		return *err
	}
	return nil
}

// close commits everything queued, stops the workers, and returns the
// errors of the acknowledged changes it had to give up. Every change
// queued is committed at once; an acknowledged one that fails is retried,
// until it is stored or given up: with attempts above 0, at once, until
// it has failed attempts times (Close); with attempts 0, after the
// backoff of a running pool, until giveUp is closed (Shutdown's ctx), and
// then at once, one last time. A nil giveUp is never closed.
func (p *pool) close(attempts int, giveUp <-chan struct{}) error {
	p.closeAttempts, p.giveUp = attempts, giveUp
	close(p.closed)
	for _, w := range p.workers {
		w.mu.Lock()
		w.closing = true
		w.cond.Broadcast()
		w.mu.Unlock()
	}
	p.wg.Wait()
	p.lostMu.Lock()
	defer p.lostMu.Unlock()
	return errors.Join(p.lost...)
}
