package todo

import (
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// memStore keeps lists in memory, so that benchmarks and tests of the
// servers and the cache measure those layers alone.
type memStore struct {
	lists *Table[string, ListState]
}

func newMemStore() *memStore { return &memStore{lists: NewTable[string, ListState]()} }

// NewMemStore returns a Store that keeps lists in memory, for the Store
// doubles of the tests to wrap; its Close does nothing, so that a test may
// look into it after the System that owned it closed.
func NewMemStore() Store { return newMemStore() }

func (m *memStore) Load(_ context.Context, name string) (ListState, error) {
	s, _ := m.lists.Lookup(name)
	return ListState{LastID: s.LastID, Revision: s.Revision, Entries: slices.Clone(s.Entries)}, nil
}

func (m *memStore) Commit(_ context.Context, batch []Change, _ bool) {
	for i := range batch {
		m.lists.Insert(batch[i].List, batch[i].State)
	}
}

func (m *memStore) Lists(context.Context) ([]string, error) {
	var names []string
	for n := range m.lists.All() {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

func (m *memStore) Close() error { return nil }

// OpenInMemory opens a System whose lists are kept in memory instead of
// files; everything else (servers, cache, table, pool) is the real thing.
func OpenInMemory(opts *Options) (*System, error) {
	return OpenStore(newMemStore(), opts)
}

// slowStore is a memStore whose every commit takes delay (on the clock of
// a synctest bubble, when the System is opened in one) and is counted.
type slowStore struct {
	*memStore
	delay   time.Duration
	commits *atomic.Int64
}

func (m *slowStore) Commit(ctx context.Context, batch []Change, sync bool) {
	time.Sleep(m.delay)
	m.commits.Add(1)
	m.memStore.Commit(ctx, batch, sync)
}

// OpenInMemorySlow is OpenInMemory with commits that take delay each; it
// returns the count of commits done.
func OpenInMemorySlow(opts *Options, delay time.Duration) (*System, *atomic.Int64, error) {
	commits := new(atomic.Int64)
	sys, err := OpenStore(&slowStore{newMemStore(), delay, commits}, opts)
	return sys, commits, err
}

// HandleHoldsList reports whether s reaches, through the server it last
// sent to, the entries that server published and, once that server is
// known to have stopped (stopped), its list.
func HandleHoldsList(s *Server, stopped bool) bool {
	p := s.last.Load()
	if p == nil {
		return false
	}
	return p.all.load() != nil || stopped && p.list != nil
}

// SaveBatch writes lists, each given as the entries to add to an empty
// list, in one batch through the files of a System opened with Open, the
// way a checkpoint writes them; it returns each list's error.
func SaveBatch(sys *System, names []string, lists [][]Entry) []error {
	states := make([]ListState, len(lists))
	for i, es := range lists {
		states[i] = NewList(es...).state()
	}
	ds := dirStoreOf(sys)
	ds.waitIdle(time.Minute) // the sweep of temp files after Open is done
	return ds.f.saveBatch(names, states, true)
}

// FileName exposes the encoding of list names into file paths.
func FileName(name string) string { return fileName(name) }

// NameFromFile exposes the inverse of FileName.
func NameFromFile(rel string) (string, bool) { return nameFromFile(rel) }

// EntriesViaServer reads the entries of a date by a request and reply
// through the list's server goroutine, bypassing the table: the baseline
// the table read path is measured against.
func EntriesViaServer(ctx context.Context, s *Server, d Date) ([]Entry, error) {
	entries, _, err := s.readThroughServer(ctx, opEntries, d)
	return entries, err
}

// The declarations below serve the persistence tests (persist_test.go,
// pool_test.go, crash_test.go, diskfull_test.go).

// openWith is Open with the lists kept by wrap(files), a store of list
// files alone, for the broken twin of list files written in place.
func openWith(dir string, opts *Options, wrap func(*files) Store) (*System, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	f, err := openFiles(dir, o)
	if err != nil {
		return nil, err
	}
	if err := f.removeTemps(); err != nil {
		f.Close()
		return nil, err
	}
	sys := newSystem(wrap(f), o)
	sys.dir = dir
	return sys, nil
}

// SaveHook runs in place of the storing of each list's change; save does
// it. lastID and entries describe the state being stored.
type SaveHook func(list string, lastID, entries int, save func() error) error

// hookedStore is a Store with a SaveHook around the storing of every
// list's change but releases (which change nothing): it commits a batch
// one change at a time.
type hookedStore struct {
	Store
	hook SaveHook
}

func (h hookedStore) Commit(ctx context.Context, batch []Change, sync bool) {
	for i := range batch {
		c := &batch[i]
		if len(c.Ops) == 0 { // a release: nothing changed
			one := []Change{*c}
			h.Store.Commit(ctx, one, sync)
			c.Err = one[0].Err
			continue
		}
		c.Err = h.hook(c.List, c.State.LastID, len(c.State.Entries), func() error {
			one := []Change{*c}
			h.Store.Commit(ctx, one, sync)
			return one[0].Err
		})
	}
}

// StoreStats reports the counters of the store under h.
func (h hookedStore) StoreStats() StoreStats {
	if r, ok := h.Store.(StatsReporter); ok {
		return r.StoreStats()
	}
	return StoreStats{}
}

// OpenHooked is Open with hook around the storing of every list's
// change, for tests that watch writes or break them.
func OpenHooked(dir string, opts *Options, hook SaveHook) (*System, error) {
	return openDirWrapped(dir, opts, nil, func(s *dirStore) Store { return hookedStore{s, hook} })
}

// inPlaceFiles is the broken twin of files, the book's way of writing: it
// truncates a list's file and writes the new version over it in small
// pieces, with no temp file, rename or fsync, so a crash mid-write leaves
// a torn file.
type inPlaceFiles struct{ *files }

func (f inPlaceFiles) Commit(_ context.Context, batch []Change, _ bool) {
	for i := range batch {
		batch[i].Err = f.saveInPlace(batch[i].List, batch[i].State)
	}
}

func (f inPlaceFiles) saveInPlace(name string, s ListState) error {
	rel := fileName(name)
	if err := f.mkdirs(path.Dir(rel)); err != nil {
		return err
	}
	body := encodeList(nil, s)
	data := make([]byte, headerSize, headerSize+len(body))
	copy(data, frameMagic)
	data[4] = frameVersion
	binary.BigEndian.PutUint32(data[8:12], uint32(len(body)))
	binary.BigEndian.PutUint32(data[12:16], crc32.Checksum(body, castagnoli))
	data = append(data, body...)
	file, err := f.root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	for len(data) > 0 && err == nil {
		n := min(len(data), 16)
		_, err = file.Write(data[:n])
		data = data[n:]
	}
	if cerr := file.Close(); err == nil {
		err = cerr
	}
	return err
}

// OpenInPlace is Open over the broken twin of the list files, inPlaceFiles.
func OpenInPlace(dir string, opts *Options) (*System, error) {
	return openWith(dir, opts, func(f *files) Store { return inPlaceFiles{f} })
}

// Batch runs change on l as one batch of a list server, then rolls it back
// (as after a failed write) or commits it, and returns the dates the batch
// reported as touched.
func Batch(l *List, change func(*List), rollback bool) []Date {
	var u undoLog
	l.begin(&u)
	change(l)
	var touched []Date
	l.touched(func(k dayKey, _ []Entry) { touched = append(touched, k.date()) })
	if rollback {
		l.rollback()
	} else {
		l.commit()
	}
	return touched
}

// ListSizes returns the encoded size a List keeps track of, and the size
// of its entries encoded for real: they must agree.
func ListSizes(l *List) (tracked, actual int) {
	var b []byte
	for _, e := range l.all {
		b = appendEntry(b, e)
	}
	return l.size, len(b)
}

// ApplyOps replays ops over l as a store replays a log over a file.
func ApplyOps(l *List, ops []Op) {
	for _, op := range ops {
		l.applyOp(op)
	}
}

// WaitCheckpoints waits until the checkpoints due in a System opened with
// Open (the lists replayed at Open, those that left memory) are written,
// and the temp files a crash left are cleared.
// It panics if that takes over a minute.
func WaitCheckpoints(sys *System) {
	if !dirStoreOf(sys).waitIdle(time.Minute) {
		panic("todo: checkpoints still due after a minute")
	}
}

// ---- Crash and fault tests of the log store (lock_test.go, ids_test.go,
// log_test.go, crash_test.go, diskfull_test.go): broken twins and hooks ----

// CheckpointHook, given to the openers below, is called by the
// checkpointer of the data directory's store with each phase of each
// checkpoint: "begin", "written" (its files are renamed into place),
// "end" (the segments it freed are deleted). nil calls nothing.
type CheckpointHook func(phase string)

// openDirWrapped is Open with the data directory's store wrapped by wrap,
// and hook called by its checkpointer.
func openDirWrapped(dir string, opts *Options, hook CheckpointHook, wrap func(*dirStore) Store) (*System, error) {
	return openDirWith(dir, opts, hook, nil, wrap, knobs{})
}

// openDirWith is openDirWrapped with before, if set, called with the
// store and each phase before hook, and the System's knobs k.
func openDirWith(dir string, opts *Options, hook CheckpointHook, before func(*dirStore, string), wrap func(*dirStore) Store, k knobs) (*System, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	var do dirOptions
	if hook != nil || before != nil {
		do.phase = func(s *dirStore, phase string) {
			if before != nil {
				before(s, phase)
			}
			if hook != nil {
				hook(phase)
			}
		}
	}
	st, err := openDirStore(dir, o, do)
	if err != nil {
		return nil, err
	}
	sys := newSystemWith(wrap(st), o, k)
	sys.dir = dir
	return sys, nil
}

// openInMemoryWith is OpenInMemory with the knobs k.
func openInMemoryWith(opts *Options, k knobs) (*System, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	return newSystemWith(newMemStore(), o, k), nil
}

// dirStoreOf returns the data directory's store under a System opened with
// Open or one of the twins below, or nil.
func dirStoreOf(sys *System) *dirStore {
	switch st := sys.store.(type) {
	case *dirStore:
		return st
	case hookedStore:
		s, _ := st.Store.(*dirStore)
		return s
	case unreservedStore:
		return st.dirStore
	case *ackFirstStore:
		return st.dirStore
	}
	return nil
}

// OpenObserved is Open with hook called by the checkpointer.
func OpenObserved(dir string, opts *Options, hook CheckpointHook) (*System, error) {
	return openDirWrapped(dir, opts, hook, func(s *dirStore) Store { return s })
}

// unreservedStore is the broken twin of the reservation of ids: it stores
// each list with the highest id its entries and operations hold as its
// last id, forgetting the range the list reserved ahead (see proc.store).
// Entries acknowledged with Async durability and lost in a crash then
// leave no trace, and their ids are given out again: the seed's defect.
type unreservedStore struct{ *dirStore }

func (s unreservedStore) Commit(ctx context.Context, batch []Change, sync bool) {
	for i := range batch {
		c := &batch[i]
		last := 0
		for _, e := range c.State.Entries {
			last = max(last, e.ID)
		}
		for _, op := range c.Ops {
			last = max(last, op.Entry.ID)
		}
		c.State.LastID = last
	}
	s.dirStore.Commit(ctx, batch, sync)
}

// OpenUnreserved is Open over unreservedStore, with hook called by the
// checkpointer.
func OpenUnreserved(dir string, opts *Options, hook CheckpointHook) (*System, error) {
	return openDirWrapped(dir, opts, hook, func(s *dirStore) Store { return unreservedStore{s} })
}

// ackFirstStore is the broken twin of the log's group commit that
// acknowledges first: its Commit reports every change stored at once, so
// that the pool answers the callers, and only then does a goroutine of
// its own append the batch to the log and fdatasync it (in order, batch
// after batch).
type ackFirstStore struct {
	*dirStore
	queue chan ackFirstBatch
	done  chan struct{}
}

type ackFirstBatch struct {
	batch []Change
	sync  bool
}

func (s *ackFirstStore) Commit(_ context.Context, batch []Change, sync bool) {
	own := slices.Clone(batch) // the pool reuses its batch
	for i := range batch {
		batch[i].Err = nil // the bug of the twin: stored, it says, before it is written
	}
	s.queue <- ackFirstBatch{own, sync}
}

func (s *ackFirstStore) write() {
	defer close(s.done)
	for b := range s.queue {
		s.dirStore.Commit(context.Background(), b.batch, b.sync)
	}
}

func (s *ackFirstStore) Close() error {
	close(s.queue)
	<-s.done
	return s.dirStore.Close()
}

// OpenAckBeforeWrite is Open over ackFirstStore, with hook called by the
// checkpointer.
func OpenAckBeforeWrite(dir string, opts *Options, hook CheckpointHook) (*System, error) {
	return openDirWrapped(dir, opts, hook, func(s *dirStore) Store {
		st := &ackFirstStore{dirStore: s, queue: make(chan ackFirstBatch, 4096), done: make(chan struct{})}
		go st.write()
		return st
	})
}

// OpenDropEarly is Open over a broken twin of the data directory's
// store: as each checkpoint begins, before the lists are written to their
// files, it deletes the oldest segment of the log if it is sealed,
// whatever lists still have records in it that their files do not hold.
// hook runs after the delete.
func OpenDropEarly(dir string, opts *Options, hook CheckpointHook) (*System, error) {
	dropOldest := func(s *dirStore, phase string) {
		if phase != "begin" {
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if len(s.segs) == 0 || !s.segs[0].sealed {
			return
		}
		si := s.segs[0]
		if err := s.w.Remove(si.seq); err != nil {
			return
		}
		s.segs = s.segs[1:]
		s.bytes -= si.size
	}
	return openDirWith(dir, opts, hook, dropOldest, func(s *dirStore) Store { return s }, knobs{})
}

// OpenRetryOnlyAtClose is Open with the broken twin of the pool's retry of
// acknowledged changes whose commit failed: the seed's, which retried
// them only at Close (or when something else of the list was committed).
// Its backoff after a failure is a day.
func OpenRetryOnlyAtClose(dir string, opts *Options) (*System, error) {
	day := func(time.Duration) time.Duration { return 24 * time.Hour }
	return openDirWith(dir, opts, nil, nil, func(s *dirStore) Store { return s }, knobs{retryBackoff: day})
}

// Faults are the broken twins of issue 18's handling of a failing store
// (see knobs), by name: "ack-while-failing" acknowledges Async changes
// while commits fail, "no-probe" never probes a failing store, and
// "log-every-failure" logs every failure; "" is none.
func faultKnobs(twin string) knobs {
	switch twin {
	case "":
		return knobs{}
	case "ack-while-failing":
		return knobs{ackWhileFailing: true}
	case "no-probe":
		return knobs{noProbe: true}
	case "log-every-failure":
		return knobs{logEveryFailure: true}
	case "moved-fails":
		return knobs{movedFails: true}
	}
	panic("todo: no broken twin called " + twin)
}

// OpenBroken is Open with the broken twin of issue 18 called twin (see
// faultKnobs).
func OpenBroken(dir string, opts *Options, twin string) (*System, error) {
	return openDirWith(dir, opts, nil, nil, func(s *dirStore) Store { return s }, faultKnobs(twin))
}

// OpenStoreBroken is OpenStore with the broken twin of issue 18 called
// twin (see faultKnobs).
func OpenStoreBroken(st Store, opts *Options, twin string) (*System, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	return newSystemWith(st, o, faultKnobs(twin)), nil
}

// Uncommitted returns how many lists have changes queued or being
// committed, acknowledged or not.
func Uncommitted(sys *System) int {
	n := 0
	for _, w := range sys.pool.workers {
		w.mu.Lock()
		n += len(w.pending) + len(w.committing)
		w.mu.Unlock()
	}
	return n
}

// ProbeStore probes the store of a System opened with Open.
func ProbeStore(sys *System) error { return sys.store.(*dirStore).Probe(context.Background()) }

// ---- end of the crash and fault tests' declarations ----

// ---- Hibernation (hibernate_test.go) ----

// OpenInMemoryHibernatingOverMail is OpenInMemory with the broken twin of
// hibernation: a server hibernates even when a request came into its
// mailbox in the moment before, and that request is never answered.
func OpenInMemoryHibernatingOverMail(opts *Options) (*System, error) {
	return openInMemoryWith(opts, knobs{hibernateOverMail: true})
}

// OpenInMemoryOnExpiryMissed is OpenInMemory with f called when a server's
// idle timer finds its mailbox full, at the moment between finding it full
// and noting the miss.
func OpenInMemoryOnExpiryMissed(opts *Options, f func()) (*System, error) {
	return openInMemoryWith(opts, knobs{onTimerMiss: func(sig *call) {
		if sig == expireSignal {
			f()
		}
	}})
}

// MailboxCap returns the capacity of the mailbox of the running server
// of a list, 0 when it hibernates, or -1 when it has no server.
func MailboxCap(sys *System, name string) int {
	p, ok := sys.registry.Lookup(name)
	if !ok || !p.tryAcquire() {
		if ok && p.senders.Load() == hibernatingSenders {
			return 0
		}
		return -1
	}
	defer p.release()
	return cap(p.mailbox)
}

// DateView returns the entries of date d as l holds them, shared, and
// whether they are a slice of l's slice of all entries rather than a
// copy.
func DateView(l *List, d Date) (entries []Entry, sharesAll bool) {
	entries = l.entriesOf(d.key())
	if len(entries) == 0 {
		return nil, false
	}
	for i := range l.all {
		if &l.all[i] == &entries[0] {
			return entries, true
		}
	}
	return entries, false
}

// ListFromEntries rebuilds a list from stored entries, as a server loads
// one.
func ListFromEntries(entries []Entry) *List {
	return listFromState(ListState{LastID: len(entries), Entries: entries})
}

// OpenInMemoryWatchBroken is OpenInMemory with the broken twin of watches
// called twin: "skip" drops the event of every revision 50 more than a
// multiple of 100, "repeat" yields it twice.
func OpenInMemoryWatchBroken(opts *Options, twin string) (*System, error) {
	return openInMemoryWith(opts, knobs{watchTwin: twin})
}

// FeedHistory returns the length of the history a list's feed holds, or
// -1 when the System holds no feed of the list.
func FeedHistory(sys *System, name string) int {
	f, ok := sys.feeds.Lookup(name)
	if !ok {
		return -1
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	return len(f.ring)
}

// eventStore is a memStore that keeps the events of each change it
// stores, in order, list by list: an EventKeeper. Its first failures
// commits fail.
type eventStore struct {
	*memStore
	mu       sync.Mutex // guards the fields below
	events   map[string][]Event
	failures int
}

func (s *eventStore) KeepEvents() {}

func (s *eventStore) Commit(ctx context.Context, batch []Change, sync bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failures > 0 {
		s.failures--
		for i := range batch {
			batch[i].Err = errors.New("todo: a failure of the test's store")
		}
		return
	}
	s.memStore.Commit(ctx, batch, sync)
	for _, c := range batch {
		s.events[c.List] = append(s.events[c.List], c.Events...)
	}
}

// OpenEventKeeping opens a System over an EventKeeper in memory whose
// first failures commits fail; events returns the events it stored of a
// list.
func OpenEventKeeping(opts *Options, failures int) (sys *System, events func(list string) []Event, err error) {
	st := &eventStore{memStore: newMemStore(), events: make(map[string][]Event), failures: failures}
	sys, err = OpenStore(st, opts)
	return sys, func(list string) []Event {
		st.mu.Lock()
		defer st.mu.Unlock()
		return slices.Clone(st.events[list])
	}, err
}
