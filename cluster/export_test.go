package cluster

import (
	"context"
	"time"
)

// Test hooks.

// StartWithoutFence starts a node whose store publishes without the
// fence: the broken twin of the stale-owner test.
func StartWithoutFence(ctx context.Context, o Options) (*Node, error) {
	return start(ctx, o, seams{noFence: true})
}

// PauseLiveness stops the node's renewals while its lease keeps counting
// as valid: a node that does not know it has been given up on (a long GC
// pause, a frozen VM). ResumeLiveness ends that.
func (n *Node) PauseLiveness() {
	n.lease.mu.Lock()
	n.lease.paused = true
	n.lease.mu.Unlock()
}

func (n *Node) ResumeLiveness() {
	n.lease.mu.Lock()
	n.lease.paused = false
	n.lease.until = time.Time{} // the epoch is over: a new one begins
	n.lease.mu.Unlock()
}

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
