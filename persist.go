package todo

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
)

// files are the list files of a data directory, the Go form of
// Todo.DatabaseWorker's files, with what the book's version lacks: a list
// file is always either its old or its new version (written aside,
// fsynced, renamed over, directory fsynced), and a damaged file is
// reported, never read as an empty list. Every access goes through an
// [os.Root], so no name can reach outside the directory. The data
// directory's store (dirstore.go) writes them in its checkpoints.
//
// Layout: dir/XX/ (XX is two hex digits from a hash of the name) holds the
// lists, each in a file named after the list by a reversible encoding (see
// fileName). A file being written lies beside the one it replaces, named
// .N.tmp, which no encoded name can be (see isTemp).
//
// files is safe for concurrent use, provided no two goroutines write the
// same list at once (the checkpointer is the only writer).
type files struct {
	root    *os.Root
	dir     string
	maxSize int64
	tmpSeq  atomic.Uint64

	fanMu sync.Mutex
	fans  map[string]*os.Root // open fan-out directories, by name (see fanOut)
}

const (
	fileSuffix = ".todo"
	tmpSuffix  = ".tmp"
	// maxComponent is the longest path component written; names whose
	// encoding is longer are split into nested directories (NAME_MAX is 255).
	maxComponent = 240
)

func openFiles(dir string, o Options) (*files, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("todo: data directory: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("todo: data directory: %w", err)
	}
	return &files{root: root, dir: dir, maxSize: o.MaxFileSize}, nil
}

// removeTemps removes the files a crash left half-written. They are never
// the current version of anything: the rename that would have made them so
// did not happen. It lists the directories and reads no file. It must not
// run while a list file is being written.
func (f *files) removeTemps() error {
	return f.walk(func(rel string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("todo: clearing leftovers in %s: %w", path.Join(f.dir, rel), err)
		}
		if d.IsDir() || !isTemp(d.Name()) {
			return nil
		}
		if err := f.root.Remove(rel); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("todo: clearing leftovers: %w", err)
		}
		return nil
	})
}

