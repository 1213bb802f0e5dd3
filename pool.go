package todo

import (
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"sync"
	"time"
)

// pool is the bounded pool of goroutines that write list files, the Go
// form of Todo.Database and its workers. A list's name is hashed to one
// worker, so the writes of one list never reorder. Each worker keeps at most
// one pending write per list and always writes the newest state
// (coalescing); every caller waiting on a coalesced write is answered by the
// one write that contains its change.
//
// A pool is safe for concurrent use by multiple goroutines.
type pool struct {
	store    storage
	log      *slog.Logger
	stats    *counters
	async    bool
	delay    time.Duration // Async: how long a change waits to share a write
	closed   chan struct{} // closed when close begins: stop delaying
	seed     maphash.Seed
	workers  []*worker
	wg       sync.WaitGroup
	queueCap int
}

// worker writes the lists hashed to it, a batch of files at a time.
type worker struct {
	p *pool

	// mu guards every field below it; cond is signalled when queue or
	// closing changes.
	mu      sync.Mutex
	cond    sync.Cond
	queue   []string          // names with a pending write, oldest first
	pending map[string]*write // the newest unwritten state of each queued name
	writing map[string]*write // the write in progress, by name (at most one)
	failed  map[string]*write // background writes that failed and were not superseded
	closing bool

	full chan struct{} // a server waits for room in the queue: write now

	// Reused by run from batch to batch.
	names []string
	wrs   []*write
}

// write is the newest unwritten state of one list and everyone waiting on it.
type write struct {
	snap    snapshot
	waiters []chan<- error
	since   time.Time // when the first change it holds was queued
}

func newPool(st storage, o Options, stats *counters) *pool {
	p := &pool{
		store:    st,
		log:      o.Logger,
		stats:    stats,
		async:    o.Durability == Async,
		delay:    o.AsyncDelay,
		closed:   make(chan struct{}),
		seed:     maphash.MakeSeed(),
		queueCap: o.QueueSize,
	}
	for range o.Workers {
		w := &worker{
			p:       p,
			pending: make(map[string]*write),
			writing: make(map[string]*write),
			failed:  make(map[string]*write),
			full:    make(chan struct{}, 1),
		}
		w.cond.L = &w.mu
		p.workers = append(p.workers, w)
		p.wg.Add(1)
		go w.run()
	}
	return p
}

// save hands the newest state of a list to its worker. With Fsync and Write
// durability it returns once that state (or a newer one) is written, with
// the write's error; with Async it returns as soon as the state is queued.
// When the worker's queue is full it waits for room.
func (p *pool) save(name string, snap snapshot, done chan error) error {
	w := p.worker(name)
	w.mu.Lock()
	wr := w.pending[name]
	if wr == nil {
		for len(w.queue) >= p.queueCap && !w.closing {
			select {
			case w.full <- struct{}{}: // cut the worker's delay short
			default:
			}
			w.cond.Wait()
		}
		wr = &write{}
		if p.async {
			wr.since = time.Now()
		}
		w.pending[name] = wr
		w.queue = append(w.queue, name)
		w.cond.Broadcast()
	}
	wr.snap = snap
	if !p.async {
		wr.waiters = append(wr.waiters, done)
	}
	w.mu.Unlock()
	if p.async {
		return nil
	}
	return <-done
}

func (w *worker) run() {
	defer w.p.wg.Done()
	for {
		w.mu.Lock()
		for len(w.queue) == 0 && !w.closing {
			w.cond.Wait()
		}
		if len(w.queue) == 0 {
			w.mu.Unlock()
			return
		}
		if w.p.async && !w.closing && len(w.queue) < w.p.queueCap {
			// Let the oldest change wait out the delay, so that the changes
			// made meanwhile to its list (and to the lists queued behind it)
			// share their writes. A full queue is written without delay.
			if wait := w.p.delay - time.Since(w.pending[w.queue[0]].since); wait > 0 {
				w.mu.Unlock()
				timer := time.NewTimer(wait)
				select {
				case <-timer.C:
				case <-w.full:
				case <-w.p.closed:
				}
				timer.Stop()
				continue
			}
		}
		// Take every queued list that is due, up to maxWriteBatch, and
		// write them together (see files.saveBatch).
		n := 1
		for n < len(w.queue) && n < maxWriteBatch {
			if w.p.async && !w.closing && len(w.queue) < w.p.queueCap &&
				time.Since(w.pending[w.queue[n]].since) < w.p.delay {
				break // the queue is in the order of since: the rest are not due either
			}
			n++
		}
		names := append(w.names[:0], w.queue[:n]...)
		clear(w.queue[:n])
		w.queue = w.queue[n:]
		wrs := w.wrs[:0]
		for _, name := range names {
			wr := w.pending[name]
			delete(w.pending, name)
			delete(w.failed, name) // this write holds everything the failed one held
			w.writing[name] = wr
			wrs = append(wrs, wr)
		}
		w.cond.Broadcast() // room in the queue
		w.mu.Unlock()

		errs := w.p.writeBatch(names, wrs)
		w.mu.Lock()
		ok := false
		for i, name := range names {
			delete(w.writing, name)
			if errs[i] == nil {
				ok = true
			} else if wr := wrs[i]; len(wr.waiters) == 0 && w.pending[name] == nil {
				// Nobody waits on this background write and nothing newer
				// will write the list: keep it for the next retry.
				w.failed[name] = wr
			}
		}
		clear(wrs)
		w.names, w.wrs = names, wrs
		w.mu.Unlock()
		if ok {
			w.retryFailed()
		}
	}
}

