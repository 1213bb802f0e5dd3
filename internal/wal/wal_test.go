package wal_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/gotodo/todo/internal/wal"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The log is tested on real files in a temp directory, and read back by
// an oracle written here from the format in the package doc, not with the
// package's code. The records' bodies are a key's length in one byte, the
// key, then anything.

// body returns a record body of key and payload.
func body(key, payload string) []byte {
	return append(append([]byte{byte(len(key))}, key...), payload...)
}

// keyOf is the tests' KeyFunc.
func keyOf(b []byte) ([]byte, bool) {
	if len(b) == 0 || int(b[0]) > len(b)-1 {
		return nil, false
	}
	return b[1 : 1+int(b[0])], true
}

// rec is a record as the oracle reads it.
type rec struct {
	off, end int // its bytes in the segment
	key      string
	payload  string
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// oracle reads a healthy segment: a 16-byte header ("TODOLG", version 1,
// lane, big-endian sequence number seq), then records (body length, body
// CRC-32C, CRC-32C of the sequence number, length, body CRC and key;
// body) up to the end or to the zeros that end them. It fails the test
// on anything else.
func oracle(tb testing.TB, data []byte, seq uint64) []rec {
	tb.Helper()
	if len(data) < 16 || string(data[:6]) != "TODOLG" || data[6] != 1 || data[7] != 0 || binary.BigEndian.Uint64(data[8:]) != seq {
		tb.Fatalf("not segment %d of lane 0: % x", seq, data[:min(len(data), 16)])
	}
	var recs []rec
	off := 16
	for off+12 <= len(data) {
		n := int(binary.BigEndian.Uint32(data[off:]))
		if n == 0 {
			if bytes.ContainsFunc(data[off:], func(r rune) bool { return r != 0 }) {
				tb.Fatalf("a zero length at offset %d, and not only zeros after it", off)
			}
			return recs
		}
		b := data[off+12 : off+12+n]
		if crc32.Checksum(b, castagnoli) != binary.BigEndian.Uint32(data[off+4:]) {
			tb.Fatalf("record at offset %d: body checksum mismatch", off)
		}
		key := b[1 : 1+int(b[0])]
		h := crc32.Update(0, castagnoli, data[8:16])
		h = crc32.Update(h, castagnoli, data[off:off+8])
		h = crc32.Update(h, castagnoli, key)
		if h != binary.BigEndian.Uint32(data[off+8:]) {
			tb.Fatalf("record at offset %d: header checksum mismatch", off)
		}
		recs = append(recs, rec{off, off + 12 + n, string(key), string(b[1+len(key):])})
		off += 12 + n
	}
	if off != len(data) {
		tb.Fatalf("%d bytes after the last record at offset %d", len(data)-off, off)
	}
	return recs
}

// replayed is what Open reported.
type replayed struct {
	recs    []wal.Record
	damaged []wal.Record
	errs    []error
	created []wal.Segment
	sealed  []uint64
	mu      sync.Mutex
}

// open opens the log in dir with segments of segSize, noting what it
// reports, and closes it and its directory when the test ends.
func open(tb testing.TB, dir string, segSize int64) (*wal.Log, []wal.Segment, *replayed, error) {
	tb.Helper()
	root, err := os.OpenRoot(dir)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { root.Close() })
	r := &replayed{}
	l, segs, err := wal.Open(root, dir, wal.Options{
		Key:         keyOf,
		SegmentSize: segSize,
		Record:      func(x wal.Record) { r.recs = append(r.recs, x) },
		Damaged: func(x wal.Record, err error) {
			r.damaged = append(r.damaged, x)
			r.errs = append(r.errs, err)
		},
		Created: func(s wal.Segment) { r.mu.Lock(); r.created = append(r.created, s); r.mu.Unlock() },
		Sealed:  func(seq uint64) { r.mu.Lock(); r.sealed = append(r.sealed, seq); r.mu.Unlock() },
	})
	if err == nil {
		tb.Cleanup(func() { l.Close() })
	}
	return l, segs, r, err
}

// mustOpen is open, failing the test on an error.
func mustOpen(tb testing.TB, dir string, segSize int64) (*wal.Log, []wal.Segment, *replayed) {
	tb.Helper()
	l, segs, r, err := open(tb, dir, segSize)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	return l, segs, r
}

