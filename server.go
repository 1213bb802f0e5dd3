package todo

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// proc is the running server of one list: the only goroutine that changes
// the list, the Go form of a Todo.Server process. Callers reach it through
// its mailbox; readers of a loaded list never reach it at all, they read
// what it published in the System's table.
type proc struct {
	sys  *System
	name string
	// mailbox is where callers put requests. It starts small and grows
	// towards Options.MailboxSize when callers find it full (see grow),
	// and a hibernating server has none (see hibernate). It is replaced
	// only while no caller is sending (senders at 0, then not a count),
	// so a caller that holds a place in senders may read it.
	mailbox chan *call

	// senders counts callers between acquire and release, that is, callers
	// that may still put a request in the mailbox, when it is 0 or more.
	// Below 0 it is a state (see retiredSenders): retiring, hibernating
	// and growing the mailbox are each a CAS from 0, so a request is
	// either in the mailbox before the server changes state or sent after.
	senders atomic.Int64

	// wakeMu serializes waking a hibernating server with its going to
	// sleep, so that of concurrent wakers exactly one starts a goroutine.
	wakeMu sync.Mutex

	loaded     atomic.Bool   // the list is loaded and published
	touched    atomic.Bool   // a table read happened since the idle timer was last armed
	recent     atomic.Bool   // used since the cap's hand last came by (see loadedCap)
	hasEntries atomic.Bool   // the list has at least one entry
	all        atomicEntries // every entry, published for AllEntries
	done       chan struct{} // closed when the server has left the registry
	saved      chan error    // the pool answers the server's writes here

	// The state its starter loaded already, or nil (see startWith).
	preloaded *ListState

	// pubSeq is odd while the server publishes a batch, and counts the
	// batches published; pubRev is the revision of what it published.
	// Together they let a reader take a date's entries and the revision
	// they stand at as of one moment (see System.viewAt).
	pubSeq atomic.Uint64
	pubRev atomic.Int64

	// Guarded by the System's loadedCap.mu.
	slot     int  // its place in the cap's ring
	retiring bool // chosen by the cap to retire

	// Owned by the server goroutine, and kept while it hibernates (see
	// wakeMu: who wakes the server hands them to its new goroutine).
	cells map[dayKey]*dayCell // what it has published in the table
	list  *List
	undo  undoLog
	batch []*call
	// feed is the list's feed while the server holds it (see holdFeed);
	// events are the changes of the batch being applied, which it
	// publishes there once they are stored.
	feed   *feed
	events []Event
	// What the batch being applied changed: its operations but plain
	// adds, and the id of its first plain add, or 0 (see pool.save).
	ops         []Op
	added       int
	reserved    int   // ids up to this are reserved durably (see store)
	revReserved int64 // and revisions up to this
	// Signals drained from the mailbox and not acted on yet.
	expireDue, closeDue, hibernateDue bool
	evictDue                          bool // the close signal was the cap's
	// Set by the idle and hibernation timers when the mailbox was full.
	expireMissed, hibernateMissed atomic.Bool
	// crowded is set by a caller that found the mailbox full (see grow).
	crowded atomic.Bool
	// The timers of expiry and of hibernation (see run). The idle timer
	// runs as long as the server, asleep or not; the hibernation timer
	// only while it is awake.
	idleTimer, sleepTimer *time.Timer
	lastRequest           time.Duration // when the last batch began (see System.now)
	// How many requests the next batch waits for, and for how long; see
	// waitRegroup.
	regroup       int
	regroupWait   time.Duration
	regroupTimer  *time.Timer
	regroupMissed bool // the last wait ran out with nobody back

	batchStart time.Duration // when the current batch was taken from the mailbox (see System.now)
	answeredAt time.Duration // when the last batch that set regroup was answered
}

// The states of proc.senders below 0.
const (
	retiredSenders     = -1 // the server has retired and takes nothing more
	hibernatingSenders = -2 // the server has no goroutine until a caller wakes it
	growingSenders     = -3 // the server is moving its mailbox into a larger one
)

// op is what a request asks of a server.
type op uint8

const (
	opAdd op = iota
	opUpdate
	opDelete
	opEntries   // read one date of a list that is not loaded yet
	opAll       // read all of a list that is not loaded yet
	opExpire    // expireSignal
	opClose     // closeSignal
	opHibernate // hibernateSignal
)

