package todo

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gotodo/todo/internal/faults"
	"github.com/gotodo/todo/internal/wal"
)

// dirStore is the Store of a data directory, the default behind Open: a
// log that every commit appends to (package internal/wal, with the
// records of log.go), and one file per list
// (persist.go) that checkpoints write the log into, off the
// acknowledgement path.
//
// A list is dirty while it has records in the log that its file does not
// hold; the store keeps its newest committed state in memory until a
// checkpoint writes it to the file. Checkpoints run in the background
// when a list leaves memory (its change says Release), when the log
// outgrows Options.LogSize (the lists dirty in the oldest segment), after
// Open for the lists the log held, and at Close for all. A segment is
// deleted once no list is dirty in it nor in any older segment: replay
// then always starts from a point before which every list's file holds
// everything, and since a record's operations are idempotent (a put by
// id, a delete by id, the last id set), replaying records a file holds
// already changes nothing.
//
// A Load returns the dirty state from memory, or else the file with the
// list's records from the log replayed over it. Open replays the log
// without reading a list file: it notes each record's list and keeps the
// record until the list is loaded or checkpointed.
//
// An exclusive flock on dir/LOCK keeps a second process (or System) off
// the directory.
type dirStore struct {
	f       *files
	w       *wal.Log
	logRoot *os.Root // the log's directory, for w
	lock    *os.File
	log     *slog.Logger
	limit   int64 // Options.LogSize

	filesWritten, checkpoints atomic.Int64
	faults                    *faults.Log // the store's failures, once per fault

	// mu guards the fields below; cond is broadcast when checkpoint work
	// is queued or Close begins.
	mu       sync.Mutex
	cond     sync.Cond
	lists    map[string]*dirty
	corrupt  map[string]error // lists whose records are damaged, and how
	segs     []*segInfo       // every segment on disk, by sequence number
	bytes    int64            // their size
	released []string         // lists that left memory: checkpoint them
	recover  []string         // lists replayed at Open: checkpoint them
	// replaying is the segment whose records Open is replaying.
	replaying *segInfo
	closing   bool
	working   bool // a checkpoint is being written
	// The names of the lists with a file: those found by one walk of the
	// directories (nil until Lists first needs them), and those whose
	// file a checkpoint wrote since Open.
	walked  map[string]struct{}
	written map[string]struct{}

	wg sync.WaitGroup // the checkpointer

	bufs sync.Pool // of *commitBuf, for Commit
}

// dirOptions are what tests give openDirStore beyond Options (see
// export_test.go); Open gives the zero value.
type dirOptions struct {
	// phase, when set, is called by the checkpointer as each checkpoint
	// begins ("begin"), once its files are written ("written"), and once
	// the segments it freed are deleted ("end").
	phase func(s *dirStore, phase string)
}

// dirty is what the store keeps of a list with records in the log.
type dirty struct {
	name    string
	loaded  bool        // state holds the list; otherwise its file and replay do
	state   ListState   // the newest committed state, when loaded
	replay  []replayRec // records read at Open, when not loaded
	version uint64      // counts the commits of the list
	// segs are the segments holding records of the list not yet in its
	// file, in order, each with the version of the last of them: rarely
	// more than two, and a slice costs far less than a map for 100,000
	// lists.
	segs     []segListVersion
	released bool

	loadMu sync.Mutex // serializes materializing the list from file and replay
}

// replayRec is a record read at Open: where it is, and its body.
type replayRec struct {
	seg  uint64
	off  int64
	body []byte
}

// segListVersion is a segment holding records of a list, and the list's
// version at the last of them.
type segListVersion struct {
	seq     uint64
	version uint64
}

// note records that the list's version, just bumped, has a record in
// segment seq.
func (d *dirty) note(seq uint64) {
	if n := len(d.segs); n > 0 && d.segs[n-1].seq == seq {
		d.segs[n-1].version = d.version
		return
	}
	d.segs = append(d.segs, segListVersion{seq, d.version})
}

