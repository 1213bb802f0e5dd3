package todo_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gotodo/todo"
	"github.com/puzpuzpuz/xsync/v3"
)

// parallelCase is one sub-benchmark run by runParallel.
type parallelCase struct {
	// name is the sub-benchmark's path of key=value parts, like
	// "impl=table/op=lookup", so that benchstat can pivot on any key.
	name string
	// setup prepares what is measured (untimed) and returns the body of
	// one goroutine of b.RunParallel, which must loop with for pb.Next().
	// It may register cleanups with b.Cleanup.
	setup func(b *testing.B) func(pb *testing.PB)
}

// runParallel runs each case as a sub-benchmark over b.RunParallel,
// reporting allocations and an ops/s metric (b.N operations, summed over
// all goroutines, per second of wall time).
func runParallel(b *testing.B, cases []parallelCase) {
	b.Helper()
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			body := c.setup(b)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(body)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
		})
	}
}

// benchKeys is the number of keys preloaded into every map that
// BenchmarkTable measures; operations pick keys among them.
const benchKeys = 100_000

// keyRand is a per-goroutine xorshift generator of keys and of the choice
// between a read and a write. It is a value with no locks, so goroutines
// never share or contend on it.
type keyRand uint64

var keyRandSeeds atomic.Uint64

func newKeyRand() keyRand {
	// Distinct, nonzero seeds: xorshift must not start at zero.
	return keyRand(keyRandSeeds.Add(1)*0x9e3779b97f4a7c15 | 1)
}

// next returns a key in [0, benchKeys) and whether this operation is a
// write, which it is writePercent times in a hundred.
func (r *keyRand) next(writePercent uint64) (key int, write bool) {
	x := uint64(*r)
	x ^= x << 13
	x ^= x >> 7
	x ^= x << 17
	*r = keyRand(x)
	return int(x % benchKeys), (x>>32)%100 < writePercent
}

// tableOps are the operations BenchmarkTable runs on each implementation,
// named by the percentage of writes among them.
var tableOps = []struct {
	name         string
	writePercent uint64
}{
	{"lookup", 0},
	{"insert", 100},
	{"mixed90", 10}, // 90% lookups
}

// tableImpls are the concurrent int→int maps BenchmarkTable compares. Each
// returns the body of a RunParallel goroutine over a map preloaded with
// benchKeys keys; the body calls the map's own methods directly so that
// none pays for an interface or a func value the others do not.
var tableImpls = []struct {
	name string
	body func(b *testing.B, writePercent uint64) func(pb *testing.PB)
}{
	{"table", func(b *testing.B, writePercent uint64) func(pb *testing.PB) {
		m := todo.NewTable[int, int]()
		for k := range benchKeys {
			m.Insert(k, k)
		}
		return func(pb *testing.PB) {
			r, misses := newKeyRand(), 0
			for pb.Next() {
				k, write := r.next(writePercent)
				if write {
					m.Insert(k, k)
				} else if _, ok := m.Lookup(k); !ok {
					misses++
				}
			}
			reportMisses(b, misses)
		}
	}},
	{"xsync", func(b *testing.B, writePercent uint64) func(pb *testing.PB) {
		m := xsync.NewMapOf[int, int]()
		for k := range benchKeys {
			m.Store(k, k)
		}
		return func(pb *testing.PB) {
			r, misses := newKeyRand(), 0
			for pb.Next() {
				k, write := r.next(writePercent)
				if write {
					m.Store(k, k)
				} else if _, ok := m.Load(k); !ok {
					misses++
				}
			}
			reportMisses(b, misses)
		}
	}},
	{"syncmap", func(b *testing.B, writePercent uint64) func(pb *testing.PB) {
		var m sync.Map
		for k := range benchKeys {
			m.Store(k, k)
		}
		return func(pb *testing.PB) {
			r, misses := newKeyRand(), 0
			for pb.Next() {
				k, write := r.next(writePercent)
				if write {
					m.Store(k, k)
				} else if _, ok := m.Load(k); !ok {
					misses++
				}
			}
			reportMisses(b, misses)
		}
	}},
	{"rwmutex", func(b *testing.B, writePercent uint64) func(pb *testing.PB) {
		var mu sync.RWMutex // guards m
		m := make(map[int]int, benchKeys)
		for k := range benchKeys {
			m[k] = k
		}
		return func(pb *testing.PB) {
			r, misses := newKeyRand(), 0
			for pb.Next() {
				k, write := r.next(writePercent)
				if write {
					mu.Lock()
					m[k] = k
					mu.Unlock()
				} else {
					mu.RLock()
					_, ok := m[k]
					mu.RUnlock()
					if !ok {
						misses++
					}
				}
			}
			reportMisses(b, misses)
		}
	}},
}

