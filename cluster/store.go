package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gotodo/todo"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// store is the replicated [todo.Store] of a node: each list is one subject
// of the TODO_LISTS stream (replicated on 3 servers that fsync before they
// acknowledge), holding a log of the list's commits, a delta each, compacted
// by snapshots of the whole list (see codec.go).
//
// Every write is fenced: it is published with the sequence the writer last
// saw on the list's subject as the expected last sequence, so a write made
// on a stale view of the list (another node wrote it since) is refused by
// the stream and never stored. A refusal is read again before it is
// believed (a leader change has refused a current sequence here), and a
// write whose answer was lost is settled by looking at what holds the slot
// after the expected sequence, and if nothing does yet, by writing a fence
// marker there: a Change whose Err is set is never stored, now or later.
//
// Between its Load and its release, the store keeps of each list only
// where its log stands (listLog). It is safe for concurrent use, under
// the terms of todo.Store: one commit of a list at a time.
type store struct {
	js           jetstream.JetStream
	stream       jetstream.Stream
	log          *slog.Logger
	ackTimeout   time.Duration // how long one publish waits for its ack
	writeTimeout time.Duration // how long a write is tried before it is settled by a marker
	maxSize      int           // the largest snapshot: todo.Options.MaxFileSize
	maxPayload   int           // the largest message the servers take
	noFence      bool          // the broken twin of the tests: publish without the fence
	batches      atomic.Bool   // the stream takes atomic batches (see batch.go)
	inflight     chan struct{} // a slot for each batch being published: at most maxBatchesInFlight
	batchMsgs    int           // the most messages in a batch: maxBatchMsgs, or a test's
	hdr          sharedHeaders
	// sendBatch publishes a batch: sendBatch, or a test's broken one.
	sendBatch func(ctx context.Context, js jetstream.JetStream, msgs []*nats.Msg) (uint64, error)
	writeID   string // prefix of this store's write ids
	writeSeq  atomic.Uint64

	// lost is called with a list whose fence failed: the node unloads it,
	// in the background. It must not block. released is called when a list left
	// memory.
	lost, released func(list string)

	mu    sync.Mutex // guards lists
	lists map[string]*listLog

	purges   chan purge
	purgeWG  sync.WaitGroup
	closing  chan struct{}
	closeOne sync.Once

	fenceFailures, spuriousRefusals, markers, snapshots atomic.Int64
	batchesStored, batchSplits                          atomic.Int64
}

// listLog is where a loaded list's log stands. It is touched by one
// commit at a time (the System's promise), and by Load before that.
type listLog struct {
	subject    string // the list's subject (see listSubject)
	lastSeq    uint64 // the subject's last sequence as this node last saw it; 0 for none
	base       uint64 // the snapshot the deltas since build on; 0 for none
	deltas     int    // deltas since base
	deltaBytes int
	snapBytes  int
	lost       bool // a fence failed: every commit fails until the list is released
}

// purge is a compaction due: the messages of subject before seq, which a
// snapshot at seq makes useless.
type purge struct {
	subject string
	seq     uint64
	at      time.Time // not before then (see purgeDelay)
}

const (
	// maxDeltas bounds the deltas between snapshots, and so the round
	// trips of a Load.
	maxDeltas = 256
	// minSnapshotBytes: a list smaller than this is snapshotted no more
	// often than every this many bytes of deltas.
	minSnapshotBytes = 4 << 10
	// purgeDelay is how long a compaction waits. A write being settled
	// (see resolve) looks for itself in the slot after the sequence it
	// expected; a purge right after another node's snapshot could remove
	// that slot and make a stored write look lost. Settling takes
	// seconds; a minute leaves room.
	purgeDelay = time.Minute
	// headerRoom is what a message's headers and subject may add to its data.
	headerRoom = 2 << 10
)

// write is one change on its way to the stream.
type write struct {
	change   *todo.Change
	subject  string
	kind     string
	data     []byte
	expected uint64
	base     uint64
	id       string
	start    time.Time
}

