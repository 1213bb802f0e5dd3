package todo

import "context"

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

var _ Service = (*System)(nil)

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
	s := Server{sys: sys, name: list, err: validName(list)}
	return s.patchEntry(ctx, id, p)
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
