package todo_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gotodo/todo"
	"github.com/vmihailenco/msgpack/v5"
)

// The log's recovery, tested on real files: a data directory is copied
// while its System runs (with Fsync durability every acknowledged record
// is in the copy, as after a SIGKILL; the default LogSize of 64 MiB keeps
// checkpoints away), damaged the way a crash or a disk would, and opened.
// The segments are read by an oracle written here from the format's
// description in log.go, not with its code.

// logRec is a record of a segment, as the oracle reads it.
type logRec struct {
	off, end int // its bytes in the segment
	list     string
}

// logCastagnoli is the CRC-32C table the log's checksums use.
var logCastagnoli = crc32.MakeTable(crc32.Castagnoli)

// logRecords reads a healthy segment: a 16-byte header ("TODOLG", version
// 1, lane, big-endian sequence number), then records (body length, body
// CRC-32C, CRC-32C of the sequence number, length, body CRC and list name;
// body msgpack [name, lastID, ops], or [name, lastID, ops, revision])
// up to the zeros that end them. It
// fails the test on anything else.
func logRecords(tb testing.TB, data []byte) []logRec {
	tb.Helper()
	if len(data) < 16 || string(data[:6]) != "TODOLG" || data[6] != 1 {
		tb.Fatalf("not a segment: % x", data[:min(len(data), 16)])
	}
	seq := data[8:16]
	var recs []logRec
	off := 16
	for off+12 <= len(data) {
		n := int(binary.BigEndian.Uint32(data[off:]))
		if n == 0 {
			if !logZero(data[off:]) {
				tb.Fatalf("a zero length at offset %d, and not only zeros after it", off)
			}
			break
		}
		body := data[off+12 : off+12+n]
		if crc32.Checksum(body, logCastagnoli) != binary.BigEndian.Uint32(data[off+4:]) {
			tb.Fatalf("record at offset %d: body checksum mismatch", off)
		}
		var fields []any
		if err := msgpack.Unmarshal(body, &fields); err != nil || len(fields) != 3 && len(fields) != 4 {
			tb.Fatalf("record at offset %d: body %v, %d fields", off, err, len(fields))
		}
		name, _ := fields[0].(string)
		h := crc32.Update(0, logCastagnoli, seq)
		h = crc32.Update(h, logCastagnoli, data[off:off+8])
		h = crc32.Update(h, logCastagnoli, []byte(name))
		if h != binary.BigEndian.Uint32(data[off+8:]) {
			tb.Fatalf("record at offset %d: header checksum mismatch", off)
		}
		recs = append(recs, logRec{off, off + 12 + n, name})
		off += 12 + n
	}
	return recs
}

func logZero(b []byte) bool { return !slices.ContainsFunc(b, func(c byte) bool { return c != 0 }) }

// logSegments returns the paths of a data directory's segments, oldest
// first.
func logSegments(tb testing.TB, dir string) []string {
	tb.Helper()
	segs, err := filepath.Glob(filepath.Join(dir, "log", "*.seg"))
	if err != nil {
		tb.Fatal(err)
	}
	slices.Sort(segs)
	return segs
}

// copyDir copies the regular files and directories under src to a new
// temp directory and returns its path: taken while a System runs, what a
// SIGKILL at that moment would leave (but for the lock, which dies with
// the process), provided that no checkpoint runs meanwhile. (A copy is
// not taken at one instant: a checkpoint that renamed a list file after
// the copy passed it and deleted a segment before the copy reached it
// would make a state that no crash can leave.)
func copyDir(tb testing.TB, src string) string {
	tb.Helper()
	dst := filepath.Join(tb.TempDir(), "copy")
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(to, data, 0o644)
	})
	if err != nil {
		tb.Fatal(err)
	}
	return dst
}