func newStore(js jetstream.JetStream, stream jetstream.Stream, o *Options, maxPayload int) *store {
	s := &store{
		js:           js,
		stream:       stream,
		log:          o.Logger,
		ackTimeout:   o.AckTimeout,
		writeTimeout: o.WriteTimeout,
		maxSize:      int(o.System.MaxFileSize),
		maxPayload:   maxPayload,
		writeID:      nuid.Next(),
		lost:         func(string) {},
		released:     func(string) {},
		lists:        make(map[string]*listLog),
		purges:       make(chan purge, 4096),
		closing:      make(chan struct{}),
		inflight:     make(chan struct{}, maxBatchesInFlight),
		sendBatch:    sendBatch,
		batchMsgs:    maxBatchMsgs,
		hdr:          newSharedHeaders(),
	}
	s.purgeWG.Add(1)
	go s.purger()
	return s
}

// Load reads a list: the last message of its subject, the snapshot it
// builds on, and the deltas between.
//
// A read the stream cannot answer for now (it has no leader: after a
// restart, or while it elects one) is tried again, as a write is, until
// ctx ends, or for WriteTimeout when ctx has no deadline (a list's server
// loads with none): a node that has just rejoined answers once its
// stream has a leader, not ErrUnavailable at once.
func (s *store) Load(ctx context.Context, list string) (todo.ListState, error) {
	st, ll, err := s.readPatiently(ctx, list)
	if err != nil {
		return todo.ListState{}, err
	}
	ll.subject = listSubject(list)
	s.mu.Lock()
	s.lists[list] = ll
	s.mu.Unlock()
	return st, nil
}

// readPatiently is read, tried again while the stream is unavailable for
// now (see Load).
func (s *store) readPatiently(ctx context.Context, list string) (todo.ListState, *listLog, error) {
	var until time.Time
	if _, ok := ctx.Deadline(); !ok {
		until = time.Now().Add(s.writeTimeout)
	}
	backoff := 20 * time.Millisecond
	for {
		st, ll, err := s.read(ctx, list)
		if err == nil || !errors.Is(err, errNoLeaderNow) || ctx.Err() != nil || !until.IsZero() && time.Now().After(until) {
			return st, ll, err
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return st, ll, err
		case <-s.closing:
			return st, ll, err
		}
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

// errNoLeaderNow marks a read the stream did not answer for now: nobody
// took it, it timed out, or JetStream said it is unavailable (code 503,
// "JetStream system temporarily unavailable", while it has no leader).
var errNoLeaderNow = errors.New("the lists' stream cannot answer for now")

// readFailed is the error of a read that failed with err, marked
// errNoLeaderNow when trying again may do.
func readFailed(list string, err error) error {
	var apiErr *jetstream.APIError
	switch {
	case errors.As(err, &apiErr):
		if apiErr.Code < 500 {
			return unavailable("load list %q", list, err)
		}
	case errors.Is(err, context.Canceled), errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrConnectionDraining):
		return unavailable("load list %q", list, err)
	}
	return fmt.Errorf("%w: load list %q: %w: %w", todo.ErrUnavailable, list, errNoLeaderNow, err)
}

func (s *store) read(ctx context.Context, list string) (todo.ListState, *listLog, error) {
	subject := listSubject(list)
	// A purge after a newer snapshot may remove the snapshot the last
	// message named while it is read: read again from the new last one.
	for range 5 {
		// The first call is the one that meets a stream with no leader:
		// bounded, so that one JetStream drops is tried again.
		first, cancel := context.WithTimeout(ctx, s.ackTimeout)
		last, err := s.stream.GetLastMsgForSubject(first, subject)
		cancel()
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return todo.ListState{}, &listLog{}, nil
		}
		if err != nil {
			return todo.ListState{}, nil, readFailed(list, err)
		}
		st, ll, err := s.readFrom(ctx, list, last)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		return st, ll, err
	}
	return todo.ListState{}, nil, fmt.Errorf("%w: list %q kept being compacted while it loaded", todo.ErrUnavailable, list)
}