// appendAll appends one batch of a record per payload, of key.
func appendAll(tb testing.TB, l *wal.Log, sync bool, key string, payloads ...string) uint64 {
	tb.Helper()
	var b wal.Batch
	for _, p := range payloads {
		b.Add(body(key, p))
	}
	var seq uint64
	if err := l.Append(&b, sync, func(s uint64) { seq = s }); err != nil {
		tb.Fatalf("Append: %v", err)
	}
	return seq
}

// segPath returns the path of segment seq in dir.
func segPath(dir string, seq uint64) string { return filepath.Join(dir, fmt.Sprintf("%016x.seg", seq)) }

func readFile(tb testing.TB, p string) []byte {
	tb.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

func writeFile(tb testing.TB, p string, data []byte) {
	tb.Helper()
	if err := os.WriteFile(p, data, 0o644); err != nil {
		tb.Fatal(err)
	}
}

// payloadsOf returns the keys and payloads of records, "key:payload".
func payloadsOf(recs []wal.Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, string(r.Key)+":"+string(r.Body[1+len(r.Key):]))
	}
	return out
}

// TestLog_AppendReplay appends from several goroutines at once, in
// segments small enough that the log spans several, and checks the
// files with the oracle and the replay against what was appended: every
// record once, each goroutine's in its order, in the segment its written
// callback named; segments sealed are cut to their records, and numbered
// from 1 on.
func TestLog_AppendReplay(t *testing.T) {
	dir := t.TempDir()
	l, segs, r := mustOpen(t, dir, 4<<10)
	if len(segs) != 0 || len(r.recs) != 0 {
		t.Fatalf("a new log replayed %v, %d records", segs, len(r.recs))
	}
	const writers, appends = 8, 40
	var mu sync.Mutex
	where := make(map[string]uint64) // "key:payload" → the segment written said
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			key := fmt.Sprint("writer ", w)
			for i := range appends {
				p := fmt.Sprintf("%d %s", i, strings.Repeat("x", i*3))
				seq := appendAll(t, l, i%2 == 0, key, p)
				mu.Lock()
				where[key+":"+p] = seq
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	files, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil || len(files) < 3 {
		t.Fatalf("segments %v, %v; want several of 4 KiB", files, err)
	}
	slices.Sort(files)
	seen := 0
	for i, f := range files {
		seq := uint64(i + 1)
		if f != segPath(dir, seq) {
			t.Fatalf("segment %d is %s", seq, f)
		}
		data := readFile(t, f)
		recs := oracle(t, data, seq)
		if recs[len(recs)-1].end != len(data) {
			t.Errorf("sealed segment %d: %d bytes, its records end at %d", seq, len(data), recs[len(recs)-1].end)
		}
		for _, x := range recs {
			if got := where[x.key+":"+x.payload]; got != seq {
				t.Errorf("record %s:%.10s is in segment %d, written said %d", x.key, x.payload, seq, got)
			}
		}
		seen += len(recs)
	}
	if seen != writers*appends {
		t.Errorf("%d records in the files, want %d", seen, writers*appends)
	}

	_, segs, r = mustOpen(t, dir, 4<<10)
	if len(r.recs) != writers*appends || len(r.damaged) != 0 {
		t.Fatalf("replay: %d records, %d damaged; want %d, 0", len(r.recs), len(r.damaged), writers*appends)
	}
	next := make(map[string]int)
	for _, x := range r.recs {
		var i int
		fmt.Sscan(string(x.Body[1+len(x.Key):]), &i)
		if want := next[string(x.Key)]; i != want {
			t.Errorf("replay: %s's record %d came where %d was due", x.Key, i, want)
		}
		next[string(x.Key)] = i + 1
	}
	if len(segs) != len(files) {
		t.Errorf("Open returned %d segments, %d files", len(segs), len(files))
	}
	for i, s := range segs {
		if info, err := os.Stat(files[i]); err != nil || s.Seq != uint64(i+1) || s.Size != info.Size() {
			t.Errorf("segment %d: %+v, file %v", i, s, err)
		}
	}
}

// TestLog_Preallocation checks that the active segment is zero-filled
// ahead of its records (which replay then ends at), and that sealing cuts
// the zeros off.
func TestLog_Preallocation(t *testing.T) {
	dir := t.TempDir()
	l, _, _ := mustOpen(t, dir, 64<<10)
	seq := appendAll(t, l, true, "k", "one", "two")
	// The zeros are written by a goroutine of the writer's: the next
	// append waits for it where it would write over them; Roll seals.
	appendAll(t, l, true, "k", "three")
	data := readFile(t, segPath(dir, seq))
	recs := oracle(t, data, seq)
	if end := recs[len(recs)-1].end; len(data) < end+4<<10 {
		t.Errorf("the active segment has %d bytes, its records end at %d: not preallocated", len(data), end)
	}
	if !l.Roll(seq) {
		t.Fatal("Roll of the idle active segment did not seal it")
	}
	data = readFile(t, segPath(dir, seq))
	if recs := oracle(t, data, seq); recs[len(recs)-1].end != len(data) {
		t.Errorf("sealed: %d bytes, records end at %d", len(data), recs[len(recs)-1].end)
	}
	if next := appendAll(t, l, true, "k", "four"); next != seq+1 {
		t.Errorf("after Roll the next append went to segment %d, want %d", next, seq+1)
	}
	if err := l.Remove(seq); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(segPath(dir, seq)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Remove left the segment: %v", err)
	}
}

// TestLog_Callbacks checks Created and Sealed: each segment is created
// before the written callback names it, and sealed once, when the log
// moves on or closes.
func TestLog_Callbacks(t *testing.T) {
	dir := t.TempDir()
	l, _, r := mustOpen(t, dir, 4<<10)
	var seqs []uint64
	for i := range 20 {
		seq := appendAll(t, l, false, "k", strings.Repeat("y", 500))
		r.mu.Lock()
		if n := len(r.created); n == 0 || r.created[n-1].Seq != seq || r.created[n-1].Size != 16 {
			t.Errorf("append %d in segment %d; created %v", i, seq, r.created)
		}
		r.mu.Unlock()
		if len(seqs) == 0 || seqs[len(seqs)-1] != seq {
			seqs = append(seqs, seq)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if len(seqs) < 3 || !slices.Equal(r.sealed, seqs) {
		t.Errorf("segments written %v, sealed %v", seqs, r.sealed)
	}
}

// TestLog_RecordWithoutKey appends a batch with a body its KeyFunc finds
// no key in: the Append fails and writes nothing of the batch.
func TestLog_RecordWithoutKey(t *testing.T) {
	dir := t.TempDir()
	l, _, _ := mustOpen(t, dir, 64<<10)
	seq := appendAll(t, l, true, "k", "good")
	var b wal.Batch
	b.Add(body("k", "good too"))
	b.Add([]byte{200, 'x'}) // claims a key of 200 bytes
	if err := l.Append(&b, true, func(uint64) { t.Error("written called for a failed append") }); err == nil {
		t.Fatal("Append of a record without a key succeeded")
	}
	l.Close()
	if recs := oracle(t, readFile(t, segPath(dir, seq)), seq); len(recs) != 1 {
		t.Errorf("%d records after the failed append, want 1", len(recs))
	}
}

// image writes a log of one segment holding n records, key a and b in
// turn, closes it, and returns the segment's bytes and records.
func image(tb testing.TB, dir string, n int) ([]byte, []rec) {
	tb.Helper()
	l, _, _ := mustOpen(tb, dir, 1<<20)
	for i := range n {
		appendAll(tb, l, true, []string{"a", "b"}[i%2], fmt.Sprintf("record %d", i))
	}
	if err := l.Close(); err != nil {
		tb.Fatal(err)
	}
	data := readFile(tb, segPath(dir, 1))
	return data, oracle(tb, data, 1)
}

// TestLog_TornTail tears the last record of the newest segment the ways a
// crash in the middle of an append can, and adds after it what a crash
// can leave past the records. Open delivers every record before the tear
// and cuts the file there.
func TestLog_TornTail(t *testing.T) {
	garbage := bytes.Repeat([]byte("garbage!"), 20)
	for _, tt := range []struct {
		name string
		tear func(data []byte, last rec) []byte
		lost bool // the last record is torn, not only followed by junk
	}{
		{"cut in the body", func(d []byte, r rec) []byte { return d[:r.off+14] }, true},
		{"cut in the header", func(d []byte, r rec) []byte { return d[:r.off+5] }, true},
		{"zeros over the end of the body", func(d []byte, r rec) []byte {
			return append(d[:r.end-3:r.end-3], make([]byte, 4096)...)
		}, true},
		{"a flipped byte in the body", func(d []byte, r rec) []byte { d[r.end-1] ^= 1; return d }, true},
		{"garbage after, then zeros", func(d []byte, r rec) []byte {
			return append(append(d, garbage...), make([]byte, 4096)...)
		}, false},
		{"garbage at the end", func(d []byte, r rec) []byte { return append(d, garbage...) }, false},
		{"a whole header after", func(d []byte, r rec) []byte { return append(d, slices.Clone(d[r.off:r.off+12])...) }, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			data, recs := image(t, dir, 7)
			last := recs[len(recs)-1]
			writeFile(t, segPath(dir, 1), tt.tear(data, last))
			want, cut := 7, last.end
			if tt.lost {
				want, cut = 6, last.off
			}
			_, segs, r := mustOpen(t, dir, 1<<20)
			if len(r.recs) != want || len(r.damaged) != 0 {
				t.Errorf("replay: %d records, %d damaged; want %d, 0", len(r.recs), len(r.damaged), want)
			}
			if info, err := os.Stat(segPath(dir, 1)); err != nil || info.Size() != int64(cut) || segs[0].Size != int64(cut) {
				t.Errorf("after Open: file %v, %v, segment %+v; want it cut at %d", info.Size(), err, segs[0], cut)
			}
		})
	}
}

// TestLog_TornTailOfOlderSegment puts garbage after the records of a
// segment that is not the newest, which was sealed before the next one
// began: damage, not a torn append. Open fails, naming it and the offset.
func TestLog_TornTailOfOlderSegment(t *testing.T) {
	dir := t.TempDir()
	data, recs := image(t, dir, 4)
	l, _, _ := mustOpen(t, dir, 1<<20)
	appendAll(t, l, true, "c", "in segment 2")
	l.Close()
	writeFile(t, segPath(dir, 1), append(data, "garbage"...))
	_, _, _, err := open(t, dir, 1<<20)
	var ce *wal.CorruptError
	if want := fmt.Sprintf("offset %d", recs[3].end); !errors.As(err, &ce) || !strings.Contains(err.Error(), segPath(dir, 1)) || !strings.Contains(err.Error(), want) {
		t.Errorf("Open: %v, want a CorruptError naming %s and %s", err, segPath(dir, 1), want)
	}
}

// TestLog_DamagedBody flips a byte in the body of a record in the middle
// of a segment: its header holds, so Open reports it, with its key and
// offset, and goes on with the records after it.
func TestLog_DamagedBody(t *testing.T) {
	dir := t.TempDir()
	data, recs := image(t, dir, 9)
	data[recs[3].end-1] ^= 0x01
	writeFile(t, segPath(dir, 1), data)
	_, _, r := mustOpen(t, dir, 1<<20)
	if len(r.recs) != 8 || len(r.damaged) != 1 || string(r.damaged[0].Key) != recs[3].key || r.damaged[0].Off != int64(recs[3].off) {
		t.Fatalf("replay: %d records, damaged %v; want 8 and record 3 (%s)", len(r.recs), payloadsOf(r.damaged), recs[3].key)
	}
	var ce *wal.CorruptError
	if !errors.As(r.errs[0], &ce) || !strings.Contains(r.errs[0].Error(), fmt.Sprintf("offset %d", recs[3].off)) {
		t.Errorf("damaged: %v, want a CorruptError naming offset %d", r.errs[0], recs[3].off)
	}
}

// TestLog_DamagedHeader flips a byte in each field of the header of a
// record in the middle of a segment, and in the key its checksum covers:
// whose record it is cannot be known, so Open fails, naming the segment
// and the offset, and leaves the file as it was.
func TestLog_DamagedHeader(t *testing.T) {
	for _, tt := range []struct {
		name string
		at   int
	}{{"length", 3}, {"body checksum", 5}, {"header checksum", 10}, {"key", 13}} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			data, recs := image(t, dir, 8)
			data[recs[3].off+tt.at] ^= 0x04
			writeFile(t, segPath(dir, 1), data)
			_, _, _, err := open(t, dir, 1<<20)
			var ce *wal.CorruptError
			if want := fmt.Sprintf("offset %d", recs[3].off); !errors.As(err, &ce) || !strings.Contains(err.Error(), want) {
				t.Errorf("Open: %v, want a CorruptError naming %s", err, want)
			}
			if !bytes.Equal(readFile(t, segPath(dir, 1)), data) {
				t.Error("the failed Open changed the segment")
			}
		})
	}
}

