package todo

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Server is the handle of one to-do list, returned by
// [System.ServerProcess]: the book's Todo.Server pid, except that it names
// the list instead of pointing at a goroutine, so it survives the server's
// expiry and restart. A Server is safe for concurrent use by multiple
// goroutines.
//
// Changes (AddEntry, UpdateEntry, DeleteEntry) go through the list's server
// goroutine, one at a time, and are acknowledged when they are as durable
// as [Options.Durability] asks. Reads (Entries, AllEntries) of a loaded
// list never wait for that goroutine: they read what it published in the
// System's table, so they see every acknowledged change.
//
// When ctx ends before a change is answered, the call returns ctx's error;
// the change may still have been made, as with any call timeout.
type Server struct {
	sys  *System
	name string
	err  error // non-nil when name is not a valid list name
	// last is the server this handle last sent to, tried before the
	// registry. A server that has retired refuses senders (see acquire),
	// so a stale one costs a registry lookup, never a lost request.
	last atomic.Pointer[proc]
}

// idempotencyKey is the type of the ctx value WithIdempotencyKey sets.
type idempotencyKey struct{}

// WithIdempotencyKey returns a ctx under which AddEntry, UpdateEntry and
// DeleteEntry are idempotent: of several calls on one list made with the
// same key, the first makes its change, and the others change nothing and
// are answered as the first was (the entry it added or updated; no error
// for a delete), even across a crash with Fsync durability, as long as
// the list remembers the key (it remembers the last MaxKeys keys that
// changed it). A call that timed out, and so may have been applied or
// not, can then be retried safely with the same key. A key is 1 to 255
// bytes of printable ASCII without spaces (a UUID, say); a call with
// another fails with [ErrInvalidKey]. Reads ignore it.
func WithIdempotencyKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, idempotencyKey{}, key)
}

// IdempotencyKey returns the idempotency key WithIdempotencyKey put in
// ctx, or "": for a Service that forwards a call elsewhere.
func IdempotencyKey(ctx context.Context) string {
	key, _ := ctx.Value(idempotencyKey{}).(string)
	return key
}

// keyOf returns the idempotency key of ctx, or "".
func keyOf(ctx context.Context) (string, error) {
	key, set := ctx.Value(idempotencyKey{}).(string)
	if !set {
		return "", nil
	}
	return key, validKey(key)
}

// ValidKey returns nil if key is a valid idempotency key (see
// [WithIdempotencyKey]), or else an error wrapping [ErrInvalidKey] that
// says why: for a Service that checks keys before it forwards them.
func ValidKey(key string) error { return validKey(key) }

func validKey(key string) error {
	if key == "" || len(key) > 255 {
		return fmt.Errorf("%w: %d bytes, want 1 to 255", ErrInvalidKey, len(key))
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; c <= ' ' || c > '~' {
			return fmt.Errorf("%w %q: want printable ASCII without spaces", ErrInvalidKey, key)
		}
	}
	return nil
}

// MaxNameLen is the longest list name, in bytes.
const MaxNameLen = 255

// ValidName returns nil if name is a valid list name, or else an error
// wrapping [ErrInvalidName] that says why: for a Service that checks
// names before it forwards them.
func ValidName(name string) error { return validName(name) }

func validName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty", ErrInvalidName)
	case len(name) > MaxNameLen:
		return fmt.Errorf("%w: %d bytes, more than %d", ErrInvalidName, len(name), MaxNameLen)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w %q: not valid UTF-8", ErrInvalidName, name)
	case containsNUL(name):
		return fmt.Errorf("%w %q: contains a NUL byte", ErrInvalidName, name)
	}
	return nil
}

func containsNUL(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return true
		}
	}
	return false
}

// Name returns the list's name.
func (s *Server) Name() string { return s.name }

// AddEntry adds e to the list, with the next id (e.ID is ignored), and
// returns the entry as stored. e.Date must be a valid date, and e.Title one
// line of text of at most MaxTitle bytes that shows something (see
// [ValidTitle]).
func (s *Server) AddEntry(ctx context.Context, e Entry) (Entry, error) {
	e, _, err := s.addEntry(ctx, e)
	return e, err
}

// addEntry is AddEntry, returning the list's revision after the add too.
func (s *Server) addEntry(ctx context.Context, e Entry) (Entry, int64, error) {
	if s.err != nil {
		return Entry{}, 0, s.err
	}
	if !e.Date.Valid() {
		return Entry{}, 0, fmt.Errorf("%w: %v", ErrInvalidDate, e.Date)
	}
	if err := validTitle(e.Title); err != nil {
		return Entry{}, 0, err
	}
	c, err := s.newChange(ctx, opAdd)
	if err != nil {
		return Entry{}, 0, err
	}
	c.entry = e
	return s.change(c)
}

