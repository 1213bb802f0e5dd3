package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gotodo/todo"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/synadia-io/orbit.go/jetstreamext"
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

// StartChoosingPorts starts a node whose cluster port, when its address
// asks for port 0, is chosen by choose.
func StartChoosingPorts(ctx context.Context, o Options, choose func(addr string) (string, error)) (*Node, error) {
	return start(ctx, o, seams{freeAddr: choose, frozen: new(atomic.Bool)})
}

// FreeAddr is the node's own choice of a free address.
func FreeAddr(addr string) (string, error) { return freeAddr(addr) }

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

// StartHoldingSends starts a node whose forwarded requests, once under
// way, each call hold with the node they go to before they are sent.
func StartHoldingSends(ctx context.Context, o Options, hold func(to string)) (*Node, error) {
	return start(ctx, o, seams{beforeSend: hold, frozen: new(atomic.Bool)})
}

// StartLeaving starts a node that calls announcing when, leaving, it
// begins to tell its peers so.
func StartLeaving(ctx context.Context, o Options, announcing func()) (*Node, error) {
	return start(ctx, o, seams{announcing: announcing, frozen: new(atomic.Bool)})
}

// StartWithoutLeaveNotice starts a node that leaves without telling its
// peers: the broken twin of a graceful leave.
func StartWithoutLeaveNotice(ctx context.Context, o Options) (*Node, error) {
	return start(ctx, o, seams{noLeaveNotice: true, frozen: new(atomic.Bool)})
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
// It looks in the list's shard only: BenchmarkDurableAdds asks it of
// every node for each of its 1,000 lists, and copying every held name
// for each question was a quarter of the bytes that benchmark allocated.
func (n *Node) Holds(list string) bool {
	s := n.held.shard(list)
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.m[list]
	return ok
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
	Replay         = replay
)

// Delta is what a delta holds, for the codec's tests.
type Delta struct {
	Ops    []todo.Op
	LastID int
	Rev    int64
	Events []todo.Event
}

// EncodeDelta and DecodeDelta expose the delta codec.
func EncodeDelta(d Delta) []byte {
	return encodeDelta(delta{ops: d.Ops, lastID: d.LastID, rev: d.Rev, events: d.Events})
}

func DecodeDelta(b []byte) (Delta, error) {
	d, err := decodeDelta(b)
	return Delta{Ops: d.ops, LastID: d.lastID, Rev: d.rev, Events: d.events}, err
}

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

// StartEarlierVersion starts a node as a version before atomic batches
// ran it: the lists' stream it creates takes none, it changes no existing
// one, and its store writes one list at a time.
func StartEarlierVersion(ctx context.Context, o Options) (*Node, error) {
	return start(ctx, o, seams{noBatches: true})
}

// StreamTakesBatches reports whether the lists' stream, as the cluster
// holds it now, takes atomic batches.
func (n *Node) StreamTakesBatches(ctx context.Context) (bool, error) {
	info, err := n.stream.Info(ctx)
	if err != nil {
		return false, err
	}
	return info.Config.AllowAtomicPublish, nil
}

// JetStream returns the node's JetStream client, for the benchmarks of
// the engine itself.
func (n *Node) JetStream() jetstream.JetStream { return n.js }

// StoreLoad and StoreCommit call the node's store directly, beside its
// System: for the tests of its batches, on lists no System serves.
func (n *Node) StoreLoad(ctx context.Context, list string) (todo.ListState, error) {
	return n.store.Load(ctx, list)
}

func (n *Node) StoreCommit(batch []todo.Change) { n.store.Commit(context.Background(), batch, true) }

// BatchFault is how a broken publisher of atomic batches fails. With
// AckLost, CommitLost and CommitLate the store hears that the batch's
// answer did not come in time; with MsgDropped, the leader's answer.
type BatchFault int

const (
	BatchOK    BatchFault = iota // the batch goes through
	AckLost                      // the batch is committed, and its answer lost
	CommitLost                   // the commit never leaves: the leader abandons the batch
	CommitLate                   // the commit leaves late, once the store was told it timed out
	MsgDropped                   // a message before the commit never leaves: the leader says the batch is incomplete
)

// BatchFaults is a broken publisher of atomic batches: each batch fails
// as Next says. A late commit waits for SendLate.
type BatchFaults struct {
	Next func() BatchFault

	mu   sync.Mutex
	late []func() error // guarded by mu
}

// SendLate sends the commits held back, one after the other, and returns
// how each was answered: nil when it stored its batch.
func (f *BatchFaults) SendLate() []error {
	f.mu.Lock()
	late := f.late
	f.late = nil
	f.mu.Unlock()
	var errs []error
	for _, send := range late {
		errs = append(errs, send())
	}
	return errs
}

func (f *BatchFaults) send(ctx context.Context, js jetstream.JetStream, msgs []*nats.Msg) (uint64, error) {
	fault := f.Next()
	switch fault {
	case MsgDropped:
		return sendWithGap(ctx, js, msgs)
	case AckLost:
		if _, err := sendBatch(ctx, js, msgs); err != nil {
			return 0, err
		}
		return 0, context.DeadlineExceeded
	case CommitLost, CommitLate:
		bp, err := jetstreamext.NewBatchPublisher(js, jetstreamext.BatchFlowControl{})
		if err != nil {
			return 0, err
		}
		for _, m := range msgs[:len(msgs)-1] {
			if err := bp.AddMsg(m); err != nil {
				return 0, err
			}
		}
		if fault == CommitLate {
			f.mu.Lock()
			f.late = append(f.late, func() error {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_, err := bp.CommitMsg(ctx, msgs[len(msgs)-1])
				return err
			})
			f.mu.Unlock()
		}
		return 0, context.DeadlineExceeded
	}
	return sendBatch(ctx, js, msgs)
}

// StartWithBatchFaults starts a node whose store publishes its atomic
// batches through f.
func StartWithBatchFaults(ctx context.Context, o Options, f *BatchFaults) (*Node, error) {
	return start(ctx, o, seams{sendBatch: f.send})
}

// StartOverBatchLimit starts a node whose store puts up to msgs messages
// in a batch, past the server's limit.
func StartOverBatchLimit(ctx context.Context, o Options, msgs int) (*Node, error) {
	return start(ctx, o, seams{batchMsgs: msgs})
}

// sendWithGap publishes msgs as an atomic batch whose second message never
// leaves (the raw batch headers, which jetstreamext numbers itself).
func sendWithGap(ctx context.Context, js jetstream.JetStream, msgs []*nats.Msg) (uint64, error) {
	id := nuid.Next()
	last := len(msgs) - 1
	for i, m := range msgs {
		m.Header.Set(jetstreamext.BatchIDHeader, id)
		m.Header.Set(jetstreamext.BatchSeqHeader, strconv.Itoa(i+1))
		if i == 1 || i == last {
			continue
		}
		if err := js.Conn().PublishMsg(m); err != nil {
			return 0, err
		}
	}
	msgs[last].Header.Set(jetstreamext.BatchCommitHeader, "1")
	resp, err := js.Conn().RequestMsgWithContext(ctx, msgs[last])
	if err != nil {
		return 0, err
	}
	var ack struct {
		Error *jetstream.APIError `json:"error"`
		Seq   uint64              `json:"seq"`
	}
	if err := json.Unmarshal(resp.Data, &ack); err != nil {
		return 0, err
	}
	if ack.Error != nil {
		return 0, ack.Error
	}
	return ack.Seq, nil
}

// LocalWatch is a watch of list on the node's own System, which serves
// it: the owner's feed, the floor of a watch that forwarded the owner's
// events, for the benchmarks to measure the stream's watch against.
func (n *Node) LocalWatch(ctx context.Context, list string, from int64) (iter.Seq2[todo.Event, error], error) {
	return n.sys.Watch(ctx, list, from)
}

// Replicated reports whether the lists' stream and the two buckets are
// each stored on as many servers as they can be in a cluster of servers
// (Options.Replicas at most), every replica current, and says how they
// stand when not.
func (n *Node) Replicated(ctx context.Context, servers int) (bool, string) {
	want := min(servers, n.opts.Replicas)
	names := []string{listsStream, "KV_" + nodesBucket, "KV_" + ownersBucket}
	for _, name := range names {
		s, err := n.js.Stream(ctx, name)
		if err != nil {
			return false, name + ": " + err.Error()
		}
		info, err := s.Info(ctx)
		if err != nil {
			return false, name + ": " + err.Error()
		}
		if info.Config.Replicas < want || info.Cluster == nil || info.Cluster.Leader == "" {
			return false, fmt.Sprintf("%s: %d replicas, cluster %+v", name, info.Config.Replicas, info.Cluster)
		}
		if d := info.Cluster.Desired; d != nil {
			// A change of its peers is under way: until the change is
			// stored by the members it had, they count only each other's
			// votes.
			return false, fmt.Sprintf("%s: its peers are changing to %d", name, len(d.Replicas))
		}
		if len(info.Cluster.Replicas) != info.Config.Replicas-1 {
			return false, fmt.Sprintf("%s: leader %s and %d replicas of %d", name, info.Cluster.Leader, len(info.Cluster.Replicas), info.Config.Replicas)
		}
		for _, r := range info.Cluster.Replicas {
			if !r.Current || r.Offline {
				return false, fmt.Sprintf("%s: replica %s not current (lag %d, offline %v)", name, r.Name, r.Lag, r.Offline)
			}
		}
	}
	return true, ""
}

// StartHoldingOwners starts a node whose reads and writes of the owners
// bucket each call hold once under way, before they are sent.
func StartHoldingOwners(ctx context.Context, o Options, hold func()) (*Node, error) {
	return start(ctx, o, seams{ownersHold: hold, frozen: new(atomic.Bool)})
}

// StartHoldingOwnersUnwatched is StartHoldingOwners for the broken twin
// of Health's watch of the owners bucket: the calls held are not counted.
func StartHoldingOwnersUnwatched(ctx context.Context, o Options, hold func()) (*Node, error) {
	return start(ctx, o, seams{ownersHold: hold, ownersUnwatched: true, frozen: new(atomic.Bool)})
}

// Diagnose sums up the node's server's routes, its own view of the three
// assets, and its Raft groups (the meta group's and the assets'), as its
// /routez, /jsz and /raftz say, for a test that failed on a group without
// a leader: each group's state, leader, term and peers (with how long ago
// each was heard from). It asks no other server.
func (n *Node) Diagnose() string {
	if n.srv == nil {
		return "no server"
	}
	var b strings.Builder
	if rz, err := n.srv.Routez(nil); err == nil {
		fmt.Fprintf(&b, "routes:")
		for _, r := range rz.Routes {
			fmt.Fprintf(&b, " %s(%s:%d solicited=%v)", r.RemoteName, r.IP, r.Port, r.DidSolicit)
		}
		b.WriteString("\n")
	}
	for _, sd := range n.localStreams() {
		fmt.Fprintf(&b, "%s:", sd.Name)
		if c := sd.Cluster; c != nil {
			fmt.Fprintf(&b, " group %s leader %q changing %v replicas", c.RaftGroup, c.Leader, c.Desired != nil)
			for _, r := range c.Replicas {
				fmt.Fprintf(&b, " %s(current=%v lag=%d offline=%v)", r.Name, r.Current, r.Lag, r.Offline)
			}
		}
		b.WriteString("\n")
	}
	for _, acc := range []string{"", server.DEFAULT_GLOBAL_ACCOUNT} {
		st := n.srv.Raftz(&server.RaftzOptions{AccountFilter: acc})
		if st == nil {
			continue
		}
		for acc, groups := range *st {
			for id, g := range groups {
				fmt.Fprintf(&b, "%s %s: %s leader=%q term=%d vote=%q committed=%d applied=%d pindex=%d catching_up=%v observer=%v size=%d quorum=%d peers:",
					acc, id, g.State, g.Leader, g.Term, g.Vote, g.Committed, g.Applied, g.PIndex, g.CatchingUp, g.Observer, g.Size, g.QuorumNeeded)
				for p, ps := range g.Peers {
					fmt.Fprintf(&b, " %s(%s known=%v last_index=%d last_seen=%s)", p, ps.Name, ps.Known, ps.LastReplicatedIndex, ps.LastSeen)
				}
				b.WriteString("\n")
			}
		}
	}
	return b.String()
}

// localStreams returns the node's server's own view of the lists' stream
// and the buckets' streams (/jsz): it answers without a leader.
func (n *Node) localStreams() []server.StreamDetail {
	jsz, err := n.srv.Jsz(&server.JSzOptions{Accounts: true, Streams: true})
	if err != nil {
		return nil
	}
	var out []server.StreamDetail
	for _, acc := range jsz.AccountDetails {
		for _, sd := range acc.Streams {
			switch sd.Name {
			case listsStream, "KV_" + nodesBucket, "KV_" + ownersBucket:
				out = append(out, sd)
			}
		}
	}
	return out
}

// Changing reports whether the node's own server sees a change of peers
// under way for one of the assets, and names it.
func (n *Node) Changing() (bool, string) {
	for _, sd := range n.localStreams() {
		if sd.Cluster != nil && sd.Cluster.Desired != nil {
			return true, sd.Name
		}
	}
	return false, ""
}
