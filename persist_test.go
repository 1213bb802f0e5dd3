package todo_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gotodo/todo"
	"github.com/vmihailenco/msgpack/v5"
)

// persistDay is the date of every entry the persistence tests add.
var persistDay = todo.Date{Year: 2013, Month: time.December, Day: 19}

// persistOpen opens a System over dir and closes it when the test ends
// (Close is idempotent, so tests may close it earlier).
func persistOpen(tb testing.TB, dir string, opts *todo.Options) *todo.System {
	tb.Helper()
	sys, err := todo.Open(dir, opts)
	if err != nil {
		tb.Fatalf("Open(%q): %v", dir, err)
	}
	tb.Cleanup(func() { sys.Close() })
	return sys
}

// persistClose closes sys and fails the test if Close reports an error.
func persistClose(tb testing.TB, sys *todo.System) {
	tb.Helper()
	if err := sys.Close(); err != nil {
		tb.Fatalf("Close: %v", err)
	}
}

// persistPath is the path of the file holding the list called name.
func persistPath(dir, name string) string {
	return filepath.Join(dir, filepath.FromSlash(todo.FileName(name)))
}

// persistAdd adds an entry titled title to a list and returns it as stored.
func persistAdd(tb testing.TB, sys *todo.System, list, title string) todo.Entry {
	tb.Helper()
	e, err := sys.ServerProcess(list).AddEntry(context.Background(), todo.Entry{Date: persistDay, Title: title})
	if err != nil {
		tb.Fatalf("AddEntry(%q, %q): %v", list, title, err)
	}
	return e
}

// persistAll returns every entry of a list.
func persistAll(tb testing.TB, sys *todo.System, list string) []todo.Entry {
	tb.Helper()
	es, err := sys.ServerProcess(list).AllEntries(context.Background())
	if err != nil {
		tb.Fatalf("AllEntries(%q): %v", list, err)
	}
	return es
}

// persistFrame frames a body as a list file, written here independently of
// persist.go: "TODO", format version 1, three zero bytes, the body's length
// and its CRC-32C (Castagnoli), both big-endian uint32.
func persistFrame(body []byte) []byte {
	b := []byte{'T', 'O', 'D', 'O', 1, 0, 0, 0}
	b = binary.BigEndian.AppendUint32(b, uint32(len(body)))
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(body, crc32.MakeTable(crc32.Castagnoli)))
	return append(b, body...)
}

// persistWriteFile writes data as the file of the list called name.
func persistWriteFile(tb testing.TB, dir, name string, data []byte) {
	tb.Helper()
	p := persistPath(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		tb.Fatal(err)
	}
}

// persistFileEntries reads the entries of a list straight from its file,
// without a System: what a crash at this moment would leave.
func persistFileEntries(tb testing.TB, dir, name string) []todo.Entry {
	tb.Helper()
	data, err := os.ReadFile(persistPath(dir, name))
	if err != nil {
		tb.Fatal(err)
	}
	if len(data) < 16 || !bytes.Equal(data, persistFrame(data[16:])) {
		tb.Fatalf("the file of %q is not a well-framed list file", name)
	}
	// The body's first three members, whatever follows them (keys, a
	// revision).
	var fields []msgpack.RawMessage
	if err := msgpack.Unmarshal(data[16:], &fields); err != nil || len(fields) < 3 {
		tb.Fatalf("the file of %q: %v, %d members", name, err, len(fields))
	}
	var entries []struct {
		_msgpack struct{} `msgpack:",as_array"`
		ID       int
		Date     int
		Title    string
	}
	if err := msgpack.Unmarshal(fields[2], &entries); err != nil {
		tb.Fatalf("the entries of the file of %q: %v", name, err)
	}
	var es []todo.Entry
	for _, e := range entries {
		d := todo.Date{Year: e.Date / 10000, Month: time.Month(e.Date / 100 % 100), Day: e.Date % 100}
		es = append(es, todo.Entry{ID: e.ID, Date: d, Title: e.Title})
	}
	return es
}

