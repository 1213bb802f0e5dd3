package cluster_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gotodo/todo"
	"github.com/gotodo/todo/cluster"
)

// A node persists the peers it has learned and routes to all of them when
// it restarts, so a dead seed does not strand it: n3 joins through n1
// alone, learns n2, and restarts, with n1 down, given only n1; it rejoins
// through n2, and the two serve the lists with their data intact.
func TestNode_RestartWithDeadSeed(t *testing.T) {
	dir := t.TempDir()
	n1o := nodeOptions(dir, "n1")
	n1, err := cluster.Start(context.Background(), n1o)
	if err != nil {
		t.Fatal(err)
	}
	defer n1.Close()
	seed := n1.ClusterAddr()
	n2, err := cluster.Start(context.Background(), nodeOptions(dir, "n2", seed))
	if err != nil {
		t.Fatal(err)
	}
	defer n2.Close()
	n3o := nodeOptions(dir, "n3", seed)
	n3o.ClusterAddr = freeAddr(t)
	n3, err := cluster.Start(context.Background(), n3o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, n := range []*cluster.Node{n1, n2, n3} {
		if err := n.Ready(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := n3.AddEntry(ctx, "seed", todo.Entry{Date: day, Title: "before"}); err != nil {
		t.Fatal(err)
	}
	// Stopped before n3 votes in every group, n1 would take n2's quorum
	// with it (see waitReplicated): what is tested is the seed, not that.
	if err := waitReplicated([]*cluster.Node{n1, n2, n3}, 3, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	// n3 learns n2's address from n2's liveness record.
	peersFile := filepath.Join(n3o.Dir, "cluster-peers")
	for {
		data, _ := os.ReadFile(peersFile)
		if strings.Contains(string(data), n2.ClusterAddr()) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("n3 never wrote n2's address %s to %s: %q", n2.ClusterAddr(), peersFile, data)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := n3.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n1.Close(); err != nil {
		t.Fatal(err)
	}
	// n2 is alone: no quorum until n3 is back, given only the dead seed.
	// The rejoin has a budget of its own: it waits out an election of each
	// group, and the first part's budget may be mostly spent.
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n3, err = cluster.Start(context.Background(), n3o)
	if err != nil {
		t.Fatal(err)
	}
	defer n3.Close()
	if err := n3.Ready(ctx); err != nil {
		t.Fatalf("n3 restarted with only a dead seed did not rejoin: %v", err)
	}
	waitCanWrite(t, []*cluster.Node{n2, n3})
	if _, err := n3.AddEntry(ctx, "seed", todo.Entry{Date: day, Title: "after"}); err != nil {
		t.Fatal(err)
	}
	all, err := n2.AllEntries(ctx, "seed")
	if err != nil || len(all) != 2 || all[0].Title != "before" || all[1].Title != "after" {
		t.Fatalf("after the restart: %v, %v", all, err)
	}
}

// freeAddr returns a 127.0.0.1 address that was free a moment ago, so
// that a restarted node listens where its peers learned it.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
