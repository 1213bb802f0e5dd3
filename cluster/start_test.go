package cluster_test

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gotodo/todo"
	"github.com/gotodo/todo/cluster"
)

// A node alone has no JetStream quorum: it starts, says why it cannot
// serve, refuses calls with a retryable error, and closes at once.
func TestNode_AloneWaitsForPeers(t *testing.T) {
	n, err := cluster.Start(context.Background(), nodeOptions(t.TempDir(), "lone"))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	h := n.Health()
	if h.Ready || h.CanWrite || !strings.Contains(h.Reason, "quorum") {
		t.Fatalf("a lone node's health: %+v", h)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := n.AddEntry(ctx, "bob", todo.Entry{Date: day, Title: "x"}); !errors.Is(err, todo.ErrUnavailable) {
		t.Fatalf("add on a lone node: %v, want ErrUnavailable", err)
	}
	if err := n.Ready(ctx); !errors.Is(err, cluster.ErrNotReady) {
		t.Fatalf("Ready on a lone node: %v", err)
	}
	start := time.Now()
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Close of a lone node took %v", d)
	}
	if _, err := n.AddEntry(ctx, "bob", todo.Entry{Date: day, Title: "x"}); !errors.Is(err, todo.ErrClosed) {
		t.Fatalf("add after Close: %v, want ErrClosed", err)
	}
}

// The embedded server's fatal errors come back from Start: with the stock
// logger, its fatal path calls os.Exit and would end this test process.
// A port in use is found before the data directory is made.
func TestStart_ClusterPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	o := nodeOptions(t.TempDir(), "busy")
	o.ClusterAddr = ln.Addr().String()
	n, err := cluster.Start(context.Background(), o)
	if err == nil {
		n.Close()
		t.Fatal("Start on a cluster port in use succeeded")
	}
	t.Log(err)
	if _, err := os.Stat(o.Dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a start refused for a port in use left %s behind (stat: %v)", o.Dir, err)
	}
}

func TestStart_BadOptions(t *testing.T) {
	dir := t.TempDir()
	for _, o := range []cluster.Options{
		{Dir: dir},
		{Name: "a b", Dir: dir},
		{Name: "n", Dir: ""},
		{Name: "n", Dir: dir, ClusterAddr: "nohost"},
		{Name: "n", Dir: dir, Peers: []string{"127.0.0.1"}},
		{Name: "n", Dir: dir, Replicas: 7},
		{Name: "n", Dir: dir, LeaseTTL: time.Millisecond},
		{Name: "n", Dir: dir, System: &todo.Options{MaxFileSize: 1 << 30}},
	} {
		if n, err := cluster.Start(context.Background(), o); !errors.Is(err, todo.ErrInvalidOptions) {
			if n != nil {
				n.Close()
			}
			t.Errorf("%+v: %v, want ErrInvalidOptions", o, err)
		}
	}
}