// segInfo is what the store knows of a segment.
type segInfo struct {
	seq    uint64
	size   int64
	sealed bool                // the log writes to it no more
	lists  map[*dirty]struct{} // lists dirty in it
}

func openDirStore(dir string, o Options, do dirOptions) (*dirStore, error) {
	// Lock before anything else: an Open that finds the directory held
	// must leave it as it is (replay cuts torn records, the checkpointer
	// removes temp files, which a running System may be writing).
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	f, err := openFiles(dir, o)
	if err != nil {
		lock.Close()
		return nil, err
	}
	logRoot, err := f.openLogDir()
	if err != nil {
		lock.Close()
		f.Close()
		return nil, err
	}
	s := &dirStore{
		f:       f,
		logRoot: logRoot,
		lock:    lock,
		log:     o.Logger,
		limit:   o.LogSize,
		lists:   make(map[string]*dirty),
		corrupt: make(map[string]error),
	}
	s.faults = faults.New(o.Logger, faults.Period)
	s.cond.L = &s.mu
	// One log, written by every worker of the pool: measured on this
	// disk, one log whose every fdatasync carries all the changes waiting
	// beats a log per worker, whose fdatasyncs run in parallel but carry
	// a third each (docs/storage.md).
	w, segs, err := wal.Open(logRoot, path.Join(dir, logDir), wal.Options{
		Key:         recordName,
		SegmentSize: max(o.LogSize/4, 4<<10),
		Record:      s.replayed,
		Damaged:     s.damaged,
		Created:     s.created,
		Sealed:      s.sealed,
	})
	if err != nil {
		lock.Close()
		logRoot.Close()
		f.Close()
		return nil, logError(err)
	}
	s.w = w
	s.replaying = nil
	for _, seg := range segs {
		if si := s.segInfo(seg.Seq); si != nil {
			si.size = seg.Size
			s.bytes += seg.Size
		} else { // a segment with no record: an empty one, or all zeros
			s.addSegment(seg.Seq, seg.Size, true)
		}
	}
	for name := range s.lists {
		if s.corrupt[name] == nil {
			s.recover = append(s.recover, name)
		}
	}
	slices.Sort(s.recover)
	s.working = true // sweeping, see checkpointer
	s.wg.Add(1)
	go s.checkpointer(do.phase)
	return s, nil
}

// openLogDir opens the log's directory, creating it first if needed
// (and fsyncing the data directory, so that it cannot vanish with the
// segments about to be written in it).
func (f *files) openLogDir() (*os.Root, error) {
	err := f.mkdirs(logDir)
	var r *os.Root
	if err == nil {
		r, err = f.root.OpenRoot(logDir)
	}
	if err != nil {
		return nil, fmt.Errorf("todo: %s: %w", path.Join(f.dir, logDir), err)
	}
	return r, nil
}

// logError gives an error of the log the package's form: damage wraps
// ErrCorrupt, and every message starts with "todo:".
func logError(err error) error {
	var ce *wal.CorruptError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ce):
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return fmt.Errorf("todo: %w", err)
}

// lockDir takes the exclusive lock of the data directory, creating the
// directory if needed, or says who holds it.
func lockDir(dir string) (*os.File, error) {
	const name = "LOCK"
	full := path.Join(dir, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("todo: data directory: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("todo: data directory: %w", err)
	}
	defer root.Close() // the lock file stays open
	lock, err := root.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("todo: lock file %s: %w", full, err)
	}
	for {
		err = syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err != syscall.EINTR {
			break
		}
	}
	if err == nil {
		// Note who holds it, for a person who finds the lock held.
		lock.Truncate(0)
		lock.WriteAt(fmt.Appendf(nil, "pid %d\n", os.Getpid()), 0)
		return lock, nil
	}
	holder, _ := fs.ReadFile(root.FS(), name)
	lock.Close()
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return nil, fmt.Errorf("%w: data directory %s is in use by another process or System (it holds %s: %s)",
			ErrLocked, dir, full, trimHolder(holder))
	}
	return nil, fmt.Errorf("todo: locking %s: %w", full, err)
}

