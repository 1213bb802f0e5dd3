package todo

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// The msgpack encodings that list files and log records use (see the
// msgpack spec), written with append: a store encodes on every commit, and
// this is several times faster than msgpack.Encoder.

func appendArrayLen(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, 0x90|byte(n))
	case n <= 0xffff:
		return binary.BigEndian.AppendUint16(append(b, 0xdc), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, 0xdd), uint32(n))
}

func appendUint(b []byte, n uint64) []byte {
	switch {
	case n < 0x80:
		return append(b, byte(n))
	case n <= 0xff:
		return append(b, 0xcc, byte(n))
	case n <= 0xffff:
		return binary.BigEndian.AppendUint16(append(b, 0xcd), uint16(n))
	case n <= 0xffffffff:
		return binary.BigEndian.AppendUint32(append(b, 0xce), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xcf), n)
}

func appendString(b []byte, s string) []byte {
	switch n := len(s); {
	case n < 32:
		b = append(b, 0xa0|byte(n))
	case n <= 0xff:
		b = append(b, 0xd9, byte(n))
	case n <= 0xffff:
		b = binary.BigEndian.AppendUint16(append(b, 0xda), uint16(n))
	default:
		b = binary.BigEndian.AppendUint32(append(b, 0xdb), uint32(n))
	}
	return append(b, s...)
}

// appendEntry appends an entry as list files and log records hold it: an
// array [id, date as yyyymmdd, title].
func appendEntry(b []byte, e Entry) []byte {
	b = appendArrayLen(b, 3)
	b = appendUint(b, uint64(e.ID))
	b = appendUint(b, uint64(e.Date.Year*10000+int(e.Date.Month)*100+e.Date.Day))
	return appendString(b, e.Title)
}

// appendOp appends an operation as log records and list files hold it: a
// put as [id, yyyymmdd, title], a delete as [id], each with its
// idempotency key after it when it has one ([id, yyyymmdd, title, key],
// [id, key]), and the put of an update with a key with opKindUpdate after
// the key ([id, yyyymmdd, title, key, 1]): the array's length tells
// which. A keyed put written before updates were marked, in a 4-array,
// reads as an add's.
func appendOp(b []byte, op Op) []byte {
	e := op.Entry
	n := 3
	if op.Delete {
		n = 1
	}
	if op.Key != "" {
		n++
		if op.Update {
			n++
		}
	}
	b = appendArrayLen(b, n)
	b = appendUint(b, uint64(e.ID))
	if !op.Delete {
		b = appendUint(b, uint64(e.Date.Year*10000+int(e.Date.Month)*100+e.Date.Day))
		b = appendString(b, e.Title)
	}
	if op.Key != "" {
		b = appendString(b, op.Key)
		if op.Update {
			b = appendUint(b, opKindUpdate)
		}
	}
	return b
}

// opKindUpdate is the last member of a keyed update's operation (see
// appendOp): a number, so that other kinds could follow.
const opKindUpdate = 1

// reader reads the msgpack values that appendX write, from a byte slice,
// checking every length against what is left: what it allocates is
// bounded by the input's size. The first error sticks; later reads return
// zero values.
type reader struct {
	b   []byte
	err error
}

var errTruncated = errors.New("msgpack: truncated")

