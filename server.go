package todo

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync/atomic"
	"time"
)

// proc is the running server of one list: the only goroutine that changes
// the list, the Go form of a Todo.Server process. Callers reach it through
// its mailbox; readers of a loaded list never reach it at all, they read
// what it published in the System's table.
type proc struct {
	sys     *System
	name    string
	mailbox chan *call

	// senders counts callers between acquire and release, that is, callers
	// that may still put a request in the mailbox; -1 means the server has
	// retired and takes nothing more. Retiring is a CAS from 0 to -1, so a
	// request is either in the mailbox before the server retires or never
	// sent to it.
	senders atomic.Int64

	loaded     atomic.Bool             // the list is loaded and published
	touched    atomic.Bool             // a table read happened since the idle timer was last armed
	hasEntries atomic.Bool             // the list has at least one entry
	all        atomic.Pointer[[]Entry] // every entry, published for AllEntries
	done       chan struct{}           // closed when the server has left the registry
	saved      chan error              // the pool answers the server's writes here

	// Owned by the server goroutine.
	cells map[dayKey]*dayCell // what it has published in the table
	list  *List
	undo  undoLog
	batch []*call
	// Signals drained from the mailbox and not acted on yet.
	expireDue, closeDue bool
	// expireMissed is set by the idle timer when the mailbox was full.
	expireMissed atomic.Bool
	// How many requests the next batch waits for, and for how long; see
	// waitRegroup.
	regroup       int
	regroupWait   time.Duration
	regroupTimer  *time.Timer
	regroupMissed bool // the last wait ran out with nobody back

	batchStart time.Time // when the current batch was taken from the mailbox
	answeredAt time.Time // when the last batch that set regroup was answered
}

// op is what a request asks of a server.
type op uint8

const (
	opAdd op = iota
	opUpdate
	opDelete
	opEntries // read one date of a list that is not loaded yet
	opAll     // read all of a list that is not loaded yet
	opExpire  // expireSignal
	opClose   // closeSignal
)

// call is one request and its reply. Calls are pooled, and the reply
// channel is reused with them: a call goes back to the pool only when its
// caller has received the reply.
type call struct {
	ctx    context.Context
	op     op
	entry  Entry // opAdd: the entry; opEntries: its Date is the date read
	id     int
	update func(Entry) Entry

	// Set by the server before it replies.
	res     Entry
	entries []Entry
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
		mailbox: make(chan *call, sys.opts.MailboxSize),
		done:    make(chan struct{}),
		saved:   make(chan error, 1),
	}
}

