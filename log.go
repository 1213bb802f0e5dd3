package todo

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
)

// The log is where a commit lands: an append-only sequence of records, one
// per list's change, in segment files under dir/log/. A commit appends its
// records in one write and one fdatasync (group commit); the list files
// are written later, by checkpoints, off the acknowledgement path.
//
// The log is written in lanes, each with its own active segment, so that
// commits of lists in different lanes fsync in parallel (the disk takes
// concurrent flushes nearly as fast as one). A list always goes to the
// same lane, so its records are in order within the lane; segments are
// numbered across lanes by a sequence that only grows, and replay reads
// them in that order, so a list's records replay in order even when an
// earlier run put them in another lane.
//
// A segment starts with a 16-byte header: "TODOLG", the format version,
// the lane, and the segment's sequence number, big-endian. Records follow:
//
//	bodyLen  uint32  length of the body
//	bodyCRC  uint32  CRC-32C of the body
//	headCRC  uint32  CRC-32C of the segment's sequence number, bodyLen, bodyCRC and the list's name
//	body     msgpack [name, lastID, [op...]]; op: [id, yyyymmdd, title] puts an entry, [id] deletes one,
//	         each with the request's idempotency key after it when it had one
//
// headCRC lets a damaged record be told apart: when it holds, the length
// and the name can be trusted though the body is damaged, so the damage
// is reported for that list alone and the next record found; and a record
// left by an earlier use of the file never passes it, its sequence number
// being another.

const (
	logDir        = "log"
	segSuffix     = ".seg"
	segMagic      = "TODOLG"
	segVersion    = 1
	segHeaderSize = 16
	recHeaderSize = 12
)

// segment is one file of the log.
type segment struct {
	seq  uint64
	lane int
	name string // its path relative to the data directory

	// Owned by the lane while the segment is active.
	file     *os.File
	size     int64 // bytes of the header and the records written
	unsynced bool  // records were written and not fdatasynced
	// alloc is how far the file is zero-filled and fdatasynced (see
	// preallocate); records written below it overwrite zeros.
	alloc atomic.Int64
}

// segName returns the path of the segment with sequence number seq.
func segName(seq uint64) string {
	return path.Join(logDir, fmt.Sprintf("%016x%s", seq, segSuffix))
}

// segSeqOf parses a segment's file name; ok is false for any other name.
func segSeqOf(base string) (uint64, bool) {
	hex, ok := strings.CutSuffix(base, segSuffix)
	if !ok || len(hex) != 16 {
		return 0, false
	}
	seq, err := strconv.ParseUint(hex, 16, 64)
	return seq, err == nil
}

// encodeRecord appends the record of a change to b, with headCRC left
// zero: the segment it lands in is known only when it is written (see
// sealRecords).
func encodeRecord(b []byte, c *Change) []byte {
	start := len(b)
	b = append(b, make([]byte, recHeaderSize)...)
	body := len(b)
	b = appendArrayLen(b, 3)
	b = appendString(b, c.List)
	b = appendUint(b, uint64(c.State.LastID))
	b = appendArrayLen(b, len(c.Ops))
	for _, op := range c.Ops {
		b = appendOp(b, op)
	}
	binary.BigEndian.PutUint32(b[start:], uint32(len(b)-body))
	binary.BigEndian.PutUint32(b[start+4:], crc32.Checksum(b[body:], castagnoli))
	return b
}

// sealRecords fills in the headCRC of every record in buf for the segment
// seq.
func sealRecords(buf []byte, seq uint64) {
	for len(buf) > 0 {
		n := recHeaderSize + int(binary.BigEndian.Uint32(buf))
		name, _ := recordName(buf[recHeaderSize:n])
		binary.BigEndian.PutUint32(buf[8:], headCRC(seq, buf[:8], name))
		buf = buf[n:]
	}
}

func headCRC(seq uint64, lenAndCRC []byte, name []byte) uint32 {
	var s [8]byte
	binary.BigEndian.PutUint64(s[:], seq)
	h := crc32.Update(0, castagnoli, s[:])
	h = crc32.Update(h, castagnoli, lenAndCRC)
	return crc32.Update(h, castagnoli, name)
}

// recordName returns the list name at the start of a record's body, where
// encodeRecord puts it, without decoding the rest.
func recordName(body []byte) ([]byte, bool) {
	if len(body) < 2 || body[0] != 0x93 {
		return nil, false
	}
	n, at := 0, 2
	switch c := body[1]; {
	case c&0xe0 == 0xa0:
		n = int(c & 0x1f)
	case c == 0xd9 && len(body) > 2:
		n, at = int(body[2]), 3
	default:
		return nil, false
	}
	if at+n > len(body) {
		return nil, false
	}
	return body[at : at+n], true
}

