package todo

import (
	"context"
	"iter"
)

// Service is the set of to-do lists an HTTP handler serves, addressed by
// name: a [*System], or a node of a cluster that forwards each list to
// the node serving it (package cluster). Every method is safe for
// concurrent use and honours ctx.
//
// The methods mean what the [Server] methods of the same names mean,
// but for UpdateEntry, which takes a [Patch] where Server's takes a
// closure: a value can travel to the node that serves the list. A name
// that is not a valid list name gives an error wrapping [ErrInvalidName].
type Service interface {
	AddEntry(ctx context.Context, list string, e Entry) (Entry, error)

	// UpdateEntry sets what p sets in the entry of list with the given id,
	// and returns the entry as stored. A patch that sets nothing gives an
	// error wrapping [ErrEmptyPatch], an invalid date or title one wrapping
	// [ErrInvalidDate] or [ErrInvalidTitle], an unknown id one wrapping
	// [ErrEntryNotFound]; each leaves the list as it was.
	UpdateEntry(ctx context.Context, list string, id int, p Patch) (Entry, error)

	DeleteEntry(ctx context.Context, list string, id int) error
	AppendEntries(ctx context.Context, list string, dst []Entry, d Date) ([]Entry, error)
	AllEntries(ctx context.Context, list string) ([]Entry, error)
	// Lists returns the names of every list, sorted.
	Lists(ctx context.Context) ([]string, error)

	// ListsPage returns, sorted, the names of at most limit lists that
	// sort after after (in byte order; "" for the first page): the next
	// page of a listing whose previous page ended with after. A limit
	// below 1 gives an error wrapping [ErrInvalidLimit].
	ListsPage(ctx context.Context, after string, limit int) ([]string, error)

	// EntriesPage returns, in id order, at most limit entries of list
	// whose ids are over afterID (0 for the first page): those of date d,
	// or of every date when d is the zero Date. Ids only grow, so paging
	// by the last id seen never skips or repeats an entry. A limit below
	// 1 gives an error wrapping [ErrInvalidLimit].
	EntriesPage(ctx context.Context, list string, d Date, afterID, limit int) ([]Entry, error)
}

var _ Watcher = (*System)(nil)

// Watcher is a [Service] whose lists can be followed: its changes and
// reads say the list's revision, and its Watch yields the changes after
// one. A [*System] is one, and so is a node of package cluster; an HTTP
// handler serves a list's events (and revisions) when its Service is one,
// and answers 501 otherwise. Every
// method is safe for concurrent use and honours ctx.
//
// The methods ending in Rev are the Service's of the same names with the
// list's revision: after the change made, or of what was read (see
// [Event]). A change answered from its idempotency key, which it made
// earlier, gives the list's revision now, at or after the change's own.
type Watcher interface {
	Service

	AddEntryRev(ctx context.Context, list string, e Entry) (Entry, int64, error)
	UpdateEntryRev(ctx context.Context, list string, id int, p Patch) (Entry, int64, error)
	DeleteEntryRev(ctx context.Context, list string, id int) (int64, error)

	// EntriesPageRev is EntriesPage with the revision the list stood at
	// when the page was cut: the page holds every change up to it and
	// none after it. A client that reads a list in several pages and
	// then watches it from the first page's revision, applying each
	// change to the entry of its id, in order, ends with the list as it
	// is.
	EntriesPageRev(ctx context.Context, list string, d Date, afterID, limit int) ([]Entry, int64, error)

	// Watch returns the changes of list after revision from (0: from
	// now), in order, as [Server.Watch] does, wherever the list is
	// served.
	Watch(ctx context.Context, list string, from int64) (iter.Seq2[Event, error], error)
}

// AddEntry is ServerProcess(list).AddEntry(ctx, e).
func (sys *System) AddEntry(ctx context.Context, list string, e Entry) (Entry, error) {
	s := Server{sys: sys, name: list, err: validName(list)}
	return s.AddEntry(ctx, e)
}

// UpdateEntry sets what p sets in the entry of list with the given id (see
// [Service]). The list's server applies the patch itself: no updater
// runs, as one does for ServerProcess(list).UpdateEntry, which in-process
// callers may use to compute the new entry from the old.
func (sys *System) UpdateEntry(ctx context.Context, list string, id int, p Patch) (Entry, error) {
	e, _, err := sys.UpdateEntryRev(ctx, list, id, p)
	return e, err
}

// DeleteEntry is ServerProcess(list).DeleteEntry(ctx, id).
func (sys *System) DeleteEntry(ctx context.Context, list string, id int) error {
	s := Server{sys: sys, name: list, err: validName(list)}
	return s.DeleteEntry(ctx, id)
}

// AppendEntries is ServerProcess(list).AppendEntries(ctx, dst, d).
func (sys *System) AppendEntries(ctx context.Context, list string, dst []Entry, d Date) ([]Entry, error) {
	s := Server{sys: sys, name: list, err: validName(list)}
	return s.AppendEntries(ctx, dst, d)
}

// AllEntries is ServerProcess(list).AllEntries(ctx).
func (sys *System) AllEntries(ctx context.Context, list string) ([]Entry, error) {
	s := Server{sys: sys, name: list, err: validName(list)}
	return s.AllEntries(ctx)
}

// AddEntryRev is AddEntry, with the list's revision after the add.
func (sys *System) AddEntryRev(ctx context.Context, list string, e Entry) (Entry, int64, error) {
	s := Server{sys: sys, name: list, err: validName(list)}
	return s.addEntry(ctx, e)
}

// UpdateEntryRev is UpdateEntry, with the list's revision after the
// update.
func (sys *System) UpdateEntryRev(ctx context.Context, list string, id int, p Patch) (Entry, int64, error) {
	s := Server{sys: sys, name: list, err: validName(list)}
	return s.patchEntry(ctx, id, p)
}

// DeleteEntryRev is DeleteEntry, with the list's revision after the
// delete.
func (sys *System) DeleteEntryRev(ctx context.Context, list string, id int) (int64, error) {
	s := Server{sys: sys, name: list, err: validName(list)}
	return s.deleteEntry(ctx, id)
}

// Watch is ServerProcess(list).Watch(ctx, from).
func (sys *System) Watch(ctx context.Context, list string, from int64) (iter.Seq2[Event, error], error) {
	if err := validName(list); err != nil {
		return nil, err
	}
	return sys.watch(ctx, list, from)
}