// call is one request and its reply. Calls are pooled, and the reply
// channel is reused with them: a call goes back to the pool only when its
// caller has received the reply.
type call struct {
	ctx    context.Context
	op     op
	entry  Entry // opAdd: the entry; opEntries: its Date is the date read
	id     int
	update func(Entry) Entry // opUpdate: the caller's updater, or nil to apply patch
	patch  Patch             // opUpdate without an updater: what to set
	key    string            // the idempotency key of a change, or ""

	// Set by the server before it replies.
	res     Entry
	entries []Entry
	rev     int64 // the list's revision after the change, or of what was read
	err     error
	reply   chan struct{} // buffered, capacity 1
}

// maxBatch bounds how many requests a server applies before it publishes
// and writes, so that one busy list cannot delay its callers without bound.
const maxBatch = 256

func newProc(sys *System, name string) *proc {
	return &proc{
		sys:     sys,
		name:    name,
		mailbox: make(chan *call, sys.firstMailboxSize()),
		done:    make(chan struct{}),
		saved:   make(chan error, 1),
	}
}

// firstMailboxSize is the capacity of a server's mailbox when it starts
// or wakes: most lists get a request now and then, and a full buffer of
// MailboxSize would cost them 8 bytes a slot for nothing. A mailbox that
// callers find full grows (see grow).
func (sys *System) firstMailboxSize() int { return min(sys.opts.MailboxSize, 4) }

// acquire registers a caller that is about to send, waking the server if
// it hibernates; it fails once the server has retired.
func (p *proc) acquire() bool {
	for {
		switch n := p.senders.Load(); {
		case n >= 0:
			if p.senders.CompareAndSwap(n, n+1) {
				return true
			}
		case n == retiredSenders:
			return false
		case n == hibernatingSenders:
			if p.wake() {
				return true
			}
		default: // growingSenders: a few channel operations
			runtime.Gosched()
		}
	}
}

// tryAcquire is acquire for the server's timers: it fails, and wakes
// nothing, when the server hibernates.
func (p *proc) tryAcquire() bool {
	for {
		switch n := p.senders.Load(); {
		case n >= 0:
			if p.senders.CompareAndSwap(n, n+1) {
				return true
			}
		case n == growingSenders:
			runtime.Gosched()
		default:
			return false
		}
	}
}

func (p *proc) release() { p.senders.Add(-1) }

func (p *proc) retired() bool { return p.senders.Load() == retiredSenders }

// wake starts a new goroutine for a hibernating server and reports true,
// the caller holding the first place in senders; or reports false when
// the server was not hibernating by the time wakeMu was held (another
// caller woke it, say). The list stays as the server left it: nothing is
// loaded again.
func (p *proc) wake() bool {
	p.wakeMu.Lock()
	defer p.wakeMu.Unlock()
	if p.senders.Load() != hibernatingSenders {
		return false
	}
	p.mailbox = make(chan *call, p.sys.firstMailboxSize())
	// Close posts to every server in the registry, waking those that
	// hibernate, before it waits for the goroutines; and a server that has
	// taken Close's signal never hibernates again. So this Add comes before
	// Close's Wait, as a WaitGroup needs.
	p.sys.servers.Add(1)
	p.sys.stats.wakes.Add(1)
	p.senders.Store(1)
	go p.run()
	return true
}

// post puts a signal in the server's mailbox, waking the server if it
// hibernates, and reports true; or false, having sent nothing, when the
// server has retired or cancel is closed first. While the signal waits for
// room the server cannot retire (the poster counts in senders), so it
// will take it.
func (p *proc) post(sig *call, cancel <-chan struct{}) bool {
	if !p.acquire() {
		return false
	}
	defer p.release()
	select {
	case p.mailbox <- sig:
		return true
	case <-cancel:
		return false
	}
}

// postFromTimer puts a timer's signal in the mailbox if there is room, and
// otherwise sets missed, which the server checks after its batch: a full
// mailbox means a busy server, which sees the flag soon. With wake false
// it sends nothing to a hibernating server.
func (p *proc) postFromTimer(sig *call, missed *atomic.Bool, wake bool) {
	if wake && !p.acquire() || !wake && !p.tryAcquire() {
		return
	}
	select {
	case p.mailbox <- sig:
	default:
		if h := p.sys.opts.knobs.onTimerMiss; h != nil {
			h(sig)
		}
		missed.Store(true)
		// The server may have served the requests that filled the
		// mailbox, and looked at missed, before the store: then nobody
		// would look at it again (a list left loaded past IdleTimeout).
		// So try once more. A mailbox still full holds a request whose
		// batch ends after the store and sees the flag; a signal both
		// sent and flagged is harmless, as the server checks again.
		select {
		case p.mailbox <- sig:
		default:
		}
	}
	p.release()
}