// persistAllocs runs fn and returns the bytes allocated meanwhile by the
// whole process (the calling test must not run in parallel with others).
func persistAllocs(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// persistMaxAlloc bounds what loading one hostile list file may allocate.
const persistMaxAlloc = 64 << 20

// msgpackMaxAlloc bounds what decoding one small hostile payload with the
// msgpack package may allocate. v5.3.6 caps what one header may make it
// allocate ahead (10,000 slice elements, 1 MB of bytes, 1,000,000 map
// entries: 84 MB for a map[string]any); the broken v5.4.0 and v5.4.1 try
// to allocate all 2^32-1 elements an array32 header claims (32 GiB for a
// []int) and die.
const msgpackMaxAlloc = 256 << 20

// TestFiles_Format checks that a list file is exactly persistFrame of its
// body, and that the body is the documented msgpack array [format, lastID,
// [[id, yyyymmdd, title], ...]] as the msgpack package itself reads it, so
// that the hostile-file tests below get past the frame to the decoder;
// and [3, lastID, entries, keys, revision] for a list whose revision is
// not its last id.
func TestFiles_Format(t *testing.T) {
	dir := t.TempDir()
	sys := persistOpen(t, dir, nil)
	persistAdd(t, sys, "alice", "Dentist")
	persistAdd(t, sys, "alice", "Shopping")
	persistAdd(t, sys, "bob", "Dentist")
	persistAdd(t, sys, "bob", "Shopping")
	if err := sys.ServerProcess("bob").DeleteEntry(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	persistClose(t, sys)

	for _, c := range []struct{ list, want string }{
		{"alice", "[1 2 [[1 20131219 Dentist] [2 20131219 Shopping]]]"},
		{"bob", "[3 2 [[2 20131219 Shopping]] [] 4]"}, // new at 1, two adds and a delete: revision 4
	} {
		data, err := os.ReadFile(persistPath(dir, c.list))
		if err != nil {
			t.Fatal(err)
		}
		if len(data) < 16 || !bytes.Equal(data, persistFrame(data[16:])) {
			t.Fatalf("file of %s is not framed as documented:\n got %x\nwant %x", c.list, data, persistFrame(data[16:]))
		}
		var body []any
		if err := msgpack.Unmarshal(data[16:], &body); err != nil {
			t.Fatalf("body of %s is not msgpack: %v", c.list, err)
		}
		if got := fmt.Sprint(body); got != c.want {
			t.Fatalf("body of %s = %s, want %s", c.list, got, c.want)
		}
	}
}

// TestFiles_FormatKeys checks the body of a list that keeps idempotency
// keys, [2, lastID, entries, keys], or here, as the list had an update and
// a delete, [3, lastID, entries, keys, revision], each key the operation of its request
// as docs/storage.md writes it: an add's put [id, yyyymmdd, title, key],
// an update's with a 1 after the key, a delete [id, key]; and that a kind
// other than 1 in that place is refused as corrupt, naming the file.
func TestFiles_FormatKeys(t *testing.T) {
	dir := t.TempDir()
	sys := persistOpen(t, dir, nil)
	s := sys.ServerProcess("bob")
	ctx := context.Background()
	keyed := func(key string) context.Context { return todo.WithIdempotencyKey(ctx, key) }
	if _, err := s.AddEntry(keyed("add-1"), todo.Entry{Date: persistDay, Title: "Dentist"}); err != nil {
		t.Fatal(err)
	}
	persistAdd(t, sys, "bob", "Shopping")
	if _, err := s.UpdateEntry(keyed("upd-1"), 1, func(e todo.Entry) todo.Entry { e.Title = "Dentist at 10"; return e }); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteEntry(keyed("del-1"), 2); err != nil {
		t.Fatal(err)
	}
	persistClose(t, sys)

	p := persistPath(dir, "bob")
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var body []any
	if err := msgpack.Unmarshal(data[16:], &body); err != nil {
		t.Fatalf("body is not msgpack: %v", err)
	}
	want := "[3 2 [[1 20131219 Dentist at 10]] [[1 20131219 Dentist add-1] [1 20131219 Dentist at 10 upd-1 1] [2 del-1]] 5]"
	if got := fmt.Sprint(body); got != want {
		t.Fatalf("body = %s, want %s", got, want)
	}

	kind := bytes.Index(data, []byte("\xa5upd-1\x01"))
	if kind < 0 {
		t.Fatalf("no update kind after the key upd-1 in %x", data)
	}
	data[kind+6] = 2
	data = persistFrame(data[16:]) // a sound frame around the unknown kind
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	sys = persistOpen(t, dir, nil)
	_, err = sys.ServerProcess("bob").AllEntries(ctx)
	if !errors.Is(err, todo.ErrCorrupt) || !strings.Contains(err.Error(), "unknown operation kind 2") || !strings.Contains(err.Error(), p) {
		t.Errorf("a key of kind 2: %v, want ErrCorrupt naming the kind and the file", err)
	}
}

// TestFiles_Corrupt damages a stored list's file in every way a disk or a
// person can, and checks that the list is reported as corrupt, naming the
// file, rather than served as empty; that a failed change does not
// overwrite the damaged file; and that other lists are unaffected.
func TestFiles_Corrupt(t *testing.T) {
	const victim, bystander = "victim", "bystander"
	tests := []struct {
		name   string
		opts   *todo.Options                 // for the System that finds the damage
		damage func(tb testing.TB, p string) // damages the file at p
		isErr  error                         // the error wrapped besides ErrCorrupt, if any
	}{
		{name: "body byte flipped", damage: editFile(func(b []byte) []byte { b[16+len(b[16:])/2] ^= 0x01; return b })},
		{name: "last byte flipped", damage: editFile(func(b []byte) []byte { b[len(b)-1] ^= 0x80; return b })},
		{name: "magic flipped", damage: editFile(func(b []byte) []byte { b[0] ^= 0x20; return b })},
		{name: "version changed", damage: editFile(func(b []byte) []byte { b[4] = 2; return b })},
		{name: "reserved byte set", damage: editFile(func(b []byte) []byte { b[6] = 1; return b })},
		{name: "length flipped", damage: editFile(func(b []byte) []byte { b[11] ^= 0x01; return b })},
		{name: "length huge", damage: editFile(func(b []byte) []byte { b[8] = 0xff; return b })},
		{name: "checksum flipped", damage: editFile(func(b []byte) []byte { b[15] ^= 0x01; return b })},
		{name: "truncated body", damage: editFile(func(b []byte) []byte { return b[:len(b)-1] })},
		{name: "truncated to header", damage: editFile(func(b []byte) []byte { return b[:16] })},
		{name: "truncated header", damage: editFile(func(b []byte) []byte { return b[:7] })},
		{name: "trailing garbage", damage: editFile(func(b []byte) []byte { return append(b, "garbage"...) })},
		{name: "trailing zero byte", damage: editFile(func(b []byte) []byte { return append(b, 0) })},
		{name: "zero length", damage: editFile(func([]byte) []byte { return nil })},
		{name: "all zeros", damage: editFile(func(b []byte) []byte { return make([]byte, len(b)) })},
		{name: "framed garbage", damage: editFile(func([]byte) []byte { return persistFrame([]byte{0xc1}) })},
		{name: "framed trailing msgpack", damage: editFile(func(b []byte) []byte { return persistFrame(append(b[16:], 0xc0)) })},
		{name: "framed wrong schema", damage: editFile(func([]byte) []byte { return persistFrame([]byte{0x81, 0xa1, 'a', 0x01}) })},
		{name: "framed empty body", damage: editFile(func([]byte) []byte { return persistFrame(nil) })},
		{name: "directory", damage: func(tb testing.TB, p string) {
			tb.Helper()
			if err := os.Remove(p); err != nil {
				tb.Fatal(err)
			}
			if err := os.Mkdir(p, 0o755); err != nil {
				tb.Fatal(err)
			}
		}},
		{
			name:   "larger than MaxFileSize",
			opts:   &todo.Options{MaxFileSize: 64},
			damage: func(testing.TB, string) {}, // the file is fine, just too large for the cap
			isErr:  todo.ErrTooLarge,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			sys := persistOpen(t, dir, nil)
			for i := range 5 {
				persistAdd(t, sys, victim, fmt.Sprintf("victim entry %d, long enough to pass 64 bytes", i))
			}
			persistAdd(t, sys, bystander, "Dentist")
			persistClose(t, sys)

			p := persistPath(dir, victim)
			tt.damage(t, p)
			before := persistSnapshotPath(t, p)

			sys = persistOpen(t, dir, tt.opts)
			s := sys.ServerProcess(victim)
			check := func(op string, err error) {
				t.Helper()
				switch {
				case err == nil:
					t.Errorf("%s on a damaged file succeeded", op)
				case !errors.Is(err, todo.ErrCorrupt):
					t.Errorf("%s: %v, want an error wrapping ErrCorrupt", op, err)
				case tt.isErr != nil && !errors.Is(err, tt.isErr):
					t.Errorf("%s: %v, want an error wrapping %v", op, err, tt.isErr)
				case !strings.Contains(err.Error(), p):
					t.Errorf("%s: %q does not name the file %s", op, err, p)
				}
			}
			es, err := s.Entries(ctx, persistDay)
			check("Entries", err)
			if err == nil {
				t.Logf("Entries served %d entries", len(es))
			}
			_, err = s.AddEntry(ctx, todo.Entry{Date: persistDay, Title: "must not land"})
			check("AddEntry", err)
			_, err = s.AllEntries(ctx)
			check("AllEntries", err)
			_, err = s.AddEntry(ctx, todo.Entry{Date: persistDay, Title: "must not land either"})
			check("second AddEntry", err)

			if got := persistAll(t, sys, bystander); len(got) != 1 || got[0].Title != "Dentist" {
				t.Errorf("bystander = %v, want its one entry", got)
			}
			persistAdd(t, sys, bystander, "Shopping")
			if _, err := sys.Lists(ctx); err != nil {
				t.Errorf("Lists: %v", err)
			}
			if err := sys.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			if after := persistSnapshotPath(t, p); after != before {
				t.Errorf("the damaged file was changed:\nbefore %s\n after %s", before, after)
			}
			sys = persistOpen(t, dir, nil)
			if got := persistAll(t, sys, bystander); len(got) != 2 {
				t.Errorf("bystander after reopen = %v, want 2 entries", got)
			}
		})
	}
}

// editFile returns a damage function that rewrites a file through edit.
func editFile(edit func([]byte) []byte) func(testing.TB, string) {
	return func(tb testing.TB, p string) {
		tb.Helper()
		b, err := os.ReadFile(p)
		if err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, edit(b), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
}

// persistSnapshotPath describes what is at p: its type and its content.
func persistSnapshotPath(tb testing.TB, p string) string {
	tb.Helper()
	info, err := os.Lstat(p)
	if err != nil {
		return err.Error()
	}
	if !info.Mode().IsRegular() {
		return info.Mode().String()
	}
	b, err := os.ReadFile(p)
	if err != nil {
		tb.Fatal(err)
	}
	return fmt.Sprintf("%x", b)
}

// TestFiles_Corrupt_FIFO puts a named pipe where a list's file should be.
// Opening a FIFO for reading blocks until a writer comes, so a loader that
// opens before it checks the file type hangs the list's server for ever
// (and Close with it) instead of reporting a corrupt file.
func TestFiles_Corrupt_FIFO(t *testing.T) {
	dir := t.TempDir()
	p := persistPath(dir, "fifo")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(p, 0o644); err != nil {
		t.Skipf("cannot make a FIFO here: %v", err)
	}
	sys := persistOpen(t, dir, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := sys.ServerProcess("fifo").AllEntries(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("AllEntries on a FIFO still blocked after 5s: the loader opened it without O_NONBLOCK")
		// Unblock the stuck open so that the System can close: a writer
		// that comes and goes gives the reader EOF.
		if w, err := os.OpenFile(p, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			w.Close()
		}
		return
	}
	if !errors.Is(err, todo.ErrCorrupt) || !strings.Contains(err.Error(), p) {
		t.Errorf("AllEntries on a FIFO: %v, want ErrCorrupt naming %s", err, p)
	}
}

// TestFiles_SymlinkOutside replaces a list's file by a symbolic link to a
// file outside the data directory: the target is neither served as the
// list nor written through, and the error names the list's file.
func TestFiles_SymlinkOutside(t *testing.T) {
	ctx := context.Background()
	outside := filepath.Join(t.TempDir(), "secret")
	secret := persistFrame([]byte{0x93, 0x01, 0x01, 0x91, 0x93, 0x01, 0xce, 0x01, 0x33, 0x3a, 0x23, 0xa6, 's', 'e', 'c', 'r', 'e', 't'})
	if err := os.WriteFile(outside, secret, 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := persistPath(dir, "victim")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, p); err != nil {
		t.Skipf("cannot make a symbolic link here: %v", err)
	}
	sys := persistOpen(t, dir, nil)
	s := sys.ServerProcess("victim")
	if es, err := s.AllEntries(ctx); err == nil || !strings.Contains(err.Error(), todo.FileName("victim")) {
		t.Errorf("AllEntries through a link out of the data directory = %v, %v; want an error naming the file", es, err)
	}
	if _, err := s.AddEntry(ctx, todo.Entry{Date: persistDay, Title: "through the link"}); err == nil {
		t.Error("AddEntry through a link out of the data directory succeeded")
	}
	persistAdd(t, sys, "bystander", "Dentist")
	persistClose(t, sys)
	if got, err := os.ReadFile(outside); err != nil || !bytes.Equal(got, secret) {
		t.Errorf("the file outside the data directory changed: %q, %v", got, err)
	}
	if info, err := os.Lstat(p); err != nil || info.Mode().Type() != fs.ModeSymlink {
		t.Errorf("the link was replaced: %v, %v", info, err)
	}
}

// persistBody builds list-file bodies, hostile ones included, byte by byte.
type persistBody []byte

func (b persistBody) raw(bs ...byte) persistBody { return append(b, bs...) }

// prefix is a valid start of a body: [format 1, lastID 5, then the entries.
func persistPrefix() persistBody { return persistBody{0x93, 0x01, 0x05} }

// entryHead is an entry [id 1, 20131219, then its title.
func (b persistBody) entryHead() persistBody {
	return append(b, 0x93, 0x01, 0xce, 0x01, 0x33, 0x3a, 0x23) // 20131219 = 0x01333a23
}

// persistHostile are bodies whose msgpack headers claim far more than the
// body holds. Each must fail to load with ErrCorrupt in bounded memory.
func persistHostile() []struct {
	name string
	body []byte
} {
	deep := bytes.Repeat([]byte{0x91}, 100_000)
	return []struct {
		name string
		body []byte
	}{
		{"array32 2^32-1", persistBody{}.raw(0xdd, 0xff, 0xff, 0xff, 0xff)},
		{"array32 2^32-1 then ints", persistBody{}.raw(0xdd, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5, 6, 7, 8, 9)},
		{"map32 2^32-1", persistBody{}.raw(0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 'a', 1)},
		{"str32 2^32-1", persistBody{}.raw(0xdb, 0xff, 0xff, 0xff, 0xff, 'a')},
		{"bin32 2^32-1", persistBody{}.raw(0xc6, 0xff, 0xff, 0xff, 0xff, 'a')},
		{"ext32 2^32-1", persistBody{}.raw(0xc9, 0xff, 0xff, 0xff, 0xff, 0x01, 'a')},
		{"nested arrays 100k deep", deep},
		{"nested arrays 100k deep, terminated", append(slices.Clone(deep), 0xc0)},
		{"entries array32 2^32-1", persistPrefix().raw(0xdd, 0xff, 0xff, 0xff, 0xff)},
		{"entries array32 2^32-1 then an entry", persistPrefix().raw(0xdd, 0xff, 0xff, 0xff, 0xff).entryHead().raw(0xa1, 'x')},
		{"entries array16 65535", persistPrefix().raw(0xdc, 0xff, 0xff).entryHead().raw(0xa1, 'x')},
		{"entries map32", persistPrefix().raw(0xdf, 0xff, 0xff, 0xff, 0xff)},
		{"entry array32", persistPrefix().raw(0x91, 0xdd, 0xff, 0xff, 0xff, 0xff)},
		{"title str32 2^32-1", persistPrefix().raw(0x91).entryHead().raw(0xdb, 0xff, 0xff, 0xff, 0xff, 'x')},
		{"title bin32 2^32-1", persistPrefix().raw(0x91).entryHead().raw(0xc6, 0xff, 0xff, 0xff, 0xff, 'x')},
		{"title array32", persistPrefix().raw(0x91).entryHead().raw(0xdd, 0xff, 0xff, 0xff, 0xff)},
		{"lastID uint64 max", persistBody{}.raw(0x93, 0x01, 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x90)},
		{"format str32", persistBody{}.raw(0x93, 0xdb, 0xff, 0xff, 0xff, 0xff)},
	}
}

// TestFiles_Hostile loads correctly framed files whose msgpack bodies are
// hostile: each must be refused with ErrCorrupt naming the file, without
// allocating what the headers claim.
func TestFiles_Hostile(t *testing.T) {
	for _, tt := range persistHostile() {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			persistWriteFile(t, dir, "hostile", persistFrame(tt.body))
			sys := persistOpen(t, dir, nil)
			var err error
			n := persistAllocs(func() {
				_, err = sys.ServerProcess("hostile").AllEntries(context.Background())
			})
			t.Logf("allocated %d bytes", n)
			if !errors.Is(err, todo.ErrCorrupt) || !strings.Contains(err.Error(), persistPath(dir, "hostile")) {
				t.Errorf("load: %v, want ErrCorrupt naming the file", err)
			}
			if n > persistMaxAlloc {
				t.Errorf("load allocated %d bytes, more than %d", n, persistMaxAlloc)
			}
		})
	}
}

// TestMsgpack_HostileHeaders is the regression test for the decoder bug of
// msgpack v5.4.0 and v5.4.1 (upstream issue #401): a 14-byte input whose
// array32 header claims 2^32-1 elements made Unmarshal allocate for all of
// them, and the process died of an out-of-memory that recover cannot catch.
// v5.3.6, the version pinned in go.mod, caps what a claimed length may
// allocate and returns an error. Upgrading to a broken version kills this
// test (and the test binary) instead of passing.
func TestMsgpack_HostileHeaders(t *testing.T) {
	array32 := []byte{0xdd, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5, 6, 7, 8, 9}
	if len(array32) != 14 {
		t.Fatalf("the payload is %d bytes, want 14", len(array32))
	}
	str32 := []byte{0xdd, 0xff, 0xff, 0xff, 0xff, 0xdb, 0xff, 0xff, 0xff, 0xff, 'a', 'b', 'c', 'd'}
	map32 := []byte{0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 'a', 1, 0xa1, 'b', 2, 0xa1, 'c', 3}
	deep := bytes.Repeat([]byte{0x91}, 100_000)
	tests := []struct {
		name    string
		payload []byte
		into    func() any
	}{
		{"array32 into []int", array32, func() any { return new([]int) }},
		{"array32 into []string", array32, func() any { return new([]string) }},
		{"array32 into [][]byte", array32, func() any { return new([][]byte) }},
		{"array32 into []any", array32, func() any { return new([]any) }},
		{"array32 into any", array32, func() any { return new(any) }},
		{"array32 into []struct", array32, func() any { return new([]struct{ A, B int }) }},
		{"array32 of str32 into []string", str32, func() any { return new([]string) }},
		{"array32 of str32 into any", str32, func() any { return new(any) }},
		{"str32 into string", array32Str32(), func() any { return new(string) }},
		{"str32 into []byte", array32Str32(), func() any { return new([]byte) }},
		{"map32 into map[string]int", map32, func() any { return new(map[string]int) }},
		{"map32 into map[string]any", map32, func() any { return new(map[string]any) }},
		{"map32 into map[string]string", map32, func() any { return new(map[string]string) }},
		{"map32 into any", map32, func() any { return new(any) }},
		{"deep nesting into any", deep, func() any { return new(any) }},
		{"deep nesting into []any", deep, func() any { return new([]any) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			n := persistAllocs(func() { err = msgpack.Unmarshal(tt.payload, tt.into()) })
			t.Logf("allocated %d bytes: %v", n, err)
			if err == nil {
				t.Errorf("Unmarshal of a %d-byte payload claiming more succeeded", len(tt.payload))
			}
			if n > msgpackMaxAlloc {
				t.Errorf("Unmarshal allocated %d bytes, more than %d", n, msgpackMaxAlloc)
			}
		})
	}
}

// array32Str32 is a 14-byte str32 whose header claims 2^32-1 bytes.
func array32Str32() []byte {
	return []byte{0xdb, 0xff, 0xff, 0xff, 0xff, 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i'}
}

// TestLoadTable_Hostile feeds LoadTable saved tables whose headers claim
// far more than they hold: each must fail with ErrCorrupt in bounded memory.
func TestLoadTable_Hostile(t *testing.T) {
	var saved bytes.Buffer
	if err := todo.NewTable[string, []int]().Save(&saved); err != nil {
		t.Fatal(err)
	}
	magic := saved.Bytes()[:saved.Len()-1] // an empty table is its magic and 0x90
	if saved.Bytes()[saved.Len()-1] != 0x90 {
		t.Fatalf("an empty saved table ends in %#x, want 0x90", saved.Bytes()[saved.Len()-1])
	}
	withMagic := func(bs ...byte) []byte { return append(slices.Clone(magic), bs...) }
	tests := []struct {
		name string
		in   []byte
		load func([]byte) error
	}{
		{"pairs array32", withMagic(0xdd, 0xff, 0xff, 0xff, 0xff, 0xa1, 'a', 0x90), loadTable[string, []int]},
		{"value array32 []int", withMagic(0x91, 0xa1, 'a', 0xdd, 0xff, 0xff, 0xff, 0xff, 1, 2), loadTable[string, []int]},
		{"value array32 []string", withMagic(0x91, 0xa1, 'a', 0xdd, 0xff, 0xff, 0xff, 0xff, 0xa1, 'b'), loadTable[string, []string]},
		{"value array32 any", withMagic(0x91, 0xa1, 'a', 0xdd, 0xff, 0xff, 0xff, 0xff, 1, 2), loadTable[string, any]},
		{"value map32", withMagic(0x91, 0xa1, 'a', 0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 'b', 1), loadTable[string, map[string]int]},
		{"value map32 any", withMagic(0x91, 0xa1, 'a', 0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 'b', 1), loadTable[string, any]},
		{"key str32", withMagic(0x91, 0xdb, 0xff, 0xff, 0xff, 0xff, 'a'), loadTable[string, []int]},
		{"value bin32", withMagic(0x91, 0xa1, 'a', 0xc6, 0xff, 0xff, 0xff, 0xff, 'b'), loadTable[string, []byte]},
		{"value deep nesting", withMagic(append([]byte{0x91, 0xa1, 'a'}, bytes.Repeat([]byte{0x91}, 100_000)...)...), loadTable[string, any]},
		{"magic str32", []byte{0xdb, 0xff, 0xff, 0xff, 0xff, 't'}, loadTable[string, []int]},
		// Five map32 headers, each a key's value, 38 bytes in all: each
		// makes the decoder allocate a map for 1,000,000 entries, and all
		// are live at once, so memory grows with the nesting, not with the
		// input. 100 levels (under 1 KiB) would need 8 GiB.
		{"value map32 nested 5 deep", withMagic(append([]byte{0x91, 0xa1, 'a'}, bytes.Repeat([]byte{0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 'k'}, 5)...)...), loadTable[string, any]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			n := persistAllocs(func() { err = tt.load(tt.in) })
			t.Logf("allocated %d bytes: %v", n, err)
			if !errors.Is(err, todo.ErrCorrupt) {
				t.Errorf("LoadTable: %v, want ErrCorrupt", err)
			}
			if n > msgpackMaxAlloc {
				t.Errorf("LoadTable allocated %d bytes, more than %d", n, msgpackMaxAlloc)
			}
		})
	}
}

func loadTable[K comparable, V any](in []byte) error {
	_, err := todo.LoadTable[K, V](bytes.NewReader(in))
	return err
}

// TestFiles_HugeLastID loads a valid file whose last id is the largest int.
// Either the file is refused, or the next entry added must survive a
// reopen: an id that wraps around would be written into a file that can
// never be read back, losing an acknowledged entry and the whole list.
func TestFiles_HugeLastID(t *testing.T) {
	dir := t.TempDir()
	body := persistBody{0x93, 0x01, 0xcf}
	body = binary.BigEndian.AppendUint64(body, math.MaxInt64)
	body = append(body, 0x90)
	persistWriteFile(t, dir, "huge", persistFrame(body))

	sys := persistOpen(t, dir, nil)
	e, err := sys.ServerProcess("huge").AddEntry(context.Background(), todo.Entry{Date: persistDay, Title: "after the last id"})
	if err != nil {
		t.Logf("AddEntry refused: %v", err) // refusing is fine
		return
	}
	persistClose(t, sys)
	sys = persistOpen(t, dir, nil)
	got, err := sys.ServerProcess("huge").AllEntries(context.Background())
	if err != nil || len(got) != 1 || got[0] != e {
		t.Errorf("AddEntry acknowledged %+v, but after reopen the list is %v, %v", e, got, err)
	}
}

// TestFiles_TooLargeToWrite grows a list past MaxFileSize: the add that
// would make the file too large fails with ErrTooLarge, the list keeps
// serving what was acknowledged, and the file holds exactly that.
func TestFiles_TooLargeToWrite(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	opts := &todo.Options{MaxFileSize: 512}
	sys := persistOpen(t, dir, opts)
	s := sys.ServerProcess("big")
	var acked []todo.Entry
	for i := 0; ; i++ {
		e, err := s.AddEntry(ctx, todo.Entry{Date: persistDay, Title: fmt.Sprintf("entry number %d", i)})
		if err != nil {
			if !errors.Is(err, todo.ErrTooLarge) {
				t.Fatalf("add %d: %v, want ErrTooLarge", i, err)
			}
			break
		}
		acked = append(acked, e)
		if i > 1000 {
			t.Fatal("1000 adds fit in a 512-byte file")
		}
	}
	if len(acked) == 0 {
		t.Fatal("not even one entry fit")
	}
	if got := persistAll(t, sys, "big"); !slices.Equal(got, acked) {
		t.Errorf("after a refused add the list serves %v, want %v", got, acked)
	}
	persistClose(t, sys)
	sys = persistOpen(t, dir, opts)
	if got := persistAll(t, sys, "big"); !slices.Equal(got, acked) {
		t.Errorf("after reopen the list is %v, want %v", got, acked)
	}
}

// persistNames are list names that would be dangerous or ambiguous as file
// names. Each must get a file of its own inside the data directory.
func persistNames() []string {
	return []string{
		"../../etc/passwd", "..", ".", "...", "a/b", "a\\b", "..\\..\\x", "/", "/etc/passwd",
		"CON", "con", "NUL", "nul", "COM1", "aux.txt", "%2e%2e", "%2E%2E", "%", "%%", "%2", "foo.todo",
		"tmp", "TMP", "tmp.todo", "00", "ff", "00/x", ".todo", "Bob", "bob", "BOB", "a b", "a%20b", "a+b",
		" ", "  ", "\t", "\n", "\r\n", "~", "-", "_", ".hidden", "trailing.", "trailing ",
		"é", "e\u0301", "日本語", strings.Repeat("日", 85), strings.Repeat("a", 255), strings.Repeat("a", 240),
		strings.Repeat("a", 241), strings.Repeat("%", 255), strings.Repeat("A", 255), strings.Repeat("é", 127),
		"\x7f", "\x01", "😀",
	}
}

// TestFiles_PathSafety stores a list under each name of persistNames and
// checks that every one round-trips through Lists and a reopen, and that
// nothing was created outside the data directory. The data directory is
// nested three levels under a fresh directory, so that a name climbing
// two levels up would land inside what the test walks.
func TestFiles_PathSafety(t *testing.T) {
	ctx := context.Background()
	parent := t.TempDir()
	dir := filepath.Join(parent, "x", "y", "data")
	names := persistNames()
	want := slices.Sorted(slices.Values(names))
	if len(slices.Compact(slices.Clone(want))) != len(want) {
		t.Fatal("persistNames has duplicates")
	}

	sys := persistOpen(t, dir, nil)
	for _, n := range names {
		persistAdd(t, sys, n, strconv.Quote(n)) // a title is one line: the name, quoted
	}
	got, err := sys.Lists(ctx)
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("Lists = %q, %v\nwant %q", got, err, want)
	}
	persistClose(t, sys)

	sys = persistOpen(t, dir, nil)
	got, err = sys.Lists(ctx)
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("after reopen Lists = %q, %v\nwant %q", got, err, want)
	}
	for _, n := range names {
		if es := persistAll(t, sys, n); len(es) != 1 || es[0].Title != strconv.Quote(n) {
			t.Errorf("list %q after reopen = %v, want one entry titled with its name", n, es)
		}
	}
	persistClose(t, sys)

	files := 0
	err = filepath.WalkDir(parent, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if rel == ".." || strings.HasPrefix(rel, "../") {
			// Outside the data directory only its own ancestors may exist.
			if !d.IsDir() || !strings.HasPrefix(dir, p+string(filepath.Separator)) {
				t.Errorf("created outside the data directory: %s", p)
			}
			return nil
		}
		for _, c := range strings.Split(rel, string(filepath.Separator)) {
			if len(c) > 255 {
				t.Errorf("%s has a component of %d bytes", rel, len(c))
			}
		}
		if d.Type().IsRegular() && rel != "LOCK" {
			files++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files != len(names) {
		t.Errorf("%d list files and log segments in the data directory, want one list file per name, %d, and no segment after Close", files, len(names))
	}
}

// FuzzFileName checks the encoding of list names into file paths: for any
// valid name it is reversible, every component is a safe, portable file
// name, and distinct names get paths that differ even to a file system
// that ignores case.
func FuzzFileName(f *testing.F) {
	names := persistNames()
	for i, n := range names {
		f.Add(n, names[(i+1)%len(names)])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		if !persistValidName(a) {
			return
		}
		rel := todo.FileName(a)
		if got, ok := todo.NameFromFile(rel); !ok || got != a {
			t.Fatalf("NameFromFile(FileName(%q) = %q) = %q, %v", a, rel, got, ok)
		}
		checkRelPath(t, rel)
		if persistValidName(b) && a != b {
			relB := todo.FileName(b)
			if strings.EqualFold(rel, relB) {
				t.Fatalf("FileName(%q) = %q and FileName(%q) = %q are the same file to a case-insensitive file system", a, rel, b, relB)
			}
		}
	})
}