// decodeRecord reads a record's body: the list's last id and its ops.
func decodeRecord(body []byte) (lastID int, ops []Op, err error) {
	r := reader{b: body}
	if n := r.arrayLen(); n != 3 && r.err == nil {
		return 0, nil, fmt.Errorf("array of %d, want 3", n)
	}
	r.str()
	last := r.uint()
	n := r.arrayLen()
	switch {
	case r.err != nil:
		return 0, nil, r.err
	case last > MaxID:
		return 0, nil, fmt.Errorf("last id %d out of range 0..%d", last, MaxID)
	case n > len(r.b)/2: // an op takes at least two bytes
		return 0, nil, fmt.Errorf("claims %d operations in %d bytes", n, len(body))
	}
	ops = make([]Op, 0, n)
	for range n {
		ops = append(ops, r.op(MaxID))
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%d bytes after the record", len(r.b))
	}
	return int(last), ops, r.err
}

// lane is one writer of the log: its active segment, and the group of
// records waiting for the next write. Commits join the forming group; the
// first to find no write in progress writes the whole group (the leader),
// while the others wait for its outcome.
type lane struct {
	l  *wal
	id int

	// mu guards the fields below; cond is broadcast when a write ends.
	mu      sync.Mutex
	cond    sync.Cond
	writing bool   // a leader is writing
	forming *group // the records of the next write
	seg     *segment
	// broken is set when a failed write could not be cut off the
	// segment's end: nothing is written until it can.
	broken error
	// roll asks for a new segment before the next write.
	roll bool

	// The preallocation in progress, if any (see preallocate): preBusy
	// is set while it runs, from preStart on.
	pre      sync.WaitGroup
	preBusy  atomic.Bool
	preStart int64 // owned by the leader
}

// group is the records of one write, from any number of commits.
type group struct {
	buf     []byte
	sync    bool
	written []func(seq uint64) // each commit's, called by the leader once the write succeeded
	done    bool
	seq     uint64 // the segment written to
	err     error
}

// wal is the set of lanes, and what they share.
type wal struct {
	f       *files // the data directory
	lanes   []*lane
	segSize int64
	zeros   []byte // preallocChunk of them, for preallocate

	mu      sync.Mutex // guards nextSeq
	nextSeq uint64
	// created is called, under no lock of the wal, with each segment the
	// lanes start, before anything is written to it; sealed with each one
	// they stop writing to.
	created, sealed func(*segment)
}

// append writes the records in recs (encoded by encodeRecord) to the
// lane, in one write with any other commit's records waiting at the same
// time, fdatasynced if sync is set. Once the write succeeded, and before
// the segment it landed in can be sealed, it calls written with that
// segment's sequence number.
func (ln *lane) append(recs []byte, sync bool, written func(seq uint64)) error {
	ln.mu.Lock()
	g := ln.forming
	if g == nil {
		g = &group{}
		ln.forming = g
	}
	g.buf = append(g.buf, recs...)
	g.sync = g.sync || sync
	g.written = append(g.written, written)
	for !g.done {
		if ln.writing {
			ln.cond.Wait()
			continue
		}
		// Lead: write the forming group, which holds ours.
		lead := ln.forming
		ln.forming = nil
		ln.writing = true
		ln.mu.Unlock()
		seq, err := ln.write(lead.buf, lead.sync)
		if err == nil {
			// Still writing: no one can seal the segment before every
			// commit in the group has noted where its records are.
			for _, fn := range lead.written {
				fn(seq)
			}
		}
		ln.mu.Lock()
		ln.writing = false
		lead.seq, lead.err, lead.done = seq, err, true
		ln.cond.Broadcast()
	}
	ln.mu.Unlock()
	return g.err
}