// closeWithin closes sys and fails the test if Close does not return
// within 10s (what store state made it hang is said by what), leaving it
// hanging: a hung Close must fail its test, not the whole run's timeout.
func closeWithin(tb testing.TB, sys *todo.System, what string) {
	tb.Helper()
	closed := make(chan error, 1)
	go func() { closed <- sys.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			tb.Logf("Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		tb.Errorf("Close did not return in 10s %s", what)
	}
}

// logState is what the test expects of each list.
type logState map[string][]todo.Entry

// logWant checks that sys holds exactly want.
func logWant(tb testing.TB, sys *todo.System, want logState, when string) {
	tb.Helper()
	for list, es := range want {
		if got := persistAll(tb, sys, list); !slices.Equal(got, es) {
			tb.Errorf("%s: %q = %v, want %v", when, list, got, es)
		}
	}
}

// logImage runs a session on a fresh directory, adding entries to lists
// a and b in turn (one commit, so one record, each), and returns a copy
// of the directory taken while it runs, with the entries acknowledged,
// the last one of which (to a) is in the last record of the only
// segment, whose records the oracle read.
func logImage(tb testing.TB, adds int) (dir string, acked logState, last todo.Entry, recs []logRec) {
	tb.Helper()
	live := tb.TempDir()
	sys := persistOpen(tb, live, nil)
	acked = logState{}
	for i := range adds {
		list := []string{"b", "a"}[(adds-i)%2]
		last = persistAdd(tb, sys, list, fmt.Sprintf("%s entry %d", list, i))
		acked[list] = append(acked[list], last)
	}
	dir = copyDir(tb, live)
	persistClose(tb, sys)
	segs := logSegments(tb, dir)
	if len(segs) != 1 {
		tb.Fatalf("%d segments, want 1", len(segs))
	}
	data, err := os.ReadFile(segs[0])
	if err != nil {
		tb.Fatal(err)
	}
	recs = logRecords(tb, data)
	if len(data) < recs[len(recs)-1].end+4096 {
		tb.Fatalf("the segment has %d bytes, its records end at %d: no preallocated zeros after them", len(data), recs[len(recs)-1].end)
	}
	if len(recs) != adds || recs[len(recs)-1].list != "a" {
		tb.Fatalf("%d records, the last of %q; want one per add (%d), the last of a", len(recs), recs[len(recs)-1].list, adds)
	}
	return dir, acked, last, recs
}

// TestLog_TornTail tears the last record of the newest segment the ways a
// crash in the middle of an append can (cut short, its end still the
// preallocated zeros) and adds after it what a crash can leave past the
// records (garbage, part of a record). Open cuts the tail off and serves
// every record before it: the torn record's entry is gone (it was never
// acknowledged: the fdatasync had not returned) and the others are all
// there. The segment is then cut there, or deleted once checkpointed, so
// that it never holds bytes that a later Open, finding it no longer the
// newest, would have to call damage; a second crash and Open prove it.
func TestLog_TornTail(t *testing.T) {
	garbage := bytes.Repeat([]byte("garbage!"), 20)
	tests := []struct {
		name string
		tear func(data []byte, last logRec) []byte
		lost bool // the last record is torn, not only followed by junk
	}{
		{"cut in the body", func(d []byte, r logRec) []byte { return d[:r.off+12+(r.end-r.off-12)/2] }, true},
		{"cut in the header", func(d []byte, r logRec) []byte { return d[:r.off+5] }, true},
		{"zeros over the end of the body", func(d []byte, r logRec) []byte {
			clear(d[r.end-(r.end-r.off)/3 : r.end])
			return d
		}, true},
		{"garbage after, then zeros", func(d []byte, r logRec) []byte { copy(d[r.end:], garbage); return d }, false},
		{"garbage at the end of the file", func(d []byte, r logRec) []byte { return append(d[:r.end:r.end], garbage...) }, false},
		{"half a record after, then zeros", func(d []byte, r logRec) []byte {
			half := slices.Clone(d[r.off : r.off+(r.end-r.off)/2])
			copy(d[r.end:], half)
			return d
		}, false},
		{"a whole header after, at the end", func(d []byte, r logRec) []byte {
			return append(d[:r.end:r.end], slices.Clone(d[r.off:r.off+12])...)
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, acked, last, recs := logImage(t, 9)
			seg := logSegments(t, dir)[0]
			data, err := os.ReadFile(seg)
			if err != nil {
				t.Fatal(err)
			}
			lastRec := recs[len(recs)-1]
			if err := os.WriteFile(seg, tt.tear(data, lastRec), 0o644); err != nil {
				t.Fatal(err)
			}
			want := acked
			cutAt := int64(lastRec.end)
			if tt.lost {
				want = logState{"a": slices.DeleteFunc(slices.Clone(acked["a"]), func(e todo.Entry) bool { return e == last }), "b": acked["b"]}
				cutAt = int64(lastRec.off)
			}

			sys, err := todo.Open(dir, nil)
			if err != nil {
				t.Fatalf("Open after a torn append: %v", err)
			}
			t.Cleanup(func() { sys.Close() })
			if info, err := os.Stat(seg); err == nil && info.Size() != cutAt {
				t.Errorf("after Open the segment has %d bytes, want it cut at %d (or deleted)", info.Size(), cutAt)
			} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
				t.Error(err)
			}
			logWant(t, sys, want, "after Open")
			added := persistAdd(t, sys, "a", "after the crash")
			want["a"] = append(slices.Clone(want["a"]), added)

			todo.WaitCheckpoints(sys) // those of Open's replay, for copyDir
			again := copyDir(t, dir)  // a second crash
			persistClose(t, sys)
			sys = persistOpen(t, again, nil)
			logWant(t, sys, want, "after a second crash")
			persistClose(t, sys)
		})
	}
}

