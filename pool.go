package todo

import (
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"sync"
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
	seed     maphash.Seed
	workers  []*worker
	wg       sync.WaitGroup
	queueCap int
}

// worker writes the lists hashed to it, one file at a time.
type worker struct {
	p *pool

	// mu guards every field below it; cond is signalled when queue or
	// closing changes.
	mu      sync.Mutex
	cond    sync.Cond
	queue   []string          // names with a pending write, oldest first
	pending map[string]*write // the newest unwritten state of each queued name
	failed  map[string]*write // background writes that failed and were not superseded
	closing bool
}

// write is the newest unwritten state of one list and everyone waiting on it.
type write struct {
	snap    snapshot
	waiters []chan<- error
}

func newPool(st storage, o Options, stats *counters) *pool {
	p := &pool{
		store:    st,
		log:      o.Logger,
		stats:    stats,
		async:    o.Durability == Async,
		seed:     maphash.MakeSeed(),
		queueCap: o.QueueSize,
	}
	for range o.Workers {
		w := &worker{p: p, pending: make(map[string]*write), failed: make(map[string]*write)}
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
	w := p.workers[maphash.String(p.seed, name)%uint64(len(p.workers))]
	w.mu.Lock()
	wr := w.pending[name]
	if wr == nil {
		for len(w.queue) >= p.queueCap && !w.closing {
			w.cond.Wait()
		}
		wr = &write{}
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
		name := w.queue[0]
		w.queue[0] = ""
		w.queue = w.queue[1:]
		wr := w.pending[name]
		delete(w.pending, name)
		delete(w.failed, name) // this write holds everything the failed one held
		w.cond.Broadcast()     // room in the queue
		w.mu.Unlock()

		err := w.p.write(name, wr)
		if err != nil && len(wr.waiters) == 0 {
			w.mu.Lock()
			if w.pending[name] == nil {
				w.failed[name] = wr // nothing newer will write it: retry at close
			}
			w.mu.Unlock()
		}
	}
}

// write writes one list and answers everyone waiting on it.
func (p *pool) write(name string, wr *write) error {
	err := p.store.save(name, wr.snap)
	if err != nil {
		p.stats.writeErrors.Add(1)
		p.log.Error("todo: cannot write list", "list", name, "err", err)
	} else {
		p.stats.filesWritten.Add(1)
	}
	for _, c := range wr.waiters {
		c <- err
	}
	return err
}

// close writes every queued list, retries background writes that failed,
// stops the workers, and returns the errors of the writes that still fail.
func (p *pool) close() error {
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