// idle reports whether the server has nothing queued and no caller
// sending: a hibernating server is idle.
func (p *proc) idle() bool {
	if p.senders.Load() == hibernatingSenders {
		return true
	}
	if !p.tryAcquire() {
		return false // retired, or went to sleep just now: look next time
	}
	idle := len(p.mailbox) == 0 && p.senders.Load() == 1
	p.release()
	return idle
}

// touch tells the server its list was read, which keeps it from expiring.
// The flag is written only when it changes, so that readers on many cores
// do not fight over its cache line.
func (p *proc) touch() {
	if !p.touched.Load() {
		p.touched.Store(true)
	}
	if !p.recent.Load() {
		p.recent.Store(true)
	}
}

// Signals are messages to a server that are not requests. They travel in
// the mailbox with the requests, so that a waiting server waits on that one
// channel: a select over the mailbox, a timer and Close's channel costs
// locking three channels every time the server sleeps and wakes, and with
// many lists a server sleeps and wakes for almost every request.
var (
	expireSignal    = &call{op: opExpire}    // the idle timer fired
	closeSignal     = &call{op: opClose}     // the System is closing, or Unload
	evictSignal     = &call{op: opClose}     // the MaxLoaded cap retires the list
	hibernateSignal = &call{op: opHibernate} // the hibernation timer fired
)

// signal notes a signal drained from the mailbox, to be acted on once the
// requests before and around it are served. It reports whether c was one.
func (p *proc) signal(c *call) bool {
	switch c {
	case expireSignal:
		p.expireDue = true
	case closeSignal:
		p.closeDue = true
	case evictSignal:
		p.closeDue, p.evictDue = true, true
	case hibernateSignal:
		p.hibernateDue = true
	default:
		return false
	}
	return true
}

// run is the server goroutine. It starts with the server, and again each
// time the server wakes from hibernation.
func (p *proc) run() {
	defer p.sys.servers.Done()
	growStack()
	p.armTimers()
	for {
		if c := <-p.mailbox; !p.signal(c) {
			p.serveBatch(c)
			p.lastRequest = p.batchStart
			p.noteMissedSignals()
			if p.crowded.Load() {
				p.grow()
			}
		}
		if p.closeDue {
			p.retireForClose()
			return
		}
		if p.expireDue {
			p.expireDue = false
			if p.expireIfIdle() {
				return
			}
		}
		if p.hibernateDue {
			p.hibernateDue = false
			if p.hibernateIfIdle() {
				return
			}
		}
	}
}

// now returns the time since the System opened, on the monotonic clock:
// the servers note when their batches begin with it, one clock read
// each, where time.Now reads the wall clock as well, and keep a
// Duration, a third of a time.Time. In a synctest bubble it runs on the
// bubble's clock, as time.Now does.
func (sys *System) now() time.Duration { return time.Since(sys.epoch) }

// growStack grows a new goroutine's stack, while it holds one frame or
// two, to the size a server's first batch needs. Each wake starts a new
// goroutine on the smallest stack (2 KB), and an add outgrows it deep in
// its call chain, where copying the stack costs a walk of every frame: a
// tenth of a wake's time. Grown here it costs a copy of almost nothing.
// CockroachDB's growstack.Grow does the same for the same reason.
//
//go:noinline
func growStack() {
	var pad [1536]byte
	keepStack(pad[:])
}

//go:noinline
func keepStack([]byte) {}

// armTimers sets the timers of expiry, once for the server's life, and of
// hibernation, each time its goroutine starts. A timer puts its signal in
// the mailbox. It is not reset on every request, which would cost more
// than the request: lastRequest is noted instead, and checked when the
// signal comes. Only the server goroutine resets or stops the timers.
func (p *proc) armTimers() {
	if idle := p.sys.opts.IdleTimeout; idle > 0 && p.idleTimer == nil {
		// A hibernating server is woken to expire.
		p.idleTimer = time.AfterFunc(idle, func() { p.postFromTimer(expireSignal, &p.expireMissed, true) })
	}
	if after := p.sys.opts.HibernateAfter; after > 0 {
		if p.sleepTimer == nil {
			p.sleepTimer = time.AfterFunc(after, func() { p.postFromTimer(hibernateSignal, &p.hibernateMissed, false) })
		} else {
			p.sleepTimer.Reset(after)
		}
	}
}