func trimHolder(b []byte) string {
	s := string(b)
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == ' ') {
		s = s[:len(s)-1]
	}
	if s == "" || len(s) > 64 {
		return "unknown holder"
	}
	return s
}

// replayed notes a record read at Open.
func (s *dirStore) replayed(r wal.Record) {
	d := s.replayedIn(r)
	d.replay = append(d.replay, replayRec{r.Seg, r.Off, r.Body})
}

// damaged notes a record of a list whose body is damaged: the list cannot
// be loaded, and the segment is kept, until an operator repairs it.
func (s *dirStore) damaged(r wal.Record, err error) {
	d := s.replayedIn(r)
	if s.corrupt[d.name] == nil {
		s.corrupt[d.name] = logError(err)
	}
}

// replayedIn notes that a list has a record in the segment being replayed
// and returns the list's dirty record.
func (s *dirStore) replayedIn(r wal.Record) *dirty {
	si := s.replaying
	if si == nil || si.seq != r.Seg {
		si = &segInfo{seq: r.Seg, sealed: true, lists: make(map[*dirty]struct{})}
		s.segs = append(s.segs, si) // replay goes in sequence order
		s.replaying = si
	}
	d := s.lists[string(r.Key)] // no allocation for the lookup
	if d == nil {
		d = s.dirtyOf(string(r.Key))
	}
	d.version++
	d.note(r.Seg)
	si.lists[d] = struct{}{}
	return d
}

// dirtyOf returns the dirty record of a list, making it if needed. s.mu
// must be held, or Open still running.
func (s *dirStore) dirtyOf(list string) *dirty {
	d := s.lists[list]
	if d == nil {
		d = &dirty{name: list}
		s.lists[list] = d
	}
	return d
}

// created and sealed are the log's news of its segments.
func (s *dirStore) created(seg wal.Segment) {
	s.mu.Lock()
	s.addSegment(seg.Seq, seg.Size, false)
	s.mu.Unlock()
}

func (s *dirStore) sealed(seq uint64) {
	s.mu.Lock()
	if si := s.segInfo(seq); si != nil {
		si.sealed = true
	}
	s.cond.Broadcast()
	s.mu.Unlock()
}

// addSegment adds a segment to s.segs, in order. s.mu must be held, or
// Open still running.
func (s *dirStore) addSegment(seq uint64, size int64, sealed bool) {
	si := &segInfo{seq: seq, size: size, sealed: sealed, lists: make(map[*dirty]struct{})}
	i, _ := slices.BinarySearchFunc(s.segs, seq, func(x *segInfo, seq uint64) int { return cmp.Compare(x.seq, seq) })
	s.segs = slices.Insert(s.segs, i, si)
	s.bytes += size
}

// segInfo returns what the store knows of segment seq, or nil. s.mu must
// be held.
func (s *dirStore) segInfo(seq uint64) *segInfo {
	i, ok := slices.BinarySearchFunc(s.segs, seq, func(x *segInfo, seq uint64) int { return cmp.Compare(x.seq, seq) })
	if !ok {
		return nil
	}
	return s.segs[i]
}

// Commit appends a record for each change to the log, in one write and
// one fdatasync, shared with the commits of other workers waiting at the
// same time.
func (s *dirStore) Commit(_ context.Context, batch []Change, fsync bool) {
	cb := s.commitBuf()
	defer s.putCommitBuf(cb)
	for i := range batch {
		c := &batch[i]
		if len(c.Ops) == 0 && !s.needsRecord(c) {
			continue
		}
		cb.body = encodeRecord(cb.body[:0], c)
		cb.batch.Add(cb.body)
		cb.changes = append(cb.changes, c)
	}
	if len(cb.changes) == 0 {
		return
	}
	err := logError(s.w.Append(&cb.batch, fsync, cb.written))
	for _, c := range cb.changes {
		c.Err = err
	}
}