// readFrom rebuilds a list from its last message.
func (s *store) readFrom(ctx context.Context, list string, last *jetstream.RawStreamMsg) (todo.ListState, *listLog, error) {
	ll := &listLog{lastSeq: last.Sequence}
	base, err := strconv.ParseUint(last.Header.Get(baseHeader), 10, 64)
	if err != nil {
		return todo.ListState{}, nil, corrupt(list, last.Sequence, fmt.Errorf("%w: base %q", errBadRecord, last.Header.Get(baseHeader)))
	}
	var st todo.ListState
	if last.Header.Get(kindHeader) == kindSnapshot {
		base = last.Sequence
	}
	if base > 0 {
		snap := last
		if base != last.Sequence {
			if snap, err = s.stream.GetMsg(ctx, base); err != nil {
				return todo.ListState{}, nil, notFoundOr(err, list)
			}
		}
		if snap.Subject != last.Subject || snap.Header.Get(kindHeader) != kindSnapshot {
			return todo.ListState{}, nil, corrupt(list, base, fmt.Errorf("%w: not a snapshot of the list", errBadRecord))
		}
		if st, _, err = decodeSnapshot(snap.Data); err != nil {
			return todo.ListState{}, nil, corrupt(list, base, err)
		}
		ll.base, ll.snapBytes = base, len(snap.Data)
	}
	var ops []todo.Op
	lastID, rev := st.LastID, st.Revision
	for seq := base + 1; seq <= last.Sequence; {
		m, err := s.stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(last.Subject))
		if err != nil {
			return todo.ListState{}, nil, notFoundOr(err, list)
		}
		if m.Sequence > last.Sequence {
			break // written after last was read: a node that lost the list
		}
		seq = m.Sequence + 1
		if m.Header.Get(kindHeader) != kindDelta {
			continue // a marker, or a snapshot some stale writer's chain named
		}
		dl, err := decodeDelta(m.Data)
		if err != nil {
			return todo.ListState{}, nil, corrupt(list, m.Sequence, err)
		}
		ops = append(ops, dl.ops...)
		lastID, rev = max(lastID, dl.lastID), max(rev, dl.rev)
		ll.deltas++
		ll.deltaBytes += len(m.Data)
	}
	st.Entries = replay(st.Entries, ops)
	st.Keys = replayKeys(st.Keys, ops)
	if n := len(st.Entries); n > 0 {
		lastID = max(lastID, st.Entries[n-1].ID)
	}
	st.LastID, st.Revision = lastID, rev
	return st, ll, nil
}

func notFoundOr(err error, list string) error {
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return err
	}
	return readFailed(list, err)
}

func corrupt(list string, seq uint64, err error) error {
	return fmt.Errorf("%w: list %q, message %d of %s: %w", todo.ErrCorrupt, list, seq, listsStream, err)
}

func unavailable(format, list string, err error) error {
	return fmt.Errorf("%w: "+format+": %w", todo.ErrUnavailable, list, err)
}

// Commit publishes the batch's changes, each fenced, in as few atomic
// batches as the server's limits allow (one, nearly always: see batch.go),
// waits for their acknowledgements, and settles what did not come. Every
// write is fsynced by a quorum whatever fsync says: the embedded servers
// run with SyncAlways, which is server-wide.
func (s *store) Commit(ctx context.Context, batch []todo.Change, fsync bool) {
	writes := make([]*write, 0, len(batch))
	for i := range batch {
		c := &batch[i]
		w, err := s.prepare(c)
		if err != nil {
			c.Err = err
			continue
		}
		if w != nil {
			writes = append(writes, w)
		}
	}
	s.publish(writes)
	for i := range batch {
		// A release whose last changes failed for now keeps the list
		// where its log stands: the System tries them again. One lost
		// to another node is let go all the same.
		if c := &batch[i]; c.Release && (c.Err == nil || errors.Is(c.Err, ErrNotOwner)) {
			s.mu.Lock()
			delete(s.lists, c.List)
			s.mu.Unlock()
			s.released(c.List)
		}
	}
}