// walk walks the fan-out directories (dir/XX/, where list files live) and
// nothing else at the top of the data directory, so that what else an
// administrator keeps there (lost+found, say, unreadable to the server) is
// no concern of the System's.
func (f *files) walk(fn fs.WalkDirFunc) error {
	return fs.WalkDir(f.root.FS(), ".", func(rel string, d fs.DirEntry, err error) error {
		if rel != "." && !strings.Contains(rel, "/") && (d == nil || !d.IsDir() || !isFanOut(rel)) {
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		return fn(rel, d, err)
	})
}

// isFanOut reports whether a top-level name is a fan-out directory's: two
// lowercase hex digits, as fileName writes them.
func isFanOut(name string) bool {
	const hex = "0123456789abcdef"
	return len(name) == 2 && strings.IndexByte(hex, name[0]) >= 0 && strings.IndexByte(hex, name[1]) >= 0
}

// isTemp reports whether a file's base name is that of a file being
// written: a dot, digits, ".tmp". An encoded list name never starts with a
// dot (a dot in a name is written %2E).
func isTemp(base string) bool {
	digits, ok := strings.CutSuffix(base, tmpSuffix)
	if !ok || len(digits) < 2 || digits[0] != '.' {
		return false
	}
	for _, c := range digits[1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func (f *files) Close() error {
	f.fanMu.Lock()
	defer f.fanMu.Unlock()
	var errs []error
	for _, r := range f.fans {
		errs = append(errs, r.Close())
	}
	f.fans = nil
	return errors.Join(append(errs, f.root.Close())...)
}

// fileName maps a valid list name to its file's path relative to the data
// directory. Bytes other than a-z, 0-9, '-' and '_' are written %XX, so
// names that differ only in case, dots, slashes or device names (CON) stay
// apart and inert; an encoding longer than maxComponent is split into
// nested directories. The first component, two hex digits of a CRC of the
// name, fans the lists out over 256 directories.
func fileName(name string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%02x/", crc32.Checksum([]byte(name), castagnoli)&0xff)
	n := 0 // length of the current component
	for i := 0; i < len(name); i++ {
		c := name[i]
		width := 1
		if !plainByte(c) {
			width = 3
		}
		if n+width > maxComponent {
			b.WriteByte('/')
			n = 0
		}
		if width == 1 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
		n += width
	}
	b.WriteString(fileSuffix)
	return b.String()
}

func plainByte(c byte) bool {
	return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

// nameFromFile is the inverse of fileName; ok is false for any path that
// fileName does not produce.
func nameFromFile(rel string) (string, bool) {
	fan, rest, found := strings.Cut(rel, "/")
	enc, isList := strings.CutSuffix(rest, fileSuffix)
	if !found || !isList || len(fan) != 2 {
		return "", false
	}
	var b []byte
	for i := 0; i < len(enc); i++ {
		switch c := enc[i]; {
		case c == '/':
		case plainByte(c):
			b = append(b, c)
		case c == '%' && i+2 < len(enc):
			var v byte
			if _, err := fmt.Sscanf(enc[i+1:i+3], "%02X", &v); err != nil {
				return "", false
			}
			b = append(b, v)
			i += 2
		default:
			return "", false
		}
	}
	name := string(b)
	if validName(name) != nil || fileName(name) != rel {
		return "", false
	}
	return name, true
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// The frame around a list's msgpack body: magic, format version, three
// zero bytes, the body's length and its CRC-32C, all big-endian.
const (
	frameMagic   = "TODO"
	frameVersion = 1
	headerSize   = 16
)

// Load reads the list called name; a missing file is an empty list.
func (f *files) Load(_ context.Context, name string) (ListState, error) {
	rel := fileName(name)
	data, err := f.read(rel)
	if errors.Is(err, fs.ErrNotExist) {
		return ListState{}, nil
	}
	if err != nil {
		return ListState{}, err
	}
	st, err := decodeList(data)
	if err != nil {
		return ListState{}, fmt.Errorf("%w: %s: %v", ErrCorrupt, path.Join(f.dir, rel), err)
	}
	return st, nil
}

// Lists returns the names of every list that has a file.
func (f *files) Lists(context.Context) ([]string, error) { return f.names() }

// read returns the framed body of the file at rel, checked.
func (f *files) read(rel string) ([]byte, error) {
	full := path.Join(f.dir, rel)
	// A list file is never a symbolic link: refuse one rather than follow it.
	if info, err := f.root.Lstat(rel); err != nil {
		return nil, err
	} else if info.Mode()&fs.ModeSymlink != 0 {
		return nil, fmt.Errorf("%w: %s: a symbolic link", ErrCorrupt, full)
	} else if info.IsDir() {
		return nil, fmt.Errorf("%w: %s: a directory, where the list's file should be", ErrCorrupt, full)
	}
	// O_NONBLOCK: opening a FIFO someone left in place of a list file must
	// not hang the list's server; it has no effect on regular files.
	file, err := f.root.OpenFile(rel, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("todo: %s: %w", full, err)
	}
	defer file.Close()
	info, err := file.Stat()
	if err != nil {
		return nil, fmt.Errorf("todo: %s: %w", full, err)
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s: not a regular file (%v)", ErrCorrupt, full, info.Mode().Type())
	}
	if info.Size() > f.maxSize+headerSize {
		return nil, fmt.Errorf("%w: %s: %d bytes, more than the %d allowed: %w", ErrCorrupt, full, info.Size(), f.maxSize, ErrTooLarge)
	}
	buf := make([]byte, info.Size()+1) // one more, to see a file that grew
	n, err := io.ReadFull(file, buf)
	if err != io.ErrUnexpectedEOF {
		if err == nil {
			err = errors.New("file grew while being read")
		}
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, full, err)
	}
	buf = buf[:n]
	if len(buf) < headerSize {
		return nil, fmt.Errorf("%w: %s: %d bytes, shorter than the %d-byte header", ErrCorrupt, full, len(buf), headerSize)
	}
	if string(buf[:4]) != frameMagic || buf[4] != frameVersion || buf[5]|buf[6]|buf[7] != 0 {
		return nil, fmt.Errorf("%w: %s: not a version %d list file", ErrCorrupt, full, frameVersion)
	}
	length := binary.BigEndian.Uint32(buf[8:12])
	body := buf[headerSize:]
	switch {
	case int64(length) != int64(len(body)) && int64(length) < int64(len(body)):
		return nil, fmt.Errorf("%w: %s: %d trailing bytes", ErrCorrupt, full, int64(len(body))-int64(length))
	case int64(length) != int64(len(body)):
		return nil, fmt.Errorf("%w: %s: truncated: %d of %d bytes", ErrCorrupt, full, len(body), length)
	case crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(buf[12:16]):
		return nil, fmt.Errorf("%w: %s: checksum mismatch", ErrCorrupt, full)
	}
	return body, nil
}

// target is one list file of a batch being written.
type target struct {
	full string   // its path, for errors
	r    *os.Root // the handle it is written through
	dir  string   // its directory, relative to r
	base string   // its path, relative to r
	tmp  string   // the temp file's path, relative to r, once created
	file *os.File // the temp file, open until fsynced
	err  error
}

// saveBatch writes each list as save does (a temp file beside it, fsynced,
// renamed over it, its directory fsynced), but step by step across the
// lists: all temp files are written, then fsynced at once, then renamed,
// then their directories fsynced at once. The file system commits the
// fsyncs that wait together in one go, where one list after another each
// would wait for a commit of its own. A list's error is its own, except
// that a directory that cannot be fsynced fails every list in it.
func (f *files) saveBatch(names []string, snaps []ListState, sync bool) []error {
	ts := make([]target, len(names))
	for i := range ts {
		ts[i].err = f.create(&ts[i], names[i], snaps[i])
	}
	f.parallel(len(ts), sync, func(i int) {
		t := &ts[i]
		if t.file == nil {
			return
		}
		if t.err == nil && sync {
			t.err = t.file.Sync()
		}
		if err := t.file.Close(); t.err == nil {
			t.err = err
		}
		t.file = nil
	})
	type dirKey struct {
		r   *os.Root
		dir string
	}
	var dirs []dirKey
	for i := range ts {
		t := &ts[i]
		if t.err == nil {
			t.err = t.r.Rename(t.tmp, t.base)
		}
		if t.err != nil {
			if t.tmp != "" {
				t.r.Remove(t.tmp)
			}
			continue
		}
		if k := (dirKey{t.r, t.dir}); sync && !slices.Contains(dirs, k) {
			dirs = append(dirs, k)
		}
	}
	dirErrs := make([]error, len(dirs))
	f.parallel(len(dirs), sync, func(i int) { dirErrs[i] = syncDir(dirs[i].r, dirs[i].dir) })
	errs := make([]error, len(ts))
	for i := range ts {
		t := &ts[i]
		if t.err == nil && sync {
			t.err = dirErrs[slices.Index(dirs, dirKey{t.r, t.dir})]
		}
		if t.err != nil {
			errs[i] = fmt.Errorf("todo: %s: %w", t.full, t.err)
		}
	}
	return errs
}

// parallel runs fn(0..n-1), on goroutines of their own when there are
// several and they fsync, and returns when all have.
func (f *files) parallel(n int, fsync bool, fn func(i int)) {
	if n <= 1 || !fsync {
		for i := range n {
			fn(i)
		}
		return
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { fn(i) })
	}
	wg.Wait()
}

// create encodes a list and writes it to a new temp file beside its file,
// left open in t for the caller to fsync and close.
func (f *files) create(t *target, name string, snap ListState) error {
	rel := fileName(name)
	t.full = path.Join(f.dir, rel)
	// The body is encoded after room for the frame's header, so that the
	// file is written in one call.
	data := encodeList(make([]byte, headerSize, headerSize+16+len(snap.Entries)*24), snap)
	body := data[headerSize:]
	if int64(len(body)) > f.maxSize {
		return fmt.Errorf("%d bytes, more than the %d allowed: %w", len(body), f.maxSize, ErrTooLarge)
	}
	copy(data, frameMagic)
	data[4] = frameVersion
	binary.BigEndian.PutUint32(data[8:12], uint32(len(body)))
	binary.BigEndian.PutUint32(data[12:16], crc32.Checksum(body, castagnoli))

	// A list in a fan-out directory is written through that directory's
	// own handle, kept open: each step is then one system call, not a walk
	// from the data directory. A list of a long name, in a deeper
	// directory, is written from the data directory's handle.
	dir := path.Dir(rel)
	t.r, t.dir, t.base = f.root, dir, rel
	if isFanOut(dir) {
		r, err := f.fanOut(dir)
		if err != nil {
			return err
		}
		t.r, t.dir, t.base = r, ".", path.Base(rel)
	} else if err := f.mkdirs(dir); err != nil {
		return err
	}
	// The temp file goes beside the file it replaces: the rename stays
	// within one directory, the one that is fsynced, and writers of lists
	// in different directories do not contend for one directory.
	for {
		tmp := path.Join(t.dir, fmt.Sprintf(".%d%s", f.tmpSeq.Add(1), tmpSuffix))
		file, err := t.r.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue // a file this System did not make (two Systems on one directory are not supported)
		}
		if err != nil {
			return err
		}
		t.tmp, t.file = tmp, file
		if _, err := file.Write(data); err != nil {
			return err // the caller closes and removes it
		}
		return nil
	}
}

// fanOut returns the open handle of the fan-out directory dir, creating
// the directory first if it does not exist. The handles (256 at most) stay
// open until close.
func (f *files) fanOut(dir string) (*os.Root, error) {
	f.fanMu.Lock()
	defer f.fanMu.Unlock()
	if r := f.fans[dir]; r != nil {
		return r, nil
	}
	if err := f.mkdirs(dir); err != nil {
		return nil, err
	}
	r, err := f.root.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	if f.fans == nil {
		f.fans = make(map[string]*os.Root)
	}
	f.fans[dir] = r
	return r, nil
}

// mkdirs creates dir and its parents, fsyncing each parent that gained an
// entry, so that a new list's file cannot vanish with its directory.
func (f *files) mkdirs(dir string) error {
	if _, err := f.root.Stat(dir); err == nil {
		return nil
	}
	if parent := path.Dir(dir); parent != "." {
		if err := f.mkdirs(parent); err != nil {
			return err
		}
	}
	err := f.root.Mkdir(dir, 0o700)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return f.syncDir(path.Dir(dir))
}

func (f *files) syncDir(dir string) error { return syncDir(f.root, dir) }

// syncDir fsyncs the directory dir under r.
func syncDir(r *os.Root, dir string) error {
	d, err := r.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// names returns the names of every stored list, decoded from file names.
// A directory where a list's file should be names its list too, which is
// damaged (see read): hiding the list would hide the damage.
func (f *files) names() ([]string, error) {
	var names []string
	err := f.walk(func(rel string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("todo: listing %s: %w", path.Join(f.dir, rel), err)
		}
		name, ok := nameFromFile(rel)
		if ok {
			names = append(names, name)
		}
		if ok && d.IsDir() {
			return fs.SkipDir
		}
		return nil
	})
	return names, err
}

// The body of a list file is msgpack: an array [1, lastID, entries], each
// entry an array [id, date as yyyymmdd, title] (see appendEntry); a list
// that keeps idempotency keys is written [2, lastID, entries, keys], keys
// being the operations of keyed requests (see appendOp); a list whose
// revision is not its last id + 1 is written [3, lastID, entries, keys,
// revision]. Each file is written in the first of these forms that holds
// it, and the first two are read at revision lastID+1 (see ListState): a
// list that was only ever added to is written as before revisions were
// kept.
const (
	bodyFormat         = 1
	bodyFormatKeys     = 2
	bodyFormatRevision = 3
)

// encodeList appends the msgpack body of a list file to b.
func encodeList(b []byte, s ListState) []byte {
	withRevision := s.revision() != int64(s.LastID)+1
	switch {
	case withRevision:
		b = appendArrayLen(b, 5)
		b = appendUint(b, bodyFormatRevision)
	case len(s.Keys) == 0:
		b = appendArrayLen(b, 3)
		b = appendUint(b, bodyFormat)
	default:
		b = appendArrayLen(b, 4)
		b = appendUint(b, bodyFormatKeys)
	}
	b = appendUint(b, uint64(s.LastID))
	b = appendArrayLen(b, len(s.Entries))
	for _, e := range s.Entries {
		b = appendEntry(b, e)
	}
	if len(s.Keys) > 0 || withRevision {
		b = appendArrayLen(b, len(s.Keys))
		for _, op := range s.Keys {
			b = appendOp(b, op)
		}
	}
	if withRevision {
		b = appendUint(b, uint64(s.revision()))
	}
	return b
}

// minEntrySize is the fewest bytes an encoded entry takes; it bounds what
// a claimed length may make decodeList allocate.
const minEntrySize = 4

// decodeList reads a list file's body: every length is checked against
// what is left before anything is allocated, ids must increase and stay
// within the last id, dates must be real.
func decodeList(body []byte) (ListState, error) {
	r := reader{b: body}
	var s ListState
	n := r.arrayLen()
	format := r.uint()
	switch {
	case r.err != nil:
		return s, r.err
	case format < bodyFormat || format > bodyFormatRevision:
		return s, fmt.Errorf("unknown body format %d", format)
	case n != int(format)+2:
		return s, fmt.Errorf("format %d in an array of %d", format, n)
	}
	lastID := r.uint()
	n = r.arrayLen()
	switch {
	case r.err != nil:
		return s, r.err
	case lastID > MaxID:
		return s, fmt.Errorf("last id %d out of range 0..%d", lastID, MaxID)
	case n > len(r.b)/minEntrySize:
		return s, fmt.Errorf("claims %d entries in %d bytes", n, len(body))
	}
	s.LastID = int(lastID)
	s.Revision = int64(lastID) + 1 // what a list stored before revisions is read at
	s.Entries = make([]Entry, 0, n)
	prev := 0
	for i := range n {
		e := r.entry(s.LastID)
		if r.err != nil {
			return s, fmt.Errorf("entry %d: %w", i, r.err)
		}
		if e.ID <= prev {
			return s, fmt.Errorf("entry %d: id %d out of order (after %d, last id %d)", i, e.ID, prev, s.LastID)
		}
		prev = e.ID
		s.Entries = append(s.Entries, e)
	}
	if format >= bodyFormatKeys {
		n = r.arrayLen()
		switch {
		case r.err != nil:
			return s, r.err
		case n > MaxKeys || n > len(r.b)/2:
			return s, fmt.Errorf("claims %d idempotency keys in %d bytes", n, len(r.b))
		}
		for i := range n {
			op := r.op(s.LastID)
			if r.err == nil && op.Key == "" {
				r.fail(errors.New("an operation with no key"))
			}
			if r.err != nil {
				return s, fmt.Errorf("key %d: %w", i, r.err)
			}
			s.Keys = append(s.Keys, op)
		}
	}
	if format == bodyFormatRevision {
		rev := r.uint()
		switch {
		case r.err != nil:
			return s, fmt.Errorf("revision: %w", r.err)
		case rev < 1 || rev > MaxRevision:
			return s, fmt.Errorf("revision %d out of range 1..%d", rev, int64(MaxRevision))
		}
		s.Revision = int64(rev)
	}
	if len(r.b) != 0 {
		return s, fmt.Errorf("%d bytes after the list", len(r.b))
	}
	return s, nil
}
