package cluster_test

import (
	"context"
	"testing"
	"time"

	"github.com/gotodo/todo"
	"github.com/gotodo/todo/cluster"
	"github.com/gotodo/todo/cluster/clustertest"
)

// A load that meets the lists' stream without a leader waits for one,
// within its ctx, rather than failing at once: so does a node that has
// just rejoined (TestNode_RestartWithDeadSeed failed under load with
// "load list "seed": nats: API error: code=503 err_code=10008 JetStream
// system temporarily unavailable"). Here two of three nodes close, the
// third loads a list with no quorum left, and a closed node comes back:
// the load answers with the list once the stream has elected a leader.
// Before loads were tried again, it failed with ErrUnavailable at once.
func TestStore_LoadWaitsForTheStreamsLeader(t *testing.T) {
	dir := t.TempDir()
	nodes, err := startNodes(dir, 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	n1 := nodes[0]
	defer n1.Close()
	lists := storeLists(t, n1, "leaderless", 1)
	h := clustertest.NewHistory()
	for _, ch := range commitAdds(h, n1, map[string]todo.ListState{}, lists, func(l string) string { return "before-" + l }) {
		if ch.Err != nil {
			t.Fatal(ch.Err)
		}
	}
	closeAll(nodes[1:])

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	type result struct {
		st  todo.ListState
		err error
	}
	loaded := make(chan result, 1)
	go func() {
		st, err := n1.StoreLoad(ctx, lists[0])
		loaded <- result{st, err}
	}()
	n2, err := cluster.StartForTest(ctx, nodeOptions(dir, "n2", n1.ClusterAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer n2.Close()
	r := <-loaded
	if r.err != nil {
		t.Fatalf("the load while the stream had no leader: %v", r.err)
	}
	checkHistory(t, h, map[string][]todo.Entry{lists[0]: r.st.Entries})
}