// UpdateEntry replaces the entry with the given id by update(entry), which
// runs in the list's server and may change the date and the title but not
// the id. An unknown id gives [ErrEntryNotFound]; a panic in update gives
// [ErrCrashed]; an invalid date, or a new title that is not valid (see
// [ValidTitle]), returned by update gives [ErrInvalidDate] or
// [ErrInvalidTitle]; each leaves the list as it was. A title the entry
// had already is kept as it is, even one stored before the rule.
func (s *Server) UpdateEntry(ctx context.Context, id int, update func(Entry) Entry) (Entry, error) {
	if s.err != nil {
		return Entry{}, s.err
	}
	c, err := s.newChange(ctx, opUpdate)
	if err != nil {
		return Entry{}, err
	}
	c.id, c.update = id, update
	e, _, err := s.change(c)
	return e, err
}

// DeleteEntry removes the entry with the given id. An unknown id gives
// [ErrEntryNotFound].
func (s *Server) DeleteEntry(ctx context.Context, id int) error {
	_, err := s.deleteEntry(ctx, id)
	return err
}

// deleteEntry is DeleteEntry, returning the list's revision after the
// delete too.
func (s *Server) deleteEntry(ctx context.Context, id int) (int64, error) {
	if s.err != nil {
		return 0, s.err
	}
	c, err := s.newChange(ctx, opDelete)
	if err != nil {
		return 0, err
	}
	c.id = id
	_, rev, err := s.change(c)
	return rev, err
}

// Entries returns the entries of date d in id order. An invalid d gives
// an error wrapping [ErrInvalidDate].
func (s *Server) Entries(ctx context.Context, d Date) ([]Entry, error) {
	return s.AppendEntries(ctx, nil, d)
}

// AppendEntries appends the entries of date d, in id order, to dst and
// returns the extended slice, like Entries but without allocating when
// dst has room: a caller that reuses its buffer reads a loaded list with
// no allocation at all.
func (s *Server) AppendEntries(ctx context.Context, dst []Entry, d Date) ([]Entry, error) {
	if s.err != nil {
		return dst, s.err
	}
	if !d.Valid() {
		return dst, fmt.Errorf("%w: %v", ErrInvalidDate, d)
	}
	if entries, ok := s.sys.readDate(s.name, d, dst); ok {
		return entries, nil
	}
	entries, _, err := s.readCold(ctx, opEntries, d)
	return append(dst, entries...), err
}

// AllEntries returns every entry of the list in id order.
func (s *Server) AllEntries(ctx context.Context) ([]Entry, error) {
	if s.err != nil {
		return nil, s.err
	}
	if entries, ok := s.sys.readAll(s.name); ok {
		return entries, nil
	}
	entries, _, err := s.readCold(ctx, opAll, Date{})
	return entries, err
}

// EntriesRev returns the entries of date d in id order, or of every date
// when d is the zero Date, with the list's revision they stand at: every
// change up to that revision, and none after it. Watching the list from
// that revision ([Server.Watch]) yields every change after what was read,
// none twice. An invalid d gives an error wrapping [ErrInvalidDate].
func (s *Server) EntriesRev(ctx context.Context, d Date) ([]Entry, int64, error) {
	entries, rev, err := s.viewRev(ctx, d)
	return slices.Clone(entries), rev, err
}

// viewRev is EntriesRev without the copy, for the callers that only read
// (see view).
func (s *Server) viewRev(ctx context.Context, d Date) ([]Entry, int64, error) {
	if s.err != nil {
		return nil, 0, s.err
	}
	o := opAll
	if d != (Date{}) {
		if !d.Valid() {
			return nil, 0, fmt.Errorf("%w: %v", ErrInvalidDate, d)
		}
		o = opEntries
	}
	if entries, rev, ok := s.sys.viewAt(s.name, d); ok {
		return entries, rev, nil
	}
	return s.readCold(ctx, o, d)
}