// maxWriteBatch bounds how many lists a worker writes together.
const maxWriteBatch = 32

// writeBatch writes the lists of a batch, answers their waiters, and
// returns each list's error. Only the real files write a batch at once
// (files.saveBatch); other storages, and the wrappers of files in tests
// (hooks, broken twins), write list by list.
func (p *pool) writeBatch(names []string, wrs []*write) []error {
	var errs []error
	if f, ok := p.store.(*files); ok && len(names) > 1 {
		snaps := make([]snapshot, len(wrs))
		for i, wr := range wrs {
			snaps[i] = wr.snap
		}
		errs = f.saveBatch(names, snaps)
	} else {
		errs = make([]error, len(names))
		for i, name := range names {
			errs[i] = p.store.save(name, wrs[i].snap)
		}
	}
	for i, name := range names {
		p.done(name, wrs[i], errs[i])
	}
	return errs
}

// retryFailed queues again the background writes that failed, now that a
// write has succeeded (the disk may have room again, say).
func (w *worker) retryFailed() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for name, wr := range w.failed {
		delete(w.failed, name)
		if w.pending[name] == nil {
			w.pending[name] = wr
			w.queue = append(w.queue, name)
		}
	}
}

// load returns the newest state of a list: the one still waiting to be
// written (with Async durability, a server that expired may have left one
// behind), or else the stored one. It is how a new server of a list reads
// the writes of the one before it.
func (p *pool) load(name string) (*List, error) {
	w := p.worker(name)
	w.mu.Lock()
	wr := w.pending[name]
	if wr == nil {
		wr = w.writing[name]
	}
	if wr == nil {
		wr = w.failed[name]
	}
	w.mu.Unlock()
	if wr != nil {
		return listFromSnapshot(wr.snap), nil
	}
	// Nothing is unwritten, and nothing new can be: the list's only writer
	// is the server that asks.
	return p.store.load(name)
}

// unwritten returns the names of the lists with a state not yet written.
func (p *pool) unwritten() []string {
	var names []string
	for _, w := range p.workers {
		w.mu.Lock()
		for _, m := range []map[string]*write{w.pending, w.writing, w.failed} {
			for name, wr := range m {
				if len(wr.snap.entries) > 0 {
					names = append(names, name)
				}
			}
		}
		w.mu.Unlock()
	}
	return names
}

func (p *pool) worker(name string) *worker {
	return p.workers[maphash.String(p.seed, name)%uint64(len(p.workers))]
}

// write writes one list and answers everyone waiting on it.
func (p *pool) write(name string, wr *write) error {
	err := p.store.save(name, wr.snap)
	p.done(name, wr, err)
	return err
}

// done counts and logs a finished write and answers its waiters.
func (p *pool) done(name string, wr *write, err error) {
	if err != nil {
		p.stats.writeErrors.Add(1)
		p.log.Error("todo: cannot write list", "list", name, "err", err)
	} else {
		p.stats.filesWritten.Add(1)
	}
	for _, c := range wr.waiters {
		c <- err
	}
}

// close writes every queued list, retries background writes that failed,
// stops the workers, and returns the errors of the writes that still fail.
func (p *pool) close() error {
	close(p.closed)
	for _, w := range p.workers {
		w.mu.Lock()
		w.closing = true
		w.cond.Broadcast()
		w.mu.Unlock()
	}
	p.wg.Wait()
	var errs []error
	for _, w := range p.workers {
		for name, wr := range w.failed {
			if err := p.write(name, wr); err != nil {
				errs = append(errs, fmt.Errorf("todo: list %q lost its last changes: %w", name, err))
			}
		}
	}
	return errors.Join(errs...)
}
