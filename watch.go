package todo

import (
	"context"
	"fmt"
	"iter"
	"runtime"
	"sync"
	"sync/atomic"
)

// Watches. Every change of a list has a revision, one more than the
// change before it (see List.Revision), stored with the list. A list's
// server publishes the events of each stored batch into the list's feed
// (feed.go), which keeps the latest Options.WatchHistory of them; each
// watch reads the feed at its own pace, from its own position. A watch
// that lags too far is ended, not buffered for (see feed.take).

// MaxRevision is the highest revision a list may reach: 2^53-1, like
// MaxID the largest integer every JSON client reads exactly. A list at
// it takes no more changes ([ErrListFull]); at a million changes a
// second it would take 285 years to get there.
const MaxRevision = 1<<53 - 1

// EventKind says what a change did to an entry.
type EventKind uint8

const (
	Added   EventKind = iota + 1 // the entry was added
	Updated                      // the entry's date or title was changed
	Deleted                      // the entry was deleted
)

// String returns "added", "updated" or "deleted".
func (k EventKind) String() string {
	switch k {
	case Added:
		return "added"
	case Updated:
		return "updated"
	case Deleted:
		return "deleted"
	}
	return fmt.Sprintf("EventKind(%d)", uint8(k))
}

// Event is one change of a list, as a watch yields it: what the change
// did (Kind), to which entry (Entry: as the change left it, or, for
// Deleted, as it was before), and the list's revision after it, which is
// one more than the revision before it.
type Event struct {
	Kind     EventKind
	Entry    Entry
	Revision int64
}

// BehindError ends a watch that fell further behind its list than
// [Options.WatchBuffer] allows: its consumer took the changes more slowly
// than they came. It matches [ErrWatchBehind] with [errors.Is]. Watching
// again from Revision, the revision of the last change the watch yielded,
// goes on where it stopped, with no change missed or repeated, as long as
// the list's history still holds the changes after it; otherwise that
// watch is refused with [ErrTooOld].
type BehindError struct {
	List     string
	Revision int64
}

func (e *BehindError) Error() string {
	return fmt.Sprintf("todo: watch of list %q fell behind after revision %d: watch again from it", e.List, e.Revision)
}

// Is reports whether target is ErrWatchBehind.
func (e *BehindError) Is(target error) bool { return target == ErrWatchBehind }

// watchChunk is how many events a watch copies out of its feed at a time:
// its own buffer.
const watchChunk = 64

// Watch returns the changes of the list made after revision from, in
// order, each as an [Event], as they are stored, for as long as the range
// over them goes on: the way to follow a list without polling it. A from
// of 0 means from now (revisions start at 1: see [List.Revision]), and
// from R, from the revision of a read that stood at R. Together with [System.EntriesPageRev] or
// [Server.EntriesRev], which read a list with the revision it stands at,
// it follows a list exactly: read at revision R, then watch from R, and
// no change is missed or seen twice.
//
// Watch refuses at once, with an error wrapping [ErrTooOld], a from
// older than the list's history holds, and one ahead of the list; the
// client reads the list again and watches from the revision it read. The
// history is the latest [Options.WatchHistory] changes, kept in memory
// while the list's server is awake (for [Options.HibernateAfter] after
// its last request) or a watch follows the list; from a list that slept
// unwatched, or that is not loaded, a watch may start only from its
// revision now. It refuses
// with [ErrTooManyWatches] a watch past [Options.MaxWatches] or
// [Options.MaxListWatches], with [ErrInvalidRevision] a from below 0 or
// over [MaxRevision].
//
// The range over the changes ends when its loop stops, when ctx ends
// (yielding ctx's error), when the System closes (yielding [ErrClosed],
// after every change it stored), and when the watch falls further behind
// the list than [Options.WatchBuffer] allows (yielding a [*BehindError],
// which says where to watch again from): an error is yielded once, with a
// zero Event, last. Until then the watch counts against the limits, even
// if nothing ranges over it: range over it once, or end ctx.
//
// A change is yielded once it is stored as durably as
// [Options.Durability] asks, when it becomes visible to readers. Watching
// costs the list's server nothing: it keeps no server awake (hibernation
// and expiry go on as without it), and it loads no list that nobody
// writes (a from other than 0 reads the revision of a list that is not
// loaded as a read of it does, without starting its server).
func (s *Server) Watch(ctx context.Context, from int64) (iter.Seq2[Event, error], error) {
	if s.err != nil {
		return nil, s.err
	}
	return s.sys.watch(ctx, s.name, from)
}

// watch is a watch of one list (see Server.Watch).
type watch struct {
	sys  *System
	f    *feed
	name string
	ctx  context.Context
	// pos is the revision of the last event taken, -1 until the list's
	// revision is known; start is the list's revision when the watch
	// began, which is how far back it may catch up without counting as
	// behind (see feed.take); epoch is the feed's when it began.
	pos, start int64
	epoch      uint64
	buf        []Event // what take copied out of the feed

	used      atomic.Bool // ranged over
	closeOnce sync.Once
	stopAfter func() bool // stops the ctx.AfterFunc that closes a watch never ranged over
}