// readCold reads a list that is not loaded, and the revision it stands
// at. It loads the list's state first, without a server: a list with no
// entries (one that does not exist, say) is answered at once, and nothing
// of it stays in memory, so that reads of any number of names cost no
// memory. A list with entries gets its server, which takes the state just
// loaded when no server started meanwhile (and could have changed it),
// and serves the read.
func (s *Server) readCold(ctx context.Context, o op, d Date) ([]Entry, int64, error) {
	sys := s.sys
	if sys.closed.Load() {
		return nil, 0, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	if err := sys.loadedCap.waitRoom(ctx, sys.closing); err != nil {
		return nil, 0, err
	}
	started := sys.stats.started.Load()
	st, err := sys.pool.load(ctx, s.name)
	if err != nil {
		sys.loadedCap.unreserve()
		sys.loadFailed(s.name, err)
		return nil, 0, err
	}
	if len(st.Entries) == 0 {
		sys.loadedCap.unreserve()
		return nil, st.revision(), nil
	}
	if _, err := sys.startWith(s.name, &st, started); err != nil {
		return nil, 0, err
	}
	return s.readThroughServer(ctx, o, d)
}

// readThroughServer sends a read to the list's server, which loads the
// list first: the path of a list that is not loaded.
func (s *Server) readThroughServer(ctx context.Context, o op, d Date) ([]Entry, int64, error) {
	c := s.newCall(ctx, o)
	c.entry.Date = d
	if err := s.send(c); err != nil {
		return nil, 0, err
	}
	entries, rev, err := c.entries, c.rev, c.err
	s.sys.freeCall(c)
	return entries, rev, err
}

// change sends a change and returns its result and the list's revision
// after it.
func (s *Server) change(c *call) (Entry, int64, error) {
	if err := s.send(c); err != nil {
		return Entry{}, 0, err
	}
	res, rev, err := c.res, c.rev, c.err
	s.sys.freeCall(c)
	return res, rev, err
}

// send delivers c to the list's server, starting it if needed, and waits
// for the reply. On an error c was not answered and must not be reused.
func (s *Server) send(c *call) error {
	ctx, sys := c.ctx, s.sys
	for {
		if sys.closed.Load() {
			return ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		p := s.last.Load()
		if p == nil || p.retired() {
			var err error
			if p, err = sys.procFor(ctx, s.name); err != nil {
				return err
			}
			s.last.Store(p)
		}
		if !p.acquire() {
			// Retired: wait until it has left the registry, then start anew.
			select {
			case <-p.done:
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		select {
		case p.mailbox <- c:
		default:
			sys.stats.mailboxWaits.Add(1)
			if !p.crowded.Load() {
				p.crowded.Store(true) // the server grows its mailbox (see grow)
			}
			select {
			case p.mailbox <- c:
			case <-ctx.Done():
				p.release()
				return ctx.Err()
			}
		}
		p.release()
		done := ctx.Done()
		if done == nil { // a ctx that never ends: no select needed
			<-c.reply
			return nil
		}
		select {
		case <-c.reply:
			return nil
		case <-done:
			select {
			case <-c.reply: // answered after all: a reply beats a late timeout
				return nil
			default:
				return ctx.Err()
			}
		}
	}
}

// procFor finds the running server of a list, or starts it. Of concurrent
// starters of one name, one inserts its server into the registry and the
// others get that one; the losers' servers never run.
func (sys *System) procFor(ctx context.Context, name string) (*proc, error) {
	if p, ok := sys.registry.Lookup(name); ok {
		return p, nil
	}
	if err := sys.loadedCap.waitRoom(ctx, sys.closing); err != nil {
		return nil, err
	}
	return sys.startWith(name, nil, 0)
}

// loadFailed logs that a list could not be loaded: with its error, which
// wraps ErrCorrupt when it is damaged, for a reader of the log (the
// command, say) to add how to repair it.
func (sys *System) loadFailed(list string, err error) {
	sys.faults.Error("load", "todo: cannot load list", err, "list", list)
}

// startWith finds the running server of a list, or starts it, in the
// place the caller reserved with waitRoom. A server it starts takes state
// as the list's, instead of loading it, if state is not nil and no server
// has started since the count of started servers was started: a server
// of the list could otherwise have changed it since state was loaded.
func (sys *System) startWith(name string, state *ListState, started int64) (*proc, error) {
	sys.startMu.RLock()
	defer sys.startMu.RUnlock()
	if sys.closed.Load() {
		sys.loadedCap.unreserve()
		return nil, ErrClosed
	}
	p, inserted := sys.registry.LookupOrInsert(name, newProc(sys, name))
	if !inserted {
		sys.loadedCap.unreserve()
		return p, nil
	}
	// A server of this list that started and stopped after state was
	// loaded counted itself before it could change anything, and before
	// it left the registry for this one to enter.
	if sys.stats.started.Add(1) == started+1 {
		p.preloaded = state
	}
	sys.servers.Add(1)
	sys.stats.running.Add(1) // in the place reserved: the cap counts it already
	sys.loadedCap.add(p)
	go p.run()
	return p, nil
}

// loadedCap retires the least recently used idle lists once more than
// Options.MaxLoaded are loaded, with a clock (second chance): a hand goes
// round the loaded lists, sparing once each list used since it last came
// by, and retires the first it finds unused and idle. Retiring a list
// stores its state first, as expiry does.
type loadedCap struct {
	max  int           // Options.MaxLoaded; 0 for no cap
	wake chan struct{} // a server started past the cap

	mu       sync.Mutex // guards the fields below, and every proc's slot
	room     sync.Cond  // broadcast when a list leaves the ring
	ring     []*proc    // the loaded lists; nil in a free slot
	free     []int      // free slots of ring
	reserved int        // places taken by waitRoom for lists about to start
	hand     int
}

// ceiling is how many lists may be loaded while the cap retires the
// excess: an eighth more than MaxLoaded. A request that must load a list
// past it waits for room (see waitRoom).
func (c *loadedCap) ceiling() int { return c.max + c.max/8 + 1 }

// waitRoom waits until fewer lists than the ceiling are loaded or about
// to be, or ctx ends, or the System closes, and then reserves a place for
// one more: the caller then calls add, or unreserve if it starts nothing.
func (c *loadedCap) waitRoom(ctx context.Context, closing <-chan struct{}) error {
	if c.max == 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.loadedLocked() < c.ceiling() {
		c.reserved++
		return nil
	}
	stop := context.AfterFunc(ctx, func() {
		c.mu.Lock()
		c.room.Broadcast()
		c.mu.Unlock()
	})
	defer stop()
	for c.loadedLocked() >= c.ceiling() {
		select {
		case <-closing:
			return ErrClosed
		default:
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		select {
		case c.wake <- struct{}{}:
		default:
		}
		c.room.Wait()
	}
	c.reserved++
	return nil
}

// unreserve gives back a place waitRoom reserved.
func (c *loadedCap) unreserve() {
	if c.max == 0 {
		return
	}
	c.mu.Lock()
	c.reserved--
	c.room.Broadcast()
	c.mu.Unlock()
}

// add adds a list that started, in the place waitRoom reserved for it.
func (c *loadedCap) add(p *proc) {
	if c.max == 0 {
		return
	}
	c.mu.Lock()
	c.reserved--
	if n := len(c.free); n > 0 {
		p.slot = c.free[n-1]
		c.free = c.free[:n-1]
		c.ring[p.slot] = p
	} else {
		p.slot = len(c.ring)
		c.ring = append(c.ring, p)
	}
	over := c.loadedLocked() > c.max
	c.mu.Unlock()
	if over {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}

func (c *loadedCap) remove(p *proc) {
	if c.max == 0 {
		return
	}
	c.mu.Lock()
	c.ring[p.slot] = nil
	c.free = append(c.free, p.slot)
	c.room.Broadcast()
	c.mu.Unlock()
}

// loaded returns how many lists are loaded, or about to be.
func (c *loadedCap) loaded() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.loadedLocked()
}

func (c *loadedCap) loadedLocked() int { return len(c.ring) - len(c.free) + c.reserved }

// victims returns up to n lists to retire: unused since the hand last
// came by, with nothing queued (hibernating ones among them). It goes
// round at most twice.
func (c *loadedCap) victims(n int) []*proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	var vs []*proc
	for range 2 * len(c.ring) {
		if len(vs) == n {
			break
		}
		c.hand = (c.hand + 1) % len(c.ring)
		p := c.ring[c.hand]
		switch {
		case p == nil, p.retiring:
		case p.recent.Swap(false): // used lately: spared, this once
		case !p.idle(): // busy
		default:
			p.retiring = true
			vs = append(vs, p)
		}
	}
	return vs
}

// capLoaded retires lists whenever more than MaxLoaded are loaded, until
// Close begins. It is the System's goroutine of the cap.
func (sys *System) capLoaded() {
	defer sys.capDone.Done()
	c := &sys.loadedCap
	for {
		select {
		case <-c.wake:
		case <-sys.closing:
			return
		}
		for excess := c.loaded() - c.max; excess > 0; excess = c.loaded() - c.max {
			vs := c.victims(excess)
			if len(vs) == 0 {
				// Every list is busy or in use: look again in a while.
				select {
				case <-time.After(10 * time.Millisecond):
					continue
				case <-sys.closing:
					return
				}
			}
			for _, p := range vs {
				// A hibernating list is woken to retire: one path for all.
				if !p.post(evictSignal, sys.closing) {
					select {
					case <-sys.closing:
						return
					default: // retired on its own meanwhile
					}
				}
			}
			for _, p := range vs {
				select {
				case <-p.done: // counted evicted by p, if it was
				case <-sys.closing:
					return
				}
			}
		}
	}
}

func (s *Server) newCall(ctx context.Context, o op) *call {
	c, _ := s.sys.calls.Get().(*call)
	if c == nil {
		c = &call{reply: make(chan struct{}, 1)}
	}
	c.ctx, c.op = ctx, o
	return c
}

// newChange is newCall for a change, with the idempotency key of ctx.
func (s *Server) newChange(ctx context.Context, o op) (*call, error) {
	key, err := keyOf(ctx)
	if err != nil {
		return nil, err
	}
	c := s.newCall(ctx, o)
	c.key = key
	return c, nil
}

// freeCall returns an answered call to the pool, keeping its reply channel.
func (sys *System) freeCall(c *call) {
	*c = call{reply: c.reply}
	sys.calls.Put(c)
}
