package todo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gotodo/todo/internal/faults"
	"github.com/puzpuzpuz/xsync/v3"
)

// Durability says when a change is acknowledged to its caller.
type Durability int

const (
	// Fsync acknowledges a change once its record in the log is
	// fdatasynced: it survives a power cut. The default.
	Fsync Durability = iota
	// Write acknowledges a change once its record is written to the
	// operating system, without fdatasync: it survives a crash of the
	// process, not of the machine, like the book's synchronous store.
	Write
	// Async acknowledges a change as soon as it is applied in memory, like
	// the book's cast; its record is written and fdatasynced in the
	// background, within AsyncDelay, and a crash can lose the last changes.
	// Close still writes everything. While the store fails (a full disk),
	// no change is acknowledged: each is refused ([ErrStoreFailing]), and
	// those acknowledged before are retried (see [System.Health]).
	Async
)

// String returns "fsync", "write" or "async".
func (d Durability) String() string {
	switch d {
	case Fsync:
		return "fsync"
	case Write:
		return "write"
	case Async:
		return "async"
	}
	return fmt.Sprintf("Durability(%d)", int(d))
}

// ParseDurability parses the names String returns.
func ParseDurability(s string) (Durability, error) {
	for _, d := range []Durability{Fsync, Write, Async} {
		if s == d.String() {
			return d, nil
		}
	}
	return 0, fmt.Errorf("%w: durability %q: want fsync, write or async", ErrInvalidOptions, s)
}

