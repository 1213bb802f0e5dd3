package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

var (
	be         = binary.BigEndian
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
)

// Batch is the records of one Append, framed. The zero Batch is empty and
// ready to use; a Batch is not safe for concurrent use.
type Batch struct{ buf []byte }

// Add appends a record of body to the batch. body must hold a key (see
// Options.Key): Append refuses a batch with a record whose key cannot be
// found, which would be damage in the log.
func (b *Batch) Add(body []byte) {
	start := len(b.buf)
	b.buf = append(b.buf, make([]byte, recHeader)...)
	b.buf = append(b.buf, body...)
	be.PutUint32(b.buf[start:], uint32(len(body)))
	be.PutUint32(b.buf[start+4:], crc32.Checksum(body, castagnoli))
	// headCRC is written by sealRecords, once the segment is known.
}

// Reset empties the batch, keeping its buffer for the next records.
func (b *Batch) Reset() { b.buf = b.buf[:0] }

// Size returns the bytes the batch's records take in the log.
func (b *Batch) Size() int { return len(b.buf) }

// sealRecords fills in the headCRC of every record in buf for the segment
// seq. It fails, writing nothing, if a record holds no key.
func sealRecords(buf []byte, seq uint64, key KeyFunc) error {
	seqSum := seqCRC(seq)
	for len(buf) > 0 {
		n := recHeader + int(be.Uint32(buf))
		k, ok := key(buf[recHeader:n])
		if !ok {
			return errors.New("a record with no key")
		}
		be.PutUint32(buf[8:], headCRCAfter(seqSum, buf[:8], k))
		buf = buf[n:]
	}
	return nil
}

func headCRC(seq uint64, lenAndCRC []byte, key []byte) uint32 {
	return headCRCAfter(seqCRC(seq), lenAndCRC, key)
}

// seqCRC is the start of a headCRC: the CRC of the segment's sequence
// number, the same for every record of the segment. Its 8 bytes escape
// to the heap (crc32 calls its code through a function value), so a
// batch sums them once, not once a record.
func seqCRC(seq uint64) uint32 {
	var s [8]byte
	be.PutUint64(s[:], seq)
	return crc32.Update(0, castagnoli, s[:])
}

// headCRCAfter is headCRC from seqCRC's sum.
func headCRCAfter(seqSum uint32, lenAndCRC []byte, key []byte) uint32 {
	h := crc32.Update(seqSum, castagnoli, lenAndCRC)
	return crc32.Update(h, castagnoli, key)
}

// readRecord reads the record at off of the data of segment seq. On an
// error, n is the record's length if its header holds (the record can be
// skipped, and r.Key blamed), or 0.
func readRecord(seq uint64, data []byte, off int, key KeyFunc) (r Record, n int, err error) {
	r = Record{Seg: seq, Off: int64(off)}
	if len(data)-off < recHeader {
		return r, 0, errors.New("truncated header")
	}
	h := data[off : off+recHeader]
	bodyLen := int(be.Uint32(h))
	if bodyLen > len(data)-off-recHeader {
		return r, 0, fmt.Errorf("record of %d bytes", bodyLen)
	}
	body := data[off+recHeader : off+recHeader+bodyLen]
	k, ok := key(body)
	if !ok || headCRC(seq, h[:8], k) != be.Uint32(h[8:]) {
		return r, 0, errors.New("header checksum mismatch")
	}
	r.Key, r.Body = k, body
	if crc32.Checksum(body, castagnoli) != be.Uint32(h[4:]) {
		return r, recHeader + bodyLen, errors.New("checksum mismatch")
	}
	return r, recHeader + bodyLen, nil
}

// nextGood returns the offset of the first whole, good record that starts
// in data at or after from, or -1.
func nextGood(seq uint64, data []byte, from int, key KeyFunc) int {
	for off := from; off+recHeader <= len(data); off++ {
		if _, _, err := readRecord(seq, data, off, key); err == nil {
			return off
		}
	}
	return -1
}

// step is one thing walk found: a good record, or what is wrong at
// rec.Off.
type step struct {
	kind Kind   // good, TornTail, DamagedRecord or DamagedHeader
	rec  Record // rec.Key is set when the header holds
	n    int    // the record's length, when its header holds
	next int    // DamagedHeader: the offset of the next good record, or -1
	err  error  // what is wrong
}

// good is the kind of a step that found a good record.
const good Kind = 0

// walk reads the records of a segment whose header holds, in order, and
// calls fn with each good one and each thing wrong, until fn returns
// false; it returns the offset at which the records end. Where a record
// does not hold and no good record follows, the records end: zeros are
// what the writer preallocated, and anything else ends the last segment
// of a lane only as the torn trace of a crash in the middle of a write
// (TornTail). Anywhere else it is damage: a record whose header holds is
// skipped (DamagedRecord); one whose header does not cannot be skipped
// but to the next good record found (DamagedHeader).
func (sf *segFile) walk(key KeyFunc, lastOfLane bool, fn func(step) bool) int {
	data := sf.data
	off := headerSize
	for off < len(data) {
		r, n, err := readRecord(sf.seq, data, off, key)
		if err == nil {
			if !fn(step{kind: good, rec: r, n: n}) {
				return off
			}
			off += n
			continue
		}
		next := nextGood(sf.seq, data, off+1, key)
		switch {
		case next < 0 && isZero(data[off:]):
			return off
		case next < 0 && lastOfLane:
			fn(step{kind: TornTail, rec: r, n: n, next: -1, err: err})
			return off
		case n > 0:
			if !fn(step{kind: DamagedRecord, rec: r, n: n, next: next, err: err}) {
				return off
			}
			off += n
		default:
			if !fn(step{kind: DamagedHeader, rec: r, next: next, err: err}) || next < 0 {
				return len(data)
			}
			off = next
		}
	}
	return off
}