// commitBuf is what a Commit builds its records in. Commits reuse them
// through dirStore.bufs: a warm one allocates nothing.
type commitBuf struct {
	s       *dirStore
	body    []byte    // one record's body
	batch   wal.Batch // the records
	changes []*Change // the changes they are of
	written func(seq uint64)
}

// commitBuf returns a Commit's empty buffer.
func (s *dirStore) commitBuf() *commitBuf {
	if cb, ok := s.bufs.Get().(*commitBuf); ok {
		return cb
	}
	cb := &commitBuf{s: s}
	// Made once, not a closure per Commit: the log calls it, as the
	// written callback of Append, before Append returns.
	cb.written = func(seq uint64) { s.noteCommit(cb.changes, seq, int64(cb.batch.Size())) }
	return cb
}

// maxCommitBuf is the most bytes of records a commitBuf keeps for reuse:
// a rare commit of huge records must not pin its buffer for good.
const maxCommitBuf = 1 << 20

// putCommitBuf empties cb, letting go of the changes, and keeps it for
// the next Commit.
func (s *dirStore) putCommitBuf(cb *commitBuf) {
	if cap(cb.body)+cb.batch.Size() > maxCommitBuf {
		return
	}
	clear(cb.changes)
	cb.body, cb.changes = cb.body[:0], cb.changes[:0]
	cb.batch.Reset()
	s.bufs.Put(cb)
}

// needsRecord reports whether a change with no operations, a release,
// must still be written: when the list is dirty, its last id may differ
// from the one its records hold (ids reserved ahead, now given back), and
// it must be checkpointed to leave memory; a list that is not dirty has
// everything in its file already.
func (s *dirStore) needsRecord(c *Change) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return c.Release && s.lists[c.List] != nil
}

// noteCommit notes where the changes of a commit landed. The log calls it
// (as the written callback of Append) before the segment can be sealed.
func (s *dirStore) noteCommit(changes []*Change, seq uint64, size int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	si := s.segInfo(seq)
	si.size += size
	s.bytes += size
	for _, c := range changes {
		d := s.dirtyOf(c.List)
		d.loaded, d.state, d.replay = true, c.State, nil
		d.version++
		d.note(seq)
		si.lists[d] = struct{}{}
		if c.Release && !d.released {
			d.released = true
			s.released = append(s.released, c.List)
		}
	}
	if len(s.released) > 0 || s.bytes > s.limit {
		s.cond.Broadcast()
	}
}

// Load returns a list's newest committed state: from memory if it is
// dirty, or its file with its records from the log replayed over it.
func (s *dirStore) Load(ctx context.Context, list string) (ListState, error) {
	s.mu.Lock()
	if err := s.corrupt[list]; err != nil {
		s.mu.Unlock()
		return ListState{}, err
	}
	d := s.lists[list]
	if d == nil {
		// Not dirty: the file holds everything, and no checkpoint is
		// writing it (a list is dirty until its checkpoint is done).
		s.mu.Unlock()
		return s.f.Load(ctx, list)
	}
	if d.loaded {
		st := d.state
		s.mu.Unlock()
		return st, nil
	}
	s.mu.Unlock()
	return s.materialize(ctx, list, d)
}

// materialize reads a list replayed at Open: its file, with its records
// from the log applied over it, and keeps the result as its state.
func (s *dirStore) materialize(ctx context.Context, list string, d *dirty) (ListState, error) {
	d.loadMu.Lock()
	defer d.loadMu.Unlock()
	s.mu.Lock()
	if err := s.corrupt[list]; err != nil {
		s.mu.Unlock()
		return ListState{}, err
	}
	if d.loaded {
		st := d.state
		s.mu.Unlock()
		return st, nil
	}
	recs := d.replay
	s.mu.Unlock()
	st, err := s.f.Load(ctx, list)
	if err != nil {
		return ListState{}, err
	}
	l := listFromState(st)
	for _, r := range recs {
		lastID, rev, ops, err := decodeRecord(r.body)
		if err != nil {
			err = fmt.Errorf("%w: log segment %s: record of list %q at offset %d: %v",
				ErrCorrupt, s.w.Path(r.seg), list, r.off, err)
			s.mu.Lock()
			s.corrupt[list] = err
			s.mu.Unlock()
			return ListState{}, err
		}
		l.replay(ops, lastID, rev)
	}
	st = l.state()
	s.mu.Lock()
	if !d.loaded {
		d.loaded, d.state, d.replay = true, st, nil
	}
	st = d.state
	s.mu.Unlock()
	return st, nil
}