// TestLog_TornSegmentCreation leaves what a crash while the log starts a
// new segment leaves: its file created, its header not yet written (or,
// after a power cut, not yet on disk). No record can be in it: a segment's
// header is fsynced before any record is written. Open must take it for
// what it is and serve everything else, not refuse the directory; but
// such a file anywhere but at the end of the log is damage, and Open
// refuses it.
func TestLog_TornSegmentCreation(t *testing.T) {
	for _, tt := range []struct {
		name   string
		header []byte
	}{
		{"empty", nil},
		{"part of a header", []byte("TODOLG")},
		{"zeros", make([]byte, 16)},
		{"zeros, preallocated", make([]byte, 64<<10)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir, acked, _, _ := logImage(t, 6)
			seg := logSegments(t, dir)[0]
			next := filepath.Join(filepath.Dir(seg), fmt.Sprintf("%016x.seg", 2))
			if filepath.Base(seg) != fmt.Sprintf("%016x.seg", 1) {
				t.Fatalf("the first segment is %s", seg)
			}
			if err := os.WriteFile(next, tt.header, 0o644); err != nil {
				t.Fatal(err)
			}
			sys, err := todo.Open(dir, nil)
			if err != nil {
				t.Fatalf("Open after a crash while a segment was created: %v", err)
			}
			logWant(t, sys, acked, "after Open")
			acked["b"] = append(acked["b"], persistAdd(t, sys, "b", "after the crash"))
			todo.WaitCheckpoints(sys) // those of Open's replay, for copyDir
			again := copyDir(t, dir)
			persistClose(t, sys)
			sys = persistOpen(t, again, nil)
			logWant(t, sys, acked, "after a second crash")
			persistClose(t, sys)
		})
	}
	t.Run("not the newest", func(t *testing.T) {
		dir, _, _, _ := logImage(t, 6)
		seg := logSegments(t, dir)[0]
		data, err := os.ReadFile(seg)
		if err != nil {
			t.Fatal(err)
		}
		// Segment 1 holds nothing, segment 2 the records (renumbered: the
		// sequence number is in the header and in every header checksum,
		// so the records are rewritten for it).
		data = renumberSegment(t, data, 2)
		if err := os.WriteFile(seg, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(filepath.Dir(seg), fmt.Sprintf("%016x.seg", 2)), data, 0o644); err != nil {
			t.Fatal(err)
		}
		sys, err := todo.Open(dir, nil)
		if err == nil {
			sys.Close()
			t.Fatal("Open succeeded with an empty segment before a segment of records")
		}
		if !errors.Is(err, todo.ErrCorrupt) || !strings.Contains(err.Error(), seg) {
			t.Errorf("Open: %v, want ErrCorrupt naming %s", err, seg)
		}
	})
}

// renumberSegment returns a healthy segment's bytes with sequence number
// seq: in its header, and in the header checksum of every record.
func renumberSegment(tb testing.TB, data []byte, seq uint64) []byte {
	tb.Helper()
	recs := logRecords(tb, data)
	data = slices.Clone(data)
	binary.BigEndian.PutUint64(data[8:], seq)
	for _, r := range recs {
		h := crc32.Update(0, logCastagnoli, data[8:16])
		h = crc32.Update(h, logCastagnoli, data[r.off:r.off+8])
		h = crc32.Update(h, logCastagnoli, []byte(r.list))
		binary.BigEndian.PutUint32(data[r.off+8:], h)
	}
	logRecords(tb, data)
	return data
}

