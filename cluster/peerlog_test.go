package cluster

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// records is an slog handler that keeps the messages it is given.
type records struct {
	mu   sync.Mutex // guards msgs
	msgs []string
}

func (r *records) Enabled(context.Context, slog.Level) bool { return true }
func (r *records) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if rec.Level >= slog.LevelInfo {
		r.msgs = append(r.msgs, rec.Level.String()+" "+rec.Message)
	}
	return nil
}
func (r *records) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *records) WithGroup(string) slog.Handler      { return r }

func (r *records) count(word string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range r.msgs {
		if strings.Contains(m, word) {
			n++
		}
	}
	return n
}

func dialError(addr string) error {
	a, _ := net.ResolveTCPAddr("tcp", addr)
	return &net.OpError{Op: "dial", Net: "tcp", Addr: a, Err: errors.New("connect: connection refused")}
}

// A peer down for an hour, tried 4 times a second by the server, is one
// line when it goes, one summary a minute, and one line when it is back,
// at INFO and WARN: never the server's ERROR for every attempt.
func TestRouteLog_OneLineAPeer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var got records
		logger := &natsLogger{log: slog.New(&got), routes: newRouteLog(slog.New(&got), time.Minute), fatal: func(error) {}}
		for range 4 * 3600 {
			logger.Errorf(routeConnectError, 1, dialError("127.0.0.1:6223"))
			time.Sleep(250 * time.Millisecond)
		}
		logger.routes.tick(time.Now(), nil, func(peer string) bool { return peer == "127.0.0.1:6223" })
		logger.Errorf("some other error: %v", "x")
		if n := got.count("cannot route to a peer"); n != 1 {
			t.Errorf("%d lines say the peer went, want 1: %q", n, got.msgs[:min(5, len(got.msgs))])
		}
		if n := got.count("still unreachable"); n != 59 && n != 60 {
			t.Errorf("%d summaries in an hour, want one a minute", n)
		}
		if n := got.count("reachable again"); n != 1 {
			t.Errorf("%d lines say the peer came back, want 1", n)
		}
		if n := got.count("ERROR nats: Error trying to connect"); n != 0 {
			t.Errorf("%d of the server's route errors logged at ERROR", n)
		}
		if n := got.count("ERROR nats: some other error"); n != 1 {
			t.Errorf("the server's other errors are not logged as they are: %q", got.msgs[len(got.msgs)-3:])
		}
	})
}

// Each peer is followed on its own, by its address until the node knows
// its name; one whose last route closes (it was routed to by its own
// connection, and none of this server's attempts were failing) is gone at
// the next tick, and back when the server routes to it again.
func TestRouteLog_PeersApart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var got records
		logger := &natsLogger{log: slog.New(&got), routes: newRouteLog(slog.New(&got), time.Minute), fatal: func(error) {}}
		r := logger.routes
		r.failed(dialError("127.0.0.1:6223"))
		r.failed(dialError("127.0.0.1:6224"))
		r.failed(dialError("127.0.0.1:6223"))
		if n := got.count("cannot route to a peer"); n != 2 {
			t.Fatalf("%d lines for two peers gone, want 2", n)
		}
		names := map[string]string{"127.0.0.1:6223": "n2", "127.0.0.1:6224": "n3"}
		r.tick(time.Now(), names, func(peer string) bool { return peer == "n3" })
		if n := got.count("reachable again"); n != 1 || len(r.unreachable()) != 1 || r.unreachable()[0] != "n2" {
			t.Fatalf("after n3 came back: %d lines, unreachable %v", n, r.unreachable())
		}
		time.Sleep(time.Minute)
		r.tick(time.Now(), names, func(string) bool { return false })
		if n := got.count("still unreachable"); n != 1 {
			t.Fatalf("%d summaries of n2 after a minute, want 1", n)
		}
		// n3's route, the one it made to this server, closes.
		logger.Noticef("%s - rid:%d - Router connection closed: %s - %s", "127.0.0.1:40123", 9, "Client Closed", "Remote: n3")
		r.tick(time.Now(), names, func(string) bool { return false })
		if n := got.count("cannot route to a peer"); n != 3 {
			t.Fatalf("%d lines that a peer went after n3's route closed, want 3", n)
		}
		r.tick(time.Now(), names, func(peer string) bool { return peer == "n3" })
		if n := got.count("reachable again"); n != 2 {
			t.Fatalf("%d lines that a peer came back, want 2", n)
		}
	})
}

func TestRouteClosedBy(t *testing.T) {
	for msg, want := range map[string]string{
		"127.0.0.1:40123 - rid:19 - Router connection closed: Client Closed - Remote: q3": "q3",
		"127.0.0.1:6222 - rid:8 - Router connection closed: Duplicate Route - Remote: n2": "n2",
		"127.0.0.1:6222 - rid:8 - Router connection closed: Stale Connection":             "",
		"127.0.0.1:6222 - rid:8 - Route connection created":                               "",
	} {
		if got, _ := routeClosedBy(msg); got != want {
			t.Errorf("routeClosedBy(%q) = %q, want %q", msg, got, want)
		}
	}
}
