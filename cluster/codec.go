package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/gotodo/todo"
)

// A list's subject holds three kinds of message, told apart by the
// kindHeader: a snapshot (the whole list), a delta (the operations of one
// commit, over the snapshot named by baseHeader and the deltas between),
// and a fence marker (nothing, written only to settle whether an earlier
// write whose answer was lost landed; see store.resolve). Every message
// also names the snapshot it builds on, so that a reader that finds any
// message last knows where to start.
const (
	kindHeader  = "Todo-Kind"  // kindSnapshot, kindDelta or kindMarker
	baseHeader  = "Todo-Base"  // sequence of the snapshot the message builds on; 0 for none
	writeHeader = "Todo-Write" // unique id of the write, to recognise it when its ack was lost

	kindSnapshot = "snap"
	kindDelta    = "delta"
	kindMarker   = "mark"
)

// codecVersion is what the encoders write: 2 added the idempotency keys
// of operations (op kinds 2 and 3) and of snapshots (after the entries),
// and later op kind 4, which changed no layout; 3 added, after the rest,
// the list's revision after the commit and the commit's events (see
// appendEvents), which watches on any node read (see watch.go). Versions
// 1 and 2 are still read: at revision 0 (the System takes the list's
// last id + 1) and with no events.
const codecVersion = 3

// errBadRecord is wrapped by every decoding error, which names the list.
var errBadRecord = errors.New("bad record")

func appendEntry(b []byte, e todo.Entry) []byte {
	b = binary.AppendUvarint(b, uint64(e.ID))
	b = binary.AppendUvarint(b, uint64(e.Date.Year))
	b = append(b, byte(e.Date.Month), byte(e.Date.Day))
	b = binary.AppendUvarint(b, uint64(len(e.Title)))
	return append(b, e.Title...)
}

// encodeSnapshot encodes a whole list, and the events of the commit the
// snapshot stores: a snapshot takes the place of that commit's delta.
func encodeSnapshot(st todo.ListState, events []todo.Event) []byte {
	n := 32
	for _, e := range st.Entries {
		n += 16 + len(e.Title)
	}
	for _, ev := range events {
		n += 24 + len(ev.Entry.Title)
	}
	b := make([]byte, 0, n)
	b = append(b, codecVersion)
	b = binary.AppendUvarint(b, uint64(st.LastID))
	b = binary.AppendUvarint(b, uint64(len(st.Entries)))
	for _, e := range st.Entries {
		b = appendEntry(b, e)
	}
	b = binary.AppendUvarint(b, uint64(len(st.Keys)))
	for _, op := range st.Keys {
		b = appendOp(b, op)
	}
	return appendEvents(b, st.Revision, events)
}

// appendEvents appends the list's revision after a commit and the
// commit's events: their count, then each one's kind (1 added, 2 updated,
// 3 deleted), revision, and entry (as the change left it; as it was, for a
// delete).
func appendEvents(b []byte, rev int64, events []todo.Event) []byte {
	b = binary.AppendUvarint(b, uint64(max(rev, 0)))
	b = binary.AppendUvarint(b, uint64(len(events)))
	for _, ev := range events {
		b = append(b, byte(ev.Kind))
		b = binary.AppendUvarint(b, uint64(ev.Revision))
		b = appendEntry(b, ev.Entry)
	}
	return b
}

// appendOp appends an operation: a kind byte (0 put, 1 delete, 2 put with
// an idempotency key, 3 delete with one, 4 the put of an update with one:
// todo.Op.Update), the entry or the id, then the key if any. Records
// written before kind 4 read their keyed puts as adds', as the data
// directory's do.
func appendOp(b []byte, op todo.Op) []byte {
	kind := byte(0)
	if op.Delete {
		kind = 1
	}
	if op.Key != "" {
		kind += 2
		if op.Update && !op.Delete {
			kind = 4
		}
	}
	b = append(b, kind)
	if op.Delete {
		b = binary.AppendUvarint(b, uint64(op.Entry.ID))
	} else {
		b = appendEntry(b, op.Entry)
	}
	if op.Key != "" {
		b = binary.AppendUvarint(b, uint64(len(op.Key)))
		b = append(b, op.Key...)
	}
	return b
}

