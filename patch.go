package todo

import (
	"context"
	"fmt"
)

// Patch is what an update sets in an entry: a date, a title, or both.
// A field left zero is left as the entry has it: the zero Date and ""
// are never an entry's. Unlike the updater [Server.UpdateEntry] takes, a
// Patch is a plain value: it can travel to the node that serves a list,
// and applying it runs no caller's code in the list's server.
// [Service.UpdateEntry] takes one.
type Patch struct {
	Date  Date   // the date to set, or the zero Date to keep the entry's
	Title string // the title to set, or "" to keep the entry's
}

// check returns nil for a patch that sets something and sets it to a
// valid value, or the error that refuses it.
func (p Patch) check() error {
	switch {
	case p == Patch{}:
		return fmt.Errorf("%w: give a date, a title or both", ErrEmptyPatch)
	case p.Date != Date{} && !p.Date.Valid():
		return fmt.Errorf("%w: %v", ErrInvalidDate, p.Date)
	case p.Title != "":
		return validTitle(p.Title)
	}
	return nil
}

// apply returns e with what p sets.
func (p Patch) apply(e Entry) Entry {
	if p.Date != (Date{}) {
		e.Date = p.Date
	}
	if p.Title != "" {
		e.Title = p.Title
	}
	return e
}

// patchEntry is UpdateEntry with a Patch, checked here: the list's
// server applies it without an updater to run. It returns the list's
// revision after the change too.
func (s *Server) patchEntry(ctx context.Context, id int, p Patch) (Entry, int64, error) {
	if s.err != nil {
		return Entry{}, 0, s.err
	}
	if err := p.check(); err != nil {
		return Entry{}, 0, err
	}
	c, err := s.newChange(ctx, opUpdate)
	if err != nil {
		return Entry{}, 0, err
	}
	c.id, c.patch = id, p
	return s.change(c)
}