// noteMissedSignals acts on the signals the timers could not send while
// the mailbox was full.
func (p *proc) noteMissedSignals() {
	if p.expireMissed.Load() {
		p.expireMissed.Store(false)
		p.expireDue = true
	}
	if p.hibernateMissed.Load() {
		p.hibernateMissed.Store(false)
		p.hibernateDue = true
	}
}

// retireForClose retires the server on Close's (or Unload's, or the cap's)
// signal, once every caller sending has sent.
func (p *proc) retireForClose() {
	for !p.senders.CompareAndSwap(0, retiredSenders) {
		// Callers are sending; serve them until none is left.
		select {
		case c := <-p.mailbox:
			if !p.signal(c) {
				p.serveBatch(c)
			}
		case <-time.After(time.Millisecond):
		}
	}
	p.stop()
	// Counted by the server that retires, not by the cap that asked: a
	// list that expired on its own first never reads the cap's signal,
	// and counts once, as expired.
	if p.evictDue {
		p.sys.stats.evicted.Add(1)
	}
}

// expireIfIdle retires the server if it has had no request and its list
// no read for IdleTimeout, and reports whether it did; otherwise it sets
// the idle timer again.
func (p *proc) expireIfIdle() bool {
	idle := p.sys.opts.IdleTimeout
	if quiet := p.sys.now() - p.lastRequest; quiet < idle {
		p.idleTimer.Reset(idle - quiet)
		return false
	}
	if p.touched.Swap(false) {
		p.idleTimer.Reset(idle) // read since the timer was armed
		return false
	}
	if !p.senders.CompareAndSwap(0, retiredSenders) {
		p.idleTimer.Reset(retryShortly(idle))
		return false
	}
	p.stop()
	p.sys.stats.expired.Add(1)
	return true
}

// retryShortly is when a timer looks again after its signal found a
// caller sending: often the timer itself, which holds its place in
// senders until it has sent, and lets go a moment later. A real caller's
// request counts as one when it is served, and the next look sees it.
func retryShortly(d time.Duration) time.Duration { return min(d, time.Millisecond) }

// hibernateIfIdle ends the server goroutine if its mailbox has stayed
// empty for HibernateAfter, and reports whether it did; otherwise it sets
// the hibernation timer again. The list stays loaded and published:
// readers never notice, and the next caller wakes the server (see wake).
func (p *proc) hibernateIfIdle() bool {
	after := p.sys.opts.HibernateAfter
	if quiet := p.sys.now() - p.lastRequest; quiet < after {
		p.sleepTimer.Reset(after - quiet)
		return false
	}
	p.wakeMu.Lock()
	defer p.wakeMu.Unlock()
	if !p.senders.CompareAndSwap(0, hibernatingSenders) {
		p.sleepTimer.Reset(retryShortly(after))
		return false
	}
	if len(p.mailbox) > 0 && !p.sys.opts.knobs.hibernateOverMail {
		// A request came in before the CAS: serve it first. Nobody
		// could change senders meanwhile: wakers wait for wakeMu.
		p.senders.Store(0)
		p.sleepTimer.Reset(after)
		return false
	}
	p.hibernate()
	return true
}

// hibernate lets go of what only a running server needs: the mailbox, and
// the buffers of the batches, unless they are as small as a list changed
// now and then needs, which are kept, as the stopped timer of
// hibernation is: a wake costs less without allocating them again.
// wakeMu is held and senders says hibernating.
func (p *proc) hibernate() {
	// A signal of the idle timer that found the mailbox full must not
	// sleep with the server: expiry would wait for its next request.
	if p.expireMissed.Swap(false) && p.idleTimer != nil {
		p.idleTimer.Reset(0)
	}
	p.sleepTimer.Stop()
	if p.regroupTimer != nil {
		p.regroupTimer.Stop()
		p.regroupTimer = nil
	}
	p.mailbox = nil
	p.releaseFeed()
	// The events' buffer goes whatever its size, as the feed does: a
	// sleeping list costs its watches nothing, 64 bytes an event being
	// more than a list changed now and then saves by keeping it.
	p.events = nil
	if cap(p.batch) > smallBatch || cap(p.ops) > smallBatch || cap(p.undo.dates) > smallBatch {
		p.batch, p.ops, p.undo = nil, nil, undoLog{}
	}
	p.sys.stats.hibernations.Add(1)
}