// reportMisses fails the benchmark if a lookup of a preloaded key missed:
// it keeps the lookups' results live and checks that the map was loaded.
func reportMisses(b *testing.B, misses int) {
	if misses > 0 {
		b.Errorf("%d lookups of preloaded keys missed", misses)
	}
}

// BenchmarkTable compares todo.Table with the raw xsync.MapOf it wraps,
// sync.Map, and a map behind a sync.RWMutex, on int keys. Compare the
// implementations with:
//
//	go test -run '^$' -bench BenchmarkTable -count=10 . > table.bench
//	benchstat -col /impl table.bench
func BenchmarkTable(b *testing.B) {
	var cases []parallelCase
	for _, impl := range tableImpls {
		for _, op := range tableOps {
			cases = append(cases, parallelCase{
				name: "impl=" + impl.name + "/op=" + op.name,
				setup: func(b *testing.B) func(pb *testing.PB) {
					return impl.body(b, op.writePercent)
				},
			})
		}
	}
	runParallel(b, cases)
}

// runClients runs op b.N times in all, spread over clients goroutines
// that take the next iteration from a shared counter, and reports ops/s.
func runClients(b *testing.B, clients int, op func(client, i int)) {
	b.Helper()
	b.ReportAllocs()
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= b.N {
					return
				}
				op(c, i)
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// benchDates are the days entries are spread over.
var benchDates = func() []todo.Date {
	var ds []todo.Date
	for d := 1; d <= 31; d++ {
		ds = append(ds, todo.Date{Year: 2013, Month: time.December, Day: d})
	}
	return ds
}()

func listNames(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("list_%d", i+1)
	}
	return names
}

// mutexList is the baseline a user would write by hand: a List behind a mutex.
type mutexList struct {
	mu   sync.Mutex
	list todo.List
}

// BenchmarkServer measures the servers, the cache and the table alone:
// lists are kept in memory (Async, in-memory storage).
func BenchmarkServer(b *testing.B) {
	ctx := context.Background()
	for _, lists := range []int{1, 1000} {
		for _, clients := range []int{1, 2, 64} {
			name := fmt.Sprintf("op=add/lists=%d/clients=%d", lists, clients)
			names := listNames(lists)
			b.Run("impl=server/"+name, func(b *testing.B) {
				sys := openMemory(b)
				servers := make([]*todo.Server, lists)
				for i, n := range names {
					servers[i] = sys.ServerProcess(n)
				}
				runClients(b, clients, func(c, i int) {
					s := servers[(i*7919+c)%lists]
					e := todo.Entry{Date: benchDates[i%len(benchDates)], Title: "Dentist"}
					if _, err := s.AddEntry(ctx, e); err != nil {
						b.Error(err)
					}
				})
			})
			b.Run("impl=mutex/"+name, func(b *testing.B) {
				ls := make([]*mutexList, lists)
				for i := range ls {
					ls[i] = &mutexList{}
				}
				runClients(b, clients, func(c, i int) {
					l := ls[(i*7919+c)%lists]
					e := todo.Entry{Date: benchDates[i%len(benchDates)], Title: "Dentist"}
					l.mu.Lock()
					l.list.Add(e)
					l.mu.Unlock()
				})
			})
		}
	}

	// Reads of one loaded list with 10 entries on the day read.
	day := benchDates[0]
	for _, clients := range []int{1, 64} {
		name := fmt.Sprintf("op=entries/lists=1/clients=%d", clients)
		// get reads for one client; runClients gives each client to one
		// goroutine only, so a client may keep a buffer.
		read := func(b *testing.B, get func(s *todo.Server, client int) ([]todo.Entry, error)) {
			sys := openMemory(b)
			s := sys.ServerProcess("bob")
			for i := range 10 {
				if _, err := s.AddEntry(ctx, todo.Entry{Date: day, Title: fmt.Sprint("entry ", i)}); err != nil {
					b.Fatal(err)
				}
			}
			runClients(b, clients, func(c, _ int) {
				es, err := get(s, c)
				if err != nil || len(es) != 10 {
					b.Errorf("got %d entries, %v", len(es), err)
				}
			})
		}
		b.Run("impl=table/"+name, func(b *testing.B) {
			read(b, func(s *todo.Server, _ int) ([]todo.Entry, error) { return s.Entries(ctx, day) })
		})
		b.Run("impl=table-append/"+name, func(b *testing.B) {
			bufs := make([][]todo.Entry, clients)
			read(b, func(s *todo.Server, c int) ([]todo.Entry, error) {
				es, err := s.AppendEntries(ctx, bufs[c][:0], day)
				bufs[c] = es
				return es, err
			})
		})
		b.Run("impl=request/"+name, func(b *testing.B) {
			read(b, func(s *todo.Server, _ int) ([]todo.Entry, error) { return todo.EntriesViaServer(ctx, s, day) })
		})
		b.Run("impl=mutex/"+name, func(b *testing.B) {
			l := &mutexList{}
			for i := range 10 {
				l.list.Add(todo.Entry{Date: day, Title: fmt.Sprint("entry ", i)})
			}
			runClients(b, clients, func(int, int) {
				l.mu.Lock()
				es := l.list.Entries(day)
				l.mu.Unlock()
				if len(es) != 10 {
					b.Errorf("got %d entries", len(es))
				}
			})
		})
	}
}

