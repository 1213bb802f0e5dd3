package bench

import (
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/gotodo/todo"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// shape is one workload of BenchmarkDurable: clients goroutines adding
// entries to lists lists, each add waiting until its entry is durable.
type shape struct{ lists, clients int }

func (s shape) String() string { return fmt.Sprintf("lists=%d/clients=%d", s.lists, s.clients) }

// shapes are the workloads of issue 8's targets: many callers spread over
// many lists, many callers on one list, and one caller.
var shapes = []shape{{lists: 1000, clients: 64}, {lists: 1, clients: 64}, {lists: 1, clients: 1}}

// store is one implementation opened for a run of BenchmarkDurable.
type store struct {
	// add appends entry i (dated entryDates[i%len(entryDates)], titled
	// entryTitle) to list l, and returns once the entry is durable: fsynced,
	// or fdatasynced. Every client calls it concurrently.
	add func(l, i int) error
	// count returns how many entries the store holds, so that a run can
	// check that every timed add stored one. It is called with no add in
	// flight.
	count func() (int, error)
}

// impl is one store BenchmarkDurable compares.
type impl struct {
	name string
	// open opens a store in dir for a run of shape s, with everything a
	// list needs before its first timed add (untimed), and closes it in a
	// b.Cleanup.
	open func(b *testing.B, dir string, s shape) store
}

// impls are the stores BenchmarkDurable compares. todo comes first so that
// benchstat -col /impl states every other column relative to it.
var impls = []impl{
	{name: "todo", open: openTodo},
	{name: "pebble", open: openPebble},
	{name: "bbolt", open: openBolt},
	{name: "bbolt-sized", open: openBoltSized},
	{name: "sqlite", open: openSQLite},
	{name: "raw", open: openRaw},
}

// BenchmarkDurable measures durable adds per second of todo (Fsync) beside
// Pebble (Sync), bbolt (Batch), SQLite (WAL, synchronous=FULL) and this
// disk's raw append+fdatasync rate, in every shape, so that benchstat -col
// /impl gives their ratios measured in one run on one disk.
func BenchmarkDurable(b *testing.B) {
	for _, s := range shapes {
		for _, im := range impls {
			b.Run(fmt.Sprintf("shape=%v/impl=%s", s, im.name), func(b *testing.B) {
				st := im.open(b, b.TempDir(), s)
				before := mustCount(b, st)
				// Client c's i-th operation goes to the list the root's
				// bench_test.go picks, so both spread adds alike.
				runClients(b, s.clients, func(c, i int) error { return st.add((i*7919+c)%s.lists, i) })
				if got := mustCount(b, st) - before; got != b.N {
					b.Fatalf("%d adds stored %d entries", b.N, got)
				}
			})
		}
	}
}

// runClients runs b.N operations on clients goroutines, each taking the
// next operation number i when it finishes its last, and reports allocations
// and adds/s (operations, over all goroutines, per second of wall time). An
// error stops every client.
func runClients(b *testing.B, clients int, op func(client, i int) error) {
	b.Helper()
	b.ReportAllocs()
	var next atomic.Int64
	var failed atomic.Bool
	var wg sync.WaitGroup
	b.ResetTimer()
	for c := range clients {
		wg.Go(func() {
			for !failed.Load() {
				i := int(next.Add(1) - 1)
				if i >= b.N {
					return
				}
				if err := op(c, i); err != nil {
					failed.Store(true)
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "adds/s")
}

func mustCount(b *testing.B, st store) int {
	b.Helper()
	n, err := st.count()
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// The entry every impl adds: a date in December 2013 and a title, about
// 40 bytes with its list and id whatever the encoding.
const entryTitle = "Dentist appointment"

var entryDates = func() []todo.Date {
	ds := make([]todo.Date, 31)
	for d := range ds {
		ds[d] = todo.Date{Year: 2013, Month: time.December, Day: d + 1}
	}
	return ds
}()

// entryDate returns the date of entry i as the stores other than todo keep
// it: 2013-12-DD.
func entryDate(i int) string {
	d := entryDates[i%len(entryDates)]
	return fmt.Sprintf("%04d-%02d-%02d", d.Year, d.Month, d.Day)
}

// entryValues are the values of the key-value stores, one per date:
// "2013-12-DD Dentist appointment", 30 bytes.
var entryValues = func() [][]byte {
	vs := make([][]byte, len(entryDates))
	for i := range vs {
		vs[i] = []byte(entryDate(i) + " " + entryTitle)
	}
	return vs
}()

func listName(l int) string { return fmt.Sprintf("list_%d", l+1) }

// openTodo opens todo through its public API only (the storage under it is
// being rewritten), with Fsync durability: an add returns once its list's
// change is fsynced.
func openTodo(b *testing.B, dir string, s shape) store {
	lists := s.lists
	ctx := context.Background()
	sys, err := todo.Open(dir, &todo.Options{Durability: todo.Fsync})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := sys.Close(); err != nil {
			b.Error(err)
		}
	})
	// Every list gets its first entry before timing, as the root's
	// BenchmarkPersist does, so that what is timed is the steady state of
	// loaded lists with their files, not 1,000 starts. The 64 goroutines
	// only make the setup shorter.
	servers := make([]*todo.Server, lists)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 64 {
		wg.Go(func() {
			for l := int(next.Add(1) - 1); l < lists; l = int(next.Add(1) - 1) {
				servers[l] = sys.ServerProcess(listName(l))
				if _, err := servers[l].AddEntry(ctx, todo.Entry{Date: entryDates[0], Title: "first"}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	return store{
		add: func(l, i int) error {
			_, err := servers[l].AddEntry(ctx, todo.Entry{Date: entryDates[i%len(entryDates)], Title: entryTitle})
			return err
		},
		count: func() (int, error) {
			n := 0
			for _, s := range servers {
				es, err := s.AllEntries(ctx)
				if err != nil {
					return 0, err
				}
				n += len(es)
			}
			return n, nil
		},
	}
}

// openPebble opens Pebble with its default options but two: the newest
// on-disk format, which Pebble's docs recommend naming explicitly (the
// default is the oldest format it still reads), and a logger that keeps errors but
// drops informational lines, as a program embedding Pebble would route
// them. Every add is a Set with
// pebble.Sync, which Pebble commits in groups: concurrent Syncs share one
// WAL write and one fsync. The key is the list's name, "/", and a
// big-endian 8-byte id from the list's counter in memory.
func openPebble(b *testing.B, dir string, s shape) store {
	lists := s.lists
	db, err := pebble.Open(dir, &pebble.Options{
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             quietLogger{pebble.DefaultLogger},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := db.Close(); err != nil {
			b.Error(err)
		}
	})
	prefixes := make([][]byte, lists)
	for l := range prefixes {
		prefixes[l] = []byte(listName(l) + "/")
	}
	ids := make([]atomic.Uint64, lists)
	return store{
		add: func(l, i int) error {
			key := make([]byte, 0, len(prefixes[l])+8)
			key = binary.BigEndian.AppendUint64(append(key, prefixes[l]...), ids[l].Add(1))
			return db.Set(key, entryValues[i%len(entryValues)], pebble.Sync)
		},
		count: func() (int, error) {
			it, err := db.NewIter(nil)
			if err != nil {
				return 0, err
			}
			n := 0
			for valid := it.First(); valid; valid = it.Next() {
				n++
			}
			return n, it.Close()
		},
	}
}

// quietLogger is Pebble's default logger without its informational lines
// ("Found 0 WALs" at every Open), which would split the benchmark's result
// lines that benchstat reads.
type quietLogger struct{ pebble.Logger }

func (quietLogger) Infof(string, ...any) {}

// openBolt opens bbolt with its default options, one bucket per list made
// before timing. A bucket per list is what a bbolt user would pick: its
// NextSequence gives each list ids that are stored in the same transaction
// as the entry, so they stay unique across crashes as todo's do, and a list
// is read with one bucket's cursor. Every add is a DB.Batch, bbolt's way
// for concurrent callers to share one commit and its fsyncs. By default a
// batch starts when 1,000 calls joined it or 10 ms after its first did, so
// with fewer callers than 1,000 every batch waits the 10 ms: one caller
// makes at most 100 adds a second.
func openBolt(b *testing.B, dir string, s shape) store {
	return openBoltBatch(b, dir, s, 0)
}

// openBoltSized is openBolt with DB.MaxBatchSize set to the number of
// clients, as a user who knows their concurrency would set it: a batch
// starts as soon as every caller has joined it, not 10 ms later, and one
// caller's Batch runs at once, as an Update would.
func openBoltSized(b *testing.B, dir string, s shape) store {
	return openBoltBatch(b, dir, s, s.clients)
}

// openBoltBatch opens bbolt as openBolt says, with DB.MaxBatchSize set to
// maxBatch unless that is zero.
func openBoltBatch(b *testing.B, dir string, s shape, maxBatch int) store {
	lists := s.lists
	db, err := bolt.Open(filepath.Join(dir, "todo.db"), 0o600, nil)
	if err != nil {
		b.Fatal(err)
	}
	if maxBatch > 0 {
		db.MaxBatchSize = maxBatch
	}
	b.Cleanup(func() {
		if err := db.Close(); err != nil {
			b.Error(err)
		}
	})
	names := make([][]byte, lists)
	err = db.Update(func(tx *bolt.Tx) error {
		for l := range names {
			names[l] = []byte(listName(l))
			if _, err := tx.CreateBucket(names[l]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return store{
		add: func(l, i int) error {
			return db.Batch(func(tx *bolt.Tx) error {
				bk := tx.Bucket(names[l])
				id, err := bk.NextSequence()
				if err != nil {
					return err
				}
				return bk.Put(binary.BigEndian.AppendUint64(nil, id), entryValues[i%len(entryValues)])
			})
		},
		count: func() (n int, err error) {
			err = db.View(func(tx *bolt.Tx) error {
				return tx.ForEach(func(_ []byte, bk *bolt.Bucket) error {
					n += bk.Stats().KeyN
					return nil
				})
			})
			return n, err
		},
	}
}

// openSQLite opens SQLite (modernc.org/sqlite, no cgo) in WAL mode with
// synchronous=FULL, so that every commit fsyncs the WAL, and one table of
// entries keyed by list and id. Every add is one INSERT in its own
// transaction that takes the list's next id from the table, as an SQL user
// would write it: the id is stored with the entry, unique across crashes.
//
// The pool holds one connection. SQLite lets one writer in at a time, so
// more connections add no parallel writes, only SQLITE_BUSY and the busy
// handler's sleeps; with one, the 64 goroutines queue in database/sql.
// (Measured here in one short run: a pool of 8 made 0.76× the adds of a
// pool of 1 over 1,000 lists and 0.3× on one list.)
func openSQLite(b *testing.B, dir string, s shape) store {
	lists := s.lists
	dsn := "file:" + filepath.Join(dir, "todo.sqlite") +
		"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		b.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	b.Cleanup(func() {
		if err := db.Close(); err != nil {
			b.Error(err)
		}
	})
	const schema = `CREATE TABLE entries (
		list  TEXT    NOT NULL,
		id    INTEGER NOT NULL,
		date  TEXT    NOT NULL,
		title TEXT    NOT NULL,
		PRIMARY KEY (list, id))`
	if _, err := db.Exec(schema); err != nil {
		b.Fatal(err)
	}
	insert, err := db.Prepare(`INSERT INTO entries (list, id, date, title)
		SELECT ?1, COALESCE(MAX(id), 0) + 1, ?2, ?3 FROM entries WHERE list = ?1`)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { insert.Close() })
	names := make([]string, lists)
	for l := range names {
		names[l] = listName(l)
	}
	dates := make([]string, len(entryDates))
	for i := range dates {
		dates[i] = entryDate(i)
	}
	return store{
		add: func(l, i int) error {
			_, err := insert.Exec(names[l], dates[i%len(dates)], entryTitle)
			return err
		},
		count: func() (n int, err error) {
			err = db.QueryRow(`SELECT COUNT(*) FROM entries`).Scan(&n)
			return n, err
		},
	}
}

// rawRecordSize is the size of one record of the raw log: about an entry
// with its list and id, framed with a length and a CRC-32C.
const rawRecordSize = 60

// openRaw opens the raw log: one file that every add appends one record to
// and then fdatasyncs, the floor under any store's durable append. It has
// no lists: every shape's adds go to the one file, so its figure over
// 1,000 lists is the same single-file workload, a reference for that row.
// With one client that is one write and one fdatasync per add, this disk's
// raw append rate. With more, it is the simplest group commit: every client
// appends under a mutex and then waits for an fdatasync begun after its
// write, which one of them runs for all, so one flush answers everyone who
// wrote before it began.
func openRaw(b *testing.B, dir string, _ shape) store {
	fd, err := unix.Open(filepath.Join(dir, "raw.log"), unix.O_WRONLY|unix.O_CREAT|unix.O_APPEND|unix.O_CLOEXEC, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := unix.Close(fd); err != nil {
			b.Error(err)
		}
	})
	castagnoli := crc32.MakeTable(crc32.Castagnoli)
	records := make([][]byte, len(entryValues))
	for i := range records {
		body := make([]byte, rawRecordSize-8)
		copy(body, "list_1 "+string(entryValues[i]))
		rec := binary.LittleEndian.AppendUint32(nil, uint32(len(body)))
		rec = binary.LittleEndian.AppendUint32(rec, crc32.Checksum(body, castagnoli))
		records[i] = append(rec, body...)
	}
	log := &rawLog{fd: fd}
	log.synced.L = &log.mu
	return store{
		add: func(_, i int) error { return log.append(records[i%len(records)]) },
		count: func() (int, error) {
			var st unix.Stat_t
			if err := unix.Fstat(fd, &st); err != nil {
				return 0, err
			}
			return int(st.Size / rawRecordSize), nil
		},
	}
}

// rawLog is an append-only file with group commit. It is safe for
// concurrent use.
type rawLog struct {
	fd int
	// mu guards the fields below and orders the writes.
	mu sync.Mutex
	// synced is signalled whenever an fdatasync ends.
	synced sync.Cond
	// written and durable are the bytes appended and the bytes known to
	// be on disk; syncing says a goroutine is in fdatasync.
	written, durable int64
	syncing          bool
}

// append writes rec at the end of the log and returns once it is
// fdatasynced.
func (r *rawLog) append(rec []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	n, err := unix.Write(r.fd, rec)
	if err != nil {
		return err
	}
	if n != len(rec) {
		return io.ErrShortWrite
	}
	r.written += int64(n)
	for end := r.written; r.durable < end; {
		if r.syncing {
			r.synced.Wait()
			continue
		}
		// No fdatasync is running: run one for everything written so
		// far, without the lock, so that others append meanwhile.
		r.syncing = true
		target := r.written
		r.mu.Unlock()
		err := unix.Fdatasync(r.fd)
		r.mu.Lock()
		r.syncing = false
		r.synced.Broadcast()
		if err != nil {
			return fmt.Errorf("raw log: fdatasync: %w", err)
		}
		r.durable = target
	}
	return nil
}
