package todo

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
)

// feed is what a System keeps of one list for its watches: the history of
// its latest changes, in a ring, and how many watches follow it. A list's
// server publishes the events of each stored batch into it (one server
// at a time); each watch reads it at its own pace, from its own position,
// the way a reader reads the table: the server never waits for a watch,
// does nothing per watch, and never learns how many there are.
//
// A feed lives in System.feeds while the list's server holds it (from
// its first change after a load or a wake to its hibernation or its stop,
// see proc.holdFeed) or a watch follows it, whichever lasts longer: so
// that watching keeps no server awake, a list that sleeps unwatched
// costs nothing, and a watched list that sleeps, or stops and loads
// again, goes on with its history.
//
// A feed is safe for concurrent use.
type feed struct {
	name     string
	capacity int // Options.WatchHistory

	// mu guards the fields below it. A server takes it once per batch to
	// publish; watches take it to read.
	mu sync.RWMutex
	// ring is the history: the events after revision rev-len(ring), up to
	// rev, oldest at ring[head]. It grows by append up to capacity, then
	// wraps: head is 0 until it is full.
	ring []Event
	head int
	// rev is the list's revision, once known: when a server held the
	// feed, or a watch read it (see watch.begin). base is what it was
	// then: a watch from "now" begun while it was unknown starts there.
	rev, base int64
	known     bool
	epoch     uint64 // counts the times the history started afresh (see hold)
	held      bool   // the list's server holds the feed
	watches   int    // open watches
	dead      bool   // left System.feeds: whoever wants the list's feed gets a new one

	// ver counts the changes to the fields above that a waiting watch
	// acts on; wake is closed after one, if a watch waits (nil if none
	// does). See watch.next.
	ver  atomic.Uint64
	wake atomic.Pointer[chan struct{}]
}

// push adds an event to the history, dropping the oldest past capacity.
// f.mu must be held for writing.
func (f *feed) push(ev Event) {
	if ev.Revision != f.rev+1 {
		// Not the change after the last one: cannot happen, as a list's
		// server publishes every change it stores, in order. Should it,
		// the history starts afresh rather than hide a gap.
		f.restart()
	}
	f.rev = ev.Revision
	if len(f.ring) < f.capacity {
		f.ring = append(f.ring, ev)
		return
	}
	f.ring[f.head] = ev
	f.head = (f.head + 1) % len(f.ring)
}

// restart empties the history: the watches of the feed so far end with
// ErrTooOld. f.mu must be held for writing.
func (f *feed) restart() {
	clear(f.ring)
	f.ring, f.head = f.ring[:0], 0
	f.epoch++
}

// learn makes the list's revision known, as rev. f.mu must be held for
// writing.
func (f *feed) learn(rev int64) { f.known, f.rev, f.base = true, rev, rev }

// oldest returns the revision the history starts after: a watch may start
// from it or any later revision up to f.rev. f.mu must be held.
func (f *feed) oldest() int64 { return f.rev - int64(len(f.ring)) }

// signal wakes the watches waiting on the feed, after a change to it.
func (f *feed) signal() {
	f.ver.Add(1)
	if c := f.wake.Swap(nil); c != nil {
		close(*c)
	}
}

// waitChan returns a channel closed at the next signal.
func (f *feed) waitChan() <-chan struct{} {
	for {
		if c := f.wake.Load(); c != nil {
			return *c
		}
		c := make(chan struct{})
		if f.wake.CompareAndSwap(nil, &c) {
			return c
		}
	}
}

// publish adds the events of a stored batch, in order, and wakes the
// watches that wait for them. The list's server calls it.
func (f *feed) publish(events []Event) {
	if len(events) == 0 {
		return
	}
	f.mu.Lock()
	for _, ev := range events {
		f.push(ev)
	}
	f.mu.Unlock()
	f.signal()
}

