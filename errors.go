package todo

import (
	"errors"
	"fmt"
)

// Sentinel errors. Match them with [errors.Is]; the errors returned by this
// package wrap them with the detail of what went wrong.
var (
	// ErrInvalidDate is returned when a date is not a real calendar date in
	// one of the accepted forms (20131219 or 2013-12-19).
	ErrInvalidDate = errors.New("todo: invalid date")

	// ErrInvalidTitle is returned when a title is not one line of text a
	// person can see, of at most [MaxTitle] bytes: empty, too long, not
	// valid UTF-8, holding a control character other than tab (a line
	// break would forge entries in the original protocol's
	// one-entry-a-line answers), or made of nothing but spaces and
	// invisible characters (see [ValidTitle]).
	ErrInvalidTitle = errors.New("todo: invalid title")

	// ErrInvalidKey is returned when an idempotency key is empty, longer
	// than 255 bytes, or holds anything but printable ASCII without spaces.
	ErrInvalidKey = errors.New("todo: invalid idempotency key")

	// ErrKeyReused is returned when an idempotency key that made a change
	// of one kind (an add, an update or a delete) comes with a request of
	// another.
	ErrKeyReused = errors.New("todo: idempotency key reused for another kind of request")

	// ErrEmptyPatch is returned when an update's [Patch] sets neither a
	// date nor a title.
	ErrEmptyPatch = errors.New("todo: patch sets nothing")

	// ErrEntryNotFound is returned when no entry of a list has the given id.
	ErrEntryNotFound = errors.New("todo: entry not found")

	// ErrInvalidName is returned when a list name is empty, longer than 255
	// bytes, not valid UTF-8, or contains a NUL byte.
	ErrInvalidName = errors.New("todo: invalid list name")

	// ErrCrashed is returned when a request panicked in its list's server; the
	// list keeps the state it had before that request.
	ErrCrashed = errors.New("todo: request crashed")

	// ErrClosed is returned by every call made after the System was closed.
	ErrClosed = errors.New("todo: system closed")

	// ErrCorrupt is returned when a stored list file (or a saved Table)
	// cannot be trusted: it is truncated, fails its checksum, has trailing
	// bytes or does not decode. The error names the file; the list is not
	// served as empty.
	ErrCorrupt = errors.New("todo: corrupt data")

	// ErrTooLarge is returned when a stored file is larger than the
	// configured cap and is refused before it is read.
	ErrTooLarge = errors.New("todo: file too large")

	// ErrListFull is returned when a list has given out every id up to
	// MaxID and cannot take another entry.
	ErrListFull = errors.New("todo: list full")

	// ErrLocked is returned by Open when another process, or another
	// System of this one, has the data directory open: two writers of one
	// directory would lose each other's acknowledged changes.
	ErrLocked = errors.New("todo: data directory locked")

	// ErrInvalidOptions is returned by Open when an Options field is out of range.
	ErrInvalidOptions = errors.New("todo: invalid options")

	// ErrUnavailable is returned when a list cannot be served right now but
	// may be soon: its store has no quorum, or the list is moving between
	// the nodes of a cluster. Nothing was changed; the call may be retried.
	ErrUnavailable = errors.New("todo: list unavailable")

	// ErrListMoved is returned when a list cannot be changed here because
	// another writer has it now: a node of a cluster found that another
	// node owns the list. It wraps ErrUnavailable: nothing was changed,
	// and the call may be retried, to find the list where it is now. A
	// Store sets it on the Err of a change it refuses for that reason
	// alone (see [Store]): the store itself works, so the System does not
	// take it for a failing one (see [System.Health]), and does not try
	// the change again. An acknowledged change (Async durability) refused
	// so is lost, for the list's new writer never saw it: it is logged.
	ErrListMoved = fmt.Errorf("%w: its owner changed", ErrUnavailable)

	// ErrStoreFailing is returned, with Async durability, for a change
	// refused rather than acknowledged because the store is failing: a
	// commit failed (a full disk, say) and no commit or probe of the store
	// has succeeded since (see [System.Health]). The change was not
	// applied; it may be made again once the store works. The error
	// wraps the failure's too (syscall.ENOSPC, say).
	ErrStoreFailing = errors.New("todo: not acknowledged while the store fails")

	// ErrInvalidLimit is returned when a page of lists or entries is asked
	// for with a limit below 1.
	ErrInvalidLimit = errors.New("todo: invalid page limit")

	// ErrTooOld is returned when a watch asks for the changes after a
	// revision that the list's history no longer holds (the list has
	// changed more than Options.WatchHistory times since, or has been
	// loaded afresh since: after a restart, or a move between the nodes
	// of a cluster) or never held (a revision ahead of the list's, which
	// a crash may leave a client with). As with etcd's compacted revision
	// and Kubernetes' 410 Gone, the client reads the list again, and
	// watches from the revision it read.
	ErrTooOld = errors.New("todo: revision too old")

	// ErrWatchBehind is matched by the error that ends a watch that fell
	// further behind its list than Options.WatchBuffer allows: a
	// [*BehindError], which holds the revision to watch again from.
	ErrWatchBehind = errors.New("todo: watch fell behind")

	// ErrTooManyWatches is returned when a watch would be one more than
	// Options.MaxWatches in the System, or Options.MaxListWatches on its
	// list. Nothing was started; the watch may be tried again later.
	ErrTooManyWatches = errors.New("todo: too many watches")

	// ErrInvalidRevision is returned when a revision to watch from is
	// below 0 or above [MaxRevision].
	ErrInvalidRevision = errors.New("todo: invalid revision")
)
