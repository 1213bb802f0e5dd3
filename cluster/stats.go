package cluster

import (
	"sync/atomic"

	"github.com/gotodo/todo"
)

// nodeCounters are the live form of Stats.
type nodeCounters struct {
	forwarded, served, late, overloaded, claims, handoffs, lost, retries, declared atomic.Int64
}

// Stats are counters of a node's life since Start.
type Stats struct {
	System           todo.Stats // the local System's
	OwnedLists       int64      // lists this node serves now
	Forwarded        int64      // requests this node forwarded to the owner of their list
	ForwardedServed  int64      // requests other nodes forwarded here
	ForwardedLate    int64      // of those, refused because they came after their deadline
	Overloaded       int64      // of those, answered at once that the node is overloaded (every worker busy, or too many waiting)
	Claims           int64      // lists this node claimed (no owner, or a dead one)
	Handoffs         int64      // lists this node handed to another (a node joined, or this one left)
	FenceFailures    int64      // writes refused because another node wrote the list: this node lost it
	ListsLost        int64      // lists unloaded because the fence failed, or this node was declared dead
	LeaseLapses      int64      // times this node's lease lapsed and was renewed: its lists waited, kept
	DeclaredDead     int64      // nodes this one declared dead (their leases had run out), to take their lists
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
		Overloaded:      n.stats.overloaded.Load(),
		Claims:          n.stats.claims.Load(),
		Handoffs:        n.stats.handoffs.Load(),
		ListsLost:       n.stats.lost.Load(),
		LeaseLapses:     int64(n.lease.lapseCount()),
		DeclaredDead:    n.stats.declared.Load(),
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
