package todo

import (
	"hash/maphash"
	"runtime"
	"sync/atomic"
)

// The read path. A list's server publishes what readers need into the
// System's table after every stored batch: the entries of each date under
// a tableKey, in a dayCell, and every entry for AllEntries in proc.all.
// Readers of a loaded list take them from there without ever waiting for
// the server, the book's lesson of the ETS registry: writes go through one
// process, reads straight to the table.

// tableKey names what a server publishes: the entries of one date of one
// list.
type tableKey struct {
	list string
	date Date
}

// dayCell is what a server publishes for one date of its list: inserted in
// the table once, then updated in place by its server (an atomic store is
// far cheaper than a table insert), read by anyone. owner lets a reader
// tell that the cell still belongs to a running server.
type dayCell struct {
	owner   *proc
	entries atomicEntries // in id order; a slice the List never writes to again
}

// tableKeyHasher hashes tableKeys faster than the generic hasher of
// struct keys: the name with maphash, then the date mixed in.
func tableKeyHasher() func(tableKey, uint64) uint64 {
	seed := maphash.MakeSeed()
	return func(k tableKey, tableSeed uint64) uint64 {
		h := maphash.String(seed, k.list) ^ tableSeed
		h ^= uint64(k.date.Year)<<16 ^ uint64(k.date.Month)<<8 ^ uint64(k.date.Day)
		h *= 0x9e3779b97f4a7c15
		return h ^ h>>29
	}
}

// publishDate makes the entries of one date (nil when it has none)
// visible to readers.
func (p *proc) publishDate(k dayKey, entries []Entry) {
	if c := p.cells[k]; c != nil {
		c.entries.store(entries)
		return
	}
	if len(entries) == 0 {
		return
	}
	c := &dayCell{owner: p}
	c.entries.store(entries) // before readers can find c
	if p.cells == nil {
		p.cells = make(map[dayKey]*dayCell)
	}
	p.cells[k] = c
	p.sys.table.Insert(tableKey{p.name, k.date()}, c)
}

// publishBatch publishes what the batch being committed changed.
func (p *proc) publishBatch() {
	p.pubSeq.Add(1) // odd: publishing
	p.list.touched(p.publishDate)
	p.publishAll()
	p.pubRev.Store(p.list.Revision())
	p.pubSeq.Add(1)
}

// publishAll publishes the whole list for AllEntries.
func (p *proc) publishAll() {
	all := p.list.entries()
	p.all.store(all)
	p.hasEntries.Store(len(all) > 0)
}

// publishLoaded publishes a freshly loaded list and marks it loaded.
func (p *proc) publishLoaded() {
	p.list.dates(p.publishDate)
	p.publishAll()
	p.pubRev.Store(p.list.Revision())
	p.loaded.Store(true)
}

// unpublish withdraws everything the server published.
func (p *proc) unpublish() {
	for k := range p.cells {
		p.sys.table.Delete(tableKey{p.name, k.date()})
	}
}

// readDate appends the published entries of date d of a list to dst and
// reports true, or reports false when the list is not loaded by a running
// server and must be read through one.
func (sys *System) readDate(name string, d Date, dst []Entry) ([]Entry, bool) {
	entries, ok := sys.viewDate(name, d)
	if !ok {
		return dst, false
	}
	return append(dst, entries...), true
}

// viewDate returns the published entries of date d of a list, shared: the
// caller must not write to them. It reports false when the list is not
// loaded by a running server.
func (sys *System) viewDate(name string, d Date) ([]Entry, bool) {
	key := tableKey{name, d}
	// Fast path: the date is published, by a server that still runs.
	if c, ok := sys.table.Lookup(key); ok {
		entries := c.entries.load()
		if c.owner.servesRead() {
			return entries, true
		}
	}
	// The key may be absent because the list has nothing that day, or
	// because the list is not loaded. Look the server up first: a value
	// read after that, while the server has not retired, is its own.
	p := sys.loadedServer(name)
	if p == nil {
		return nil, false
	}
	var entries []Entry
	if c, ok := sys.table.Lookup(key); ok {
		entries = c.entries.load()
	}
	if !p.servesRead() {
		return nil, false
	}
	return entries, true
}