// checkRelPath checks that rel is a safe relative path of a list file.
func checkRelPath(tb testing.TB, rel string) {
	tb.Helper()
	comps := strings.Split(rel, "/")
	if len(comps) < 2 {
		tb.Fatalf("%q: want a fan-out directory and a file", rel)
	}
	if c := comps[0]; len(c) != 2 || strings.Trim(c, "0123456789abcdef") != "" {
		tb.Fatalf("%q: fan-out directory %q is not two hex digits", rel, c)
	}
	for _, c := range comps {
		switch {
		case c == "" || c == "." || c == "..":
			tb.Fatalf("%q has the component %q", rel, c)
		case len(c) > 255:
			tb.Fatalf("%q has a component of %d bytes", rel, len(c))
		}
		for i := 0; i < len(c); i++ {
			if ch := c[i]; ch < 0x21 || ch > 0x7e || strings.IndexByte(`\:*?"<>|`, ch) >= 0 {
				tb.Fatalf("%q has the byte %#x, not portable in a file name", rel, ch)
			}
		}
	}
	if !strings.HasSuffix(rel, ".todo") {
		tb.Fatalf("%q does not end in .todo", rel)
	}
}

func persistValidName(n string) bool {
	return n != "" && len(n) <= todo.MaxNameLen && utf8.ValidString(n) && !strings.ContainsRune(n, 0)
}