// TestLog_RecordOfAnotherSegment copies a record of segment 1 into
// segment 2, where a recycled file might hold it: its header checksum,
// which covers the sequence number, fails there.
func TestLog_RecordOfAnotherSegment(t *testing.T) {
	dir := t.TempDir()
	data, recs := image(t, dir, 3)
	l, _, _ := mustOpen(t, dir, 1<<20)
	appendAll(t, l, true, "c", "in segment 2")
	l.Close()
	two := readFile(t, segPath(dir, 2))
	writeFile(t, segPath(dir, 2), append(two, data[recs[0].off:recs[0].end]...))
	_, _, r := mustOpen(t, dir, 1<<20)
	if got := payloadsOf(r.recs); len(got) != 4 || got[3] != "c:in segment 2" {
		t.Errorf("replay: %q; want segment 1's three records and segment 2's one", got)
	}
}

// TestLog_UnbornSegment leaves what a crash while the log starts a new
// segment leaves: its file, its header not yet written (or not yet on
// disk). Open removes it as the newest; anywhere else it is damage.
func TestLog_UnbornSegment(t *testing.T) {
	for _, tt := range []struct {
		name   string
		header []byte
	}{{"empty", nil}, {"part of a header", []byte("TODOLG")}, {"zeros", make([]byte, 16)}, {"preallocated zeros", make([]byte, 64<<10)}} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			image(t, dir, 4)
			writeFile(t, segPath(dir, 2), tt.header)
			l, segs, r := mustOpen(t, dir, 1<<20)
			if len(r.recs) != 4 || len(segs) != 1 {
				t.Errorf("replay: %d records, %d segments; want 4, 1", len(r.recs), len(segs))
			}
			if _, err := os.Stat(segPath(dir, 2)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("the unborn segment is still there: %v", err)
			}
			if seq := appendAll(t, l, true, "c", "next"); seq != 3 {
				t.Errorf("the next segment is %d, want 3: a number is never used twice", seq)
			}
		})
	}
	t.Run("not the newest", func(t *testing.T) {
		dir := t.TempDir()
		image(t, dir, 4)
		l, _, _ := mustOpen(t, dir, 1<<20)
		appendAll(t, l, true, "c", "in segment 2")
		l.Close()
		writeFile(t, segPath(dir, 1), nil)
		_, _, _, err := open(t, dir, 1<<20)
		var ce *wal.CorruptError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), segPath(dir, 1)) {
			t.Errorf("Open: %v, want a CorruptError naming %s", err, segPath(dir, 1))
		}
	})
}