// TestLog_TornTailOfOlderSegment puts garbage after the records of a
// segment that is not the newest: it was sealed (cut to its records and
// fdatasynced) before the next one began, so this is damage, not a torn
// append, and Open refuses it, naming the segment and the offset.
func TestLog_TornTailOfOlderSegment(t *testing.T) {
	dir, _, _, recs := logImage(t, 6)
	seg := logSegments(t, dir)[0]
	data, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	end := recs[len(recs)-1].end
	data = append(data[:end:end], "garbage"...)
	if err := os.WriteFile(seg, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(filepath.Dir(seg), fmt.Sprintf("%016x.seg", 2)), renumberSegment(t, data[:end], 2), 0o644); err != nil {
		t.Fatal(err)
	}
	sys, err := todo.Open(dir, nil)
	if err == nil {
		sys.Close()
		t.Fatal("Open succeeded with garbage after the records of a sealed segment")
	}
	if want := fmt.Sprintf("offset %d", end); !errors.Is(err, todo.ErrCorrupt) || !strings.Contains(err.Error(), seg) || !strings.Contains(err.Error(), want) {
		t.Errorf("Open: %v, want ErrCorrupt naming %s and %s", err, seg, want)
	}
}

// TestLog_DamagedRecordBody flips a byte in the body of a record in the
// middle of a segment (its header, which names its list, holds): that
// list's loads fail with ErrCorrupt naming the segment and the record's
// offset, every other list loads whole, and the damage survives Close and
// Open (the segment is kept, the list never served without that record).
func TestLog_DamagedRecordBody(t *testing.T) {
	ctx := context.Background()
	live := t.TempDir()
	sys := persistOpen(t, live, nil)
	want := logState{}
	for i := range 12 {
		list := []string{"victim", "bystander", "other"}[i%3]
		want[list] = append(want[list], persistAdd(t, sys, list, fmt.Sprintf("%s entry %d", list, i)))
	}
	dir := copyDir(t, live)
	persistClose(t, sys)
	seg := logSegments(t, dir)[0]
	data, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	recs := logRecords(t, data)
	victim := recs[3] // the second record of victim, with eight after it
	if victim.list != "victim" {
		t.Fatalf("record 3 is of %q", victim.list)
	}
	data[victim.end-1] ^= 0x01 // the last byte of its title
	if err := os.WriteFile(seg, data, 0o644); err != nil {
		t.Fatal(err)
	}

	check := func(sys *todo.System, when string) {
		t.Helper()
		wantErr := fmt.Sprintf("offset %d", victim.off)
		_, err := sys.ServerProcess("victim").AllEntries(ctx)
		if !errors.Is(err, todo.ErrCorrupt) || !strings.Contains(err.Error(), seg) || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("%s: AllEntries(victim): %v, want ErrCorrupt naming %s and %s", when, err, seg, wantErr)
		}
		if _, err := sys.ServerProcess("victim").AddEntry(ctx, todo.Entry{Date: persistDay, Title: "must not land"}); !errors.Is(err, todo.ErrCorrupt) {
			t.Errorf("%s: AddEntry(victim): %v, want ErrCorrupt", when, err)
		}
		logWant(t, sys, logState{"bystander": want["bystander"], "other": want["other"]}, when)
	}
	sys, err = todo.Open(dir, nil)
	if err != nil {
		t.Fatalf("Open with a damaged record body: %v", err)
	}
	t.Cleanup(func() { closeWithin(t, sys, "") })
	check(sys, "after Open")
	want["other"] = append(want["other"], persistAdd(t, sys, "other", "after the damage"))
	closeWithin(t, sys, "with a damaged record in the log")
	if _, err := os.Stat(seg); err != nil {
		t.Fatalf("the damaged segment is gone after Close: %v", err)
	}
	sys = persistOpen(t, dir, nil)
	check(sys, "after Close and Open")
	persistClose(t, sys)
}