// write writes buf to the end of the active segment, starting a new one
// first when it is full or asked for, and fdatasyncs it if sync is set.
// A failed write is cut off the segment, so that nothing after it follows
// a torn or unacknowledged record. Only the leader calls it.
func (ln *lane) write(buf []byte, sync bool) (uint64, error) {
	if ln.broken != nil {
		if err := ln.cut(); err != nil {
			return 0, err
		}
	}
	seg := ln.seg
	if seg == nil || ln.roll || seg.size > segHeaderSize && seg.size+int64(len(buf)) > ln.l.segSize {
		var err error
		if seg, err = ln.next(); err != nil {
			return 0, err
		}
	}
	sealRecords(buf, seg.seq)
	if ln.preBusy.Load() && seg.size+int64(len(buf)) > ln.preStart {
		ln.pre.Wait() // never write where zeros are being written
	}
	_, err := seg.file.WriteAt(buf, seg.size)
	if err == nil && sync {
		err = fdatasync(seg.file)
	}
	if err != nil {
		err = fmt.Errorf("todo: log segment %s: %w", path.Join(ln.l.f.dir, seg.name), err)
		ln.broken = err
		ln.cut() // clears broken if it can; the next write tries again if not
		return 0, err
	}
	seg.size += int64(len(buf))
	seg.unsynced = !sync
	ln.preallocate(seg)
	return seg.seq, nil
}

// preallocChunk is how much of a segment is zero-filled at a time.
const preallocChunk = 1 << 20

// preallocate zero-fills the next stretch of the active segment and
// fdatasyncs it, on a goroutine of its own, when what is left of the last
// stretch runs low. On this disk an fdatasync after a write over zeros
// that are already on disk takes two thirds of one after an append, which
// must also commit the file's new size and blocks. The zeros mark where
// the records end (see replaySegment). A stretch takes at most an eighth
// of the space left on the disk, so that a small or nearly full disk
// keeps room for checkpoints; a preallocation that fails gives its space
// back and is no failure: the writes past it append. Only the leader
// calls it.
func (ln *lane) preallocate(seg *segment) {
	chunk := min(preallocChunk, ln.l.segSize/4)
	alloc := seg.alloc.Load()
	if ln.preBusy.Load() || alloc-seg.size >= chunk/2 || alloc >= ln.l.segSize+chunk {
		return
	}
	var fs syscall.Statfs_t
	if syscall.Fstatfs(int(seg.file.Fd()), &fs) != nil {
		return
	}
	if chunk = min(chunk, int64(fs.Bavail)*fs.Bsize/8); chunk < 4<<10 {
		return
	}
	start := max(alloc, seg.size)
	ln.preStart = start
	ln.preBusy.Store(true)
	ln.pre.Add(1)
	go func() {
		defer ln.pre.Done()
		defer ln.preBusy.Store(false)
		_, err := seg.file.WriteAt(ln.l.zeros[:chunk], start)
		if err == nil {
			err = fdatasync(seg.file)
		}
		if err != nil {
			seg.file.Truncate(start) // give the space back; nothing of value lies past start
			return
		}
		seg.alloc.Store(start + chunk)
	}()
}

// seal closes a segment the lane is done with, fdatasynced, with the
// zeros preallocated past its records cut off, to give their space back.
// The caller has waited for the preallocation in progress.
func (ln *lane) seal(seg *segment) error {
	var err error
	if seg.alloc.Load() > seg.size {
		err = seg.file.Truncate(seg.size)
		seg.unsynced = true
	}
	if err == nil && seg.unsynced {
		err = fdatasync(seg.file)
	}
	if cerr := seg.file.Close(); err == nil {
		err = cerr
	}
	seg.file = nil
	ln.seg = nil
	ln.l.sealed(seg)
	if err != nil {
		return fmt.Errorf("todo: log segment %s: %w", path.Join(ln.l.f.dir, seg.name), err)
	}
	return nil
}

// cut cuts the active segment back to its last good record after a failed
// write, fsynced, and clears broken when it could.
func (ln *lane) cut() error {
	seg := ln.seg
	ln.pre.Wait()
	seg.alloc.Store(seg.size)
	err := seg.file.Truncate(seg.size)
	if err == nil {
		err = seg.file.Sync()
	}
	if err != nil {
		return fmt.Errorf("%w (and cutting it back failed: %v)", ln.broken, err)
	}
	ln.broken = nil
	return nil
}

// next seals the active segment, if any, and starts a new one.
func (ln *lane) next() (*segment, error) {
	ln.pre.Wait()
	if old := ln.seg; old != nil {
		if err := ln.seal(old); err != nil {
			return nil, err
		}
	}
	seg, err := ln.l.create(ln.id)
	if err != nil {
		return nil, err
	}
	ln.seg, ln.roll = seg, false
	ln.preallocate(seg)
	return seg, nil
}

// rollIfIdle seals the lane's active segment now if it is seq and no
// write is in progress, or asks for it before the next write otherwise;
// a checkpoint that has emptied the oldest segment needs it sealed to
// delete it. It reports whether it sealed it.
func (ln *lane) rollIfIdle(seq uint64) bool {
	ln.mu.Lock()
	defer ln.mu.Unlock()
	seg := ln.seg
	if seg == nil || seg.seq != seq {
		return false
	}
	if ln.writing || ln.broken != nil || ln.preBusy.Load() {
		ln.roll = true
		return false
	}
	if ln.seal(seg) != nil {
		ln.roll = true // the next write tries a new segment
		return false
	}
	return true
}