// readAll returns a copy of every published entry of a list and true, or
// false when the list must be read through its server.
func (sys *System) readAll(name string) ([]Entry, bool) {
	all, ok := sys.viewAll(name)
	if !ok {
		return nil, false
	}
	return append([]Entry(nil), all...), true
}

// viewAll is readAll without the copy: the caller must not write to them.
func (sys *System) viewAll(name string) ([]Entry, bool) {
	p := sys.loadedServer(name)
	if p == nil {
		return nil, false
	}
	all := p.all.load()
	if !p.servesRead() {
		return nil, false
	}
	return all, true
}

// viewAt is viewDate for a date, or viewAll for the zero Date, with the
// revision of the list the entries stand at: both as of one moment, when
// no batch was being published (see proc.pubSeq).
func (sys *System) viewAt(name string, d Date) ([]Entry, int64, bool) {
	p := sys.loadedServer(name)
	if p == nil {
		return nil, 0, false
	}
	for {
		seq := p.pubSeq.Load()
		if seq&1 == 0 {
			var entries []Entry
			if d == (Date{}) {
				entries = p.all.load()
			} else if c, ok := sys.table.Lookup(tableKey{name, d}); ok {
				entries = c.entries.load()
			}
			rev := p.pubRev.Load()
			if p.pubSeq.Load() == seq {
				if !p.servesRead() {
					return nil, 0, false
				}
				return entries, rev, true
			}
		}
		runtime.Gosched() // a batch is being published: a few stores
	}
}

// loadedServer returns the running server of a list if it has loaded it.
func (sys *System) loadedServer(name string) *proc {
	if p, ok := sys.registry.Lookup(name); ok && p.loaded.Load() {
		return p
	}
	return nil
}

// servesRead reports whether what a reader took from p's publications is
// p's own, that is, p has not retired since; if so it counts the read and
// keeps p from expiring.
func (p *proc) servesRead() bool {
	if p.retired() {
		return false
	}
	p.touch()
	p.sys.stats.tableReads.Inc()
	return true
}

// atomicEntries holds a slice of entries that one goroutine publishes and
// any may read. Publishing allocates only when the slice is not the one
// published last grown in place: a List appends to its slices where they
// have room (see List's doc), so most adds publish by storing a length.
// The publisher may go on changing its own slice header (appending, say)
// without touching what readers see.
type atomicEntries struct{ p atomic.Pointer[published] }

// published is a slice as readers see it: the first n of entries. The
// publisher writes entries past n only, and then raises n; no element
// below n is ever written again.
type published struct {
	entries []Entry
	n       atomic.Int64
}

func (a *atomicEntries) store(entries []Entry) {
	if len(entries) == 0 {
		a.p.Store(nil)
		return
	}
	if cur := a.p.Load(); cur != nil && sameArray(cur.entries, entries) && len(entries) >= int(cur.n.Load()) {
		// The published slice, grown in place: its first n entries are
		// what readers see already, and the List never writes them.
		cur.n.Store(int64(len(entries)))
		return
	}
	pub := &published{entries: entries}
	pub.n.Store(int64(len(entries)))
	a.p.Store(pub)
}

func (a *atomicEntries) load() []Entry {
	if p := a.p.Load(); p != nil {
		n := p.n.Load()
		return p.entries[:n:n]
	}
	return nil
}

// sameArray reports whether grown starts where published does, with room
// for it in published's capacity: grown is published extended in place.
func sameArray(published, grown []Entry) bool {
	return len(published) > 0 && len(grown) <= cap(published) && &published[0] == &grown[0]
}