// smallBatch is the most requests a hibernating server keeps buffers for.
const smallBatch = 4

// grow moves the mailbox into one four times larger, up to MailboxSize,
// when callers found it full, at a moment when none is sending; if one
// is, it tries again after the next batch.
func (p *proc) grow() {
	limit := p.sys.opts.MailboxSize
	if cap(p.mailbox) >= limit {
		p.crowded.Store(false)
		return
	}
	if !p.senders.CompareAndSwap(0, growingSenders) {
		return
	}
	p.crowded.Store(false)
	box := make(chan *call, min(limit, 4*cap(p.mailbox)))
	for len(p.mailbox) > 0 {
		box <- <-p.mailbox
	}
	p.mailbox = box
	p.senders.Store(0)
}

// stop serves what is left in the mailbox (every sender has finished, see
// senders), tells the pool the list leaves memory, withdraws what the
// server published, and leaves the registry.
func (p *proc) stop() {
	for {
		select {
		case c := <-p.mailbox:
			if !p.signal(c) {
				p.serveBatch(c)
			}
			continue
		default:
		}
		break
	}
	if p.idleTimer != nil {
		p.idleTimer.Stop()
	}
	if p.sleepTimer != nil {
		p.sleepTimer.Stop()
	}
	if p.list != nil {
		// The ids and revisions reserved ahead and not given out are
		// free again: the list is stored with the last it really gave
		// out.
		p.sys.pool.release(p.name, p.list.state())
	}
	p.unpublish()
	// After the release to the pool: a watch that finds no feed, and no
	// server, reads the list's last revision from the pool.
	p.releaseFeed()
	if p.sys.registry.DeleteIf(p.name, func(q *proc) bool { return q == p }) {
		p.sys.stats.running.Add(-1)
	}
	p.sys.loadedCap.remove(p) // after the registry: the cap counts no fewer than it holds
	// Let the list go even while handles remember this server (see
	// Server.last): readers check retired before they use p.all.
	p.all.store(nil)
	p.list, p.cells, p.undo, p.batch, p.ops, p.events = nil, nil, undoLog{}, nil, nil, nil
	close(p.done)
}

// serveBatch serves first and every request waiting behind it, up to
// maxBatch, as one batch: the changes are applied, stored in one change,
// published, and then every request is answered.
func (p *proc) serveBatch(first *call) {
	batch := p.collect(first)
	p.batchStart = p.sys.now() // one clock read per batch serves expiry and waitRegroup
	if !p.recent.Load() {
		p.recent.Store(true)
	}
	p.sys.stats.requests.Add(int64(len(batch)))
	err := p.ensureLoaded()
	if err == nil {
		err = p.applyAndStore(batch)
	}
	p.planRegroup(len(batch), err)
	p.answer(batch, err)
}

// collect takes first and the requests waiting behind it, up to maxBatch,
// waiting a little for more when the last batch's callers are expected
// back (see waitRegroup).
func (p *proc) collect(first *call) []*call {
	batch := append(p.batch[:0], first)
drain:
	for len(batch) < maxBatch {
		select {
		case c := <-p.mailbox:
			if !p.signal(c) {
				batch = append(batch, c)
			}
		default:
			break drain
		}
	}
	// Wait only within regroupWait of the answers: a request that comes
	// later is not one of the answered callers coming straight back.
	if n := len(batch); p.regroup > n && !p.retired() {
		if wait := p.regroupWait - (p.sys.now() - p.answeredAt); wait > 0 {
			batch = p.waitRegroup(batch, wait)
			// Nobody came back: the callers have gone to other lists, or
			// away. Do not wait on the next batch.
			p.regroupMissed = len(batch) == n
		}
	}
	p.regroup = 0
	p.batch = batch
	return batch
}

// ensureLoaded loads the list on the server's first batch, from the pool
// (changes a server before this one left unstored) or the store, and
// publishes it.
func (p *proc) ensureLoaded() error {
	if p.list != nil {
		return nil
	}
	st := p.preloaded
	if st != nil {
		p.preloaded = nil
	} else {
		loaded, err := p.sys.pool.load(context.Background(), p.name)
		if err != nil {
			p.sys.loadFailed(p.name, err)
			return err
		}
		st = &loaded
	}
	p.list = listFromState(*st)
	p.publishLoaded()
	return nil
}

