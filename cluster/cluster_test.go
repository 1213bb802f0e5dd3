package cluster_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/gotodo/todo"
	"github.com/gotodo/todo/cluster"
	"go.uber.org/goleak"
)

// The in-process cluster shared by the tests of this package: three nodes
// on 127.0.0.1 with OS-chosen ports, started on first use, and started
// afresh when a test that already ran on it runs again (go test -count=N):
// the tests write lists of fixed names and check what they hold.
var shared struct {
	mu    sync.Mutex // guards all below
	dir   string
	nodes []*cluster.Node
	err   error
	ran   map[string]bool // the tests that ran on these nodes
	// joined says that a test added a node to these, which stays in
	// JetStream's meta group once gone (only a peer-remove takes it
	// out, docs/cluster.md) and counts towards its quorum: with three
	// such nodes gone, the three left were no quorum, and every test
	// after failed with "JetStream system temporarily unavailable".
	joined bool
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, n := range shared.nodes {
		n.Close()
	}
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	// Close joins every goroutine of a node, its embedded server's too.
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines left after every node closed:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// testLogger shows the nodes' warnings, or everything with TODO_TEST_DEBUG set.
var testLogger = func() *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("TODO_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}()

// nodeOptions are the options of a test node, with the secret of the
// cluster of the nodes in dir, as users run them (security_test.go).
func nodeOptions(dir, name string, peers ...string) cluster.Options {
	return cluster.Options{
		Name:        name,
		Dir:         dir + "/" + name,
		ClusterAddr: "127.0.0.1:0",
		Peers:       peers,
		SecretFile:  secretFile(dir),
		System:      &todo.Options{IdleTimeout: -1},
		Logger:      testLogger,
	}
}

// threeNodes returns the shared cluster, starting it on first use (and
// when the calling test ran on it before) and waiting up to 15s for every
// node to be ready. Benchmarks, which run their function several times
// and check no state, keep the cluster they find.
func threeNodes(t testing.TB) []*cluster.Node {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	_, isTest := t.(*testing.T)
	if isTest && (shared.ran[t.Name()] || shared.joined) {
		closeAll(shared.nodes)
		os.RemoveAll(shared.dir)
		shared.dir, shared.nodes, shared.err, shared.ran, shared.joined = "", nil, nil, nil, false
	}
	if shared.dir == "" && shared.err == nil {
		shared.ran = make(map[string]bool)
		shared.dir, shared.err = os.MkdirTemp("", "todo-cluster-")
		if shared.err == nil {
			shared.nodes, shared.err = startNodes(shared.dir, 3, nil)
		}
	}
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	if isTest {
		name, ran := t.Name(), shared.ran
		t.Cleanup(func() {
			shared.mu.Lock()
			ran[name] = true
			shared.mu.Unlock()
		})
	}
	return shared.nodes
}

// joinShared marks the shared cluster as one a node of this test joined:
// the next test that asks for it gets it started afresh (see
// shared.joined).
func joinShared(t testing.TB) {
	t.Cleanup(func() {
		shared.mu.Lock()
		shared.joined = true
		shared.mu.Unlock()
	})
}

// startNodes starts count nodes named n1.., each joining the ones before
// (and join, the addresses of a running cluster), and waits for them.
func startNodes(dir string, count int, join []string, opts ...func(*cluster.Options)) ([]*cluster.Node, error) {
	return startNodesWith(cluster.StartForTest, dir, count, join, opts...)
}

// startNodesWith is startNodes with start in place of cluster.Start: a
// broken twin's.
func startNodesWith(start func(context.Context, cluster.Options) (*cluster.Node, error), dir string, count int, join []string, opts ...func(*cluster.Options)) ([]*cluster.Node, error) {
	var nodes []*cluster.Node
	peers := append([]string(nil), join...)
	for i := range count {
		o := nodeOptions(dir, fmt.Sprintf("n%d", i+1), peers...)
		for _, f := range opts {
			f(&o)
		}
		n, err := start(context.Background(), o)
		if err != nil {
			closeAll(nodes)
			return nil, err
		}
		nodes = append(nodes, n)
		peers = append(peers, n.ClusterAddr())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for _, n := range nodes {
		if err := n.Ready(ctx); err != nil {
			closeAll(nodes)
			return nil, fmt.Errorf("node %s: %w", n.Name(), err)
		}
	}
	if err := waitReplicated(nodes, len(nodes)+len(join), 30*time.Second); err != nil {
		closeAll(nodes)
		return nil, err
	}
	return nodes, nil
}

// waitReplicated waits until the lists' stream and the buckets are stored
// on as many of the cluster's servers as they can be, each replica
// current and no change of their peers under way, as every node's server
// sees them. JetStream reports a peer being added as a current replica as
// soon as the leader has stored the change; until the other first member
// has stored it too, that member counts only its old peers' votes, so a
// test that stopped the leader then found two of three nodes without a
// quorum for as long as it waited. A node is ready before all that: it
// scales the assets up a second or so after the servers join, and a test that stopped a node meanwhile
// would find the stream without a quorum (R2 on the two nodes that
// started first), waiting for the node to come back rather than testing
// what it means to.
func waitReplicated(nodes []*cluster.Node, servers int, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ok, how := nodes[0].Replicated(ctx, servers)
		cancel()
		for _, n := range nodes {
			if !ok {
				break
			}
			if changing, name := n.Changing(); changing {
				ok, how = false, fmt.Sprintf("%s: %s sees its peers changing", name, n.Name())
			}
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the cluster's assets are not replicated after %v: %s", within, how)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func closeAll(nodes []*cluster.Node) {
	for _, n := range nodes {
		n.Close()
	}
}