// create makes a new segment for a lane: its header written and fsynced,
// and the log directory fsynced, so that it cannot vanish in a crash with
// the records about to be acknowledged in it.
func (l *wal) create(lane int) (*segment, error) {
	l.mu.Lock()
	seq := l.nextSeq
	l.nextSeq++
	l.mu.Unlock()
	seg := &segment{seq: seq, lane: lane, name: segName(seq), size: segHeaderSize}
	seg.alloc.Store(segHeaderSize)
	full := path.Join(l.f.dir, seg.name)
	file, err := l.f.root.OpenFile(seg.name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("todo: log segment %s: %w", full, err)
	}
	var h [segHeaderSize]byte
	copy(h[:], segMagic)
	h[6], h[7] = segVersion, byte(lane)
	binary.BigEndian.PutUint64(h[8:], seq)
	_, err = file.Write(h[:])
	if err == nil {
		err = file.Sync()
	}
	if err == nil {
		err = l.f.syncDir(logDir)
	}
	if err != nil {
		file.Close()
		l.f.root.Remove(seg.name)
		return nil, fmt.Errorf("todo: log segment %s: %w", full, err)
	}
	seg.file = file
	l.created(seg)
	return seg, nil
}

// close seals every lane's active segment.
func (l *wal) close() error {
	var errs []error
	for _, ln := range l.lanes {
		ln.mu.Lock()
		ln.pre.Wait()
		if seg := ln.seg; seg != nil {
			errs = append(errs, ln.seal(seg))
		}
		ln.mu.Unlock()
	}
	return errors.Join(errs...)
}

func fdatasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			if err != nil {
				return &fs.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
			}
			return nil
		}
	}
}

// A replayed record: where it is, whose it is (a slice of the segment's
// data, as the body is), and its body.
type logRecord struct {
	seg  *segment
	off  int64
	list []byte
	body []byte
}