// delta is what a delta holds: the operations of one commit, and the
// list's LastID and revision after them (0 in a record of version 1 or
// 2), and the commit's events (none in those).
type delta struct {
	ops    []todo.Op
	lastID int
	rev    int64
	events []todo.Event
}

// encodeDelta encodes a delta.
func encodeDelta(dl delta) []byte {
	ops := dl.ops
	n := 32
	for _, op := range ops {
		n += 17 + len(op.Entry.Title)
	}
	for _, ev := range dl.events {
		n += 24 + len(ev.Entry.Title)
	}
	b := make([]byte, 0, n)
	b = append(b, codecVersion)
	b = binary.AppendUvarint(b, uint64(dl.lastID))
	b = binary.AppendUvarint(b, uint64(len(ops)))
	for _, op := range ops {
		b = appendOp(b, op)
	}
	return appendEvents(b, dl.rev, dl.events)
}

// decoder reads what the encoders wrote, refusing anything that does not
// fit: a count larger than the bytes left could hold, a title running past
// the end, an id or year out of range, trailing bytes.
type decoder struct {
	b       []byte
	err     error
	version byte
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", errBadRecord, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) uvarint(what string, max uint64) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("truncated %s", what)
		return 0
	}
	if v > max {
		d.fail("%s %d over %d", what, v, max)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte(what string) byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.fail("truncated %s", what)
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) header() (lastID int, count int) {
	if d.version = d.byte("version"); d.err == nil && (d.version < 1 || d.version > codecVersion) {
		d.fail("version %d, want 1 to %d", d.version, codecVersion)
	}
	lastID = int(d.uvarint("last id", todo.MaxID))
	// Every entry takes at least 5 bytes: a count past that is a lie.
	count = int(d.uvarint("count", uint64(len(d.b))))
	return lastID, count
}

func (d *decoder) entry() todo.Entry {
	var e todo.Entry
	e.ID = int(d.uvarint("id", todo.MaxID))
	e.Date.Year = int(d.uvarint("year", 9999))
	e.Date.Month = time.Month(d.byte("month"))
	e.Date.Day = int(d.byte("day"))
	e.Title = d.bytes("title")
	return e
}

// bytes reads a length and that many bytes, which must be there.
func (d *decoder) bytes(what string) string {
	n := d.uvarint(what+" length", 1<<31)
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) {
		d.fail("%s of %d bytes, %d left", what, n, len(d.b))
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) end() error {
	if d.err == nil && len(d.b) > 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	return d.err
}

// decodeSnapshot decodes a whole list, and the events of the commit it
// stores; its entries must be in strictly increasing id order.
func decodeSnapshot(b []byte) (todo.ListState, []todo.Event, error) {
	d := decoder{b: b}
	lastID, n := d.header()
	st := todo.ListState{LastID: lastID}
	if n > 0 && d.err == nil {
		st.Entries = make([]todo.Entry, 0, n)
	}
	for i := 0; i < n && d.err == nil; i++ {
		e := d.entry()
		if i > 0 && e.ID <= st.Entries[i-1].ID {
			d.fail("id %d after id %d", e.ID, st.Entries[i-1].ID)
		}
		st.Entries = append(st.Entries, e)
	}
	if d.version >= 2 && d.err == nil {
		n := int(d.uvarint("key count", todo.MaxKeys))
		for i := 0; i < n && d.err == nil; i++ {
			if op := d.op(); op.Key != "" {
				st.Keys = append(st.Keys, op)
			} else {
				d.fail("a kept operation with no key")
			}
		}
	}
	var events []todo.Event
	st.Revision, events = d.events()
	return st, events, d.end()
}