func (r *reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
	r.b = nil
}

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.fail(errTruncated)
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) byte() byte {
	if v := r.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (r *reader) uint() uint64 {
	c := r.byte()
	switch {
	case r.err != nil:
		return 0
	case c < 0x80:
		return uint64(c)
	case c == 0xcc:
		return uint64(r.byte())
	case c == 0xcd:
		if v := r.take(2); v != nil {
			return uint64(binary.BigEndian.Uint16(v))
		}
	case c == 0xce:
		if v := r.take(4); v != nil {
			return uint64(binary.BigEndian.Uint32(v))
		}
	case c == 0xcf:
		if v := r.take(8); v != nil {
			return binary.BigEndian.Uint64(v)
		}
	default:
		r.fail(fmt.Errorf("msgpack: want an unsigned integer, got code 0x%02x", c))
	}
	return 0
}

func (r *reader) arrayLen() int {
	c := r.byte()
	switch {
	case r.err != nil:
		return 0
	case c&0xf0 == 0x90:
		return int(c & 0x0f)
	case c == 0xdc:
		if v := r.take(2); v != nil {
			return int(binary.BigEndian.Uint16(v))
		}
	case c == 0xdd:
		if v := r.take(4); v != nil {
			return int(binary.BigEndian.Uint32(v))
		}
	default:
		r.fail(fmt.Errorf("msgpack: want an array, got code 0x%02x", c))
	}
	return 0
}

func (r *reader) str() string {
	c := r.byte()
	n := 0
	switch {
	case r.err != nil:
		return ""
	case c&0xe0 == 0xa0:
		n = int(c & 0x1f)
	case c == 0xd9:
		n = int(r.byte())
	case c == 0xda:
		if v := r.take(2); v != nil {
			n = int(binary.BigEndian.Uint16(v))
		}
	case c == 0xdb:
		if v := r.take(4); v != nil {
			n = int(binary.BigEndian.Uint32(v))
		}
	default:
		r.fail(fmt.Errorf("msgpack: want a string, got code 0x%02x", c))
	}
	return string(r.take(n))
}

// entry reads what appendEntry writes, checking that the date is a real
// one and the id positive and at most maxID.
func (r *reader) entry(maxID int) Entry {
	if n := r.arrayLen(); n != 3 && r.err == nil {
		r.fail(fmt.Errorf("entry: array of %d, want 3", n))
	}
	id, ymd, title := r.uint(), r.uint(), r.str()
	if r.err != nil {
		return Entry{}
	}
	e := Entry{ID: int(id), Date: dateOf(ymd), Title: title}
	switch {
	case id == 0 || id > uint64(maxID):
		r.fail(fmt.Errorf("entry id %d out of range 1..%d", id, maxID))
	case !e.Date.Valid():
		r.fail(fmt.Errorf("entry %d: invalid date %d", id, ymd))
	}
	return e
}

// op reads what appendOp writes, checking ids and dates as entry does.
func (r *reader) op(maxID int) Op {
	n := r.arrayLen()
	if r.err != nil {
		return Op{}
	}
	if n < 1 || n > 5 {
		r.fail(fmt.Errorf("operation: array of %d, want 1 to 5", n))
		return Op{}
	}
	var op Op
	id := r.uint()
	op.Entry.ID = int(id)
	op.Delete = n <= 2
	if !op.Delete {
		ymd := r.uint()
		op.Entry.Date, op.Entry.Title = dateOf(ymd), r.str()
		if r.err == nil && !op.Entry.Date.Valid() {
			r.fail(fmt.Errorf("entry %d: invalid date %d", id, ymd))
		}
	}
	if n == 2 || n >= 4 {
		if op.Key = r.str(); r.err == nil && validKey(op.Key) != nil {
			r.fail(fmt.Errorf("entry %d: invalid idempotency key %q", id, op.Key))
		}
	}
	if n == 5 {
		if kind := r.uint(); r.err == nil && kind != opKindUpdate {
			r.fail(fmt.Errorf("entry %d: unknown operation kind %d", id, kind))
		}
		op.Update = true
	}
	if r.err == nil && (id == 0 || id > uint64(maxID)) {
		r.fail(fmt.Errorf("entry id %d out of range 1..%d", id, maxID))
	}
	return op
}

// dateOf unpacks a date written as yyyymmdd.
func dateOf(ymd uint64) Date {
	return Date{Year: int(ymd / 10000), Month: time.Month(ymd / 100 % 100), Day: int(ymd % 100)}
}

// checkMsgpack walks the msgpack values in data without decoding them and
// fails if any container claims more elements than the bytes left could
// hold, or if data ends inside a value. The msgpack decoder allocates
// ahead by claimed sizes (up to a million map entries at each level of
// nesting), so hostile input must be turned away before it is decoded:
// after this check, what decoding allocates is bounded by len(data).
func checkMsgpack(data []byte) error {
	need := 1 // values still to read; each takes at least one byte
	for i := 0; i < len(data); {
		if need == 0 {
			// The first value is complete; any more values are judged by
			// the caller, one at a time.
			need = 1
		}
		c := data[i]
		i++
		need--
		var length, skip, elems int
		switch {
		case c <= 0x7f, c >= 0xe0, c == 0xc0, c == 0xc2, c == 0xc3:
		case c&0xf0 == 0x80:
			elems = 2 * int(c&0x0f)
		case c&0xf0 == 0x90:
			elems = int(c & 0x0f)
		case c&0xe0 == 0xa0:
			skip = int(c & 0x1f)
		case c == 0xc4 || c == 0xd9:
			length = 1
		case c == 0xc5 || c == 0xda:
			length = 2
		case c == 0xc6 || c == 0xdb:
			length = 4
		case c == 0xc7:
			length, skip = 1, 1
		case c == 0xc8:
			length, skip = 2, 1
		case c == 0xc9:
			length, skip = 4, 1
		case c == 0xca:
			skip = 4
		case c == 0xcb:
			skip = 8
		case c >= 0xcc && c <= 0xcf:
			skip = 1 << (c - 0xcc)
		case c >= 0xd0 && c <= 0xd3:
			skip = 1 << (c - 0xd0)
		case c >= 0xd4 && c <= 0xd8:
			skip = 1 + 1<<(c-0xd4)
		case c == 0xdc, c == 0xde:
			if i+2 > len(data) {
				return fmt.Errorf("msgpack: truncated at byte %d", i)
			}
			elems = int(binary.BigEndian.Uint16(data[i:]))
			i += 2
			if c == 0xde {
				elems *= 2
			}
		case c == 0xdd, c == 0xdf:
			if i+4 > len(data) {
				return fmt.Errorf("msgpack: truncated at byte %d", i)
			}
			elems = int(binary.BigEndian.Uint32(data[i:]))
			i += 4
			if c == 0xdf {
				elems *= 2
			}
		default:
			return fmt.Errorf("msgpack: invalid code 0x%02x at byte %d", c, i-1)
		}
		if length > 0 {
			if i+length > len(data) {
				return fmt.Errorf("msgpack: truncated at byte %d", i)
			}
			n := 0
			for _, b := range data[i : i+length] {
				n = n<<8 | int(b)
			}
			i += length
			skip += n
		}
		if skip > len(data)-i {
			return fmt.Errorf("msgpack: value at byte %d claims %d bytes, %d are left", i, skip, len(data)-i)
		}
		i += skip
		need += elems
		if need > len(data)-i {
			return fmt.Errorf("msgpack: containers claim %d more values, %d bytes are left", need, len(data)-i)
		}
	}
	if need > 0 {
		return errors.New("msgpack: truncated")
	}
	return nil
}