// acquire registers a caller that is about to send; it fails once the
// server has retired.
func (p *proc) acquire() bool {
	for {
		n := p.senders.Load()
		if n < 0 {
			return false
		}
		if p.senders.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

func (p *proc) release() { p.senders.Add(-1) }

func (p *proc) retired() bool { return p.senders.Load() < 0 }

// touch tells the server its list was read, which keeps it from expiring.
// The flag is written only when it changes, so that readers on many cores
// do not fight over its cache line.
func (p *proc) touch() {
	if !p.touched.Load() {
		p.touched.Store(true)
	}
}

// Signals are messages to a server that are not requests. They travel in
// the mailbox with the requests, so that a waiting server waits on that one
// channel: a select over the mailbox, a timer and Close's channel costs
// locking three channels every time the server sleeps and wakes, and with
// many lists a server sleeps and wakes for almost every request.
var (
	expireSignal = &call{op: opExpire} // the idle timer fired
	closeSignal  = &call{op: opClose}  // the System is closing
)

// signal notes a signal drained from the mailbox, to be acted on once the
// requests before and around it are served. It reports whether c was one.
func (p *proc) signal(c *call) bool {
	switch c {
	case expireSignal:
		p.expireDue = true
	case closeSignal:
		p.closeDue = true
	default:
		return false
	}
	return true
}

// run is the server goroutine.
func (p *proc) run() {
	defer p.sys.servers.Done()
	idle := p.sys.opts.IdleTimeout
	// The timer puts expireSignal in the mailbox. It is not reset on every
	// request, which would cost more than the request: lastRequest is
	// noted instead, and checked when the signal comes. Only this
	// goroutine resets or stops the timer.
	var timer *time.Timer
	if idle > 0 {
		timer = time.AfterFunc(idle, func() {
			select {
			case p.mailbox <- expireSignal:
			default:
				// A full mailbox: the server is busy, and sees this
				// after its batch.
				p.expireMissed.Store(true)
			}
		})
		defer timer.Stop()
	}
	var lastRequest time.Time
	for {
		if c := <-p.mailbox; !p.signal(c) {
			p.serveBatch(c)
			lastRequest = p.batchStart
			if p.expireMissed.Load() {
				p.expireMissed.Store(false)
				p.expireDue = true
			}
		}
		if p.closeDue {
			for !p.senders.CompareAndSwap(0, -1) {
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
			return
		}
		if !p.expireDue {
			continue
		}
		p.expireDue = false
		if quiet := time.Since(lastRequest); quiet < idle {
			timer.Reset(idle - quiet)
			continue
		}
		if p.touched.Swap(false) || !p.senders.CompareAndSwap(0, -1) {
			// Read since the timer was armed, or a caller is sending
			// right now.
			timer.Reset(idle)
			continue
		}
		p.stop()
		p.sys.stats.expired.Add(1)
		return
	}
}

// stop serves what is left in the mailbox (every sender has finished, see
// senders), withdraws what the server published, and leaves the registry.
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
	for k := range p.cells {
		p.sys.table.Delete(tableKey{p.name, k.date()})
	}
	p.sys.registry.DeleteIf(p.name, func(q *proc) bool { return q == p })
	// Let the list go even while handles remember this server (see
	// Server.last): readers check retired before they use p.all.
	p.all.Store(nil)
	p.list, p.cells, p.undo, p.batch = nil, nil, undoLog{}, nil
	close(p.done)
}

// serveBatch applies first and every request waiting behind it, up to
// maxBatch, as one batch: one write of the list file, one publication.
func (p *proc) serveBatch(first *call) {
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
		if wait := p.regroupWait - time.Since(p.answeredAt); wait > 0 {
			batch = p.waitRegroup(batch, wait)
			// Nobody came back: the callers have gone to other lists, or
			// away. Do not wait on the next batch.
			p.regroupMissed = len(batch) == n
		}
	}
	p.regroup = 0
	p.batchStart = time.Now() // one clock read per batch serves expiry and waitRegroup
	p.batch = batch
	defer clear(batch) // let answered calls go
	p.sys.stats.requests.Add(int64(len(batch)))

	if p.list == nil {
		l, err := p.sys.pool.load(p.name)
		if err != nil {
			p.sys.opts.Logger.Error("todo: cannot load list", "list", p.name, "err", err)
			for _, c := range batch {
				c.err = err
				c.reply <- struct{}{}
			}
			return
		}
		p.list = l
		p.publishLoaded()
	}

	l := p.list
	l.begin(&p.undo)
	changed := false
	for _, c := range batch {
		if c.op >= opEntries {
			continue // reads are answered after the batch is stored
		}
		if err := c.ctx.Err(); err != nil {
			c.err = err // the caller has gone: do not apply what it no longer waits for
			continue
		}
		if p.apply(c) {
			changed = true
		}
	}

	var err error
	if changed {
		err = p.sys.pool.save(p.name, l.snapshot(), p.saved)
	}
	if err != nil {
		l.rollback()
		err = fmt.Errorf("todo: list %q not saved: %w", p.name, err)
	} else {
		l.touched(p.publish)
		if changed {
			p.publishAll()
		}
		l.commit()
	}

	if changed && err == nil && !p.sys.pool.async && len(batch) > 1 && !p.regroupMissed {
		// Several callers share this list (see waitRegroup): those
		// answered below will likely send again at once, and those in the
		// mailbox were held up by this write. Have the next write carry
		// them all.
		p.regroup = min(len(batch)+len(p.mailbox), maxBatch)
		p.regroupWait = min(time.Since(p.batchStart)/4, maxRegroupWait)
	}
	p.regroupMissed = false
	for _, c := range batch {
		switch {
		case c.op == opEntries:
			c.entries = l.Entries(c.entry.Date)
		case c.op == opAll:
			c.entries = l.All()
		case err != nil && c.err == nil:
			c.res, c.err = Entry{}, err
		}
		c.reply <- struct{}{}
	}
	if p.regroup > 0 {
		p.answeredAt = time.Now()
	}
}

// maxRegroupWait bounds how long a server waits for a batch to regroup.
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

// apply applies one change to the list and reports whether it changed it.
// A panic fails that request alone; the updater, the request's own code,
// runs before anything is changed, so the list is untouched.
func (p *proc) apply(c *call) (changed bool) {
	defer func() {
		if r := recover(); r != nil {
			p.crashed(c, r, debug.Stack())
			changed = false
		}
	}()
	l := p.list
	switch c.op {
	case opAdd:
		if l.lastID >= MaxID {
			c.err = fmt.Errorf("%w: list %q has given out every id up to %d", ErrListFull, p.name, MaxID)
			return false
		}
		c.res = l.Add(c.entry)
		return true
	case opUpdate:
		i, ok := l.find(c.id)
		if !ok {
			c.err = fmt.Errorf("%w: id %d", ErrEntryNotFound, c.id)
			return false
		}
		e, ok := p.runUpdater(c, l.all[i])
		if !ok {
			return false
		}
		if !e.Date.Valid() {
			c.err = fmt.Errorf("%w: the updater returned %v", ErrInvalidDate, e.Date)
			return false
		}
		if err := validTitle(e.Title); err != nil {
			c.err = err
			return false
		}
		c.res, c.err = l.Update(c.id, func(Entry) Entry { return e })
		return c.err == nil
	case opDelete:
		c.err = l.Delete(c.id)
		return c.err == nil
	}
	return false
}

// runUpdater runs the caller's updater on a goroutine of its own and waits
// for it, so that whatever it does (panic, or runtime.Goexit, which no
// recover stops, as t.FailNow does) ends only that goroutine and fails only
// its request, never the list's server.
func (p *proc) runUpdater(c *call, old Entry) (e Entry, ok bool) {
	done := make(chan struct{})
	var (
		reason any
		stack  []byte
	)
	go func() {
		defer close(done)
		defer func() {
			if r := recover(); r != nil {
				reason, stack = r, debug.Stack()
			}
		}()
		e = c.update(old)
		ok = true
	}()
	<-done
	if !ok {
		if stack == nil {
			reason, stack = "the updater called runtime.Goexit", []byte{}
		}
		p.crashed(c, reason, stack)
	}
	return e, ok
}

// crashed fails a request that panicked, and logs why with the stack.
func (p *proc) crashed(c *call, reason any, stack []byte) {
	p.sys.stats.panics.Add(1)
	p.sys.opts.Logger.Error("todo: request panicked", "list", p.name, "panic", reason, "stack", string(stack))
	c.err = fmt.Errorf("%w: list %q: %v", ErrCrashed, p.name, reason)
}

// publish makes the entries of one date (its slot, nil when it has none)
// visible to readers.
func (p *proc) publish(k dayKey, slot *dateSlot) {
	// The cell gets a copy of the slice header: the List goes on changing
	// its slot's, never what that header shows.
	var entries []Entry
	if slot != nil {
		entries = slot.entries
		if c := slot.cell; c != nil {
			c.entries.Store(&entries)
			return
		}
	}
	c := p.cells[k]
	switch {
	case c != nil:
		c.entries.Store(&entries)
	case len(entries) == 0:
		return
	default:
		c = &dayCell{owner: p}
		c.entries.Store(&entries) // before readers can find c
		if p.cells == nil {
			p.cells = make(map[dayKey]*dayCell)
		}
		p.cells[k] = c
		p.sys.table.Insert(tableKey{p.name, k.date()}, c)
	}
	if slot != nil {
		slot.cell = c
	}
}

// publishAll publishes the whole list for AllEntries.
func (p *proc) publishAll() {
	all := p.list.all
	p.all.Store(&all)
	p.hasEntries.Store(len(all) > 0)
}

// publishLoaded publishes a freshly loaded list and marks it loaded.
func (p *proc) publishLoaded() {
	for k, slot := range p.list.byDate {
		p.publish(k, slot)
	}
	p.publishAll()
	p.loaded.Store(true)
}