// applyAndStore applies the batch's changes to the list, stores them, and
// publishes the result; when they cannot be stored it rolls them back and
// returns why.
func (p *proc) applyAndStore(batch []*call) error {
	l := p.list
	l.begin(&p.undo)
	p.ops, p.added = p.ops[:0], 0
	p.events = p.events[:0]
	for _, c := range batch {
		if c.op >= opEntries {
			continue // reads are answered after the batch is stored
		}
		if err := c.ctx.Err(); err != nil {
			c.err = err // the caller has gone: do not apply what it no longer waits for
			continue
		}
		p.apply(c)
	}
	if !p.changed() {
		l.commit()
		return nil
	}
	if err := p.store(); err != nil {
		l.rollback()
		return fmt.Errorf("todo: list %q not saved: %w", p.name, err)
	}
	// The feed first: a reader that sees the batch in the table, then
	// watches from its revision, finds the batch's changes there already.
	p.feed.publish(p.events)
	clear(p.events) // the feed has copies: let the titles go
	p.publishBatch()
	l.commit()
	return nil
}

// holdFeed takes the list's feed (see feed) before the server changes
// the list: from the first change after its load or its wake to its
// hibernation or its stop, so that a list that sleeps costs nothing for
// its watches, and a watched one keeps its history while it sleeps.
func (p *proc) holdFeed() {
	if p.feed == nil {
		p.feed = p.sys.holdFeed(p.name, p.list.Revision())
	}
}

// releaseFeed lets go of the list's feed, which leaves the System unless
// a watch follows it.
func (p *proc) releaseFeed() {
	if p.feed != nil {
		p.sys.releaseFeed(p.feed)
		p.feed = nil
	}
}

// idReserve is how many ids, and revisions, a list reserves at once with
// Write and Async durability (see store).
const idReserve = 1024

// store hands the batch's operations to the pool, and unless they count as
// stored at once (Async) waits until they are.
//
// An id must never be given out twice, not even across a crash that loses
// the last changes, as Write and Async durability may. With those, a list
// gives out ids only from a range it has reserved durably: the change that
// first goes past the range reserves the next idReserve ids, and it waits
// until that is fsynced, whatever the durability. A crash then leaves a
// gap in the ids, never a reuse. The range is released when the list
// leaves memory (see stop). Revisions are reserved the same way, at the
// same moments: a watch from a revision a crash lost is refused as too
// old, never served with another change under that revision.
func (p *proc) store() error {
	if size, limit := p.list.encodedSize(), p.sys.opts.MaxFileSize; int64(size) > limit {
		return fmt.Errorf("%w: the list would take %d bytes, more than the %d allowed", ErrTooLarge, size, limit)
	}
	pool := p.sys.pool
	state := p.list.state()
	wait, sync := !pool.async, false
	if p.sys.opts.Durability != Fsync {
		if state.LastID > p.reserved || state.Revision > p.revReserved {
			state.LastID = min(state.LastID+idReserve, MaxID)
			state.Revision = min(state.Revision+idReserve, MaxRevision)
			wait, sync = true, true
		} else {
			state.LastID, state.Revision = p.reserved, p.revReserved
		}
	}
	err := pool.save(p.name, p.ops, p.added, state, p.events, wait, sync, p.saved)
	if err == nil && sync {
		p.reserved, p.revReserved = state.LastID, state.Revision
	}
	return err
}

// planRegroup decides whether the next batch waits for this one's callers
// to come back (see waitRegroup).
func (p *proc) planRegroup(n int, err error) {
	if err == nil && p.changed() && !p.sys.pool.async && n > 1 && !p.regroupMissed {
		// Several callers share this list: those answered now will likely
		// send again at once, and those in the mailbox were held up by
		// this write. Have the next write carry them all.
		p.regroup = min(n+len(p.mailbox), maxBatch)
		p.regroupWait = min((p.sys.now()-p.batchStart)/4, maxRegroupWait)
	}
	p.regroupMissed = false
}

// answer answers every request of the batch: reads with the list as it
// now is, changes with their result or the batch's error.
func (p *proc) answer(batch []*call, err error) {
	l := p.list
	for _, c := range batch {
		switch {
		case l == nil:
			c.err = err // the list could not be loaded
		case c.op == opEntries:
			c.entries, c.rev = l.Entries(c.entry.Date), l.Revision()
		case c.op == opAll:
			c.entries, c.rev = l.All(), l.Revision()
		case err != nil && c.err == nil:
			c.res, c.err = Entry{}, err
		}
		c.reply <- struct{}{}
	}
	clear(batch) // let answered calls go
	if p.regroup > 0 {
		p.answeredAt = p.sys.now()
	}
}