// TestVerify damages a log in every way Verify tells apart and checks
// each finding, that it changed nothing, and that the segment it offers
// without the damaged records replays as the good records.
func TestVerify(t *testing.T) {
	dir := t.TempDir()
	data, recs := image(t, dir, 10)
	l, _, _ := mustOpen(t, dir, 1<<20)
	appendAll(t, l, true, "c", "in segment 2", "and again")
	l.Close()
	data[recs[2].end-1] ^= 1 // a damaged body: key known
	data[recs[5].off+3] ^= 1 // a damaged header: key unknown
	writeFile(t, segPath(dir, 1), data)
	two := readFile(t, segPath(dir, 2))
	twoRecs := oracle(t, two, 2)
	tornAt := twoRecs[1].off
	writeFile(t, segPath(dir, 2), two[:tornAt+14])
	writeFile(t, segPath(dir, 3), nil) // unborn
	writeFile(t, filepath.Join(dir, "notes.txt"), []byte("mine"))
	before := map[string][]byte{}
	for _, n := range []string{segPath(dir, 1), segPath(dir, 2)} {
		before[n] = readFile(t, n)
	}

	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	rep, err := wal.Verify(root, dir, keyOf)
	if err != nil {
		t.Fatal(err)
	}
	type found struct {
		name   string
		kind   wal.Kind
		offset int64
		key    string
		next   int64
	}
	var got []found
	for _, f := range rep.Findings {
		got = append(got, found{f.Name, f.Kind, f.Offset, string(f.Key), f.Next})
	}
	s1, s2, s3 := filepath.Base(segPath(dir, 1)), filepath.Base(segPath(dir, 2)), filepath.Base(segPath(dir, 3))
	want := []found{
		{"notes.txt", wal.NotSegment, -1, "", -1},
		{s3, wal.Unborn, 0, "", -1},
		{s1, wal.DamagedRecord, int64(recs[2].off), recs[2].key, int64(recs[3].off)},
		{s1, wal.DamagedHeader, int64(recs[5].off), "", int64(recs[6].off)},
		{s2, wal.TornTail, int64(tornAt), "", -1},
	}
	if rep.Segments != 3 || !slices.Equal(got, want) {
		t.Errorf("Verify: %d segments, %+v;\nwant 3, %+v", rep.Segments, got, want)
	}
	for n, b := range before {
		if !bytes.Equal(readFile(t, n), b) {
			t.Errorf("Verify changed %s", n)
		}
	}
	if len(rep.Without) != 1 || rep.Without[s1] == nil {
		t.Fatalf("Without: %d segments; want segment 1's", len(rep.Without))
	}
	goodRecs := oracle(t, rep.Without[s1], 1)
	if len(goodRecs) != 8 {
		t.Errorf("segment 1 without its damaged records holds %d records, want 8", len(goodRecs))
	}
}