func (sys *System) watch(ctx context.Context, name string, from int64) (iter.Seq2[Event, error], error) {
	if err := validName(name); err != nil {
		return nil, err
	}
	if from < 0 || from > MaxRevision {
		return nil, fmt.Errorf("%w: %d is not in 0..%d", ErrInvalidRevision, from, int64(MaxRevision))
	}
	if sys.closed.Load() {
		return nil, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if n := sys.watchCount.Add(1); n > int64(sys.opts.MaxWatches) {
		sys.watchCount.Add(-1)
		return nil, fmt.Errorf("%w: %d are open in all, the most Options.MaxWatches allows", ErrTooManyWatches, n-1)
	}
	w := &watch{sys: sys, name: name, ctx: ctx}
	if err := w.join(); err != nil {
		sys.watchCount.Add(-1)
		return nil, err
	}
	if err := w.begin(from); err != nil {
		w.close()
		return nil, err
	}
	w.stopAfter = context.AfterFunc(ctx, w.close)
	return w.all, nil
}

// join adds the watch to its list's feed.
func (w *watch) join() error {
	for {
		f := w.sys.feedOf(w.name)
		f.mu.Lock()
		if f.dead {
			f.mu.Unlock()
			runtime.Gosched() // its remover is taking it out of the table
			continue
		}
		defer f.mu.Unlock()
		if f.watches >= w.sys.opts.MaxListWatches {
			w.sys.dropIfUnused(f)
			return fmt.Errorf("%w: list %q has %d, the most Options.MaxListWatches allows", ErrTooManyWatches, w.name, f.watches)
		}
		f.watches++
		w.f = f
		return nil
	}
}

// begin decides where the watch starts: from what the feed knows, or
// else what the list's server published, or else, for a list no server
// holds, the list's revision as stored.
func (w *watch) begin(from int64) error {
	f := w.f
	f.mu.Lock()
	if !f.known {
		// No server held the feed since the watch joined it, so none has
		// changed the list since (see proc.holdFeed): a server that has
		// it loaded, asleep, say, published its revision last, and
		// waits for f.mu to change it.
		if p := w.sys.loadedServer(w.name); p != nil {
			f.learn(p.pubRev.Load())
		}
	}
	w.epoch = f.epoch
	if !f.known && from == 0 {
		// From now, on a list that is not loaded: the watch starts where
		// the list is when a server loads it (see feed.take). Nothing is
		// read.
		w.pos, w.start = -1, -1
		f.mu.Unlock()
		return nil
	}
	if !f.known {
		f.mu.Unlock()
		// Read the list's revision as a read of a list that is not loaded
		// does: from the changes its last server left with the pool, or
		// the store; no server starts. A server that loads the list
		// meanwhile makes the feed known before it changes anything.
		st, err := w.sys.pool.load(w.ctx, w.name)
		if err != nil {
			return err
		}
		f.mu.Lock()
		if !f.known {
			f.learn(st.revision())
		}
		w.epoch = f.epoch
	}
	defer f.mu.Unlock()
	switch oldest := f.oldest(); {
	case from > f.rev:
		return fmt.Errorf("%w: revision %d of list %q is ahead of the list's, %d: read the list again", ErrTooOld, from, w.name, f.rev)
	case from == 0:
		w.pos = f.rev
	case from < oldest:
		return fmt.Errorf("%w: list %q keeps the changes after revision %d, not after %d: read the list again", ErrTooOld, w.name, oldest, from)
	default:
		w.pos = from
	}
	w.start = f.rev
	return nil
}

// all is the range over the watch's events (see Server.Watch).
func (w *watch) all(yield func(Event, error) bool) {
	if !w.used.CompareAndSwap(false, true) {
		yield(Event{}, fmt.Errorf("%w: the watch of list %q was ranged over already", ErrClosed, w.name))
		return
	}
	defer func() {
		w.stopAfter()
		w.close()
	}()
	for {
		events, err := w.next()
		if err != nil {
			yield(Event{}, err)
			return
		}
		for _, ev := range events {
			if !yield(ev, nil) {
				return
			}
		}
	}
}

// next returns the next events of the list, waiting for them if there
// are none yet, or why the watch ends.
func (w *watch) next() ([]Event, error) {
	for {
		if err := w.ctx.Err(); err != nil {
			return nil, err
		}
		events, ver, err := w.f.take(w)
		if err != nil || len(events) > 0 {
			return events, err
		}
		select {
		case <-w.sys.shut:
			// Closed, and every change it stored is taken.
			return nil, ErrClosed
		default:
		}
		wake := w.f.waitChan()
		if w.f.ver.Load() != ver {
			continue // the feed changed between take and waitChan
		}
		select {
		case <-wake:
		case <-w.ctx.Done():
		case <-w.sys.shut:
		}
	}
}

// close ends the watch: it leaves its feed, and its place among the
// limits. It is idempotent.
func (w *watch) close() {
	w.closeOnce.Do(func() {
		f := w.f
		f.mu.Lock()
		f.watches--
		w.sys.dropIfUnused(f)
		f.mu.Unlock()
		w.sys.watchCount.Add(-1)
	})
}
