package todo

import (
	"fmt"
)

// The log is where a commit lands: an append-only sequence of records,
// one per list's change, in segment files under dir/log/, framed,
// checksummed, appended with group commit and replayed by package
// internal/wal, which knows nothing of lists. This file is what the
// records hold: a record's body is msgpack
//
//	[name, lastID, [op...]]            when the list's revision is its last id + 1
//	[name, lastID, [op...], revision]  otherwise
//	op: [id, yyyymmdd, title] puts an entry, [id] deletes one,
//	each with the request's idempotency key after it when it had one
//
// and its key (see wal.KeyFunc), which the record's header checksum
// covers, is the list's name: a record whose body is damaged is then
// blamed on its list alone. A record of three, the only kind written
// before revisions were kept, is read at revision lastID+1, as a list file
// is (see encodeList): the revision of a list that was only added to.

// logDir is the log's directory in the data directory.
const logDir = "log"

// encodeRecord appends the body of the record of a change to b.
func encodeRecord(b []byte, c *Change) []byte {
	withRevision := c.State.revision() != int64(c.State.LastID)+1
	if withRevision {
		b = appendArrayLen(b, 4)
	} else {
		b = appendArrayLen(b, 3)
	}
	b = appendString(b, c.List)
	b = appendUint(b, uint64(c.State.LastID))
	b = appendArrayLen(b, len(c.Ops))
	for _, op := range c.Ops {
		b = appendOp(b, op)
	}
	if withRevision {
		b = appendUint(b, uint64(c.State.revision()))
	}
	return b
}

// recordName returns the list name at the start of a record's body, where
// encodeRecord puts it, without decoding the rest: the record's key.
func recordName(body []byte) ([]byte, bool) {
	if len(body) < 2 || body[0] != 0x93 && body[0] != 0x94 {
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

// decodeRecord reads a record's body: the list's last id, its revision,
// and its ops.
func decodeRecord(body []byte) (lastID int, rev int64, ops []Op, err error) {
	r := reader{b: body}
	fields := r.arrayLen()
	if fields != 3 && fields != 4 && r.err == nil {
		return 0, 0, nil, fmt.Errorf("array of %d, want 3 or 4", fields)
	}
	r.str()
	last := r.uint()
	n := r.arrayLen()
	switch {
	case r.err != nil:
		return 0, 0, nil, r.err
	case last > MaxID:
		return 0, 0, nil, fmt.Errorf("last id %d out of range 0..%d", last, MaxID)
	case n > len(r.b)/2: // an op takes at least two bytes
		return 0, 0, nil, fmt.Errorf("claims %d operations in %d bytes", n, len(body))
	}
	ops = make([]Op, 0, n)
	for range n {
		ops = append(ops, r.op(MaxID))
	}
	rev = int64(last) + 1
	if fields == 4 {
		v := r.uint()
		if r.err == nil && (v < 1 || v > MaxRevision) {
			r.fail(fmt.Errorf("revision %d out of range 1..%d", v, int64(MaxRevision)))
		}
		rev = int64(v)
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%d bytes after the record", len(r.b))
	}
	return int(last), rev, ops, r.err
}