// Lists returns the names of the lists that have a file or records in
// the log. The directories are walked once, at the first call; the lists
// whose files were written since are known from the checkpoints.
func (s *dirStore) Lists(ctx context.Context) ([]string, error) {
	s.mu.Lock()
	walked := s.walked
	s.mu.Unlock()
	if walked == nil {
		found, err := s.f.Lists(ctx)
		if err != nil {
			return nil, err
		}
		walked = make(map[string]struct{}, len(found))
		for _, name := range found {
			walked[name] = struct{}{}
		}
		s.mu.Lock()
		s.walked = walked
		s.mu.Unlock()
	}
	// The union, each name once, in no order (a System sorts what it
	// needs): walked's, then those of lists and written it lacks.
	names := make([]string, 0, len(walked)+1)
	for name := range walked { // never written to once made
		names = append(names, name)
	}
	s.mu.Lock()
	for name := range s.lists {
		if _, ok := walked[name]; !ok {
			names = append(names, name)
		}
	}
	for name := range s.written {
		_, inWalked := walked[name]
		if _, inLists := s.lists[name]; !inWalked && !inLists {
			names = append(names, name)
		}
	}
	s.mu.Unlock()
	return names, nil
}

// checkpointer writes dirty lists to their files, as the work comes (see
// nextCheckpoint), until Close has had every list checkpointed.
func (s *dirStore) checkpointer(phase func(s *dirStore, phase string)) {
	defer s.wg.Done()
	// First clear the temp files a crash left, before any checkpoint
	// writes one. It walks every fan-out directory, which Open need not
	// wait for.
	if err := s.f.removeTemps(); err != nil {
		s.faults.Error("clear", "todo: cannot clear leftovers", err, "dir", s.f.dir)
	}
	s.mu.Lock()
	s.working = false
	s.cond.Broadcast()
	s.mu.Unlock()
	var backoff time.Duration
	for {
		names, closing := s.nextCheckpoint()
		if len(names) == 0 {
			return
		}
		if phase != nil {
			phase(s, "begin")
		}
		ok := s.checkpoint(names)
		if phase != nil {
			phase(s, "written")
		}
		s.mu.Lock()
		s.working = false
		s.cond.Broadcast()
		s.mu.Unlock()
		if ok {
			backoff = 0
			s.faults.Recovered(faultCheckpoint, "todo: checkpoints written again")
		} else if closing {
			return // the log keeps what the files could not take
		} else {
			// A full disk, say: do not spin on it.
			backoff = min(max(2*backoff, 50*time.Millisecond), 5*time.Second)
			s.sleep(backoff)
		}
		s.dropSegments()
		if phase != nil {
			phase(s, "end")
		}
	}
}

// faultCheckpoint is the kind of fault (see package faults) of failed
// checkpoints.
const faultCheckpoint = "checkpoint"

// maxCheckpoint bounds the lists one checkpoint writes at once.
const maxCheckpoint = 256

// nextCheckpoint waits for lists to checkpoint and returns up to
// maxCheckpoint of them: released lists first, then the lists replayed at
// Open, then, while the log is over its limit, the lists dirty in its
// oldest segment; at Close, every dirty list. It returns none once Close
// has begun and nothing is left.
func (s *dirStore) nextCheckpoint() (names []string, closing bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		switch {
		case len(s.released) > 0:
			names = s.take(&s.released)
		case len(s.recover) > 0:
			names = s.take(&s.recover)
		case s.closing:
			names = s.someDirty()
		case s.bytes > s.limit:
			names = s.dirtyInOldest()
		}
		if len(names) > 0 || s.closing {
			s.working = len(names) > 0
			return names, s.closing
		}
		s.cond.Wait()
	}
}