// Options configure a System. The zero value, like a nil *Options, gives
// the defaults written on each field.
type Options struct {
	// IdleTimeout is how long a list's server lives without requests
	// before it stops and its list leaves memory. Zero means 60s, the
	// book's; a negative value means servers never expire.
	IdleTimeout time.Duration

	// MailboxSize is how many requests may wait for one list's server.
	// When the mailbox is full a caller waits until its ctx ends. Zero
	// means 256; at most 1<<20. A mailbox starts with room for 4 and
	// grows, four times at a time, once callers find it full: a list
	// that gets a request a minute never pays for 256. The server's
	// timers and Close signal it through the same mailbox, the timers
	// only when there is room: such a signal holds a place until the
	// server takes it.
	MailboxSize int

	// HibernateAfter is how long a list's server waits without requests
	// before it hibernates, the way a BEAM process does with
	// hibernate_after: its goroutine ends and its mailbox is let go, while
	// its list stays loaded and published, so reads go on as before and
	// never wake it. The next request (a change, or Close) wakes it: a new
	// goroutine, nothing loaded again. A hibernating list costs its
	// entries and little more, no goroutine stack (docs/performance.md has
	// the figures). It still counts against MaxLoaded, and IdleTimeout
	// still unloads it; a list read but not changed is woken once per
	// IdleTimeout, to decide that it stays. Zero means 1s; a negative
	// value means servers never hibernate.
	HibernateAfter time.Duration

	// Logger receives what the System has to report: panics recovered in
	// requests, failed writes, corrupt files. Failures are logged once per
	// fault, not once each: the first of a kind (failed commits, failed
	// checkpoints, lists that cannot be loaded...) at error level with its
	// cause, the next ones of the kind within 10s counted and logged in
	// one line with the next after that ("todo: cannot store (and 5,351
	// more in the last 10 s)"), and the fault's end, when the System sees
	// it, in one line at info level ("todo: storing again"). Stats.Failures
	// counts every one. Nil discards it all.
	Logger *slog.Logger

	// Durability says when a change is acknowledged. The zero value is
	// Fsync.
	Durability Durability

	// AsyncDelay is, with Async durability, how long a change may wait
	// before it is committed, so that the changes made meanwhile share one
	// write and one fdatasync (the idea of appendfsync everysec): a crash
	// can lose up to this much of the latest changes. Zero means 1s; a
	// negative value commits as soon as a worker is free. Close writes
	// everything at once.
	AsyncDelay time.Duration

	// Workers is the number of goroutines that commit the lists' changes
	// to the store (the book's database workers). A list is always
	// committed by the same worker, so its changes never reorder. Zero
	// means 1: with the data directory's log, one committer puts every
	// waiting change in each fdatasync, and more split them into smaller
	// groups (docs/performance.md has the measurements); a store whose
	// commits do not share a flush may want more. At most 255.
	Workers int

	// QueueSize is how many lists may wait to be committed per worker
	// before the servers asking for more wait. Zero means 1024; at most
	// 1<<20.
	QueueSize int

	// MaxFileSize is the largest list file that is read or written; a
	// larger one is refused before it is read, and a change that would
	// make a list larger fails with ErrTooLarge. Zero means 16 MiB; at
	// most 2 GiB.
	MaxFileSize int64

	// LogSize is how large the log of the data directory grows before
	// the lists with records in its oldest segments are checkpointed into
	// their files and those segments deleted; it bounds what Open replays.
	// Zero means 64 MiB; at least 4 KiB.
	LogSize int64

	// MaxLoaded caps the lists held in memory (loaded, with a server):
	// once more are, the least recently used idle ones are retired early,
	// their state stored first, as IdleTimeout retires them. While that
	// goes on, up to an eighth more may be loaded; a request that would
	// load one more waits for room (within its ctx). Reads of a list with
	// no entries (one that does not exist) load nothing. Zero means
	// 20,000; a negative value means no cap.
	MaxLoaded int

	// WatchHistory is how many of a list's latest changes it keeps for
	// its watches: a watch may start from any revision they follow
	// ([Server.Watch]), and one from further back is refused with
	// [ErrTooOld]. The history is kept in memory while the list's server
	// is awake (see HibernateAfter) or a watch follows the list: a list
	// that sleeps unwatched keeps none, and after a restart there is none
	// either, so a watch can start only from the list's revision then. It
	// grows with the changes, an event of 64 bytes each (the title is
	// shared with the entry, while it lives), up to WatchHistory: 64 KB
	// at most by default. Zero means 1,000; at most 1<<20.
	WatchHistory int

	// WatchBuffer is how far a watch may fall behind its list: once more
	// than WatchBuffer changes came that it has not taken (counting only
	// those made since it began: a watch may catch up from as far back
	// as the history allows), it ends with a [*BehindError], and a watch
	// from the revision it holds goes on where it stopped. A watch
	// copies events out of the list's history at its own pace, so that a
	// slow one never holds up the list's server; WatchBuffer is the room
	// the history gives it, which is why it may not be more than
	// WatchHistory. Zero means 256, or WatchHistory if that is less.
	WatchBuffer int

	// MaxWatches caps the watches open at once in the System, and
	// MaxListWatches those of one list; a watch past either is refused
	// with [ErrTooManyWatches]. A watch costs a few hundred bytes and no
	// goroutine of the System's. Zero means 10,000 and 1,000; a negative
	// value is refused.
	MaxWatches, MaxListWatches int
}

