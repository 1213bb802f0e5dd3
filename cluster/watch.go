package cluster

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/gotodo/todo"
	"github.com/nats-io/nats.go/jetstream"
)

// Watches on a node read the list's change log in the lists' stream,
// where every commit of the list is stored with its events (see codec.go),
// whichever node serves the list: a watch follows the list from any node,
// across a hand-off and the death of the node serving it, and asks that
// node nothing. A watch first reads the tail of the list's log (the last
// snapshot, or an earlier one if the watch starts before it, and the
// messages after it) for the changes after its revision, then follows the
// messages that come with a JetStream ordered consumer on the list's
// subject, which recovers by itself from the loss of a server.
//
// The stream is the watch's history, and its buffer: a slow watch reads
// on from where it is, at its own pace, and never holds up a writer. A
// watch that falls behind the log's compaction (a snapshot makes the
// messages before it go, a minute later) finds the revision after its own
// gone, and ends with an error wrapping todo.ErrTooOld, as does a watch
// from a revision the log no longer holds: the client reads again.

// maxSnapshotsBack bounds how many snapshots a watch from an old revision
// looks back through before it gives up with ErrTooOld.
const maxSnapshotsBack = 8

// watchCounts counts a node's open watches, in all and by list (see
// todo.Options.MaxWatches and MaxListWatches).
type watchCounts struct {
	mu     sync.Mutex // guards the fields below
	total  int
	byList map[string]int
}

// join counts a new watch of list, or refuses it past the limits.
func (c *watchCounts) join(list string, maxTotal, maxList int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.total >= maxTotal:
		return fmt.Errorf("%w: %d are open on this node, the most Options.MaxWatches allows", todo.ErrTooManyWatches, c.total)
	case c.byList[list] >= maxList:
		return fmt.Errorf("%w: list %q has %d on this node, the most Options.MaxListWatches allows", todo.ErrTooManyWatches, list, c.byList[list])
	}
	if c.byList == nil {
		c.byList = make(map[string]int)
	}
	c.total++
	c.byList[list]++
	return nil
}

// leave gives back the place of a watch of list.
func (c *watchCounts) leave(list string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total--
	if c.byList[list]--; c.byList[list] == 0 {
		delete(c.byList, list)
	}
}

// Watch returns the changes of list after revision from (0: from now), in
// order, each once, as todo.Server.Watch does, read from the list's log in
// the stream: wherever the list is served, and across its moves. The
// range ends with ctx's error, with todo.ErrClosed when the node closes,
// with an error wrapping todo.ErrTooOld when the log no longer holds the
// next change (compacted past a watch that lagged, or a gap a crash left
// with Write or Async durability), and with one wrapping
// todo.ErrUnavailable when the stream cannot be read. Watch itself
// refuses a from the log no longer holds, or ahead of the list, with
// todo.ErrTooOld, and a watch past the System options' MaxWatches or
// MaxListWatches, counted on this node, with todo.ErrTooManyWatches.
func (n *Node) Watch(ctx context.Context, list string, from int64) (iter.Seq2[todo.Event, error], error) {
	if err := validName(list); err != nil {
		return nil, err
	}
	if from < 0 || from > todo.MaxRevision {
		return nil, fmt.Errorf("%w: %d is not in 0..%d", todo.ErrInvalidRevision, from, int64(todo.MaxRevision))
	}
	if n.isClosed() {
		return nil, todo.ErrClosed
	}
	if !n.isReady() {
		return nil, ErrNotReady
	}
	maxTotal, maxList := n.opts.System.MaxWatches, n.opts.System.MaxListWatches
	if maxTotal == 0 {
		maxTotal = 10_000
	}
	if maxList == 0 {
		maxList = 1000
	}
	if err := n.watches.join(list, maxTotal, maxList); err != nil {
		return nil, err
	}
	w := &nodeWatch{n: n, list: list, subject: listSubject(list), ctx: ctx}
	if err := w.begin(from); err != nil {
		n.watches.leave(list)
		return nil, err
	}
	w.stopAfter = context.AfterFunc(ctx, w.close) // a watch never ranged over gives its place back
	return w.all, nil
}

