// Package wal is the write-ahead log of a data directory: numbered segment
// files of CRC-framed records, appended in groups (one write and one
// fdatasync for every caller waiting at the time), replayed in order by
// Open, with the traces a crash can leave (a torn record at the end, a
// segment whose creation was cut short) told apart from damage. Like
// Pebble's record package it knows nothing of what the records hold: a
// record is a body of bytes, in which [Options.Key] finds the key that
// says whose record it is.
//
// # Format
//
// A segment is a file named by its sequence number, %016x.seg. It starts
// with a 16-byte header: "TODOLG", the format version (1), the lane, and
// the sequence number, big-endian. Records follow:
//
//	bodyLen  uint32  length of the body
//	bodyCRC  uint32  CRC-32C of the body
//	headCRC  uint32  CRC-32C of the segment's sequence number, bodyLen, bodyCRC and the body's key
//	body     bodyLen bytes
//
// headCRC lets a damaged record be told apart: when it holds, the length
// and the key can be trusted though the body is damaged, so the damage is
// blamed on that key alone and the next record found; and a record left
// by an earlier use of the file never passes it, its sequence number being
// another. Zeros may follow the records (see writer.preallocate): they end
// them.
//
// The log writes lane 0 alone. Logs written in several lanes, each with
// segments of its own numbered by one sequence across them, replay too:
// each lane's last segment may end in a torn record.
//
// # Errors
//
// Damage, a segment that is not what the log writes, is a [CorruptError];
// anything else (a full disk, a file that cannot be read) is the cause
// wrapped with the segment's path.
package wal

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// KeyFunc returns the key of a record's body: the bytes of the body that
// say whose record it is. ok is false for a body that holds none.
type KeyFunc func(body []byte) (key []byte, ok bool)

// Options configure a Log. Every field must be set.
type Options struct {
	// Key finds a body's key; headCRC covers it.
	Key KeyFunc

	// SegmentSize is how large a segment grows: a write that would take
	// it past this size goes to a new segment, unless the segment has no
	// record yet. At least 4 KiB.
	SegmentSize int64

	// Record is called by Open with each record whose checksums hold, in
	// the order of the log. Its slices stay valid, and are never written
	// to.
	Record func(Record)
	// Damaged is called by Open with each record whose header holds but
	// whose body does not, with a CorruptError that names the segment and
	// the offset: the record is skipped, and replay goes on.
	Damaged func(Record, error)

	// Created is called with each segment the log starts, before any
	// record is written to it; Sealed with the sequence number of each it
	// stops writing to, fdatasynced and closed. They may be called with
	// a lock of the Log held: they must not call it.
	Created func(Segment)
	Sealed  func(seq uint64)
}

// Record is one record of the log.
type Record struct {
	Seg  uint64 // the sequence number of its segment
	Off  int64  // its offset in the segment
	Key  []byte // its key, a slice of Body; nil when its header does not hold
	Body []byte
}

// Segment is a segment of the log: its sequence number, and the bytes of
// its header and records.
type Segment struct {
	Seq  uint64
	Size int64
}

// A CorruptError says that a segment is not what the log writes: damage,
// not the trace of a crash.
type CorruptError struct{ msg string }

func (e *CorruptError) Error() string { return e.msg }

func corruptf(format string, args ...any) error {
	return &CorruptError{fmt.Sprintf(format, args...)}
}

// Log is a write-ahead log in a directory. Its methods are safe for
// concurrent use by multiple goroutines, but for Close, which must be the
// last.
type Log struct {
	root *os.Root // the log's directory
	dir  string   // its path, for errors
	opts Options
	w    writer

	zeros []byte // preallocChunk of them, for preallocate

	mu      sync.Mutex // guards nextSeq
	nextSeq uint64
}