// maxRegroupWait bounds how long a server waits for a batch to regroup,
// and a pool worker for a commit to.
const maxRegroupWait = 2 * time.Millisecond

// waitRegroup waits for the callers of the last synchronous write to send
// again, so that batch holds p.regroup requests, or until wait has passed
// (what is left of p.regroupWait, a quarter of that write's time, since
// they were answered); it returns the grown batch.
//
// Without it, callers of a busy list split into two groups that take turns:
// while one group's write is on its way the other group queues up, and the
// server starts the next write with the queued group the moment it has
// answered the first, before the first can send again. Each write then
// carries half the callers. Waiting a fraction of a write for the answered
// callers puts them all in every write. The wait is only set up when a
// write answered several callers, and not right after a wait in which
// nobody came back: callers that spread over many lists rarely come back
// to the same one, and a lone caller has nobody to wait for.
func (p *proc) waitRegroup(batch []*call, wait time.Duration) []*call {
	if p.regroupTimer == nil {
		p.regroupTimer = time.NewTimer(wait)
	} else {
		p.regroupTimer.Reset(wait)
	}
	defer p.regroupTimer.Stop()
	for len(batch) < p.regroup && !p.closeDue {
		select {
		case c := <-p.mailbox:
			if !p.signal(c) {
				batch = append(batch, c)
			}
		case <-p.regroupTimer.C:
			return batch
		}
	}
	return batch
}

// apply applies one change to the list and, when it changed it, records
// the operation to store. A panic fails that request alone; the updater,
// the request's own code, runs before anything is changed, so the list is
// untouched.
//
// Each kind of change has a function of its own: besides reading better,
// that keeps this frame small, and the server's stack with it. A server
// woken from hibernation starts on a new goroutine's smallest stack, and
// with every change inlined here the first add outgrew it: a stack copy
// on every wake.
func (p *proc) apply(c *call) {
	defer func() {
		if r := recover(); r != nil {
			p.crashed(c, r, debug.Stack())
		}
	}()
	if c.key != "" && p.answerKeyed(c) {
		return
	}
	if p.list.Revision() >= MaxRevision {
		c.err = p.revisionsFull()
		return
	}
	p.holdFeed()
	switch c.op {
	case opAdd:
		p.applyAdd(c)
	case opUpdate:
		p.applyUpdate(c)
	case opDelete:
		p.applyDelete(c)
	}
}

// record notes the operation of a change made, to be stored, and the
// idempotency key of its request with the kind of request it was. A
// plain add (no key) is noted by its id alone, the first of the batch:
// the entries it added are the list's from that id on, which the pool
// reads from the state it is given when it commits (see pool.save).
func (p *proc) record(c *call, op Op) {
	switch {
	case c.key != "":
		op.Key, op.Update = c.key, c.op == opUpdate
		p.list.noteKey(op)
	case c.op == opAdd:
		if p.added == 0 {
			p.added = op.Entry.ID
		}
		return
	}
	p.ops = append(p.ops, op)
}

// changed reports whether the batch being applied changed the list.
func (p *proc) changed() bool { return len(p.ops) > 0 || p.added != 0 }

// applyAdd adds the entry of c, or fails c.
func (p *proc) applyAdd(c *call) {
	if p.list.LastID() >= MaxID {
		c.err = p.listFull()
		return
	}
	c.res = p.list.Add(c.entry)
	p.record(c, Op{Entry: c.res})
	p.note(c, Added, c.res)
}

// note records the event of the change c just made, and answers its
// revision.
func (p *proc) note(c *call, kind EventKind, e Entry) {
	c.rev = p.list.Revision()
	p.events = append(p.events, Event{Kind: kind, Entry: e, Revision: c.rev})
}

//go:noinline
func (p *proc) listFull() error {
	return fmt.Errorf("%w: list %q has given out every id up to %d", ErrListFull, p.name, MaxID)
}

//go:noinline
func (p *proc) revisionsFull() error {
	return fmt.Errorf("%w: list %q is at revision %d, the last", ErrListFull, p.name, int64(MaxRevision))
}