// FuzzNameFromFile checks that NameFromFile accepts only what FileName
// produces, and never panics.
func FuzzNameFromFile(f *testing.F) {
	for _, n := range persistNames() {
		f.Add(todo.FileName(n))
	}
	f.Add("00/%2e.todo")
	f.Add("00/%.todo")
	f.Add("tmp/1.todo")
	f.Add("00/.1.tmp")
	f.Fuzz(func(t *testing.T, rel string) {
		name, ok := todo.NameFromFile(rel)
		if ok && (!persistValidName(name) || todo.FileName(name) != rel) {
			t.Fatalf("NameFromFile(%q) = %q, but FileName of that is %q", rel, name, todo.FileName(name))
		}
	})
}

// TestFiles_OpenRemovesTemp plants what a crash mid-write leaves beside
// list files (.N.tmp, in fan-out directories and in the subdirectory of a
// long name) and checks that Open removes exactly that, that lists load and
// save as usual, and that no temp file is left after Close.
func TestFiles_OpenRemovesTemp(t *testing.T) {
	dir := t.TempDir()
	long := strings.Repeat("é", 127) // its encoding continues in a subdirectory
	sys := persistOpen(t, dir, nil)
	persistAdd(t, sys, "bob", "Dentist")
	persistAdd(t, sys, long, "Long")
	persistClose(t, sys)

	bobDir := filepath.Dir(filepath.Join(dir, todo.FileName("bob")))
	longDir := filepath.Dir(filepath.Join(dir, todo.FileName(long)))
	if bobDir == dir || longDir == dir || filepath.Dir(longDir) == dir {
		t.Fatalf("unexpected layout: %s, %s", bobDir, longDir)
	}
	temps := []string{filepath.Join(bobDir, ".1.tmp"), filepath.Join(bobDir, ".123456.tmp"), filepath.Join(longDir, ".7.tmp")}
	// Look-alikes that are not temp files stay, and so does whatever lies
	// outside the fan-out directories: the System does not walk there.
	keep := []string{filepath.Join(bobDir, "1.tmp"), filepath.Join(bobDir, ".x.tmp"), filepath.Join(bobDir, ".1.tmp.todo"),
		filepath.Join(dir, ".2.tmp"), filepath.Join(dir, "lost+found", ".3.tmp"), filepath.Join(dir, "AB", ".4.tmp")}
	for _, p := range append(slices.Clone(temps), keep...) {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("half a list"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sys = persistOpen(t, dir, nil)
	todo.WaitCheckpoints(sys) // Open leaves the sweep to its checkpointer
	for _, p := range temps {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("after Open %s: %v; want it removed", p, err)
		}
	}
	for _, p := range keep {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("after Open %s: %v; want it kept", p, err)
		}
	}
	persistAdd(t, sys, "bob", "Shopping")
	persistAdd(t, sys, "alice", "Movies")
	if got := persistAll(t, sys, "bob"); len(got) != 2 {
		t.Errorf("bob = %v, want 2 entries", got)
	}
	if got := persistAll(t, sys, long); len(got) != 1 {
		t.Errorf("the long name = %v, want 1 entry", got)
	}
	persistClose(t, sys)
	for _, p := range keep {
		os.Remove(p)
	}
	if left := tempFiles(t, dir); len(left) != 0 {
		t.Errorf("after Close: temp files %v", left)
	}
}