// prepare makes the write of a change, or returns nil when there is
// nothing to write (a release alone), or why the change cannot be stored.
func (s *store) prepare(c *todo.Change) (*write, error) {
	s.mu.Lock()
	ll := s.lists[c.List]
	s.mu.Unlock()
	switch {
	case c.Release && len(c.Ops) == 0:
		// The ids a list reserved and did not give out (Write and Async
		// durability) are not given back: a gap, never a reuse.
		return nil, nil
	case ll == nil:
		return nil, fmt.Errorf("%w: list %q is not loaded here", ErrNotOwner, c.List)
	case ll.lost:
		return nil, fmt.Errorf("%w: list %q was written by another node", ErrNotOwner, c.List)
	}
	w := &write{change: c, subject: ll.subject, expected: ll.lastSeq, base: ll.base, start: time.Now(), id: s.nextWriteID()}
	delta := encodeDelta(delta{ops: c.Ops, lastID: c.State.LastID, rev: c.State.Revision, events: c.Events})
	if ll.deltas+1 >= maxDeltas || ll.deltaBytes+len(delta) > max(ll.snapBytes, minSnapshotBytes) {
		w.kind, w.data = kindSnapshot, encodeSnapshot(c.State, c.Events)
		if len(w.data) > s.maxSize || len(w.data)+headerRoom > s.maxPayload {
			return nil, fmt.Errorf("%w: list %q is %d bytes, more than %d", todo.ErrTooLarge, c.List, len(w.data), min(s.maxSize, s.maxPayload-headerRoom))
		}
	} else {
		w.kind, w.data = kindDelta, delta
		if len(w.data)+headerRoom > s.maxPayload {
			return nil, fmt.Errorf("%w: a change of list %q is %d bytes", todo.ErrTooLarge, c.List, len(w.data))
		}
	}
	return w, nil
}

// KeepEvents marks the store a todo.EventKeeper: the System hands it the
// events of each change, which its records keep for the watches of every
// node (see watch.go).
func (s *store) KeepEvents() {}

// nextWriteID returns a write id no write of any store had: this store's
// prefix and a count.
func (s *store) nextWriteID() string {
	var buf [64]byte
	b := append(append(buf[:0], s.writeID...), '.')
	return string(strconv.AppendUint(b, s.writeSeq.Add(1), 10))
}

// msg is the message of w's write: its kind, the base it builds on, and its id.
func (w *write) msg(kind string, data []byte, id string) *nats.Msg {
	m := nats.NewMsg(w.subject)
	m.Data = data
	m.Header.Set(kindHeader, kind)
	m.Header.Set(baseHeader, strconv.FormatUint(w.base, 10))
	m.Header.Set(writeHeader, id)
	return m
}

func (s *store) pubOpts(w *write) []jetstream.PublishOpt {
	if s.noFence {
		return nil
	}
	return []jetstream.PublishOpt{jetstream.WithExpectLastSequencePerSubject(w.expected), jetstream.WithExpectStream(listsStream)}
}

// stored records that w is stored at seq.
func (s *store) stored(w *write, seq uint64) {
	s.mu.Lock()
	ll := s.lists[w.change.List]
	s.mu.Unlock()
	ll.lastSeq = seq
	if w.kind == kindSnapshot {
		ll.base, ll.deltas, ll.deltaBytes, ll.snapBytes = seq, 0, 0, len(w.data)
		s.snapshots.Add(1)
		select {
		case s.purges <- purge{w.subject, seq, time.Now().Add(purgeDelay)}:
		default: // the next snapshot purges this one's share too
		}
		return
	}
	ll.deltas++
	ll.deltaBytes += len(w.data)
}
