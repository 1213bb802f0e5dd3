package cluster

import (
	"sync/atomic"
	"time"

	"github.com/gotodo/todo"
)

// nodeCounters are the live form of Stats.
type nodeCounters struct {
	forwarded, served, late, claims, handoffs, lost, retries atomic.Int64
}

// Stats are counters of a node's life since Start.
type Stats struct {
	System           todo.Stats // the local System's
	OwnedLists       int64      // lists this node serves now
	Forwarded        int64      // requests this node forwarded to the owner of their list
	ForwardedServed  int64      // requests other nodes forwarded here
	ForwardedLate    int64      // of those, refused because they came after their deadline
	Claims           int64      // lists this node claimed (no owner, or a dead one)
	Handoffs         int64      // lists this node handed to another (a node joined, or this one left)
	FenceFailures    int64      // writes refused because another node wrote the list: this node lost it
	ListsLost        int64      // lists unloaded because the fence failed or the lease lapsed
	SpuriousRefusals int64      // fence refusals of a current sequence (after a leader change), retried
	Markers          int64      // writes settled by a fence marker: no quorum answered in time
	Snapshots        int64      // snapshots written (compactions of a list's log)
	Batches          int64      // atomic batches stored: commits of several lists in one write
	BatchSplits      int64      // batches split in two because the stream refused a write of them (a stale fence, a limit)
	Retries          int64      // calls sent again after a retryable refusal
}

// Stats returns the node's counters; System is zero before the node is
// ready.
func (n *Node) Stats() Stats {
	s := Stats{
		OwnedLists:      int64(n.held.count()),
		Forwarded:       n.stats.forwarded.Load(),
		ForwardedServed: n.stats.served.Load(),
		ForwardedLate:   n.stats.late.Load(),
		Claims:          n.stats.claims.Load(),
		Handoffs:        n.stats.handoffs.Load(),
		ListsLost:       n.stats.lost.Load(),
		Retries:         n.stats.retries.Load(),
	}
	if n.isReady() {
		s.System = n.sys.Stats()
		s.FenceFailures = n.store.fenceFailures.Load()
		s.SpuriousRefusals = n.store.spuriousRefusals.Load()
		s.Markers = n.store.markers.Load()
		s.Snapshots = n.store.snapshots.Load()
		s.Batches = n.store.batchesStored.Load()
		s.BatchSplits = n.store.batchSplits.Load()
	}
	return s
}

// Health is a node's view of the cluster, for /healthz.
type Health struct {
	Node     string   `json:"node"`
	Epoch    uint64   `json:"epoch"`     // 0 while the node holds no lease
	Ready    bool     `json:"ready"`     // JetStream answered and the node has an epoch
	CanWrite bool     `json:"can_write"` // ready, and the lease is held: the node serves its lists
	Reason   string   `json:"reason,omitempty"`
	Nodes    []string `json:"nodes"` // the live members, sorted
	Routes   int      `json:"routes"`
}

// Health returns the node's view of the cluster and whether it can write.
func (n *Node) Health() Health {
	now := time.Now()
	h := Health{Node: n.opts.Name, Ready: n.isReady()}
	h.Nodes, _ = n.view.live(now)
	if h.Nodes == nil {
		h.Nodes = []string{}
	}
	if n.srv != nil {
		h.Routes = n.srv.NumRoutes()
	}
	h.Epoch = n.lease.valid(now)
	switch {
	case n.fatal.Load() != nil:
		h.Reason = (*n.fatal.Load()).Error()
	case n.isClosed() || n.leaving.Load():
		h.Reason = "leaving"
	case !h.Ready:
		h.Reason = "waiting for a JetStream quorum: start or join more nodes"
	case h.Epoch == 0:
		h.Reason = "lease lapsed: cannot reach a quorum"
	default:
		h.CanWrite = true
	}
	return h
}