// Open replays the log in root, the directory at path dir (for errors),
// and returns it ready for appends, with its segments in order. Open
// calls o.Record with each good record and o.Damaged with each whose body
// is damaged. It cuts off a torn record at the end of a lane's last
// segment, the trace of a crash in the middle of a write, and removes a
// segment whose creation a crash cut short. Damage that cannot be put
// down to one key (a damaged header with good records after it, a
// segment whose header is wrong) is a CorruptError that names the segment
// and the offset. root stays the caller's: close it after the Log.
func Open(root *os.Root, dir string, o Options) (*Log, []Segment, error) {
	l := &Log{root: root, dir: dir, opts: o, nextSeq: 1, zeros: make([]byte, preallocChunk)}
	l.w.l = l
	l.w.cond.L = &l.w.mu
	segs, err := l.replay()
	if err != nil {
		return nil, nil, err
	}
	return l, segs, nil
}

// Path returns the path of segment seq, for errors.
func (l *Log) Path(seq uint64) string { return path.Join(l.dir, segName(seq)) }

// Append writes the records of b in one write, with the records of any
// other Append waiting at the same time, fdatasynced if sync is set. Once
// the write succeeded, and before the segment it landed in can be sealed,
// it calls written with that segment's sequence number. A failed write is
// cut off the segment before anything else is written.
func (l *Log) Append(b *Batch, sync bool, written func(seq uint64)) error {
	return l.w.append(b.buf, sync, written)
}

// Roll seals segment seq now if it is the one being written and no write
// is in progress, or has the next write start a new segment otherwise;
// it reports whether it sealed it. A segment being written cannot be
// removed: a caller that wants to remove it rolls it first.
func (l *Log) Roll(seq uint64) bool { return l.w.rollIfIdle(seq) }

// Remove deletes segment seq, which must be sealed.
func (l *Log) Remove(seq uint64) error {
	if err := l.root.Remove(segName(seq)); err != nil {
		return fmt.Errorf("log segment %s: %w", l.Path(seq), err)
	}
	return nil
}

// Close seals the segment being written, if any. No Append may come
// after it.
func (l *Log) Close() error {
	ln := &l.w
	ln.mu.Lock()
	defer ln.mu.Unlock()
	ln.pre.Wait()
	if seg := ln.seg; seg != nil {
		return ln.seal(seg)
	}
	return nil
}

const (
	segSuffix  = ".seg"
	segMagic   = "TODOLG"
	segVersion = 1
	headerSize = 16 // a segment's
	recHeader  = 12 // a record's
)

// segName returns the file name of the segment with sequence number seq.
func segName(seq uint64) string { return fmt.Sprintf("%016x%s", seq, segSuffix) }

// segSeqOf parses a segment's file name; ok is false for any other name.
func segSeqOf(base string) (uint64, bool) {
	hex, ok := strings.CutSuffix(base, segSuffix)
	if !ok || len(hex) != 16 {
		return 0, false
	}
	seq, err := strconv.ParseUint(hex, 16, 64)
	return seq, err == nil
}

// segFile is a segment as replay and Verify read it.
type segFile struct {
	name string
	seq  uint64
	lane int
	data []byte
	// err is set when the segment could not be read (data is nil), or
	// its header is wrong (a CorruptError; data is what was read).
	err error
}

// logFiles is the directory of a log as read whole.
type logFiles struct {
	segs   []*segFile // in sequence order
	others []string   // the names of the entries that are not segments
	lanes  int        // the lanes of the segments whose header holds, at least 1
}

// readLog reads every segment of the log in root whole, in sequence
// order, checking each one's header.
func readLog(root *os.Root, dir string) (*logFiles, error) {
	ents, err := fs.ReadDir(root.FS(), ".")
	if err != nil {
		return nil, err
	}
	lf := &logFiles{}
	for _, e := range ents {
		if seq, ok := segSeqOf(e.Name()); ok && e.Type().IsRegular() {
			lf.segs = append(lf.segs, &segFile{name: e.Name(), seq: seq})
		} else {
			lf.others = append(lf.others, e.Name())
		}
	}
	slices.SortFunc(lf.segs, func(a, b *segFile) int { return cmp.Compare(a.seq, b.seq) })
	lanes := make(map[int]bool)
	for _, sf := range lf.segs {
		full := path.Join(dir, sf.name)
		sf.data, sf.err = fs.ReadFile(root.FS(), sf.name)
		switch {
		case sf.err != nil:
			sf.err = fmt.Errorf("log segment %s: %w", full, sf.err)
		case len(sf.data) < headerSize || string(sf.data[:6]) != segMagic || sf.data[6] != segVersion ||
			be.Uint64(sf.data[8:]) != sf.seq:
			sf.err = corruptf("log segment %s: not a version %d segment numbered %d", full, segVersion, sf.seq)
		default:
			sf.lane = int(sf.data[7])
			lanes[sf.lane] = true
		}
	}
	lf.lanes = max(1, len(lanes))
	return lf, nil
}