// holdFeed returns the feed of a list for its server, which holds the
// list at revision rev and publishes into the feed from now on. The
// history goes on if the feed knew the list at rev (the list slept, or
// stopped and loaded again, under a watch); if it knew it at another (the
// list was changed elsewhere meanwhile: on another node of a cluster,
// say), it starts afresh, and the watches of the old one end with
// ErrTooOld.
func (sys *System) holdFeed(name string, rev int64) *feed {
	for {
		f := sys.feedOf(name)
		f.mu.Lock()
		if f.dead {
			f.mu.Unlock()
			runtime.Gosched() // its remover is taking it out of the table
			continue
		}
		f.held = true
		if f.known && f.rev != rev {
			f.restart()
		}
		if !f.known || f.rev != rev {
			f.learn(rev)
		}
		f.mu.Unlock()
		f.signal()
		return f
	}
}

// releaseFeed lets go of the feed a server held: it leaves the System
// unless a watch follows it.
func (sys *System) releaseFeed(f *feed) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.held = false
	sys.dropIfUnused(f)
}

// dropIfUnused takes the feed out of System.feeds, its history with it,
// when neither a server nor a watch uses it. f.mu must be held.
func (sys *System) dropIfUnused(f *feed) {
	if f.held || f.watches > 0 || f.dead {
		return
	}
	f.dead = true
	sys.feeds.DeleteIf(f.name, func(g *feed) bool { return g == f })
}

// feedOf returns the feed of a list in System.feeds, making it if there
// is none. It may be dead: the caller checks, under its lock.
func (sys *System) feedOf(name string) *feed {
	if f, ok := sys.feeds.Lookup(name); ok {
		return f
	}
	f, _ := sys.feeds.LookupOrInsert(name, &feed{name: name, capacity: sys.opts.WatchHistory})
	return f
}

// take copies the next events after w.pos out of the feed into w.buf, at
// most watchChunk of them, and returns them (none: there are none yet)
// with the feed's ver as they were read, or why the watch ends.
//
// A watch is behind when more than Options.WatchBuffer changes came after
// both its position and its start that it has not taken: a watch may
// catch up with as much history as it began behind, but no more than
// WatchBuffer changes may come while it does.
func (f *feed) take(w *watch) ([]Event, uint64, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	ver := f.ver.Load()
	switch {
	case f.epoch != w.epoch:
		return nil, ver, fmt.Errorf("%w: list %q was changed elsewhere, or loaded again at another revision (%d): read it again", ErrTooOld, w.name, f.rev)
	case w.pos < 0 && !f.known:
		return nil, ver, nil
	case w.pos < 0:
		w.pos, w.start = f.base, f.base
	}
	oldest := f.oldest()
	switch {
	case w.pos >= f.rev:
		return nil, ver, nil
	case w.pos < oldest:
		// It began far back, catching up, and the history moved past it.
		return nil, ver, fmt.Errorf("%w: list %q keeps the changes after revision %d, and the watch is at %d: read the list again", ErrTooOld, w.name, oldest, w.pos)
	case f.rev-max(w.pos, w.start) > int64(w.sys.opts.WatchBuffer):
		w.sys.stats.watchesBehind.Add(1)
		return nil, ver, &BehindError{List: w.name, Revision: w.pos}
	}
	n := int(min(f.rev-w.pos, watchChunk))
	i := (f.head + int(w.pos-oldest)) % len(f.ring)
	w.buf = w.buf[:0]
	for range n {
		w.buf = append(w.buf, f.ring[i])
		if i++; i == len(f.ring) {
			i = 0
		}
	}
	w.pos += int64(n)
	if twin := w.sys.opts.knobs.watchTwin; twin != "" {
		w.buf = breakEvents(w.buf, twin)
	}
	return w.buf, ver, nil
}

// breakEvents is the broken twin of a watch (see knobs.watchTwin).
func breakEvents(events []Event, twin string) []Event {
	var out []Event
	for _, ev := range events {
		switch {
		case ev.Revision%100 != 50:
		case twin == "skip":
			continue
		case twin == "repeat":
			out = append(out, ev)
		}
		out = append(out, ev)
	}
	return out
}