// TestFiles_SaveBatch writes several lists in one batch, the way a pool
// worker writes what is queued to it: lists in one fan-out directory and
// in others, a list whose name nests it deeper, and one too large to
// write. Only the large one fails, and with its own error; the others are
// stored whole, and no temp file is left.
func TestFiles_SaveBatch(t *testing.T) {
	for _, d := range []todo.Durability{todo.Fsync, todo.Write} {
		t.Run("durability="+d.String(), func(t *testing.T) {
			dir := t.TempDir()
			sys := persistOpen(t, dir, &todo.Options{Durability: d, MaxFileSize: 4096})
			day := todo.Date{Year: 2013, Month: time.December, Day: 19}
			names := []string{"a", "b", "c", strings.Repeat("é", 127), "big", "d"}
			lists := make([][]todo.Entry, len(names))
			for i, n := range names {
				for j := range i + 1 {
					lists[i] = append(lists[i], todo.Entry{Date: day, Title: fmt.Sprintf("%s %d", n, j)})
				}
			}
			lists[4] = []todo.Entry{{Date: day, Title: strings.Repeat("x", 5000)}}
			errs := todo.SaveBatch(sys, names, lists)
			for i, err := range errs {
				if i == 4 {
					if !errors.Is(err, todo.ErrTooLarge) || !strings.Contains(err.Error(), todo.FileName("big")) {
						t.Errorf("the large list: %v; want ErrTooLarge naming its file", err)
					}
				} else if err != nil {
					t.Errorf("%.20q: %v", names[i], err)
				}
			}
			persistClose(t, sys)
			if left := tempFiles(t, dir); len(left) != 0 {
				t.Errorf("temp files left: %v", left)
			}
			sys = persistOpen(t, dir, nil)
			defer persistClose(t, sys)
			for i, n := range names {
				got := persistAll(t, sys, n)
				want := len(lists[i])
				if i == 4 {
					want = 0
				}
				if len(got) != want {
					t.Errorf("%.20q: %d entries stored, want %d", n, len(got), want)
				}
			}
		})
	}
}

