package todo

import (
	"context"
	"log/slog"
)

// Store keeps the lists of a [System] between the lives of their servers:
// the seam below the System. Everything the System stores or loads goes
// through it. [Open] puts the data directory's store behind a System (an
// append-only log under one file per list); [OpenStore] puts any other,
// such as the replicated store of package cluster.
//
// The System calls a Store from several goroutines at once, but never for
// one list at a time: the changes of one list are committed one batch
// after another, in order, and a list is loaded only when nothing of it is
// being committed. A Store must be safe for concurrent use under those
// terms.
type Store interface {
	// Load returns the stored state of the list called list. A list never
	// stored is the zero ListState. A list whose stored state cannot be
	// trusted gives an error wrapping [ErrCorrupt] that says where; one
	// that cannot be read now, one wrapping [ErrUnavailable] or the cause.
	Load(ctx context.Context, list string) (ListState, error)

	// Commit stores a batch of changes, at most one per list, and sets the
	// Err of each: nil once the change is stored. With sync set, a change
	// is stored when it would survive a power cut (fsynced, or held by a
	// quorum of replicas that fsynced it); without, when it would survive
	// a crash of the process. A Store stores a batch in as few durable
	// steps as it can: that is where group commit happens. A change whose
	// Err is not nil must not be stored, now or later: the System rolls it
	// back and tells its callers it failed. A store that cannot tell (a
	// timeout of a replicated write, say) finds out before it answers. A
	// change refused because another writer has its list now gets an Err
	// wrapping [ErrListMoved]: the System neither retries it nor takes
	// the store for failing.
	Commit(ctx context.Context, batch []Change, sync bool)

	// Lists returns the names of every stored list, in any order.
	Lists(ctx context.Context) ([]string, error)

	// Close stores what it still holds in memory and releases the Store.
	// The System calls it last, once, from Close.
	Close() error
}

// Prober is implemented by a Store that can tell, without storing any
// list, whether it can store again after a failed commit. While a System's
// commits fail and nothing it acknowledged waits for a retry (whose commit
// would tell), it calls Probe with backoff, from 50ms up to a second, and
// is healthy again ([System.Health]) once Probe returns nil, with no
// client's write. Probe does the smallest durable write the store's
// commits need, and undoes it: the data directory's store writes, syncs
// and removes a small file beside its log. It returns nil when that
// worked, or why not. A System calls Probe from one goroutine at a time,
// possibly while it commits; never after Close.
//
// Without a Prober, a failing System finds out from its commits alone:
// with Async durability, a change made while it fails and nothing waits
// for a retry is committed as its caller waits, as with Fsync, instead of
// being refused (see [ErrStoreFailing]).
type Prober interface {
	Probe(ctx context.Context) error
}

// EventKeeper is implemented by a Store that keeps the events of each
// change it stores ([Change.Events]), for the watches of other processes:
// package cluster's replicated store does, so that a node can follow a
// list that another serves, across the death of the one serving it. A
// System hands a Store the events of its changes only when it is one,
// which costs a copy of each event into the pool; a Store that is not
// one is spared it. KeepEvents does nothing: it marks the Store.
type EventKeeper interface {
	Store
	KeepEvents()
}

// StatsReporter is implemented by a Store that keeps counters of its own
// work: [System.Stats] reports them, in the fields of [Stats] of the same
// names. The data directory's store implements it; with a Store that does
// not, they are zero.
// StoreStats is called from any goroutine, at any time until Close.
type StatsReporter interface {
	StoreStats() StoreStats
}

// StoreStats are the counters a Store reports through [StatsReporter].
// Each is zero for a store that has no such thing.
type StoreStats struct {
	FilesWritten int64 // list files written by checkpoints
	Checkpoints  int64 // lists checkpointed into their files
	LogSegments  int64 // segments of the store's log, now
	LogBytes     int64 // bytes in the log's segments, now
	Failures     int64 // failures the store met and logged (failed checkpoints, say)
}

// Change is what one list's server stores at once: the operations of the
// requests since the list's last change was stored, and the list's state
// after them. A store may keep either or both: a log appends the
// operations, a key-value store puts the state. Replayed in order over the
// list as it was stored, the operations give State: the adds come last,
// a put of each entry added as State holds it, after the other
// operations in the order they were applied (an update or a delete of an
// entry added since is among those, and the last operation on an id
// wins).
type Change struct {
	List  string
	Ops   []Op
	State ListState

	// Events are the change's events, in order, as watches see them
	// (see [Event]): set only for a Store that keeps them, an
	// [EventKeeper]; nil otherwise.
	Events []Event

	// Release says that the list leaves memory after this change (its
	// server stopped): the store may let go of what it holds of the list,
	// writing it out first. A Change that releases may have no Ops.
	Release bool

	// Err is set by Commit: nil when the change is stored.
	Err error
}

// Op is one operation on a list: put Entry (an entry added or updated,
// with its id), or, when Delete is set, remove the entry whose id is
// Entry.ID. Both are idempotent, so a store may replay them safely. Key
// is the idempotency key of the request that made it, if it had one (see
// [WithIdempotencyKey]). Update is set on the put of a request with a key
// that updated an entry rather than added it: a list remembers which kind
// of request made each key, to refuse a key reused for another kind
// ([ErrKeyReused]). It is false on every operation without a Key, and a
// store keeps it wherever it keeps Key.
type Op struct {
	Entry  Entry
	Delete bool
	Update bool
	Key    string
}

// ListState is a list as stored: its entries in id order; LastID, the
// highest id that was given out or reserved, which is never given out
// again; Revision, the list's revision (see [List.Revision]) or one
// reserved beyond it, which is never given to another change; and
// Keys, the latest operations made by requests with an idempotency key,
// oldest first, at most MaxKeys, so that a retry of one of them is
// answered as the first time, even after a crash. The slices of a
// ListState are never written to: a store and the System may share them.
//
// A Store keeps Revision with the rest. A Revision of 0 means the store
// kept none (the zero ListState of a list never stored, or a state stored
// before revisions existed): it is taken to be LastID+1, the revision of a
// list that was only ever added to.
type ListState struct {
	LastID   int
	Revision int64
	Entries  []Entry
	Keys     []Op
}

// revision returns the list's revision as s holds it (see ListState).
func (s *ListState) revision() int64 {
	if s.Revision == 0 {
		return int64(s.LastID) + 1
	}
	return s.Revision
}

// OpenStore opens a System over st, which it owns from then on: the
// System's Close closes it. opts may be nil.
func OpenStore(st Store, opts *Options) (*System, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	return newSystem(st, o), nil
}

// discardLogger is the Logger of Options that give none.
var discardLogger = slog.New(slog.DiscardHandler)