// TestLog_DamagedRecordHeader flips a byte in each field of the header of
// a record in the middle of a segment, and in the list name its checksum
// covers: whose record it is cannot be known, so Open fails with
// ErrCorrupt naming the segment and the offset, and leaves the segment as
// it was (it does not take the damage for a torn tail and cut it). Once
// the byte is put back, Open serves everything.
func TestLog_DamagedRecordHeader(t *testing.T) {
	for _, tt := range []struct {
		name string
		at   int // the byte flipped, from the record's start
	}{
		{"length", 3}, {"body checksum", 5}, {"header checksum", 10}, {"list name", 14},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir, acked, _, recs := logImage(t, 8)
			seg := logSegments(t, dir)[0]
			good, err := os.ReadFile(seg)
			if err != nil {
				t.Fatal(err)
			}
			r := recs[3]
			bad := slices.Clone(good)
			bad[r.off+tt.at] ^= 0x04
			if err := os.WriteFile(seg, bad, 0o644); err != nil {
				t.Fatal(err)
			}
			sys, err := todo.Open(dir, nil)
			if err == nil {
				sys.Close()
				t.Fatal("Open succeeded with a damaged record header")
			}
			if want := fmt.Sprintf("offset %d", r.off); !errors.Is(err, todo.ErrCorrupt) || !strings.Contains(err.Error(), seg) || !strings.Contains(err.Error(), want) {
				t.Errorf("Open: %v, want ErrCorrupt naming %s and %s", err, seg, want)
			}
			if after, err := os.ReadFile(seg); err != nil || !bytes.Equal(after, bad) {
				t.Errorf("the failed Open changed the damaged segment (%v)", err)
			}
			if err := os.WriteFile(seg, good, 0o644); err != nil {
				t.Fatal(err)
			}
			sys = persistOpen(t, dir, nil)
			logWant(t, sys, acked, "after the repair")
			persistClose(t, sys)
		})
	}
}

// TestLog_CorruptFileWithRecordsInLog damages the file of a list that
// also has records in the log (TestFiles_Corrupt covers lists whose file
// is all there is): loading it fails with ErrCorrupt naming the file,
// other lists load, Close returns and keeps the list's records in the
// log, and once the file is repaired the list is its file and its records.
func TestLog_CorruptFileWithRecordsInLog(t *testing.T) {
	ctx := context.Background()
	live := t.TempDir()
	sys := persistOpen(t, live, nil)
	want := logState{}
	for i := range 3 {
		want["victim"] = append(want["victim"], persistAdd(t, sys, "victim", fmt.Sprint("in the file ", i)))
	}
	persistClose(t, sys) // victim's file holds these three
	file := persistPath(live, "victim")
	good, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	sys = persistOpen(t, live, nil)
	for i := range 3 {
		want["victim"] = append(want["victim"], persistAdd(t, sys, "victim", fmt.Sprint("in the log ", i)))
		want["bystander"] = append(want["bystander"], persistAdd(t, sys, "bystander", fmt.Sprint("in the log ", i)))
	}
	dir := copyDir(t, live)
	persistClose(t, sys)

	file = persistPath(dir, "victim")
	bad := slices.Clone(good)
	bad[len(bad)-1] ^= 0x01
	if err := os.WriteFile(file, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	var logged atomic.Int64
	sys, err = todo.Open(dir, &todo.Options{Logger: slog.New(countingHandler{&logged})})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { closeWithin(t, sys, "") })
	_, err = sys.ServerProcess("victim").AllEntries(ctx)
	if !errors.Is(err, todo.ErrCorrupt) || !strings.Contains(err.Error(), file) {
		t.Errorf("AllEntries(victim): %v, want ErrCorrupt naming %s", err, file)
	}
	logWant(t, sys, logState{"bystander": want["bystander"]}, "with victim's file damaged")
	closeWithin(t, sys, "with a damaged list file whose list has records in the log")
	if len(logSegments(t, dir)) == 0 {
		t.Fatal("Close deleted the log, and with it victim's records that its file does not hold")
	}
	if after, err := os.ReadFile(file); err != nil || !bytes.Equal(after, bad) {
		t.Errorf("the damaged file was changed (%v)", err)
	}

	if err := os.WriteFile(file, good, 0o644); err != nil {
		t.Fatal(err)
	}
	sys = persistOpen(t, dir, nil)
	logWant(t, sys, want, "after the repair")
	persistClose(t, sys)
}