// waitIdle waits until no checkpoint is due or being written, and the
// temp files of an earlier crash are cleared, for tests that look at the
// files; it reports false if that takes longer than timeout (checkpoints
// that keep failing, say).
func (s *dirStore) waitIdle(timeout time.Duration) bool {
	t := time.AfterFunc(timeout, func() {
		s.mu.Lock()
		s.cond.Broadcast()
		s.mu.Unlock()
	})
	defer t.Stop()
	deadline := time.Now().Add(timeout)
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.working || len(s.released) > 0 || len(s.recover) > 0 {
		if !time.Now().Before(deadline) {
			return false
		}
		s.cond.Wait()
	}
	return true
}

// take takes up to maxCheckpoint names off the front of q. s.mu must be
// held.
func (s *dirStore) take(q *[]string) []string {
	n := min(len(*q), maxCheckpoint)
	names := slices.Clone((*q)[:n])
	*q = (*q)[n:]
	return names
}

// someDirty returns up to maxCheckpoint dirty lists that can be
// checkpointed. s.mu must be held.
func (s *dirStore) someDirty() []string {
	var names []string
	for name := range s.lists {
		if s.corrupt[name] == nil {
			names = append(names, name)
			if len(names) == maxCheckpoint {
				break
			}
		}
	}
	return names
}

// dirtyInOldest returns up to maxCheckpoint lists dirty in the oldest
// segment that holds any. When that segment has none left but is still
// being written, it asks the log to seal it (Roll), so it can go. s.mu
// must be held.
func (s *dirStore) dirtyInOldest() []string {
	for _, si := range s.segs {
		var names []string
		for d := range si.lists {
			if s.corrupt[d.name] == nil {
				names = append(names, d.name)
				if len(names) == maxCheckpoint {
					break
				}
			}
		}
		if len(names) > 0 {
			slices.Sort(names)
			return names
		}
		if len(si.lists) > 0 {
			return nil // corrupt lists hold it: nothing to do but repair
		}
		if !si.sealed {
			// The log calls sealed, which takes s.mu, under its lock.
			s.mu.Unlock()
			s.w.Roll(si.seq)
			s.mu.Lock()
			return nil
		}
	}
	return nil
}

// checkpoint writes the newest committed state of each list to its file
// (atomically, fsynced, as persist.go does) and marks the list clean in
// every segment whose records of it the state holds. It reports whether
// every file was written.
func (s *dirStore) checkpoint(names []string) bool {
	var (
		todo     []string
		states   []ListState
		versions []uint64
		ds       []*dirty
		ok       = true
	)
	for _, name := range names {
		s.mu.Lock()
		d := s.lists[name]
		if d == nil || s.corrupt[name] != nil {
			s.mu.Unlock()
			continue
		}
		loaded := d.loaded
		s.mu.Unlock()
		if !loaded {
			if _, err := s.materialize(context.Background(), name, d); err != nil {
				// Its file is damaged or unreadable: the list stays dirty,
				// and this checkpoint counts as failed, so that the
				// checkpointer backs off, and at Close gives up, instead
				// of picking the list again at once, for ever.
				s.faults.Error(faultCheckpoint, "todo: cannot checkpoint", err, "list", name)
				ok = false
				continue
			}
		}
		s.mu.Lock()
		todo, states, versions, ds = append(todo, name), append(states, d.state), append(versions, d.version), append(ds, d)
		s.mu.Unlock()
	}
	if len(todo) == 0 {
		return ok
	}
	errs := s.f.saveBatch(todo, states, true)
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, name := range todo {
		if errs[i] != nil {
			ok = false
			s.faults.Error(faultCheckpoint, "todo: cannot checkpoint", errs[i], "list", name)
			if ds[i].released {
				s.released = append(s.released, name)
			}
			continue
		}
		s.filesWritten.Add(1)
		s.checkpoints.Add(1)
		if s.written == nil {
			s.written = make(map[string]struct{})
		}
		s.written[name] = struct{}{}
		d := ds[i]
		kept := d.segs[:0]
		for _, sv := range d.segs {
			if sv.version > versions[i] {
				kept = append(kept, sv) // records the checkpoint does not hold
				continue
			}
			if si := s.segInfo(sv.seq); si != nil {
				delete(si.lists, d)
			}
		}
		d.segs = kept
		if len(d.segs) == 0 && s.lists[name] == d {
			delete(s.lists, name)
		}
	}
	return ok
}

