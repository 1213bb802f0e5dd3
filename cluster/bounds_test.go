package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gotodo/todo"
	"github.com/gotodo/todo/cluster"
	"go.uber.org/goleak"
)

// cancelOn is an slog handler that cancels a ctx on the first record whose
// message starts with prefix.
type cancelOn struct {
	prefix string
	cancel context.CancelFunc
}

func (c cancelOn) Enabled(context.Context, slog.Level) bool { return true }
func (c cancelOn) Handle(_ context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, c.prefix) {
		c.cancel()
	}
	return nil
}
func (c cancelOn) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c cancelOn) WithGroup(string) slog.Handler      { return c }

// Start honours its ctx: one that ends while the embedded server starts
// (the server's first log line ends it) makes Start return ctx's error at
// once, and leaves no server (its ports are free again) and no goroutine;
// one already ended starts nothing.
func TestStart_CtxEnds(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	o := nodeOptions(t.TempDir(), "cut")
	o.ClusterAddr, o.ClientAddr = freeAddr(t), freeAddr(t)
	for _, c := range []struct {
		name   string
		prefix string // the log line that ends ctx; "" for a ctx ended before Start
	}{
		{"ended while the server starts", "nats: Starting nats-server"},
		{"ended while the server listens", "nats: Listening for client connections"},
		{"ended before", ""},
	} {
		ctx, cancel := context.WithCancel(context.Background())
		if c.prefix == "" {
			cancel()
		}
		o.Logger = slog.New(cancelOn{c.prefix, cancel})
		start := time.Now()
		n, err := cluster.Start(ctx, o)
		cancel()
		if err == nil {
			n.Close()
			t.Fatalf("%s: Start returned a node", c.name)
		}
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("%s: %v, want context.Canceled", c.name, err)
		}
		t.Logf("%s: %v after %v", c.name, err, time.Since(start).Round(time.Millisecond))
		for _, addr := range []string{o.ClusterAddr, o.ClientAddr} {
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				t.Fatalf("%s: %s is still taken: %v", c.name, addr, err)
			}
			ln.Close()
		}
	}
}

// The forwarded requests waiting for a node are bounded: past the bound,
// each is answered at once that the node is overloaded (a retryable
// ErrUnavailable), and the caller's node sends it again. Here the owner's
// dispatch is held while requests pile up behind it.
func TestNode_ForwardedQueueBounded(t *testing.T) {
	dir := t.TempDir()
	a, err := cluster.StartForTest(context.Background(), nodeOptions(dir, "qa"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	release := make(chan struct{})
	var releaseOnce sync.Once
	defer releaseOnce.Do(func() { close(release) })
	var holding sync.Once
	held := make(chan struct{})
	hold := func() {
		holding.Do(func() {
			close(held)
			<-release // the first request's dispatch waits; the rest pile up
		})
	}
	const queue = 2
	b, err := cluster.StartWithQueue(context.Background(), nodeOptions(dir, "qb", a.ClusterAddr()), queue, hold)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, n := range []*cluster.Node{a, b} {
		if err := n.Ready(ctx); err != nil {
			t.Fatal(err)
		}
	}
	nodes := []*cluster.Node{a, b}
	lists := make([]string, 8)
	for i := range lists {
		lists[i] = listFor(fmt.Sprint("queue-", i), b, nodes)
		// Claimed by b, which serves it, held by nothing yet.
		if _, err := b.AddEntry(ctx, lists[i], todo.Entry{Date: day, Title: "first"}); err != nil {
			t.Fatal(err)
		}
	}
	// Forwarded from a: the first holds b's dispatch, the others wait.
	var wg sync.WaitGroup
	errs := make([]error, len(lists))
	for i, l := range lists {
		wg.Go(func() {
			_, errs[i] = a.AddEntry(ctx, l, todo.Entry{Date: day, Title: "forwarded"})
		})
		if i == 0 {
			<-held
		}
	}
	for b.WaitingRequests() < len(lists)-1 {
		if ctx.Err() != nil {
			t.Fatalf("%d requests wait for b's dispatch, want %d", b.WaitingRequests(), len(lists)-1)
		}
		time.Sleep(10 * time.Millisecond)
	}
	releaseOnce.Do(func() { close(release) })
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("add to %s: %v", lists[i], err)
		}
	}
	st := b.Stats()
	// Of the 7 that waited, those dispatched while more than 2 waited
	// behind them (at least 4) were answered overloaded, and sent again.
	if st.Overloaded < int64(len(lists)-1-queue) {
		t.Errorf("b answered %d requests overloaded, want at least %d", st.Overloaded, len(lists)-1-queue)
	}
	if r := a.Stats().Retries; r < st.Overloaded {
		t.Errorf("a sent %d requests again, fewer than the %d refused", r, st.Overloaded)
	}
	for _, l := range lists {
		all, err := a.AllEntries(ctx, l)
		if err != nil || len(all) != 2 {
			t.Errorf("%s: %v, %v; want the first entry and the forwarded one, once", l, all, err)
		}
	}
	t.Logf("b: %d forwarded requests served, %d answered overloaded; a retried %d", st.ForwardedServed, st.Overloaded, a.Stats().Retries)
}
