package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gotodo/todo"
	"github.com/gotodo/todo/cluster"
)

// A node whose calls to the owners bucket wait for a quorum (the bucket
// elects a leader, or has none) says it cannot write: every list it does
// not hold yet is routed through the bucket, and a node whose store went
// through while its owner records stalled answered 200 while writes sent
// to it timed out. Once the bucket answers, the write goes through and the
// node says it can write again.
func TestNode_HealthSeesOwnersStall(t *testing.T) {
	if err := ownersStallSeen(t, cluster.StartHoldingOwners); err != nil {
		t.Fatal(err)
	}
}

// The broken twin: a node that does not count its calls to the owners
// bucket says it can write all along, and the test above catches it.
func TestNode_HealthSeesOwnersStall_BrokenTwin(t *testing.T) {
	err := ownersStallSeen(t, cluster.StartHoldingOwnersUnwatched)
	if err == nil {
		t.Fatal("the test did not catch a node that does not count its calls to the owners bucket")
	}
	t.Logf("caught: %v", err)
}

// ownersStallSeen starts three nodes, the first with start; holds that
// node's calls to the owners bucket while an add for a new list goes
// through it; and reports whether its Health said, within four times the
// time after which a stall counts, that it could not write for that
// reason, then, released, that it could again.
func ownersStallSeen(t *testing.T, start func(context.Context, cluster.Options, func()) (*cluster.Node, error)) error {
	var (
		armed    atomic.Bool
		heldOnce sync.Once
		held     = make(chan struct{})
		release  = make(chan struct{})
	)
	hold := func() {
		if armed.Load() {
			heldOnce.Do(func() { close(held) })
			<-release
		}
	}
	var releaseOnce sync.Once
	free := func() { releaseOnce.Do(func() { close(release) }) }
	nodes, err := startNodesWith(func(ctx context.Context, o cluster.Options) (*cluster.Node, error) {
		if o.Name == "n1" {
			return start(ctx, o, hold)
		}
		return cluster.StartForTest(ctx, o)
	}, t.TempDir(), 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll(nodes)
	defer free() // before closeAll: a node closing hands its lists off through the bucket
	n := nodes[0]
	if h := n.Health(); !h.CanWrite {
		t.Fatalf("cannot write before the test: %+v", h)
	}
	const stallAfter = time.Second // AckTimeout/2, by default
	armed.Store(true)
	added := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		_, err := n.AddEntry(ctx, unique("owners-stall"), todo.Entry{Date: day, Title: "held"})
		added <- err
	}()
	select {
	case <-held:
	case err := <-added:
		t.Fatalf("the add went through without a call to the owners bucket: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("no call to the owners bucket within 30s of the add")
	}
	var seen cluster.Health
	for deadline := time.Now().Add(4 * stallAfter); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if h := n.Health(); !h.CanWrite && strings.Contains(h.Reason, "owners") {
			seen = h
			break
		}
	}
	free()
	if err := <-added; err != nil {
		t.Fatalf("the add, released: %v", err)
	}
	if seen.Reason == "" {
		return fmt.Errorf("Health said the node could write while a call to the owners bucket waited %v", 4*stallAfter)
	}
	t.Logf("while held: %d %s", seen.Epoch, seen.Reason)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		h := n.Health()
		if h.CanWrite {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("Health did not say the node could write again within 10s of the release: " + h.Reason)
		}
	}
}
