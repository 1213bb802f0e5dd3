package cluster_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gotodo/todo"
)

// runClients runs op b.N times in all, spread over clients goroutines
// that take the next iteration from a shared counter, and reports ops/s
// (the helper of the root package's benchmarks).
func runClients(b *testing.B, clients int, op func(client, i int)) {
	b.Helper()
	b.ReportAllocs()
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for c := range clients {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= b.N {
					return
				}
				op(c, i)
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// BenchmarkNode_Request: a request served by the node that owns the list
// (path=local) against one forwarded to it by another node
// (path=forwarded), on the shared 3-node loopback cluster; one caller
// gives the latency (ns/op), 64 the throughput (ops/s).
func BenchmarkNode_Request(b *testing.B) {
	nodes := threeNodes(b)
	ctx := context.Background()
	owner, other := nodes[0], nodes[1]
	// 64 lists owned by the first node for the adds, and 64 of 10
	// entries for the reads, which the adds do not grow.
	lists := make(map[string][]string)
	for _, op := range []string{"add", "read"} {
		for i := range 64 {
			l := listFor(fmt.Sprintf("bench-%s-%d", op, i), owner, nodes)
			lists[op] = append(lists[op], l)
			for range 10 {
				if _, err := owner.AddEntry(ctx, l, todo.Entry{Date: day, Title: "first"}); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	for _, op := range []string{"add", "read"} {
		for _, path := range []string{"local", "forwarded"} {
			via := owner
			if path == "forwarded" {
				via = other
			}
			for _, clients := range []int{1, 64} {
				b.Run(fmt.Sprintf("op=%s/path=%s/clients=%d", op, path, clients), func(b *testing.B) {
					var buf [64][]todo.Entry
					runClients(b, clients, func(c, i int) {
						list := lists[op][c%64]
						var err error
						if op == "add" {
							_, err = via.AddEntry(ctx, list, todo.Entry{Date: day, Title: "Dentist"})
						} else {
							buf[c], err = via.AppendEntries(ctx, list, buf[c][:0], day)
						}
						if err != nil {
							b.Error(err)
						}
					})
				})
			}
		}
	}
}

// BenchmarkDurableAdds: adds acknowledged once stored by a quorum of 3
// replicas that each fsynced (store=cluster-r3, through all three nodes of
// the loopback cluster, each request routed to the list's owner) against
// the single-node data directory's Fsync store (store=file-fsync), 64
// callers over 1,000 lists, in the same run. The target is a ratio of at
// least 0.5.
func BenchmarkDurableAdds(b *testing.B) {
	const lists, clients = 1000, 64
	ctx := context.Background()
	names := make([]string, lists)
	for i := range names {
		names[i] = fmt.Sprint("durable-", i)
	}
	run := func(b *testing.B, add func(c, i int, list string) error) {
		parallel(64, lists, func(i int) { // every list exists and is loaded
			if err := add(i, i, names[i]); err != nil {
				b.Fatal(err)
			}
		})
		runClients(b, clients, func(c, i int) {
			if err := add(c, i, names[(i*7919+c)%lists]); err != nil {
				b.Error(err)
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "adds/s")
	}
	b.Run("store=cluster-r3", func(b *testing.B) {
		nodes := threeNodes(b)
		stats := func() (commits, changes int64) {
			for _, n := range nodes {
				st := n.Stats().System
				commits, changes = commits+st.Commits, changes+st.ChangesStored
			}
			return commits, changes
		}
		var commits0, changes0 int64
		run(b, func(c, i int, list string) error {
			if i == 0 && c == 0 {
				commits0, changes0 = stats()
			}
			_, err := nodes[c%len(nodes)].AddEntry(ctx, list, todo.Entry{Date: day, Title: "Dentist"})
			return err
		})
		if commits, changes := stats(); commits > commits0 {
			b.ReportMetric(float64(changes-changes0)/float64(commits-commits0), "changes/commit")
		}
	})
	b.Run("store=file-fsync", func(b *testing.B) {
		sys, err := todo.Open(b.TempDir(), &todo.Options{Durability: todo.Fsync})
		if err != nil {
			b.Fatal(err)
		}
		defer sys.Close()
		run(b, func(c, i int, list string) error {
			_, err := sys.AddEntry(ctx, list, todo.Entry{Date: day, Title: "Dentist"})
			return err
		})
	})
}

// BenchmarkStream_WriteSize: one replicated, fsynced write to the lists'
// stream, by its size: what a commit costs if it writes the whole list
// (a key-value design) for a list of that size, against a delta of a few
// dozen bytes (the log design).
func BenchmarkStream_WriteSize(b *testing.B) {
	nodes := threeNodes(b)
	ctx := context.Background()
	for _, size := range []int{64, 16 << 10, 256 << 10, 1 << 20, 4 << 20} {
		b.Run(fmt.Sprintf("bytes=%d", size), func(b *testing.B) {
			data := make([]byte, size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if err := nodes[0].Publish(ctx, "bench-write-size", data); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
		})
	}
}
