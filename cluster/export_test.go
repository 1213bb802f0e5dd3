package cluster

import (
	"context"
	"sync/atomic"
)

// Test hooks.

// StartForTest starts a node that a test may freeze (PauseLiveness).
func StartForTest(ctx context.Context, o Options) (*Node, error) {
	return start(ctx, o, seams{frozen: new(atomic.Bool)})
}

// StartMutable starts a node whose renewals a test may make fail
// (MuteRenewals), as they fail while the nodes bucket elects a leader.
func StartMutable(ctx context.Context, o Options) (*Node, error) {
	return start(ctx, o, seams{frozen: new(atomic.Bool), muted: new(atomic.Bool)})
}

// MuteRenewals makes the node's renewals fail, or work again.
func (n *Node) MuteRenewals(on bool) { n.seams.muted.Store(on) }

// StartWithoutFence starts a node whose store publishes without the
// fence: the broken twin of the stale-owner test.
func StartWithoutFence(ctx context.Context, o Options) (*Node, error) {
	return start(ctx, o, seams{noFence: true, frozen: new(atomic.Bool)})
}

// StartWithQueue starts a node that lets at most queue forwarded requests
// wait, and whose dispatch of each request first calls hold (a test fills
// its queue meanwhile).
func StartWithQueue(ctx context.Context, o Options, queue int, hold func()) (*Node, error) {
	return start(ctx, o, seams{queue: queue, beforeDispatch: hold, frozen: new(atomic.Bool)})
}

// WaitingRequests returns how many forwarded requests wait for the node's
// dispatch.
func (n *Node) WaitingRequests() int {
	waiting, _, _ := n.rpc.Pending()
	return waiting
}

// PauseLiveness stops the node's renewals while it goes on serving as if
// its lease held: a node that does not know it has been given up on (a
// long GC pause, a frozen VM). ResumeLiveness ends that: the node learns
// what became of its lease at its next renewal. The node must have been
// started by StartForTest or StartWithoutFence.
func (n *Node) PauseLiveness()  { n.seams.frozen.Store(true) }
func (n *Node) ResumeLiveness() { n.seams.frozen.Store(false) }

// Owner returns the node the owners bucket names for list, "" for none.
func (n *Node) Owner(list string) string {
	e, err := n.owners.Get(t0ctx(), encodeName(list))
	if err != nil {
		return ""
	}
	r, _ := decodeOwner(e.Value())
	return r.Node
}

// Holds reports whether the node serves list itself now.
func (n *Node) Holds(list string) bool {
	for _, l := range n.held.all() {
		if l == list {
			return true
		}
	}
	return false
}

// Preferred is the rendezvous choice among nodes.
func Preferred(list string, nodes []string) string { return preferred(list, nodes) }

// EncodeName and DecodeName expose the name encoding.
var (
	EncodeName = encodeName
	DecodeName = decodeName
)

func t0ctx() context.Context { return context.Background() }

// The codec, for its tests.
var (
	EncodeSnapshot = encodeSnapshot
	DecodeSnapshot = decodeSnapshot
	EncodeDelta    = encodeDelta
	DecodeDelta    = decodeDelta
	Replay         = replay
)

// DecodeRPC decodes b as a forwarded request and as an answer, for the
// codec's tests.
func DecodeRPC(b []byte) (error, error) {
	_, errReq := decodeRequest(b)
	_, errRep := decodeReply(b)
	return errReq, errRep
}

// Publish publishes data on a list's subject of the lists' stream, with
// no fence: for the benchmark of raw write costs.
func (n *Node) Publish(ctx context.Context, list string, data []byte) error {
	_, err := n.js.Publish(ctx, listSubject(list), data)
	return err
}