// events reads what appendEvents wrote, in a record of version 3 or
// later: revision 0 and no events in one before.
func (d *decoder) events() (int64, []todo.Event) {
	if d.version < 3 || d.err != nil {
		return 0, nil
	}
	rev := int64(d.uvarint("revision", todo.MaxRevision))
	// Every event takes at least 7 bytes: a count past that is a lie.
	n := int(d.uvarint("event count", uint64(len(d.b))))
	var events []todo.Event
	if n > 0 && d.err == nil {
		events = make([]todo.Event, 0, n)
	}
	for i := 0; i < n && d.err == nil; i++ {
		ev := todo.Event{Kind: todo.EventKind(d.byte("event kind"))}
		if ev.Kind < todo.Added || ev.Kind > todo.Deleted {
			d.fail("event kind %d", ev.Kind)
		}
		ev.Revision = int64(d.uvarint("event revision", todo.MaxRevision))
		ev.Entry = d.entry()
		if d.err == nil && (ev.Revision < 2 || i > 0 && ev.Revision != events[i-1].Revision+1 || ev.Revision > rev) {
			d.fail("event of revision %d out of order (revision %d after the commit)", ev.Revision, rev)
		}
		events = append(events, ev)
	}
	return rev, events
}

// op reads what appendOp wrote.
func (d *decoder) op() todo.Op {
	var op todo.Op
	kind := d.byte("operation")
	switch kind {
	case 0, 2, 4:
		op.Entry = d.entry()
		op.Update = kind == 4
	case 1, 3:
		op.Entry.ID, op.Delete = int(d.uvarint("id", todo.MaxID)), true
	default:
		d.fail("operation kind %d", kind)
		return op
	}
	if kind >= 2 {
		if op.Key = d.bytes("key"); d.err == nil && op.Key == "" {
			d.fail("an empty idempotency key")
		}
	}
	return op
}

// decodeDelta decodes a delta.
func decodeDelta(b []byte) (delta, error) {
	d := decoder{b: b}
	var dl delta
	var n int
	dl.lastID, n = d.header()
	for i := 0; i < n && d.err == nil; i++ {
		dl.ops = append(dl.ops, d.op())
	}
	dl.rev, dl.events = d.events()
	return dl, d.end()
}

// replayKeys returns the idempotency keys a list keeps after ops: those
// it kept, and the keyed ops not among them, the last todo.MaxKeys, as
// todo.List keeps them.
func replayKeys(keys []todo.Op, ops []todo.Op) []todo.Op {
	for _, op := range ops {
		if op.Key == "" || slices.ContainsFunc(keys, func(k todo.Op) bool { return k.Key == op.Key }) {
			continue
		}
		keys = append(keys, op)
		if len(keys) > todo.MaxKeys {
			keys = keys[len(keys)-todo.MaxKeys:]
		}
	}
	return keys
}

// replay applies ops, in order, to the entries of a list (in id order,
// owned by the caller) and returns the result in id order. Operations are
// idempotent puts and deletes by id, so only the last one of each id
// counts: they are folded into a map, then merged with the entries in one
// pass, which costs O(n + m log m) however long the chain of deltas.
func replay(entries []todo.Entry, ops []todo.Op) []todo.Entry {
	if len(ops) == 0 {
		return entries
	}
	last := make(map[int]todo.Op, len(ops))
	for _, op := range ops {
		last[op.Entry.ID] = op
	}
	out := make([]todo.Entry, 0, len(entries)+len(last))
	for _, e := range entries {
		op, ok := last[e.ID]
		if !ok {
			out = append(out, e)
			continue
		}
		delete(last, e.ID)
		if !op.Delete {
			out = append(out, op.Entry)
		}
	}
	var added []todo.Entry
	for _, op := range last {
		if !op.Delete {
			added = append(added, op.Entry)
		}
	}
	if len(added) == 0 {
		return out
	}
	slices.SortFunc(added, func(a, b todo.Entry) int { return a.ID - b.ID })
	// New ids are nearly always above every stored one: append then, and
	// merge only when they are not.
	if len(out) == 0 || added[0].ID > out[len(out)-1].ID {
		return append(out, added...)
	}
	merged := make([]todo.Entry, 0, len(out)+len(added))
	i, j := 0, 0
	for i < len(out) && j < len(added) {
		if out[i].ID < added[j].ID {
			merged = append(merged, out[i])
			i++
		} else {
			merged = append(merged, added[j])
			j++
		}
	}
	merged = append(merged, out[i:]...)
	return append(merged, added[j:]...)
}
