package wal

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
)

// writer appends to the log: its active segment, and the group of records
// waiting for the next write. Appends join the forming group; the first to
// find no write in progress writes the whole group (the leader), while
// the others wait for its outcome.
type writer struct {
	l *Log

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

// segment is the segment a writer writes to.
type segment struct {
	seq      uint64
	file     *os.File
	size     int64 // bytes of the header and the records written; owned by the leader
	unsynced bool  // records were written and not fdatasynced
	// alloc is how far the file is zero-filled and fdatasynced (see
	// preallocate); records written below it overwrite zeros.
	alloc atomic.Int64
}

// group is the records of one write, from any number of appends.
type group struct {
	buf     []byte
	sync    bool
	written []func(seq uint64) // each append's, called by the leader once the write succeeded
	done    bool
	seq     uint64 // the segment written to
	err     error
}

// append writes recs, framed by a Batch; see Log.Append.
func (ln *writer) append(recs []byte, sync bool, written func(seq uint64)) error {
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
			// append in the group has noted where its records are.
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
func (ln *writer) write(buf []byte, sync bool) (uint64, error) {
	if ln.broken != nil {
		if err := ln.cut(); err != nil {
			return 0, err
		}
	}
	seg := ln.seg
	if seg == nil || ln.roll || seg.size > headerSize && seg.size+int64(len(buf)) > ln.l.opts.SegmentSize {
		var err error
		if seg, err = ln.next(); err != nil {
			return 0, err
		}
	}
	if err := sealRecords(buf, seg.seq, ln.l.opts.Key); err != nil {
		return 0, fmt.Errorf("log segment %s: %w", ln.l.Path(seg.seq), err)
	}
	if ln.preBusy.Load() && seg.size+int64(len(buf)) > ln.preStart {
		ln.pre.Wait() // never write where zeros are being written
	}
	_, err := seg.file.WriteAt(buf, seg.size)
	if err == nil && sync {
		err = fdatasync(seg.file)
	}
	if err != nil {
		err = fmt.Errorf("log segment %s: %w", ln.l.Path(seg.seq), err)
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
// stretch runs low. On the development machine's disk an fdatasync after
// a write over zeros that are already on disk takes two thirds of one
// after an append, which must also commit the file's new size and blocks.
// The zeros mark where the records end (see walk). A stretch takes at
// most an eighth of the space left on the disk, so that a small or nearly
// full disk keeps room for other files (a checkpoint's); a preallocation
// that fails gives its space back and is no failure: the writes past it
// append. Only the leader calls it.
func (ln *writer) preallocate(seg *segment) {
	chunk := min(preallocChunk, ln.l.opts.SegmentSize/4)
	alloc := seg.alloc.Load()
	if ln.preBusy.Load() || alloc-seg.size >= chunk/2 || alloc >= ln.l.opts.SegmentSize+chunk {
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

// seal closes a segment the writer is done with, fdatasynced, with the
// zeros preallocated past its records cut off, to give their space back.
// The caller has waited for the preallocation in progress.
func (ln *writer) seal(seg *segment) error {
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
	ln.l.opts.Sealed(seg.seq)
	if err != nil {
		return fmt.Errorf("log segment %s: %w", ln.l.Path(seg.seq), err)
	}
	return nil
}

// cut cuts the active segment back to its last good record after a failed
// write, fsynced, and clears broken when it could.
func (ln *writer) cut() error {
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
func (ln *writer) next() (*segment, error) {
	ln.pre.Wait()
	if old := ln.seg; old != nil {
		if err := ln.seal(old); err != nil {
			return nil, err
		}
	}
	seg, err := ln.l.create()
	if err != nil {
		return nil, err
	}
	ln.seg, ln.roll = seg, false
	ln.preallocate(seg)
	return seg, nil
}

// rollIfIdle seals the active segment now if it is seq and no write is in
// progress, or asks for a new one before the next write otherwise. It
// reports whether it sealed it.
func (ln *writer) rollIfIdle(seq uint64) bool {
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

// create makes a new segment: its header written and fsynced, and the
// log's directory fsynced, so that it cannot vanish in a crash with the
// records about to be acknowledged in it.
func (l *Log) create() (*segment, error) {
	l.mu.Lock()
	seq := l.nextSeq
	l.nextSeq++
	l.mu.Unlock()
	seg := &segment{seq: seq, size: headerSize}
	seg.alloc.Store(headerSize)
	file, err := l.root.OpenFile(segName(seq), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("log segment %s: %w", l.Path(seq), err)
	}
	var h [headerSize]byte
	copy(h[:], segMagic)
	h[6], h[7] = segVersion, 0 // lane 0: the only one written
	be.PutUint64(h[8:], seq)
	_, err = file.Write(h[:])
	if err == nil {
		err = file.Sync()
	}
	if err == nil {
		err = syncDir(l.root)
	}
	if err != nil {
		file.Close()
		l.root.Remove(segName(seq))
		return nil, fmt.Errorf("log segment %s: %w", l.Path(seq), err)
	}
	seg.file = file
	l.opts.Created(Segment{Seq: seq, Size: headerSize})
	return seg, nil
}