func (o *Options) withDefaults() (Options, error) {
	var c Options
	if o != nil {
		c = *o
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 60 * time.Second
	}
	if c.MailboxSize == 0 {
		c.MailboxSize = 256
	}
	if c.HibernateAfter == 0 {
		c.HibernateAfter = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Workers == 0 {
		c.Workers = 1
	}
	if c.AsyncDelay == 0 {
		c.AsyncDelay = time.Second
	}
	if c.QueueSize == 0 {
		c.QueueSize = 1024
	}
	if c.MaxFileSize == 0 {
		c.MaxFileSize = 16 << 20
	}
	if c.LogSize == 0 {
		c.LogSize = 64 << 20
	}
	if c.MaxLoaded == 0 {
		c.MaxLoaded = 20_000
	}
	if c.WatchHistory == 0 {
		c.WatchHistory = 1000
	}
	if c.WatchBuffer == 0 {
		c.WatchBuffer = min(256, c.WatchHistory)
	}
	if c.MaxWatches == 0 {
		c.MaxWatches = 10_000
	}
	if c.MaxListWatches == 0 {
		c.MaxListWatches = 1000
	}
	switch {
	case c.MailboxSize < 0 || c.MailboxSize > 1<<20:
		return c, fmt.Errorf("%w: MailboxSize %d is not in 1..%d", ErrInvalidOptions, c.MailboxSize, 1<<20)
	case c.Workers < 0 || c.Workers > 255:
		return c, fmt.Errorf("%w: Workers %d is not in 1..255", ErrInvalidOptions, c.Workers)
	case c.QueueSize < 0 || c.QueueSize > 1<<20:
		return c, fmt.Errorf("%w: QueueSize %d is not in 1..%d", ErrInvalidOptions, c.QueueSize, 1<<20)
	case c.MaxFileSize < 0 || c.MaxFileSize > 1<<31:
		return c, fmt.Errorf("%w: MaxFileSize %d is not in 1..%d", ErrInvalidOptions, c.MaxFileSize, int64(1)<<31)
	case c.LogSize < 4<<10:
		return c, fmt.Errorf("%w: LogSize %d is less than 4 KiB", ErrInvalidOptions, c.LogSize)
	case c.AsyncDelay > time.Minute:
		return c, fmt.Errorf("%w: AsyncDelay %v is more than a minute", ErrInvalidOptions, c.AsyncDelay)
	case c.Durability < Fsync || c.Durability > Async:
		return c, fmt.Errorf("%w: %v", ErrInvalidOptions, c.Durability)
	case c.WatchHistory < 0 || c.WatchHistory > 1<<20:
		return c, fmt.Errorf("%w: WatchHistory %d is not in 1..%d", ErrInvalidOptions, c.WatchHistory, 1<<20)
	case c.WatchBuffer < 0 || c.WatchBuffer > c.WatchHistory:
		return c, fmt.Errorf("%w: WatchBuffer %d is not in 1..%d (WatchHistory)", ErrInvalidOptions, c.WatchBuffer, c.WatchHistory)
	case c.MaxWatches < 0:
		return c, fmt.Errorf("%w: MaxWatches %d is below 0", ErrInvalidOptions, c.MaxWatches)
	case c.MaxListWatches < 0:
		return c, fmt.Errorf("%w: MaxListWatches %d is below 0", ErrInvalidOptions, c.MaxListWatches)
	}
	return c, nil
}

// System holds every to-do list of one data directory: the registry of
// running list servers, the table they publish into, and the pool that
// writes their files. It is the book's Todo.System.
//
// A System is safe for concurrent use by multiple goroutines. Two Systems
// in one process are independent; two Systems must not share a directory.
type System struct {
	opts     config
	dir      string
	store    Store
	pool     *pool
	registry *Table[string, *proc]      // list name → its running server
	table    *Table[tableKey, *dayCell] // what servers publish for readers
	feeds    *Table[string, *feed]      // list name → its history and watches (see feed)
	stats    counters
	faults   *faults.Log // logs failures once per fault (see Options.Logger)
	calls    sync.Pool   // of *call, with their reply channels

	// startMu makes starting a server and closing the System exclusive, so
	// that no server starts after Close or Shutdown has begun waiting for
	// them.
	startMu sync.RWMutex
	closed  atomic.Bool   // set once, under startMu, by the Close or Shutdown that closes
	closing chan struct{} // closed when that Close or Shutdown begins
	shut    chan struct{} // closed when it has finished

	watchCount atomic.Int64 // open watches (see Options.MaxWatches)

	loadedCap loadedCap
	capDone   sync.WaitGroup // the goroutine of loadedCap
	servers   sync.WaitGroup
	epoch     time.Time // when the System opened (see now)
}

// Open opens the System over the data directory dir, creating it if
// needed. Lists are loaded lazily, when first used. opts may be nil.
func Open(dir string, opts *Options) (*System, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	st, err := openDirStore(dir, o, dirOptions{})
	if err != nil {
		return nil, err
	}
	sys := newSystem(st, o)
	sys.dir = dir
	return sys, nil
}

func newSystem(st Store, o Options) *System { return newSystemWith(st, o, knobs{}) }

// newSystemWith is newSystem with the knobs of the tests (see knobs).
func newSystemWith(st Store, o Options, k knobs) *System {
	sys := &System{
		opts:     config{Options: o, knobs: k},
		store:    st,
		registry: NewTable[string, *proc](),
		table:    newTableWithHasher[tableKey, *dayCell](tableKeyHasher()),
		feeds:    NewTable[string, *feed](),
		stats:    newCounters(),
		closing:  make(chan struct{}),
		shut:     make(chan struct{}),
		epoch:    time.Now(),
	}
	period := faults.Period
	if k.logEveryFailure {
		period = 0
	}
	sys.faults = faults.New(o.Logger, period)
	sys.pool = newPool(st, sys.opts, &sys.stats, sys.faults)
	if o.MaxLoaded > 0 {
		sys.loadedCap = loadedCap{max: o.MaxLoaded, wake: make(chan struct{}, 1)}
		sys.loadedCap.room.L = &sys.loadedCap.mu
		sys.capDone.Add(1)
		go sys.capLoaded()
	}
	return sys
}

// Close answers every request already queued, writes every pending change,
// stops every goroutine of the System, and closes the [Store]. It returns
// nil, or an error for each list whose acknowledged changes it had to give
// up, naming the list, joined with the Store's error on closing. It is
// idempotent; after it every call returns [ErrClosed].
//
// Close is [System.Shutdown] without a deadline but with a bound on
// retries: an acknowledged change (Async durability) whose commit keeps
// failing is committed again at once, and given up once it has failed
// twice in all, where Shutdown retries it until its ctx ends.
//
// Close does not wait for an UpdateEntry updater that is still running: its
// request fails with ErrClosed and the list keeps its state; the updater's
// goroutine, which only the updater can end, returns whenever it does,
// and its result is discarded.
func (sys *System) Close() error { return sys.shutdown(context.Background(), closeAttempts) }

// Shutdown closes the System gracefully, the way net/http's
// Server.Shutdown closes a server. From its first moment every new call
// returns [ErrClosed] at once (only a read of a list still loaded may be
// answered, from the table, until its server has retired). It then answers
// every request already queued, commits every pending change, Async ones
// included, stops every goroutine of the System, and closes the [Store].
// It returns nil when everything acknowledged was stored and the Store
// closed cleanly.
//
// An acknowledged change whose commit fails (a full disk, say) is retried,
// with the backoff of a running System, until it is stored or ctx ends;
// then it is committed once more, at once, and given up if that fails too.
// If it gave changes up, Shutdown returns ctx's error joined with an error
// for each list that lost its last changes, naming the list. A ctx that
// never ends has Shutdown wait as long as the Store keeps failing.
//
// ctx ending cuts no request and no commit short: the requests queued
// before Shutdown began are still served, and the commits under way, and
// that last one, still take the Store's time. Shutdown may return later
// than ctx by that much, but it always returns with every goroutine of the
// System stopped.
//
// Shutdown, like Close, is idempotent: after the first, Shutdown and Close
// return nil. One called while another runs waits for it to finish
// (Shutdown only until its ctx ends, then returning ctx's error) and
// returns nil. Like Close, Shutdown does not wait for a running updater.
func (sys *System) Shutdown(ctx context.Context) error { return sys.shutdown(ctx, 0) }

// shutdown is Close (attempts: closeAttempts) and Shutdown (attempts 0):
// the System's one way to close (see pool.close for attempts).
func (sys *System) shutdown(ctx context.Context, attempts int) error {
	sys.startMu.Lock()
	first := !sys.closed.Load()
	if first {
		sys.closed.Store(true)
		close(sys.closing)
	}
	sys.startMu.Unlock()
	if !first {
		select {
		case <-sys.shut: // first: done is done, whatever ctx says
			return nil
		default:
		}
		select {
		case <-sys.shut:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	defer close(sys.shut)
	// No server starts from now on. Tell every running one to stop; one
	// that has just retired on its own leaves without reading it, and a
	// hibernating one is woken to read it.
	for _, p := range sys.registry.All() {
		p.post(closeSignal, nil) // waking it if it hibernates
	}
	sys.capDone.Wait()
	sys.servers.Wait()
	lost := sys.pool.close(attempts, ctx.Done())
	if lost != nil && attempts == 0 {
		lost = errors.Join(ctx.Err(), lost) // Shutdown gives changes up only once ctx ended
	}
	return errors.Join(lost, sys.store.Close())
}

// Unload stops the server of the list called name, if one runs, once it
// has served the requests already sent to it, and returns when the list's
// changes are stored and the store was told that the list left memory
// (see [Change]). A request made meanwhile, or later, starts a new server,
// which loads the list again. A cluster node uses it to hand a list over
// to another node. If ctx ends first, Unload returns ctx's error; the list
// still leaves memory.
func (sys *System) Unload(ctx context.Context, name string) error {
	if sys.closed.Load() {
		return ErrClosed
	}
	if p, ok := sys.registry.Lookup(name); ok {
		// The same signal Close sends every server. A server that has
		// retired on its own takes nothing, and is waited for below.
		if !p.post(closeSignal, ctx.Done()) {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		select {
		case <-p.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return sys.pool.flush(ctx, name)
}

// ServerProcess returns the handle of the list called name, the Go form of
// Todo.Cache.server_process. The handle is the name, not a goroutine: each
// call through it finds the list's server in the registry (lock-free when
// it runs) and starts it if needed, so the handle keeps working after the
// server expires. A name that is empty, longer than 255 bytes, not valid
// UTF-8 or holding a NUL byte gives a handle whose every call fails with
// [ErrInvalidName].
func (sys *System) ServerProcess(name string) *Server {
	return &Server{sys: sys, name: name, err: validName(name)}
}

// Lists returns the names of every list, stored or in memory, sorted.
func (sys *System) Lists(ctx context.Context) ([]string, error) {
	names := make(map[string]struct{})
	if err := sys.eachList(ctx, func(n string) { names[n] = struct{}{} }); err != nil {
		return nil, err
	}
	return slices.Sorted(maps.Keys(names)), nil
}

// eachList calls fn with the name of every list, stored or in memory, in
// no order, some more than once.
func (sys *System) eachList(ctx context.Context, fn func(name string)) error {
	if sys.closed.Load() {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// A list's state moves from its server to the pool to the store: look
	// in that order, so a list that moves on while we look is still found.
	for n, p := range sys.registry.All() {
		if p.hasEntries.Load() {
			fn(n)
		}
	}
	for _, n := range sys.pool.unstoredLists() {
		fn(n)
	}
	stored, err := sys.store.Lists(ctx)
	if err != nil {
		return err
	}
	for _, n := range stored {
		fn(n)
	}
	return nil
}

// Dir returns the data directory the System was opened on.
func (sys *System) Dir() string { return sys.dir }

// Stats are counters of a System's life since Open. Every field is exact.
type Stats struct {
	ServersRunning int64 // list servers running now, hibernating or not: one per list loaded
	ServersStarted int64 // list servers started
	ServersExpired int64 // list servers stopped after IdleTimeout
	ServersEvicted int64 // list servers retired early to keep within MaxLoaded
	// ServersHibernating counts the servers among ServersRunning that
	// hibernate now: their lists are loaded, without a goroutine (see
	// Options.HibernateAfter).
	ServersHibernating int64
	Hibernations       int64 // times a list server hibernated
	Wakes              int64 // times a hibernating server was woken, by a request, Close, Unload, MaxLoaded or its idle timer
	RequestsServed     int64 // requests answered by list servers
	PanicsRecovered    int64 // requests that panicked and failed with ErrCrashed
	TableReads         int64 // reads answered from the table, without a server
	MailboxWaits       int64 // calls that found a mailbox full and had to wait
	Commits            int64 // batches of changes committed to the store (group commits)
	ChangesStored      int64 // lists' changes stored; a change holds a batch of one list's requests
	WriteErrors        int64 // changes whose commit failed
	WriteRetries       int64 // acknowledged changes queued again for a retry after a failed commit
	Unstored           int64 // lists holding acknowledged changes that failed to commit, now
	// Failures counts every failure the System and its Store have met
	// and logged (failed commits, probes, checkpoints and loads), each
	// one, though repeats are logged once per fault (see Options.Logger).
	Failures      int64
	Watches       int64 // watches open now (see Server.Watch)
	WatchesBehind int64 // watches ended because they fell behind (see Options.WatchBuffer)
	// The Store's own counters, when it reports them (see StatsReporter:
	// the data directory's store does); zero otherwise.
	FilesWritten int64 // list files written by checkpoints
	Checkpoints  int64 // lists checkpointed into their files
	LogSegments  int64 // segments of the store's log, now
	LogBytes     int64 // bytes in the log's segments, now
}

// counters are the live form of Stats. The ones bumped on hot paths by many
// goroutines at once are striped.
type counters struct {
	started, expired, evicted, panics atomic.Int64
	// running counts the servers in the registry, exactly: the
	// registry's own size sums striped counters, and under concurrent
	// starts and exits it can say more than were ever running at once
	// (TestSystem_MaxLoaded_BoundsMemory saw one more than the cap's
	// ceiling, which the cap's exact count never passed).
	running                   atomic.Int64
	hibernations, wakes       atomic.Int64
	mailboxWaits              atomic.Int64
	watchesBehind             atomic.Int64
	commits, changesStored    atomic.Int64
	writeErrors, writeRetries atomic.Int64
	requests, tableReads      *xsync.Counter
}

func newCounters() counters {
	return counters{requests: xsync.NewCounter(), tableReads: xsync.NewCounter()}
}

// Stats returns the System's counters.
func (sys *System) Stats() Stats {
	c := &sys.stats
	// Hibernations and wakes of one moment (a wake between two loads
	// would make their difference wrong, even negative), read before the
	// servers running, so that those counted hibernating are among them.
	var h, w int64
	for {
		w = c.wakes.Load()
		h = c.hibernations.Load()
		if c.wakes.Load() == w {
			break
		}
	}
	st := Stats{
		ServersRunning:  c.running.Load(),
		ServersStarted:  c.started.Load(),
		ServersExpired:  c.expired.Load(),
		ServersEvicted:  c.evicted.Load(),
		RequestsServed:  c.requests.Value(),
		PanicsRecovered: c.panics.Load(),
		TableReads:      c.tableReads.Value(),
		MailboxWaits:    c.mailboxWaits.Load(),
		Commits:         c.commits.Load(),
		ChangesStored:   c.changesStored.Load(),
		WriteErrors:     c.writeErrors.Load(),
		WriteRetries:    c.writeRetries.Load(),
		Unstored:        sys.pool.unstored.Load(),
		Failures:        sys.faults.Failures(),
		Watches:         sys.watchCount.Load(),
		WatchesBehind:   c.watchesBehind.Load(),
	}
	st.Hibernations, st.Wakes, st.ServersHibernating = h, w, h-w
	if r, ok := sys.store.(StatsReporter); ok {
		ss := r.StoreStats()
		st.FilesWritten, st.Checkpoints, st.LogSegments, st.LogBytes = ss.FilesWritten, ss.Checkpoints, ss.LogSegments, ss.LogBytes
		st.Failures += ss.Failures
	}
	return st
}

// Health returns nil while the System stores its changes, or the error of
// the latest failed commit (a full disk, say) until a commit, or a probe
// of the store, succeeds with every acknowledged change stored. Reads go
// on either way. While it is not nil, changes made with Fsync or Write
// durability are tried and fail with the store's error; Async ones are
// refused with an error wrapping [ErrStoreFailing]; Async changes
// acknowledged before the failure are retried (see Stats.Unstored); and
// the store, if it is a [Prober], is probed, so that Health returns nil
// within a second of the store working again (within AsyncDelay, if that
// is less, with Async durability), without a write from any client.
func (sys *System) Health() error { return sys.pool.health() }
