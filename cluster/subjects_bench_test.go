package cluster_test

import (
	"fmt"
	"net/url"
	"runtime"
	"testing"
	"time"

	"github.com/gotodo/todo/cluster"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// BenchmarkRPC_Subjects measures the choice behind forwarding: one
// subject per node (todo.rpc.<node>, the list named in the request, what
// the cluster does) against one subject per list (its escaped name in
// the subject, each owner subscribing to every list it owns), on three
// routed NATS servers on 127.0.0.1 (no JetStream: only the request
// routing is measured). The owner's client is on the first server, the
// caller's on the second; lists=N is how many lists the owner owns.
// Reported: the time to subscribe (sub-s: per-list subjects subscribe N
// times and every server learns each interest over its routes), the heap
// the subscriptions cost the three servers and the clients
// (sub-heap-MiB), and request/reply round trips (ns/op, one caller, on
// random lists).
//
//	go test -run '^$' -bench RPC_Subjects -benchtime=2000x -count=6 ./cluster > subjects.txt
//	benchstat -col /subject subjects.txt
func BenchmarkRPC_Subjects(b *testing.B) {
	for _, lists := range []int{1_000, 100_000} {
		for _, subject := range []string{"per-node", "per-list"} {
			b.Run(fmt.Sprintf("lists=%d/subject=%s", lists, subject), func(b *testing.B) {
				srvs := routedServers(b, 3)
				owner, err := nats.Connect(srvs[0].ClientURL())
				if err != nil {
					b.Fatal(err)
				}
				defer owner.Close()
				caller, err := nats.Connect(srvs[1].ClientURL())
				if err != nil {
					b.Fatal(err)
				}
				defer caller.Close()
				names := make([]string, lists)
				for i := range names {
					names[i] = "rpc." + cluster.EncodeName(fmt.Sprintf("list-%d", i))
				}
				echo := func(m *nats.Msg) { m.Respond(m.Data) }
				heap0 := heapInUse()
				start := time.Now()
				if subject == "per-node" {
					if _, err := owner.Subscribe("rpc.n1", echo); err != nil {
						b.Fatal(err)
					}
				} else {
					for _, n := range names {
						if _, err := owner.Subscribe(n, echo); err != nil {
							b.Fatal(err)
						}
					}
				}
				// Subscribed once the caller's server routes the last
				// subject to the owner.
				last := "rpc.n1"
				if subject == "per-list" {
					last = names[len(names)-1]
				}
				for {
					if _, err := caller.Request(last, []byte("x"), time.Second); err == nil {
						break
					} else if time.Since(start) > time.Minute {
						b.Fatalf("the subscriptions never reached the caller's server: %v", err)
					}
				}
				subscribed := time.Since(start)
				subHeap := heapInUse() - heap0
				payload := make([]byte, 64)
				b.ResetTimer()
				for i := range b.N {
					subj := "rpc.n1"
					if subject == "per-list" {
						subj = names[(i*7919)%lists]
					}
					if _, err := caller.Request(subj, payload, 5*time.Second); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				b.ReportMetric(subscribed.Seconds(), "sub-s")
				b.ReportMetric(float64(subHeap)/(1<<20), "sub-heap-MiB")
			})
		}
	}
}

// heapInUse is the live heap after a collection.
func heapInUse() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// routedServers starts count NATS servers on 127.0.0.1, each routed to
// the first, and waits until every one has its routes; they are shut down
// when b ends.
func routedServers(b *testing.B, count int) []*server.Server {
	b.Helper()
	var srvs []*server.Server
	for i := range count {
		o := &server.Options{
			ServerName: fmt.Sprint("s", i),
			Host:       "127.0.0.1",
			Port:       server.RANDOM_PORT,
			NoSigs:     true,
			NoLog:      true,
			Cluster:    server.ClusterOpts{Name: "bench", Host: "127.0.0.1", Port: server.RANDOM_PORT},
		}
		if i > 0 {
			o.Routes = []*url.URL{{Scheme: "nats-route", Host: srvs[0].ClusterAddr().String()}}
		}
		s, err := server.NewServer(o)
		if err != nil {
			b.Fatal(err)
		}
		go s.Start()
		if !s.ReadyForConnections(10 * time.Second) {
			b.Fatal("a NATS server did not start")
		}
		b.Cleanup(s.Shutdown)
		srvs = append(srvs, s)
	}
	for deadline := time.Now().Add(15 * time.Second); ; {
		ready := true
		for _, s := range srvs {
			if s.NumRoutes() < count-1 {
				ready = false
			}
		}
		if ready {
			return srvs
		}
		if time.Now().After(deadline) {
			b.Fatal("the NATS servers did not route to each other")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