// BenchmarkBEAMPair is the Go half of scripts/beam.sh, in the shape of its
// BEAM half (scripts/beampair.erl): 100 lists, each holding 100 entries
// over 10 days (2024-01-01 to 2024-01-10), kept in memory (Async, the
// in-memory store: the BEAM's lists persist nothing), and 2 clients, each
// making one call at a time to a list picked at random: AddEntry (op=add)
// or Entries of one of the 10 days (op=entries, 10 entries each). Each run
// starts 100 fresh lists; titles and dates are made before it, and the
// lists and days are picked as the BEAM half picks them. Besides ops/s it
// reports the process's CPU time per call (cpu-ns/op), which the BEAM half
// reports too. Run it beside the BEAM with scripts/beam.sh, or alone:
//
//	go test -run '^$' -bench BenchmarkBEAMPair -count=10 .
func BenchmarkBEAMPair(b *testing.B) {
	const lists, entries, days, clients, titles = 100, 100, 10, 2, 1000
	ctx := context.Background()
	dates := make([]todo.Date, days)
	for d := range dates {
		dates[d] = todo.Date{Year: 2024, Month: time.January, Day: d + 1}
	}
	titleOf := make([]string, titles)
	for i := range titleOf {
		titleOf[i] = fmt.Sprint("Dentist appointment ", i)
	}
	// start opens a System of 100 lists of 100 entries each.
	start := func(b *testing.B) []*todo.Server {
		sys := openMemory(b)
		servers := make([]*todo.Server, lists)
		for i, n := range listNames(lists) {
			servers[i] = sys.ServerProcess(n)
			for j := range entries {
				if _, err := servers[i].AddEntry(ctx, todo.Entry{Date: dates[j%days], Title: titleOf[j%titles]}); err != nil {
					b.Fatal(err)
				}
			}
		}
		return servers
	}
	// call is one client's call, x its random number.
	for _, op := range []struct {
		name string
		call func(b *testing.B, s *todo.Server, x uint32)
	}{
		{"add", func(b *testing.B, s *todo.Server, x uint32) {
			if _, err := s.AddEntry(ctx, todo.Entry{Date: dates[x>>10%days], Title: titleOf[x>>10%titles]}); err != nil {
				b.Error(err)
			}
		}},
		{"entries", func(b *testing.B, s *todo.Server, x uint32) {
			if es, err := s.Entries(ctx, dates[x>>10%days]); err != nil || len(es) == 0 {
				b.Errorf("got %d entries, %v", len(es), err)
			}
		}},
	} {
		b.Run("op="+op.name, func(b *testing.B) {
			servers := start(b)
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := processCPU(b)
			var wg sync.WaitGroup
			for c := range clients {
				calls := b.N / clients
				if c < b.N%clients {
					calls++
				}
				wg.Go(func() {
					x := uint32(c+1)*7919 + 1
					for range calls {
						x = (x*69069 + 1) & 0xFFFFFFF // the BEAM half's LCG
						op.call(b, servers[x>>4%lists], x)
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
			b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// processCPU returns the CPU time the process has used, user and system,
// in nanoseconds: a machine shared with other jobs moves the ops/s of a
// run more than the CPU each operation takes.
func processCPU(tb testing.TB) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

func openMemory(b *testing.B) *todo.System {
	sys, err := todo.OpenInMemory(&todo.Options{Durability: todo.Async})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { sys.Close() })
	return sys
}

// BenchmarkPersist measures AddEntry on a data directory in each
// durability mode, beside this disk's raw rate of appending a record and
// fdatasyncing it, the floor of a durable add. Compare with:
//
//	go test -run '^$' -bench BenchmarkPersist -count=10 . > persist.bench
//	benchstat -filter '.unit:adds/s' persist.bench
//
// The workers=... cases compare one worker (the default) with three, all
// sharing the one log; the size=... cases compare adding to a list of 10
// entries and of 100,000.
func BenchmarkPersist(b *testing.B) {
	ctx := context.Background()
	for _, writers := range []int{1, 3} {
		b.Run(fmt.Sprintf("durability=raw/writers=%d", writers), func(b *testing.B) {
			dir := b.TempDir()
			files := make([]*os.File, writers)
			for w := range files {
				f, err := os.Create(filepath.Join(dir, fmt.Sprint("raw-", w)))
				if err != nil {
					b.Fatal(err)
				}
				defer f.Close()
				files[w] = f
			}
			record := make([]byte, 60)
			runClients(b, writers, func(c, _ int) {
				if err := rawAppend(files[c], record); err != nil {
					b.Error(err)
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "adds/s")
		})
	}
	type persistCase struct {
		durability              todo.Durability
		lists, clients, workers int // workers 0 is the default
	}
	var cases []persistCase
	for _, d := range []todo.Durability{todo.Fsync, todo.Write, todo.Async} {
		for _, lists := range []int{1, 1000} {
			for _, clients := range []int{1, 64} {
				cases = append(cases, persistCase{d, lists, clients, 0})
			}
		}
	}
	for _, workers := range []int{1, 3} {
		cases = append(cases, persistCase{todo.Fsync, 1000, 64, workers})
	}
	for _, pc := range cases {
		name := fmt.Sprintf("durability=%v/lists=%d/clients=%d", pc.durability, pc.lists, pc.clients)
		if pc.workers != 0 {
			name += fmt.Sprintf("/workers=%d", pc.workers)
		}
		b.Run(name, func(b *testing.B) {
			o := &todo.Options{Durability: pc.durability, Workers: pc.workers, MaxFileSize: 1 << 31}
			sys, err := todo.Open(b.TempDir(), o)
			if err != nil {
				b.Fatal(err)
			}
			defer sys.Close()
			// Every list gets its first entry before timing, so that it is
			// loaded: what is timed is the steady state, not 1000 starts.
			servers := make([]*todo.Server, pc.lists)
			for i, n := range listNames(pc.lists) {
				servers[i] = sys.ServerProcess(n)
				if _, err := servers[i].AddEntry(ctx, todo.Entry{Date: benchDates[0], Title: "first"}); err != nil {
					b.Fatal(err)
				}
			}
			before := sys.Stats()
			runClients(b, pc.clients, func(c, i int) {
				s := servers[(i*7919+c)%pc.lists]
				e := todo.Entry{Date: benchDates[i%len(benchDates)], Title: "Dentist"}
				if _, err := s.AddEntry(ctx, e); err != nil {
					b.Error(err)
				}
			})
			after := sys.Stats()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "adds/s")
			if commits := after.Commits - before.Commits; commits > 0 {
				b.ReportMetric(float64(after.ChangesStored-before.ChangesStored)/float64(commits), "changes/commit")
			}
		})
	}
	// The cost of a list's size: the log appends the one entry added,
	// whatever the list holds.
	for _, size := range []int{10, 100_000} {
		b.Run(fmt.Sprintf("durability=fsync/size=%d", size), func(b *testing.B) {
			sys := openFilled(b, size, func(i int) (string, todo.Entry) {
				return "big", todo.Entry{Date: benchDates[i%len(benchDates)], Title: "Dentist appointment"}
			})
			s := sys.ServerProcess("big")
			if _, err := s.AllEntries(ctx); err != nil { // load before timing
				b.Fatal(err)
			}
			runClients(b, 1, func(c, i int) {
				if _, err := s.AddEntry(ctx, todo.Entry{Date: benchDates[i%len(benchDates)], Title: "Dentist appointment"}); err != nil {
					b.Error(err)
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "adds/s")
		})
	}
}

// rawAppend is the least a durable add can cost on this disk: append a
// record to a file and fdatasync it.
func rawAppend(f *os.File, record []byte) error {
	if _, err := f.Write(record); err != nil {
		return err
	}
	return syscall.Fdatasync(int(f.Fd()))
}

// openChildDirEnv names the data directory a child of BenchmarkOpen opens.
const openChildDirEnv = "TODO_OPEN_CHILD_DIR"

// TestOpenChild is the child of BenchmarkOpen: it opens the directory
// named by TODO_OPEN_CHILD_DIR, prints how long Open took and the size of
// the log it replayed, and exits without Close, as a crashed process
// would leave the directory. Outside a benchmark it does nothing.
func TestOpenChild(t *testing.T) {
	dir := os.Getenv(openChildDirEnv)
	if dir == "" {
		t.Skip("run by BenchmarkOpen as its child")
	}
	start := time.Now()
	sys, err := todo.Open(dir, nil)
	took := time.Since(start)
	if err != nil {
		fmt.Printf("ERR\t%v\n", err)
		os.Exit(1)
	}
	fmt.Printf("OPEN\t%d\t%d\n", took.Nanoseconds(), sys.Stats().LogBytes)
	os.Exit(0)
}

// BenchmarkOpen measures Open on a data directory of many lists, each
// with a file, whose log is full (nearly Options.LogSize of records, left
// by a process that stopped without Close): Open replays the log and
// reads no list file. Each Open runs in a child process (TestOpenChild)
// on a copy of the directory made of hard links: checkpoints replace
// files by rename and delete segments, so the copy's changes never reach
// the original. The directory is built once, untimed.
//
//	go test -run '^$' -bench BenchmarkOpen -benchtime=5x .
func BenchmarkOpen(b *testing.B) {
	for _, lists := range []int{1000, 100_000} {
		b.Run(fmt.Sprintf("lists=%d/log=full", lists), func(b *testing.B) {
			image := buildOpenImage(b, lists)
			var total time.Duration
			var logBytes int64
			for b.Loop() {
				b.StopTimer()
				dir := filepath.Join(b.TempDir(), "data")
				if out, err := exec.Command("cp", "-al", image, dir).CombinedOutput(); err != nil {
					b.Fatalf("cp -al: %v: %s", err, out)
				}
				cmd := exec.Command(os.Args[0], "-test.run=^TestOpenChild$", "-test.count=1")
				cmd.Env = append(os.Environ(), openChildDirEnv+"="+dir)
				out, err := cmd.Output()
				if err != nil {
					b.Fatalf("child: %v: %s", err, out)
				}
				var ns int64
				if _, err := fmt.Sscanf(string(out), "OPEN\t%d\t%d", &ns, &logBytes); err != nil {
					b.Fatalf("child printed %q: %v", out, err)
				}
				total += time.Duration(ns)
				b.StartTimer()
			}
			b.ReportMetric(total.Seconds()/float64(b.N), "open-s")
			b.ReportMetric(float64(logBytes)/(1<<20), "log-MiB")
		})
	}
}

// buildOpenImage makes a data directory of lists lists, each with a file
// of one entry, and a log of nearly Options.LogSize of further adds spread
// over them, left behind by a System that never closed: the directory is
// copied (with hard links) while the System is still open and idle, every
// add it acknowledged fsynced.
func buildOpenImage(b *testing.B, lists int) string {
	b.Helper()
	ctx := context.Background()
	base := b.TempDir()
	dir := filepath.Join(base, "build")
	names := listNames(lists)
	// Many adders: Fsync commits are grouped, so this goes at the log's pace.
	forAll := func(sys *todo.System, n int, title func(i int) string) {
		var next atomic.Int64
		var wg sync.WaitGroup
		for range 64 {
			wg.Go(func() {
				for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
					if _, err := sys.ServerProcess(names[i%lists]).AddEntry(ctx, todo.Entry{Date: benchDates[i%len(benchDates)], Title: title(i)}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
	}
	sys, err := todo.Open(dir, nil)
	if err != nil {
		b.Fatal(err)
	}
	forAll(sys, lists, func(int) string { return "first" })
	if err := sys.Close(); err != nil { // every list gets its file
		b.Fatal(err)
	}
	sys, err = todo.Open(dir, &todo.Options{IdleTimeout: -1, MaxLoaded: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer sys.Close()
	const logSize = 64 << 20 // the default Options.LogSize
	for sys.Stats().LogBytes < logSize*9/10 {
		forAll(sys, lists, func(i int) string { return fmt.Sprintf("appointment %d with the dentist", i) })
	}
	image := filepath.Join(base, "image")
	if out, err := exec.Command("cp", "-al", dir, image).CombinedOutput(); err != nil {
		b.Fatalf("cp -al: %v: %s", err, out)
	}
	// The copy has the open System's lock file, which is no lock: a
	// lock is held by an open file, not by the file's existence.
	return image
}

// openFilled makes a data directory holding the count entries add gives
// (the list of each, and the entry), added with Async durability, closes
// it, and opens it again with the default options, for the benchmark to
// time; it is closed when b ends.
func openFilled(b *testing.B, count int, add func(i int) (string, todo.Entry)) *todo.System {
	b.Helper()
	ctx := context.Background()
	dir := b.TempDir()
	fill, err := todo.Open(dir, &todo.Options{Durability: todo.Async})
	if err != nil {
		b.Fatal(err)
	}
	for i := range count {
		list, e := add(i)
		if _, err := fill.AddEntry(ctx, list, e); err != nil {
			b.Fatal(err)
		}
	}
	if err := fill.Close(); err != nil {
		b.Fatal(err)
	}
	sys, err := todo.Open(dir, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { sys.Close() })
	return sys
}

// BenchmarkListsPage: the first page (100 names) of a data directory's
// 10,000 stored lists, by ListsPage (impl=page, a look at each name) and
// by the first 100 names of ScanLists (impl=scan, a sort of them all),
// in one run.
//
//	go test -run '^$' -bench BenchmarkListsPage -count=10 . > pages.bench
//	benchstat -col /impl pages.bench
func BenchmarkListsPage(b *testing.B) {
	ctx := context.Background()
	names := listNames(10_000)
	sys := openFilled(b, len(names), func(i int) (string, todo.Entry) {
		return names[i], todo.Entry{Date: benchDates[0], Title: "Dentist"}
	})
	if _, err := sys.Lists(ctx); err != nil { // the directories' walk, once
		b.Fatal(err)
	}
	b.Run("impl=page", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if page, err := sys.ListsPage(ctx, "", 100); err != nil || len(page) != 100 {
				b.Fatal(len(page), err)
			}
		}
	})
	b.Run("impl=scan", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			n := 0
			for _, err := range sys.ScanLists(ctx, "") {
				if err != nil {
					b.Fatal(err)
				}
				if n++; n == 100 {
					break
				}
			}
		}
	})
}

// BenchmarkMemory measures what a loaded list costs while its server
// hibernates: 100,000 lists of 10 entries each (all on 2013-12-19, titled
// "Dentist", as the BEAM harness scripts/membeam.erl
// holds them), added with Async durability on a data directory, no idle
// expiry and no cap, then left until every server hibernates. It reports
// per list the growth of the heap and the goroutine stacks after a GC
// (runtime.MemStats HeapAlloc+StackInuse), and of the process's RSS
// (VmRSS, after debug.FreeOSMemory), from before Open. Each iteration
// builds its lists anew; one is enough:
//
//	go test -run '^$' -bench BenchmarkMemory -benchtime=1x -count=4 .
//
// With TODO_MEMPROFILE=file it writes a heap profile of the hibernating
// lists there, for go tool pprof -sample_index=inuse_space. The
// state=awake case, with hibernation off, is the cost without it.
func BenchmarkMemory(b *testing.B) {
	const lists, entries = 100_000, 10
	for _, state := range []struct {
		name  string
		after time.Duration // Options.HibernateAfter
	}{
		{"hibernating", 0},
		{"awake", -1}, // for comparison: every list with its goroutine
	} {
		b.Run(fmt.Sprintf("lists=%d/entries=%d/state=%s", lists, entries, state.name), func(b *testing.B) {
			benchmarkMemory(b, lists, entries, state.after)
		})
	}
}

// benchmarkMemory is one case of BenchmarkMemory.
func benchmarkMemory(b *testing.B, lists, entries int, hibernateAfter time.Duration) {
	ctx := context.Background()
	day := todo.Date{Year: 2013, Month: time.December, Day: 19}
	var heapPerList, rssPerList float64
	for b.Loop() {
		dir := b.TempDir()
		names := listNames(lists)
		heap0, rss0 := memoryInUse(b)
		sys, err := todo.Open(dir, &todo.Options{Durability: todo.Async, IdleTimeout: time.Hour, MaxLoaded: -1, HibernateAfter: hibernateAfter})
		if err != nil {
			b.Fatal(err)
		}
		var next atomic.Int64
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for i := int(next.Add(1) - 1); i < lists; i = int(next.Add(1) - 1) {
					s := sys.ServerProcess(names[i])
					for range entries {
						if _, err := s.AddEntry(ctx, todo.Entry{Date: day, Title: "Dentist"}); err != nil {
							b.Error(err)
							return
						}
					}
				}
			})
		}
		wg.Wait()
		for deadline := time.Now().Add(time.Minute); hibernateAfter >= 0 && sys.Stats().ServersHibernating < int64(lists); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d lists hibernating a minute after the last add", sys.Stats().ServersHibernating, lists)
			}
		}
		names = nil // the names are the System's now: its registry holds them
		heap1, rss1 := memoryInUse(b)
		if path := os.Getenv("TODO_MEMPROFILE"); path != "" {
			writeHeapProfile(b, path)
		}
		heapPerList = float64(heap1-heap0) / float64(lists)
		rssPerList = float64(rss1-rss0) / float64(lists)
		want := int64(lists)
		if hibernateAfter < 0 {
			want = 0
		}
		if st := sys.Stats(); st.ServersRunning != int64(lists) || st.ServersHibernating != want {
			b.Fatalf("%d lists loaded, %d hibernating; want %d and %d", st.ServersRunning, st.ServersHibernating, lists, want)
		}
		b.StopTimer()
		if err := sys.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(heapPerList, "heap+stack-B/list")
	b.ReportMetric(rssPerList, "rss-B/list")
}

// writeHeapProfile writes a heap profile of what is in use now to path.
func writeHeapProfile(tb testing.TB, path string) {
	tb.Helper()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		tb.Fatal(err)
	}
}

// memoryInUse returns, after a GC that returns what it frees to the OS,
// the bytes of the heap and of goroutine stacks in use, and the process's
// resident set size.
func memoryInUse(tb testing.TB) (heapAndStacks, rss int64) {
	tb.Helper()
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		tb.Fatal(err)
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				tb.Fatalf("VmRSS: %q: %v", v, err)
			}
			rss = kb << 10
		}
	}
	return int64(ms.HeapAlloc + ms.StackInuse), rss
}

// BenchmarkWake compares AddEntry (Async, in memory) on a list whose
// server is awake with AddEntry on one whose server hibernates, which
// wakes it: a new goroutine, the add, the publication. The adds go round
// 1,000 lists, one client. With state=hibernating every list is left to
// fall asleep (HibernateAfter 20ms) between rounds of 1,000 adds, the
// clock stopped, so what is timed is the wake and the add;
// state=awake-rounds is the same rounds and pauses with hibernation off,
// its baseline like for like (a pause leaves caches and cores cold, which
// costs an awake list too); state=awake adds without a pause. With
// state=churning each list falls asleep a nanosecond after its add, so the
// loop also pays for going to sleep, on the other core. wakes/op is 1 when
// every add woke its list. Compare:
//
//	go test -run '^$' -bench BenchmarkWake -count=10 -benchtime=200ms . > wake.bench
//	benchstat -col /state wake.bench
func BenchmarkWake(b *testing.B) {
	const lists = 1000
	ctx := context.Background()
	for _, state := range []struct {
		name  string
		after time.Duration
		round bool // wait, untimed, for every list to hibernate after each round
	}{
		{"awake", -1, false},
		{"awake-rounds", -1, true},
		{"hibernating", 20 * time.Millisecond, true},
		{"churning", time.Nanosecond, false},
	} {
		b.Run("op=add/state="+state.name, func(b *testing.B) {
			sys, err := todo.OpenInMemory(&todo.Options{Durability: todo.Async, HibernateAfter: state.after, IdleTimeout: -1, MaxLoaded: -1})
			if err != nil {
				b.Fatal(err)
			}
			defer sys.Close()
			servers := make([]*todo.Server, lists)
			for i, n := range listNames(lists) {
				servers[i] = sys.ServerProcess(n)
				if _, err := servers[i].AddEntry(ctx, todo.Entry{Date: benchDates[0], Title: "first"}); err != nil {
					b.Fatal(err)
				}
			}
			asleep := func() {
				if !state.round {
					return
				}
				b.StopTimer()
				time.Sleep(25 * time.Millisecond) // as long as the lists take to fall asleep
				for sys.Stats().ServersHibernating < lists && state.after > 0 {
					time.Sleep(time.Millisecond)
				}
				b.StartTimer()
			}
			before := sys.Stats()
			b.ReportAllocs()
			b.ResetTimer()
			asleep()
			for i := range b.N {
				if i > 0 && i%lists == 0 {
					asleep()
				}
				if _, err := servers[i%lists].AddEntry(ctx, todo.Entry{Date: benchDates[i%len(benchDates)], Title: "Dentist"}); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
			b.ReportMetric(float64(sys.Stats().Wakes-before.Wakes)/float64(b.N), "wakes/op")
		})
	}
}

// BenchmarkWatch measures what watches cost the writer of a hot list:
// adds per second to one list (in memory, Async, 64 clients) while
// watchers=N watch it, each on a goroutine of its own that takes every
// change (state=live; one that falls behind watches again from where it
// stood, as a client would, counted in behind/op, and from now when that
// is too old, in gone/op), or that took the first and stalls
// (state=stalled). Issue 17's target: 100 watchers cost at most
// 10% of the adds' throughput. Compare with:
//
//	go test -run '^$' -bench 'BenchmarkWatch$' -count=10 . > watch.bench
//	benchstat -col /watchers -filter '.unit:ops/s' watch.bench
func BenchmarkWatch(b *testing.B) {
	ctx := context.Background()
	for _, state := range []string{"live", "stalled"} {
		for _, watchers := range []int{0, 1, 100, 1000} {
			if state == "stalled" && watchers == 0 {
				continue // the same as live's
			}
			b.Run(fmt.Sprintf("op=add/state=%s/watchers=%d", state, watchers), func(b *testing.B) {
				// One list takes every add of a round: at a million adds it
				// is past the default MaxFileSize (16 MiB), and each add
				// failed "file too large"; the largest allowed keeps it.
				sys, err := todo.OpenInMemory(&todo.Options{Durability: todo.Async, MaxListWatches: 1000, MaxFileSize: 1 << 31})
				if err != nil {
					b.Fatal(err)
				}
				s := sys.ServerProcess("hot")
				wctx, stop := context.WithCancel(ctx)
				var (
					wg     sync.WaitGroup
					behind atomic.Int64 // watches ended behind
					gone   atomic.Int64 // watches again from where they stood, refused as too old
					ready  sync.WaitGroup
					stall  = make(chan struct{})
				)
				for range watchers {
					ready.Add(1)
					wg.Go(func() {
						from := int64(0)
						for first := true; wctx.Err() == nil; {
							seq, err := s.Watch(wctx, from)
							if errors.Is(err, todo.ErrTooOld) {
								gone.Add(1) // a client would read the list again
								from = 0
								continue
							}
							if err != nil {
								if wctx.Err() == nil {
									b.Error(err)
								}
								return
							}
							if first {
								ready.Done()
								first = false
							}
							for ev, err := range seq {
								if err != nil {
									var be *todo.BehindError
									if errors.As(err, &be) {
										behind.Add(1)
										from = be.Revision
									}
									break
								}
								from = ev.Revision
								if state == "stalled" {
									select {
									case <-stall:
									case <-wctx.Done():
									}
								}
							}
						}
					})
				}
				ready.Wait()
				b.Cleanup(func() {
					stop()
					close(stall)
					wg.Wait()
					sys.Close()
				})
				runClients(b, 64, func(c, i int) {
					if _, err := s.AddEntry(ctx, todo.Entry{Date: benchDates[i%len(benchDates)], Title: "Dentist"}); err != nil {
						b.Error(err)
					}
				})
				b.ReportMetric(float64(behind.Load())/float64(b.N), "behind/op")
				b.ReportMetric(float64(gone.Load())/float64(b.N), "gone/op")
			})
		}
	}
}

// BenchmarkWatchLatency measures the time from an add's acknowledgement
// to its event on a watcher of the list: one client adds, one at a time,
// and the watcher notes when each event comes (0 when it came before the
// add was answered: the event is published as the change is stored, its
// answer after). It reports the median and the 99th percentile, in
// nanoseconds, in memory (Async) and on a data directory (Fsync).
func BenchmarkWatchLatency(b *testing.B) {
	ctx := context.Background()
	for _, c := range []struct {
		name string
		open func(b *testing.B) *todo.System
	}{
		{"store=memory/durability=async", openMemory},
		{"store=dir/durability=fsync", func(b *testing.B) *todo.System {
			sys, err := todo.Open(b.TempDir(), nil)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { sys.Close() })
			return sys
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			sys := c.open(b)
			s := sys.ServerProcess("bob")
			e := todo.Entry{Date: benchDates[0], Title: "Dentist"}
			if _, err := s.AddEntry(ctx, e); err != nil { // loaded, and at a known revision
				b.Fatal(err)
			}
			wctx, stop := context.WithCancel(ctx)
			defer stop()
			seq, err := s.Watch(wctx, 0)
			if err != nil {
				b.Fatal(err)
			}
			arrived := make(chan time.Time, 1)
			done := make(chan struct{})
			go func() {
				defer close(done)
				for _, err := range seq {
					if err != nil {
						return
					}
					arrived <- time.Now()
				}
			}()
			latencies := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				if _, err := s.AddEntry(ctx, e); err != nil {
					b.Fatal(err)
				}
				acked := time.Now()
				latencies = append(latencies, max(0, (<-arrived).Sub(acked)))
			}
			b.StopTimer()
			stop()
			<-done
			slices.Sort(latencies)
			b.ReportMetric(float64(latencies[len(latencies)/2]), "p50-ns")
			b.ReportMetric(float64(latencies[len(latencies)*99/100]), "p99-ns")
		})
	}
}