// dropSegments deletes the oldest segments while they are sealed and no
// list is dirty in them. Only the oldest: replay must start from a point
// before which every file holds everything.
func (s *dirStore) dropSegments() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.segs) > 0 {
		si := s.segs[0]
		if !si.sealed || len(si.lists) > 0 {
			return
		}
		if err := s.w.Remove(si.seq); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.faults.Error("delete", "todo: cannot delete a log segment", err, "segment", s.w.Path(si.seq))
			return
		}
		s.segs = s.segs[1:]
		s.bytes -= si.size
	}
}

// sleep waits for d, or until Close begins.
func (s *dirStore) sleep(d time.Duration) {
	t := time.AfterFunc(d, func() {
		s.mu.Lock()
		s.cond.Broadcast()
		s.mu.Unlock()
	})
	defer t.Stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	deadline := time.Now().Add(d)
	for !s.closing && time.Now().Before(deadline) {
		s.cond.Wait()
	}
}

// Close checkpoints every dirty list, seals the log and deletes its
// segments, and unlocks the directory. A list whose file cannot be
// written stays in the log, for the next Open to replay.
func (s *dirStore) Close() error {
	// No commit comes any more (the System closed its pool first): seal
	// the log first, which gives back the space preallocated in it, for
	// the checkpoints to use.
	err := logError(s.w.Close())
	s.mu.Lock()
	s.closing = true
	s.cond.Broadcast()
	s.mu.Unlock()
	s.wg.Wait()
	s.dropSegments()
	if n := len(s.lists); n > 0 {
		s.log.Warn("todo: lists left in the log for the next Open", "lists", n, "dir", s.f.dir)
	}
	return errors.Join(err, s.logRoot.Close(), s.f.Close(), s.lock.Close())
}

// StoreStats returns the store's counters (see StatsReporter).
func (s *dirStore) StoreStats() StoreStats {
	st := StoreStats{FilesWritten: s.filesWritten.Load(), Checkpoints: s.checkpoints.Load(), Failures: s.faults.Failures()}
	s.mu.Lock()
	st.LogSegments, st.LogBytes = int64(len(s.segs)), s.bytes
	s.mu.Unlock()
	return st
}

// probeName is the file Probe writes at the top of the data directory,
// where the System looks at nothing but the fan-out directories, the log
// and the lock (see files.walk): one left by a crash is harmless, and
// written over by the next probe.
const probeName = ".store-probe"

// Probe writes a block to a file of its own beside the log, fdatasyncs
// it, and removes it: what a commit needs of the disk, without a record
// for replay to read (see Prober). It fails while the disk is full.
func (s *dirStore) Probe(context.Context) error {
	f, err := s.f.root.OpenFile(probeName, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("todo: probe %s: %w", path.Join(s.f.dir, probeName), err)
	}
	var block [4 << 10]byte
	_, err = f.Write(block[:])
	if err == nil {
		err = syscall.Fdatasync(int(f.Fd()))
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if rerr := s.f.root.Remove(probeName); err == nil && !errors.Is(rerr, fs.ErrNotExist) {
		err = rerr
	}
	if err != nil {
		return fmt.Errorf("todo: probe %s: %w", path.Join(s.f.dir, probeName), err)
	}
	return nil
}

// dirtyNames returns the dirty lists, for tests.
func (s *dirStore) dirtyNames() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.lists))
}