// applyUpdate applies the patch of c, or runs its updater, on the entry
// it names and puts the result in its place, or fails c.
//
//go:noinline
func (p *proc) applyUpdate(c *call) {
	l := p.list
	old, ok := l.get(c.id)
	if !ok {
		c.err = fmt.Errorf("%w: id %d", ErrEntryNotFound, c.id)
		return
	}
	var e Entry
	if c.update == nil {
		e = c.patch.apply(old) // checked by its caller
	} else if e, ok = p.runUpdater(c, old); !ok {
		return
	}
	if !e.Date.Valid() {
		c.err = fmt.Errorf("%w: the updater returned %v", ErrInvalidDate, e.Date)
		return
	}
	if e.Title != old.Title { // a title stored before the rule may stay
		if err := validTitle(e.Title); err != nil {
			c.err = err
			return
		}
	}
	if c.res, c.err = l.Update(c.id, func(Entry) Entry { return e }); c.err != nil {
		return
	}
	p.record(c, Op{Entry: c.res})
	p.note(c, Updated, c.res)
}

// applyDelete deletes the entry c names, or fails c.
//
//go:noinline
func (p *proc) applyDelete(c *call) {
	old, _ := p.list.get(c.id)
	if c.err = p.list.Delete(c.id); c.err != nil {
		return
	}
	p.record(c, Op{Entry: Entry{ID: c.id}, Delete: true})
	p.note(c, Deleted, old)
}

// answerKeyed answers a change whose idempotency key the list remembers
// as the change first made with it was answered, changing nothing, and
// reports true; or reports false when the list does not remember the key.
//
//go:noinline
func (p *proc) answerKeyed(c *call) bool {
	op, ok := p.list.keyed(c.key)
	if !ok {
		return false
	}
	c.rev = p.list.Revision() // at or after the change's own
	if made := madeBy(op); made != c.op {
		c.err = fmt.Errorf("%w: key %q of list %q made %s, not %s", ErrKeyReused, c.key, p.name, made, c.op)
		return true
	}
	if !op.Delete {
		c.res = op.Entry
	}
	return true
}

// madeBy returns the kind of request that made a keyed operation.
func madeBy(o Op) op {
	switch {
	case o.Delete:
		return opDelete
	case o.Update:
		return opUpdate
	}
	return opAdd
}

// String names a change as ErrKeyReused's message does.
func (o op) String() string {
	switch o {
	case opAdd:
		return "an add"
	case opUpdate:
		return "an update"
	case opDelete:
		return "a delete"
	}
	return fmt.Sprintf("op %d", uint8(o))
}

// runUpdater runs the caller's updater on a goroutine of its own and waits
// for it, so that whatever it does (panic, or runtime.Goexit, which no
// recover stops, as t.FailNow does) ends only that goroutine and fails only
// its request, never the list's server. An updater that has not returned
// when its call's ctx ends, or when Close begins, is abandoned: its request
// fails, the list is left as it was, and its goroutine ends whenever the
// updater returns, its result discarded. A list's server never waits on
// an updater longer than its caller would, and Close never waits on one.
func (p *proc) runUpdater(c *call, old Entry) (Entry, bool) {
	type outcome struct {
		e      Entry
		ok     bool
		reason any
		stack  []byte
	}
	done := make(chan outcome, 1)
	update := c.update // c may be answered and reused before update returns
	go func() {
		var o outcome
		defer func() {
			if r := recover(); r != nil {
				o.reason, o.stack = r, debug.Stack()
			}
			done <- o
		}()
		o.e = update(old)
		o.ok = true
	}()
	var o outcome
	select {
	case o = <-done:
	case <-c.ctx.Done():
		c.err = fmt.Errorf("todo: list %q: the updater had not returned when the call ended: %w", p.name, c.ctx.Err())
		return Entry{}, false
	case <-p.sys.closing:
		c.err = fmt.Errorf("%w: list %q: the updater had not returned when Close began", ErrClosed, p.name)
		return Entry{}, false
	}
	if !o.ok {
		if o.stack == nil {
			o.reason, o.stack = "the updater called runtime.Goexit", []byte{}
		}
		p.crashed(c, o.reason, o.stack)
	}
	return o.e, o.ok
}

// crashed fails a request that panicked, and logs why with the stack.
func (p *proc) crashed(c *call, reason any, stack []byte) {
	p.sys.stats.panics.Add(1)
	p.sys.opts.Logger.Error("todo: request panicked", "list", p.name, "panic", reason, "stack", string(stack))
	c.err = fmt.Errorf("%w: list %q: %v", ErrCrashed, p.name, reason)
}