// unborn reports whether segs[i], whose header is wrong, is one whose
// creation a crash cut short: a file shorter than a header, or of zeros
// alone, with fewer newer segments than there are lanes (each lane may
// have been creating one). The writer writes and fsyncs a segment's
// header, and the directory, before any record goes in it, so such a file
// holds nothing that was acknowledged. Anywhere else, or with anything
// else in it, a wrong header is damage.
func (lf *logFiles) unborn(i int) bool {
	sf := lf.segs[i]
	var ce *CorruptError
	newer := len(lf.segs) - 1 - i
	return errors.As(sf.err, &ce) && newer < lf.lanes && (len(sf.data) < headerSize || isZero(sf.data))
}

// lastOfLanes returns the last segment of each lane among segs, whose
// headers hold: the only one of its lane a crash can have left torn, the
// others having been sealed, fdatasynced, before it began.
func lastOfLanes(segs []*segFile) map[int]*segFile {
	last := make(map[int]*segFile)
	for _, sf := range segs {
		last[sf.lane] = sf
	}
	return last
}

// replay reads the log for Open (see there).
func (l *Log) replay() ([]Segment, error) {
	lf, err := readLog(l.root, l.dir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", l.dir, err)
	}
	kept := make([]*segFile, 0, len(lf.segs))
	for i, sf := range lf.segs {
		l.nextSeq = max(l.nextSeq, sf.seq+1)
		switch {
		case sf.err == nil:
			kept = append(kept, sf)
		case lf.unborn(i):
			if err := l.root.Remove(sf.name); err != nil {
				return nil, fmt.Errorf("log segment %s: %w", l.Path(sf.seq), err)
			}
			if err := syncDir(l.root); err != nil {
				return nil, fmt.Errorf("log segment %s: %w", l.Path(sf.seq), err)
			}
		default:
			return nil, sf.err
		}
	}
	last := lastOfLanes(kept)
	segs := make([]Segment, 0, len(kept))
	for _, sf := range kept {
		end, err := l.replaySegment(sf, last[sf.lane] == sf)
		if err != nil {
			return nil, err
		}
		segs = append(segs, Segment{Seq: sf.seq, Size: int64(end)})
	}
	return segs, nil
}

// replaySegment replays one segment's records and cuts off its torn tail,
// if any; it returns where its records end.
func (l *Log) replaySegment(sf *segFile, lastOfLane bool) (int, error) {
	full := l.Path(sf.seq)
	var stop error
	torn := -1
	end := sf.walk(l.opts.Key, lastOfLane, func(s step) bool {
		switch s.kind {
		case good:
			l.opts.Record(s.rec)
		case TornTail:
			torn = int(s.rec.Off)
		case DamagedRecord:
			l.opts.Damaged(s.rec, corruptf("log segment %s: damaged record at offset %d: %v", full, s.rec.Off, s.err))
		case DamagedHeader:
			stop = corruptf("log segment %s: damaged record header at offset %d: whose record it is cannot be known", full, s.rec.Off)
			return false
		}
		return true
	})
	if stop != nil {
		return 0, stop
	}
	if torn >= 0 {
		if err := l.cutTorn(sf, int64(torn)); err != nil {
			return 0, fmt.Errorf("log segment %s: cutting the torn record at offset %d: %w", full, torn, err)
		}
	}
	return end, nil
}

// cutTorn cuts a segment at off, fsynced.
func (l *Log) cutTorn(sf *segFile, off int64) error {
	f, err := l.root.OpenFile(sf.name, os.O_WRONLY, 0)
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

// syncDir fsyncs the directory of root.
func syncDir(root *os.Root) error {
	d, err := root.Open(".")
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
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

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