// nodeWatch is one watch of a node (see Node.Watch).
type nodeWatch struct {
	n             *Node
	list, subject string
	ctx           context.Context
	// pos is the revision of the last change yielded, or where the watch
	// starts; pending are the changes after it that begin read from the
	// log's tail; next is the stream sequence the consumer starts at.
	pos     int64
	pending []todo.Event
	next    uint64

	closeOnce sync.Once
	stopAfter func() bool
	used      atomic.Bool // ranged over
}

// begin reads the tail of the list's log: where the watch starts, and
// the changes after from that the log holds already. A compaction while
// it reads is met by reading again.
func (w *nodeWatch) begin(from int64) error {
	var err error
	for range 3 {
		if err = w.readTail(from); !errors.Is(err, jetstream.ErrMsgNotFound) {
			return err
		}
	}
	return fmt.Errorf("%w: list %q kept being compacted while a watch read it: %w", todo.ErrUnavailable, w.list, err)
}

// readTail is one try of begin.
func (w *nodeWatch) readTail(from int64) error {
	stream := w.n.stream
	last, err := stream.GetLastMsgForSubject(w.ctx, w.subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		// Never stored: a new list, at revision 1; the consumer reads the
		// subject from its first message, whenever it comes.
		if from > 1 {
			return fmt.Errorf("%w: revision %d of list %q is ahead of the list's, 1: read the list again", todo.ErrTooOld, from, w.list)
		}
		w.pos, w.next = 1, 1
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: watch list %q: %w", todo.ErrUnavailable, w.list, err)
	}
	// The snapshot to read forward from: the base of the last message,
	// or an earlier one while the watch starts before its changes.
	snap := last
	if last.Header.Get(kindHeader) != kindSnapshot {
		base, err := strconv.ParseUint(last.Header.Get(baseHeader), 10, 64)
		if err != nil {
			return fmt.Errorf("%w: list %q, message %d: %w: base %q", todo.ErrCorrupt, w.list, last.Sequence, errBadRecord, last.Header.Get(baseHeader))
		}
		snap = nil
		if base > 0 {
			if snap, err = stream.GetMsg(w.ctx, base); err != nil {
				return err
			}
		}
	}
	for back := 0; snap != nil && from > 0; back++ {
		first, err := firstRevision(snap)
		if err != nil {
			return fmt.Errorf("%w: list %q, message %d: %w", todo.ErrCorrupt, w.list, snap.Sequence, err)
		}
		if from >= first-1 {
			break
		}
		prev, _ := strconv.ParseUint(snap.Header.Get(baseHeader), 10, 64)
		if prev == 0 || back == maxSnapshotsBack {
			return fmt.Errorf("%w: list %q keeps the changes after revision %d, not after %d: read the list again", todo.ErrTooOld, w.list, first-1, from)
		}
		if snap, err = stream.GetMsg(w.ctx, prev); errors.Is(err, jetstream.ErrMsgNotFound) {
			return fmt.Errorf("%w: list %q keeps the changes after revision %d, not after %d: read the list again", todo.ErrTooOld, w.list, first-1, from)
		} else if err != nil {
			return err
		}
	}
	// Read forward from the snapshot (or the subject's start) to last.
	var events []todo.Event
	rev, oldest := int64(0), int64(0)
	seq := uint64(1)
	if snap != nil {
		seq = snap.Sequence
	}
	for seq <= last.Sequence {
		m, err := stream.GetMsg(w.ctx, seq, jetstream.WithGetMsgSubject(w.subject))
		if err != nil {
			return err
		}
		if m.Sequence > last.Sequence {
			break
		}
		seq = m.Sequence + 1
		msgRev, more, err := commitEvents(m)
		if err != nil {
			return fmt.Errorf("%w: list %q, message %d: %w", todo.ErrCorrupt, w.list, m.Sequence, err)
		}
		if len(more) > 0 && oldest == 0 {
			oldest = more[0].Revision - 1
		}
		events = append(events, more...)
		if len(more) > 0 {
			rev = more[len(more)-1].Revision
		} else if rev == 0 {
			rev = msgRev
		}
	}
	if rev == 0 {
		rev = 1 // a log with no revision: written before revisions
	}
	w.next = last.Sequence + 1
	switch {
	case from == 0:
		w.pos = rev
	case from > rev:
		return fmt.Errorf("%w: revision %d of list %q is ahead of the list's, %d: read the list again", todo.ErrTooOld, from, w.list, rev)
	case from < oldest && oldest > 0, oldest == 0 && from < rev:
		return fmt.Errorf("%w: list %q keeps the changes after revision %d, not after %d: read the list again", todo.ErrTooOld, w.list, max(oldest, rev), from)
	default:
		w.pos = from
		for _, ev := range events {
			if ev.Revision > from {
				w.pending = append(w.pending, ev)
			}
		}
	}
	return nil
}

