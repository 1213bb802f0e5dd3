package todo

import (
	"context"
	"fmt"
	"sync/atomic"
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

// MaxNameLen is the longest list name, in bytes.
const MaxNameLen = 255

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
// line of text (see [ErrInvalidTitle]).
func (s *Server) AddEntry(ctx context.Context, e Entry) (Entry, error) {
	if s.err != nil {
		return Entry{}, s.err
	}
	if !e.Date.Valid() {
		return Entry{}, fmt.Errorf("%w: %v", ErrInvalidDate, e.Date)
	}
	if err := validTitle(e.Title); err != nil {
		return Entry{}, err
	}
	c := s.newCall(ctx, opAdd)
	c.entry = e
	return s.change(c)
}

// UpdateEntry replaces the entry with the given id by update(entry), which
// runs in the list's server and may change the date and the title but not
// the id. An unknown id gives [ErrEntryNotFound]; a panic in update gives
// [ErrCrashed]; an invalid date or title returned by update gives
// [ErrInvalidDate] or [ErrInvalidTitle]; each leaves the list as it was.
func (s *Server) UpdateEntry(ctx context.Context, id int, update func(Entry) Entry) (Entry, error) {
	if s.err != nil {
		return Entry{}, s.err
	}
	c := s.newCall(ctx, opUpdate)
	c.id, c.update = id, update
	return s.change(c)
}

// DeleteEntry removes the entry with the given id. An unknown id gives
// [ErrEntryNotFound].
func (s *Server) DeleteEntry(ctx context.Context, id int) error {
	if s.err != nil {
		return s.err
	}
	c := s.newCall(ctx, opDelete)
	c.id = id
	_, err := s.change(c)
	return err
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
	entries, err := s.readThroughServer(ctx, opEntries, d)
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
	return s.readThroughServer(ctx, opAll, Date{})
}

// readThroughServer sends a read to the list's server, which loads the
// list first: the path of a list that is not loaded.
func (s *Server) readThroughServer(ctx context.Context, o op, d Date) ([]Entry, error) {
	c := s.newCall(ctx, o)
	c.entry.Date = d
	if err := s.send(c); err != nil {
		return nil, err
	}
	entries, err := c.entries, c.err
	s.sys.freeCall(c)
	return entries, err
}

func (s *Server) change(c *call) (Entry, error) {
	if err := s.send(c); err != nil {
		return Entry{}, err
	}
	res, err := c.res, c.err
	s.sys.freeCall(c)
	return res, err
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
			if p, err = sys.procFor(s.name); err != nil {
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
func (sys *System) procFor(name string) (*proc, error) {
	if p, ok := sys.registry.Lookup(name); ok {
		return p, nil
	}
	sys.startMu.RLock()
	defer sys.startMu.RUnlock()
	if sys.closed.Load() {
		return nil, ErrClosed
	}
	p, inserted := sys.registry.LookupOrInsert(name, newProc(sys, name))
	if inserted {
		sys.stats.started.Add(1)
		sys.servers.Add(1)
		go p.run()
	}
	return p, nil
}

func (s *Server) newCall(ctx context.Context, o op) *call {
	c, _ := s.sys.calls.Get().(*call)
	if c == nil {
		c = &call{reply: make(chan struct{}, 1)}
	}
	c.ctx, c.op = ctx, o
	return c
}

// freeCall returns an answered call to the pool, keeping its reply channel.
func (sys *System) freeCall(c *call) {
	*c = call{reply: c.reply}
	sys.calls.Put(c)
}