// TestLog_ReplayIsIdempotent builds what a crash between a checkpoint's
// renames and its segment's delete leaves: list files that already hold
// everything, and the segments whose records they hold. The segments are
// copied aside while the System runs and put back after its Close (which
// checkpoints every list and deletes them). Open replays them over the
// files and must give exactly the lists as they were: adds, updates and
// deletes, each replayed over a file that has it already, change nothing,
// and no id is given out again.
func TestLog_ReplayIsIdempotent(t *testing.T) {
	for _, d := range []todo.Durability{todo.Fsync, todo.Write} {
		t.Run("durability="+d.String(), func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			opts := &todo.Options{Durability: d}
			sys := persistOpen(t, dir, opts)
			// An earlier life, checkpointed: the files hold it and the log
			// does not.
			persistAdd(t, sys, "bob", "from before")
			persistClose(t, sys)

			sys = persistOpen(t, dir, opts)
			bob, alice := sys.ServerProcess("bob"), sys.ServerProcess("alice")
			for i := range 6 {
				persistAdd(t, sys, "bob", fmt.Sprint("bob ", i))
				persistAdd(t, sys, "alice", fmt.Sprint("alice ", i))
			}
			rename := func(e todo.Entry) todo.Entry { e.Title += " (renamed)"; return e }
			for _, id := range []int{1, 3} {
				if _, err := bob.UpdateEntry(ctx, id, rename); err != nil {
					t.Fatal(err)
				}
			}
			for _, id := range []int{2, 7} { // 7 is bob's last id
				if err := bob.DeleteEntry(ctx, id); err != nil {
					t.Fatal(err)
				}
			}
			if err := alice.DeleteEntry(ctx, 1); err != nil {
				t.Fatal(err)
			}
			if _, err := alice.UpdateEntry(ctx, 6, rename); err != nil {
				t.Fatal(err)
			}
			persistAdd(t, sys, "carol", "added, then deleted")
			if err := sys.ServerProcess("carol").DeleteEntry(ctx, 1); err != nil {
				t.Fatal(err)
			}
			want := logState{"bob": persistAll(t, sys, "bob"), "alice": persistAll(t, sys, "alice"), "carol": nil}

			aside := t.TempDir()
			segs := logSegments(t, dir)
			if len(segs) == 0 {
				t.Fatal("no segment to copy aside")
			}
			for _, s := range segs {
				data, err := os.ReadFile(s)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(aside, filepath.Base(s)), data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			persistClose(t, sys)
			if left := logSegments(t, dir); len(left) != 0 {
				t.Fatalf("Close left segments %v: the test needs them deleted", left)
			}
			if got := persistFileEntries(t, dir, "bob"); !slices.Equal(got, want["bob"]) {
				t.Fatalf("bob's file after Close = %v, want %v", got, want["bob"])
			}
			for _, s := range segs {
				data, err := os.ReadFile(filepath.Join(aside, filepath.Base(s)))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(s, data, 0o644); err != nil {
					t.Fatal(err)
				}
			}

			for round := range 2 { // and once more, after the replay's own checkpoints
				sys = persistOpen(t, dir, opts)
				logWant(t, sys, want, fmt.Sprintf("replay %d", round))
				persistClose(t, sys)
			}
			sys = persistOpen(t, dir, opts)
			if e := persistAdd(t, sys, "bob", "next"); e.ID <= 7 {
				t.Errorf("bob's next id after the replay is %d, want more than 7", e.ID)
			}
			if e := persistAdd(t, sys, "carol", "next"); e.ID <= 1 {
				t.Errorf("carol's next id after the replay is %d, want more than 1", e.ID)
			}
			persistClose(t, sys)
		})
	}
}