// tempFiles returns the temp files (.N.tmp) anywhere under dir.
func tempFiles(tb testing.TB, dir string) []string {
	tb.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if n := d.Name(); !d.IsDir() && strings.HasPrefix(n, ".") && strings.HasSuffix(n, ".tmp") {
			found = append(found, p)
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return found
}

// TestFiles_OpenIsLazy fills a data directory with 2,000 list files, every
// one of them corrupt (empty), and checks that Open reads none of them: it
// succeeds, starts no server, logs nothing, and Lists names them all from
// their file names. Only then is one list read, which reports it corrupt
// and logs it, showing that a load would not have gone unnoticed. 2,000
// files rather than the 100,000 keep the test fast; a loader that
// read files at Open would be caught by any number.
func TestFiles_OpenIsLazy(t *testing.T) {
	const n = 2000
	dir := t.TempDir()
	var want []string
	for i := range n {
		name := fmt.Sprintf("lazy %d", i)
		want = append(want, name)
		persistWriteFile(t, dir, name, nil)
	}
	slices.Sort(want)

	var logged atomic.Int64
	logger := slog.New(countingHandler{&logged})
	sys := persistOpen(t, dir, &todo.Options{Logger: logger})
	got, err := sys.Lists(context.Background())
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("Lists: %d names, %v; want the %d stored", len(got), err, n)
	}
	if st := sys.Stats(); st.ServersStarted != 0 || logged.Load() != 0 {
		t.Fatalf("Open and Lists started %d servers and logged %d records; want none", st.ServersStarted, logged.Load())
	}
	if _, err := sys.ServerProcess("lazy 7").AllEntries(context.Background()); !errors.Is(err, todo.ErrCorrupt) {
		t.Fatalf("reading an empty list file: %v, want ErrCorrupt", err)
	}
	if logged.Load() == 0 {
		t.Fatal("a corrupt list was read but nothing was logged: the check above proves nothing")
	}
}

// countingHandler is a slog.Handler that counts the records it receives.
type countingHandler struct{ n *atomic.Int64 }

func (h countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countingHandler) Handle(context.Context, slog.Record) error {
	h.n.Add(1)
	return nil
}
func (h countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countingHandler) WithGroup(string) slog.Handler      { return h }
