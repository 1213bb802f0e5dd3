package todo

import (
	"context"
	"encoding/binary"
	"hash/crc32"
	"net/http"
	"os"
	"path"
	"sort"
	"sync/atomic"
	"time"
)

// memStore keeps lists in memory, so that benchmarks and tests of the
// servers and the cache measure those layers alone.
type memStore struct {
	lists *Table[string, snapshot]
}

func (m *memStore) load(name string) (*List, error) {
	s, _ := m.lists.Lookup(name)
	return listFromSnapshot(s), nil
}

func (m *memStore) save(name string, s snapshot) error {
	m.lists.Insert(name, s)
	return nil
}

func (m *memStore) names() ([]string, error) {
	var names []string
	for n := range m.lists.All() {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

func (m *memStore) close() error { return nil }

// OpenInMemory opens a System whose lists are kept in memory instead of
// files; everything else (servers, cache, table, pool) is the real thing.
func OpenInMemory(opts *Options) (*System, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	return newSystem(&memStore{lists: NewTable[string, snapshot]()}, o), nil
}

// slowStore is a memStore whose every write takes delay (on the clock of
// a synctest bubble, when the System is opened in one) and is counted.
type slowStore struct {
	memStore
	delay  time.Duration
	writes *atomic.Int64
}

func (m *slowStore) save(name string, s snapshot) error {
	time.Sleep(m.delay)
	m.writes.Add(1)
	return m.memStore.save(name, s)
}

// OpenInMemorySlow is OpenInMemory with writes that take delay each; it
// returns the count of writes done.
func OpenInMemorySlow(opts *Options, delay time.Duration) (*System, *atomic.Int64, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, nil, err
	}
	writes := new(atomic.Int64)
	st := &slowStore{memStore{lists: NewTable[string, snapshot]()}, delay, writes}
	return newSystem(st, o), writes, nil
}

// HandleHoldsList reports whether s reaches, through the server it last
// sent to, the entries that server published and, once that server is
// known to have stopped (stopped), its list.
func HandleHoldsList(s *Server, stopped bool) bool {
	p := s.last.Load()
	if p == nil {
		return false
	}
	return p.all.Load() != nil || stopped && p.list != nil
}

// SaveBatch writes lists, each given as the entries to add to an empty
// list, in one batch through the files of a System opened with Open, the
// way a pool worker writes the lists queued to it; it returns each list's
// error.
func SaveBatch(sys *System, names []string, lists [][]Entry) []error {
	snaps := make([]snapshot, len(lists))
	for i, es := range lists {
		snaps[i] = NewList(es...).snapshot()
	}
	return sys.store.(*files).saveBatch(names, snaps)
}

// FileName exposes the encoding of list names into file paths.
func FileName(name string) string { return fileName(name) }

// NameFromFile exposes the inverse of FileName.
func NameFromFile(rel string) (string, bool) { return nameFromFile(rel) }

// EntriesViaServer reads the entries of a date by a request and reply
// through the list's server goroutine, bypassing the table: the baseline
// the table read path is measured against.
func EntriesViaServer(ctx context.Context, s *Server, d Date) ([]Entry, error) {
	return s.readThroughServer(ctx, opEntries, d)
}

// The declarations below serve the persistence tests (persist_test.go,
// pool_test.go, crash_test.go, diskfull_test.go).

// openWith is Open with the list files kept by wrap(files).
func openWith(dir string, opts *Options, wrap func(*files) storage) (*System, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	f, err := openFiles(dir, o)
	if err != nil {
		return nil, err
	}
	sys := newSystem(wrap(f), o)
	sys.dir = dir
	return sys, nil
}

// SaveHook runs in place of each write of a list file; save does the
// write. lastID and entries describe the state being written.
type SaveHook func(list string, lastID, entries int, save func() error) error

// hookedFiles is files with a SaveHook around every write.
type hookedFiles struct {
	*files
	hook SaveHook
}

func (h hookedFiles) save(name string, s snapshot) error {
	return h.hook(name, s.lastID, len(s.entries), func() error { return h.files.save(name, s) })
}

// OpenHooked is Open with hook around every write of a list file, for
// tests that watch writes or break them.
func OpenHooked(dir string, opts *Options, hook SaveHook) (*System, error) {
	return openWith(dir, opts, func(f *files) storage { return hookedFiles{f, hook} })
}

// inPlaceFiles is the broken twin of files, the book's way of writing: it
// truncates a list's file and writes the new version over it in small
// pieces, with no temp file, rename or fsync, so a crash mid-write leaves
// a torn file.
type inPlaceFiles struct{ *files }

func (f inPlaceFiles) save(name string, s snapshot) error {
	rel := fileName(name)
	if err := f.mkdirs(path.Dir(rel)); err != nil {
		return err
	}
	body := encodeList(nil, s)
	data := make([]byte, headerSize, headerSize+len(body))
	copy(data, frameMagic)
	data[4] = frameVersion
	binary.BigEndian.PutUint32(data[8:12], uint32(len(body)))
	binary.BigEndian.PutUint32(data[12:16], crc32.Checksum(body, castagnoli))
	data = append(data, body...)
	file, err := f.root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	for len(data) > 0 && err == nil {
		n := min(len(data), 16)
		_, err = file.Write(data[:n])
		data = data[n:]
	}
	if cerr := file.Close(); err == nil {
		err = cerr
	}
	return err
}

// OpenInPlace is Open over the broken twin of the list files, inPlaceFiles.
func OpenInPlace(dir string, opts *Options) (*System, error) {
	return openWith(dir, opts, func(f *files) storage { return inPlaceFiles{f} })
}

// Batch runs change on l as one batch of a list server, then rolls it back
// (as after a failed write) or commits it, and returns the dates the batch
// reported as touched.
func Batch(l *List, change func(*List), rollback bool) []Date {
	var u undoLog
	l.begin(&u)
	change(l)
	var touched []Date
	l.touched(func(k dayKey, _ *dateSlot) { touched = append(touched, k.date()) })
	if rollback {
		l.rollback()
	} else {
		l.commit()
	}
	return touched
}

// The declarations below serve the tests of http.go's internals
// (http_internal_test.go).

// RequestContext is the handler's lazy request context, with End, which
// the handler calls when the request is answered.
type RequestContext interface {
	context.Context
	End()
}

type requestContextEnd struct{ *requestContext }

func (c requestContextEnd) End() { c.end() }

// NewRequestContext returns the context h would give a request under
// parent.
func NewRequestContext(h http.Handler, parent context.Context) RequestContext {
	return requestContextEnd{h.(*handler).newContext(parent)}
}

// OriginalQuery is what the handler reads of an original route's query:
// the first list, date and title, and how many of each there were.
type OriginalQuery struct {
	List, Date, Title    string
	NList, NDate, NTitle int
}

// ScanQuery is the handler's in-place query reader; ok is false when it
// leaves the query to url.ParseQuery.
func ScanQuery(h http.Handler, raw string) (OriginalQuery, bool) {
	q, ok := h.(*handler).scanQuery(raw)
	return OriginalQuery{q.list, q.date, q.title, q.nList, q.nDate, q.nTitle}, ok
}

// MaxScanPairs is how many pairs ScanQuery reads at most.
const MaxScanPairs = maxScanPairs

// ---- HTTP handler internals (http_body.go), for http_internal_test.go ----

// DecodeObject is the handler's strict reader of JSON bodies.
func DecodeObject(data []byte, fields ...string) (map[string]string, error) {
	return decodeObject(data, fields...)
}

// LoneSurrogate reports whether raw JSON text holds a lone UTF-16
// surrogate escape.
func LoneSurrogate(raw []byte) bool { return loneSurrogate(raw) }

// ---- end of HTTP handler internals ----