// TestLog_OpenIsLazy is TestFiles_OpenIsLazy with a log to replay: 2,000
// list files that are all corrupt (empty), and a log with records of
// other lists, whose files are fine. Open replays the log but reads no
// list file, nor do the checkpoints of the replayed lists that follow it:
// nothing is logged, and the replayed lists are whole.
func TestLog_OpenIsLazy(t *testing.T) {
	const n = 2000
	live := t.TempDir()
	sys := persistOpen(t, live, nil)
	want := logState{}
	for i := range 3 {
		want["logged"] = append(want["logged"], persistAdd(t, sys, "logged", fmt.Sprint("in the file ", i)))
	}
	persistClose(t, sys)
	sys = persistOpen(t, live, nil)
	for i := range 3 {
		want["logged"] = append(want["logged"], persistAdd(t, sys, "logged", fmt.Sprint("in the log ", i)))
		want["only logged"] = append(want["only logged"], persistAdd(t, sys, "only logged", fmt.Sprint("in the log ", i)))
	}
	dir := copyDir(t, live)
	persistClose(t, sys)
	for i := range n {
		persistWriteFile(t, dir, fmt.Sprintf("lazy %d", i), nil)
	}

	var logged atomic.Int64
	sys = persistOpen(t, dir, &todo.Options{Logger: slog.New(countingHandler{&logged})})
	names, err := sys.Lists(context.Background())
	if err != nil || len(names) != n+2 {
		t.Fatalf("Lists: %d names, %v; want %d", len(names), err, n+2)
	}
	todo.WaitCheckpoints(sys)
	if st := sys.Stats(); st.ServersStarted != 0 || logged.Load() != 0 {
		t.Fatalf("Open, its replay and its checkpoints started %d servers and logged %d records; want none", st.ServersStarted, logged.Load())
	}
	logWant(t, sys, want, "after Open")
	if _, err := sys.ServerProcess("lazy 7").AllEntries(context.Background()); !errors.Is(err, todo.ErrCorrupt) {
		t.Fatalf("reading an empty list file: %v, want ErrCorrupt", err)
	}
	if logged.Load() == 0 {
		t.Fatal("a corrupt list was read but nothing was logged: the check above proves nothing")
	}
}

// TestLog_FormatV1Fixture opens testdata/datadir-v1/dir, a data directory
// that the code of commit a3a563a wrote and left as a SIGKILL does (list
// files, a log of four segments with records of every kind, ids reserved
// ahead, idempotency keys, a name split into nested directories; see
// gen.go there), and checks that it reads exactly what that code read
// from it (want.json, written by that code): todo check's findings, every
// list's entries, the answer to a retry of each keyed add, and the id of
// the next entry of each list. The format on disk must never change
// under a directory someone has.
func TestLog_FormatV1Fixture(t *testing.T) {
	fixture := filepath.Join("testdata", "datadir-v1")
	data, err := os.ReadFile(filepath.Join(fixture, "want.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want struct {
		Lists  map[string][]todo.Entry
		NextID map[string]int
		Keyed  map[string]struct {
			List string
			ID   int
		}
		Files, Segments int
		Problems        []string
	}
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatal(err)
	}
	if len(want.Lists) == 0 || len(want.Keyed) == 0 || want.Segments < 3 {
		t.Fatalf("want.json holds too little to test anything: %s", data)
	}

	problems, files, segments, err := todo.Check(copyDir(t, filepath.Join(fixture, "dir")), false)
	var got []string
	for _, p := range problems {
		got = append(got, p.String())
	}
	if err != nil || files != want.Files || segments != want.Segments || !slices.Equal(got, want.Problems) {
		t.Errorf("Check: %q, %d files, %d segments, %v; want %q, %d, %d", got, files, segments, err, want.Problems, want.Files, want.Segments)
	}

	ctx := context.Background()
	dir := copyDir(t, filepath.Join(fixture, "dir"))
	for life := range 2 { // as replayed, then as checkpointed by the first life
		sys := persistOpen(t, dir, nil)
		names, err := sys.Lists(ctx)
		slices.Sort(names)
		if err != nil || !slices.Equal(names, slices.Sorted(maps.Keys(want.Lists))) {
			t.Errorf("life %d: Lists = %q, %v; want %q", life, names, err, slices.Sorted(maps.Keys(want.Lists)))
		}
		logWant(t, sys, want.Lists, fmt.Sprintf("life %d", life))
		persistClose(t, sys)
	}
	sys := persistOpen(t, dir, nil)
	defer persistClose(t, sys)
	for key, k := range want.Keyed {
		e, err := sys.AddEntry(todo.WithIdempotencyKey(ctx, key), k.List, todo.Entry{Date: persistDay, Title: "a retry"})
		if err != nil || e.ID != k.ID {
			t.Errorf("retry of %s on %q: entry %d, %v; want %d", key, k.List, e.ID, err, k.ID)
		}
	}
	for list, id := range want.NextID {
		if e := persistAdd(t, sys, list, "next"); e.ID != id {
			t.Errorf("the next entry of %q has id %d, want %d", list, e.ID, id)
		}
	}
}