// replay reads every segment of the log in sequence order and calls rec
// with each record whose header holds, and bad with each one whose body
// is damaged (its list is known: the header holds). A torn record at the
// end of a lane's last segment, the trace of a crash in the middle of a
// write that was never acknowledged, is cut off the file. Damage that
// cannot be put down to one list (a damaged header followed by good
// records) is an error wrapping ErrCorrupt that names the segment and the
// offset. It returns the segments found, in order.
func (l *wal) replay(rec func(logRecord), bad func(logRecord, error)) ([]*segment, error) {
	ents, err := fs.ReadDir(l.f.root.FS(), logDir)
	if errors.Is(err, fs.ErrNotExist) {
		if err := l.f.root.Mkdir(logDir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("todo: %s: %w", path.Join(l.f.dir, logDir), err)
		}
		return nil, l.f.syncDir(".")
	}
	if err != nil {
		return nil, fmt.Errorf("todo: %s: %w", path.Join(l.f.dir, logDir), err)
	}
	var segs []*segment
	for _, e := range ents {
		if seq, ok := segSeqOf(e.Name()); ok && e.Type().IsRegular() {
			segs = append(segs, &segment{seq: seq, name: segName(seq)})
		}
	}
	slices.SortFunc(segs, func(a, b *segment) int { return cmpUint(a.seq, b.seq) })
	// A lane's last segment is the only one of its lane a crash can have
	// left torn: the others were sealed, fdatasynced, before it began.
	last := make(map[int]*segment)
	kept := make([]*segment, 0, len(segs))
	var datas [][]byte
	for i, seg := range segs {
		l.nextSeq = max(l.nextSeq, seg.seq+1)
		data, err := l.readSegment(seg)
		if errors.Is(err, ErrCorrupt) && l.unborn(data, len(segs)-1-i) {
			full := path.Join(l.f.dir, seg.name)
			if err := l.f.root.Remove(seg.name); err != nil {
				return nil, fmt.Errorf("todo: log segment %s: %w", full, err)
			}
			if err := l.f.syncDir(logDir); err != nil {
				return nil, fmt.Errorf("todo: log segment %s: %w", full, err)
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		kept, datas = append(kept, seg), append(datas, data)
		last[seg.lane] = seg
	}
	segs = kept
	for i, seg := range segs {
		if err := l.replaySegment(seg, datas[i], last[seg.lane] == seg, rec, bad); err != nil {
			return nil, err
		}
	}
	return segs, nil
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// readSegment reads a segment whole and checks its header. When the
// header is wrong it returns what it read with the error.
func (l *wal) readSegment(seg *segment) ([]byte, error) {
	full := path.Join(l.f.dir, seg.name)
	data, err := fs.ReadFile(l.f.root.FS(), seg.name)
	if err != nil {
		return nil, fmt.Errorf("todo: log segment %s: %w", full, err)
	}
	if len(data) < segHeaderSize || string(data[:6]) != segMagic || data[6] != segVersion ||
		binary.BigEndian.Uint64(data[8:]) != seg.seq {
		return data, fmt.Errorf("%w: log segment %s: not a version %d segment numbered %d", ErrCorrupt, full, segVersion, seg.seq)
	}
	seg.lane = int(data[7])
	seg.size = int64(len(data))
	return data, nil
}

// unborn reports whether a segment whose header is wrong, data, with
// newer segments after it, is one whose creation a crash cut short, for
// replay to remove: a file shorter than a header, or of zeros alone, with
// fewer newer segments than there are lanes (each lane may have been
// creating one). create writes and fsyncs a segment's header, and the
// directory, before any record goes in it, so such a file holds nothing
// that was acknowledged. Anywhere else, or with anything else in it, a
// wrong header is damage.
func (l *wal) unborn(data []byte, newer int) bool {
	return newer < len(l.lanes) && (len(data) < segHeaderSize || isZero(data))
}

// replaySegment replays one segment's records; see replay.
func (l *wal) replaySegment(seg *segment, data []byte, lastOfLane bool, rec func(logRecord), bad func(logRecord, error)) error {
	full := path.Join(l.f.dir, seg.name)
	off := segHeaderSize
	for off < len(data) {
		r, n, err := l.readRecord(seg, data, off)
		if err == nil {
			rec(r)
			off += n
			continue
		}
		// Something is wrong at off. If no good record follows, it is the
		// end of what was written: zeros, or a torn write in a lane's
		// last segment.
		if !l.goodRecordAfter(seg, data, off+1) {
			if isZero(data[off:]) {
				break
			}
			if lastOfLane {
				if terr := l.cutTorn(seg, int64(off)); terr != nil {
					return fmt.Errorf("todo: log segment %s: cutting the torn record at offset %d: %w", full, off, terr)
				}
				break
			}
		}
		if n == 0 { // the header does not hold: whose record it was cannot be known
			return fmt.Errorf("%w: log segment %s: damaged record header at offset %d: the list it belongs to cannot be known (todo check -repair sets the segment aside)",
				ErrCorrupt, full, off)
		}
		bad(r, fmt.Errorf("%w: log segment %s: damaged record at offset %d: %v", ErrCorrupt, full, off, err))
		off += n
	}
	seg.size = int64(off)
	return nil
}

// cutTorn cuts a segment at off, fsynced.
func (l *wal) cutTorn(seg *segment, off int64) error {
	f, err := l.f.root.OpenFile(seg.name, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	err = f.Truncate(off)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// readRecord reads the record at off. On an error, n is the record's
// length if its header holds (the record can be skipped and blamed on
// r.list), or 0.
func (l *wal) readRecord(seg *segment, data []byte, off int) (r logRecord, n int, err error) {
	if len(data)-off < recHeaderSize {
		return r, 0, errors.New("truncated header")
	}
	h := data[off : off+recHeaderSize]
	bodyLen := int(binary.BigEndian.Uint32(h))
	if bodyLen > len(data)-off-recHeaderSize {
		return r, 0, fmt.Errorf("record of %d bytes", bodyLen)
	}
	body := data[off+recHeaderSize : off+recHeaderSize+bodyLen]
	name, ok := recordName(body)
	if !ok || headCRC(seg.seq, h[:8], name) != binary.BigEndian.Uint32(h[8:]) {
		return r, 0, errors.New("header checksum mismatch")
	}
	r = logRecord{seg: seg, off: int64(off), list: name, body: body}
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(h[4:]) {
		return r, recHeaderSize + bodyLen, errors.New("checksum mismatch")
	}
	return r, recHeaderSize + bodyLen, nil
}

// goodRecordAfter reports whether a whole, good record starts anywhere in
// data at or after from.
func (l *wal) goodRecordAfter(seg *segment, data []byte, from int) bool {
	for off := from; off+recHeaderSize <= len(data); off++ {
		if _, _, err := l.readRecord(seg, data, off); err == nil {
			return true
		}
	}
	return false
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