// firstRevision returns the revision of the first change a snapshot
// holds the event of: the commit it stores.
func firstRevision(m *jetstream.RawStreamMsg) (int64, error) {
	rev, events, err := commitEvents(m)
	if err != nil || len(events) == 0 {
		return rev + 1, err
	}
	return events[0].Revision, nil
}

// commitEvents returns the events a message of the list's log holds (a
// snapshot's or a delta's: those of its commit; a marker's: none), and
// the list's revision after it (0 for a marker, or a record written
// before revisions).
func commitEvents(m *jetstream.RawStreamMsg) (int64, []todo.Event, error) {
	switch m.Header.Get(kindHeader) {
	case kindSnapshot:
		st, events, err := decodeSnapshot(m.Data)
		return st.Revision, events, err
	case kindDelta:
		dl, err := decodeDelta(m.Data)
		return dl.rev, dl.events, err
	}
	return 0, nil, nil
}

// all is the range over the watch's changes.
func (w *nodeWatch) all(yield func(todo.Event, error) bool) {
	if !w.used.CompareAndSwap(false, true) {
		yield(todo.Event{}, fmt.Errorf("%w: the watch of list %q was ranged over already", todo.ErrClosed, w.list))
		return
	}
	defer func() {
		w.stopAfter()
		w.close()
	}()
	ctx, cancel := context.WithCancel(w.ctx)
	defer cancel()
	stopOnClose := context.AfterFunc(w.n.ctx, cancel) // the node closes
	defer stopOnClose()

	for _, ev := range w.pending {
		if !yield(ev, nil) {
			return
		}
		w.pos = ev.Revision
	}
	w.pending = nil
	err := w.follow(ctx, yield)
	switch {
	case err == nil:
		return // the loop stopped
	case w.ctx.Err() != nil:
		err = w.ctx.Err()
	case w.n.ctx.Err() != nil:
		err = fmt.Errorf("%w: the node's watch of list %q", todo.ErrClosed, w.list)
	}
	yield(todo.Event{}, err)
}

// follow yields the changes of the messages that come after w.next, until
// the loop stops (nil) or the watch ends (why).
func (w *nodeWatch) follow(ctx context.Context, yield func(todo.Event, error) bool) error {
	cons, err := w.n.js.OrderedConsumer(ctx, listsStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{w.subject},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    w.next,
	})
	if err != nil {
		return fmt.Errorf("%w: watch list %q: %w", todo.ErrUnavailable, w.list, err)
	}
	msgs, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("%w: watch list %q: %w", todo.ErrUnavailable, w.list, err)
	}
	defer msgs.Stop()
	for {
		msg, err := msgs.Next(jetstream.NextContext(ctx))
		if err != nil {
			return fmt.Errorf("%w: watch list %q: %w", todo.ErrUnavailable, w.list, err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("%w: watch list %q: %w", todo.ErrUnavailable, w.list, err)
		}
		raw := &jetstream.RawStreamMsg{Subject: msg.Subject(), Sequence: meta.Sequence.Stream, Header: msg.Headers(), Data: msg.Data()}
		_, events, err := commitEvents(raw)
		if err != nil {
			return fmt.Errorf("%w: list %q, message %d: %w", todo.ErrCorrupt, w.list, raw.Sequence, err)
		}
		for _, ev := range events {
			switch {
			case ev.Revision <= w.pos:
				continue // seen already
			case ev.Revision != w.pos+1:
				return fmt.Errorf("%w: list %q: the log holds revision %d after %d, the watch's: read the list again", todo.ErrTooOld, w.list, ev.Revision, w.pos)
			}
			w.pos = ev.Revision
			if !yield(ev, nil) {
				return nil
			}
		}
	}
}

// close gives back the watch's place among the limits; it is idempotent.
func (w *nodeWatch) close() {
	w.closeOnce.Do(func() { w.n.watches.leave(w.list) })
}