// TestLog_FormatV1Fixture replays the log of the root package's fixture
// (testdata/datadir-v1, written by the code of commit a3a563a): the oracle
// and the replay must find the same records, all good, with a key that
// begins each body (a msgpack array of three whose first item is the
// list's name).
func TestLog_FormatV1Fixture(t *testing.T) {
	src := filepath.Join("..", "..", "testdata", "datadir-v1", "dir", "log")
	files, err := filepath.Glob(filepath.Join(src, "*.seg"))
	if err != nil || len(files) < 3 {
		t.Fatalf("fixture segments %v, %v", files, err)
	}
	dir := t.TempDir()
	var want []string
	for i, f := range files {
		data := readFile(t, f)
		writeFile(t, filepath.Join(dir, filepath.Base(f)), data)
		for _, x := range fixtureOracle(t, data, uint64(i+1)) {
			want = append(want, fmt.Sprint(i+1, " ", x.off, " ", x.key))
		}
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	var got []string
	l, segs, err := wal.Open(root, dir, wal.Options{
		Key:         msgpackName,
		SegmentSize: 16 << 10,
		Record:      func(r wal.Record) { got = append(got, fmt.Sprint(r.Seg, " ", r.Off, " ", string(r.Key))) },
		Damaged:     func(r wal.Record, err error) { t.Errorf("damaged: %v", err) },
		Created:     func(wal.Segment) {},
		Sealed:      func(uint64) {},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if len(want) < 100 || !slices.Equal(got, want) || len(segs) != len(files) {
		t.Errorf("replay of the fixture: %d records in %d segments; the oracle finds %d in %d", len(got), len(segs), len(want), len(files))
	}
}

// msgpackName is the key of the fixture's records: a fixstr or str8 after
// a fixarray of three.
func msgpackName(b []byte) ([]byte, bool) {
	if len(b) < 2 || b[0] != 0x93 {
		return nil, false
	}
	n, at := int(b[1]&0x1f), 2
	switch {
	case b[1] == 0xd9 && len(b) > 2:
		n, at = int(b[2]), 3
	case b[1]&0xe0 != 0xa0:
		return nil, false
	}
	if at+n > len(b) {
		return nil, false
	}
	return b[at : at+n], true
}

// fixtureOracle is oracle for a segment whose bodies are msgpack.
func fixtureOracle(tb testing.TB, data []byte, seq uint64) []rec {
	tb.Helper()
	var recs []rec
	off := 16
	for off+12 <= len(data) && binary.BigEndian.Uint32(data[off:]) != 0 {
		n := int(binary.BigEndian.Uint32(data[off:]))
		b := data[off+12 : off+12+n]
		key, ok := msgpackName(b)
		h := crc32.Update(0, castagnoli, data[8:16])
		h = crc32.Update(h, castagnoli, data[off:off+8])
		h = crc32.Update(h, castagnoli, key)
		if !ok || crc32.Checksum(b, castagnoli) != binary.BigEndian.Uint32(data[off+4:]) || h != binary.BigEndian.Uint32(data[off+8:]) {
			tb.Fatalf("segment %d: bad record at offset %d", seq, off)
		}
		recs = append(recs, rec{off: off, end: off + 12 + n, key: string(key)})
		off += 12 + n
	}
	return recs
}
