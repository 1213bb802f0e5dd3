package cluster

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A node is alive while its liveness record in the nodes bucket is
// renewed: every LeaseTTL/4 the node rewrites it, by compare-and-set on its
// last revision. The revision that began the node's current run of
// renewals is its epoch; the records of the lists it owns name it as
// {node, epoch}, so one write per node per period keeps any number of
// lists owned (per-list leases would cost one replicated, fsynced write
// per list per period).
//
// A node serves its lists only until LeaseTTL after it sent its last
// renewal that was acknowledged. Another node takes a list over only once
// the owner's record has not been renewed for LeaseTTL + ClockSkew, as
// the timestamps of the stream say, and only after it has declared the
// owner dead: deleted its liveness record by compare-and-set on the
// revision it found stale (or found it gone, or naming another epoch). By
// then the owner has stopped serving.
//
// A node whose lease lapsed (its renewals went unanswered: the nodes
// bucket was electing a leader, or the node was cut off) keeps its lists
// and its epoch, and serves none of them until a renewal succeeds. That
// renewal is a compare-and-set on the record's last revision, and a
// declaration of death is a compare-and-set on the same revision: at most
// one of the two lands. If the renewal lands, nobody declared the node
// dead, so nobody took a list of its epoch, and it serves its lists again
// from memory. If the declaration landed, the renewal is refused, the
// node lets go of every list held and begins a new epoch. docs/cluster.md
// ("Why a lapsed lease keeps its lists") has the whole argument.

// livenessRecord is the value of a node's key in the nodes bucket.
type livenessRecord struct {
	Node    string `json:"node"`
	Epoch   uint64 `json:"epoch"`   // 0 in the write that begins an epoch: its own revision
	Cluster string `json:"cluster"` // the node's cluster address, for the others to learn
	Leaving bool   `json:"leaving,omitempty"`
}

// member is what a node knows of another from the nodes bucket.
type member struct {
	epoch   uint64
	rev     uint64    // the revision of the last renewal
	renewed time.Time // the stream's timestamp of the last renewal
	cluster string
	leaving bool
}

// ownerRecord is the value of a list's key in the owners bucket.
type ownerRecord struct {
	Node  string `json:"node"`
	Epoch uint64 `json:"epoch"`
}

// view is a node's picture of the cluster's members, kept by a watcher of
// the nodes bucket. It is safe for concurrent use.
type view struct {
	ttl time.Duration // LeaseTTL + ClockSkew: how long a member lives unrenewed

	mu      sync.RWMutex // guards members, left and version
	members map[string]member
	// left are the nodes that said they left, with the epoch they left
	// under (see departed): gone, whatever their records still say, until
	// they come back under another epoch.
	left    map[string]uint64
	version uint64 // bumped when the set of live members may have changed
}

func newView(ttl time.Duration) *view {
	return &view{ttl: ttl, members: make(map[string]member), left: make(map[string]uint64)}
}

// leave takes node for gone under epoch: it said it left.
func (v *view) leave(node string, epoch uint64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.left[node] = epoch
	v.version++
}

// gone reports whether m, the record of node, is of an epoch it left.
// v.mu is held.
func (v *view) gone(node string, m member) bool {
	epoch, ok := v.left[node]
	return ok && epoch == m.epoch
}

// epochOf returns node's epoch as its record says, 0 for none.
func (v *view) epochOf(node string) uint64 {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.members[node].epoch
}

// others returns every member but me, live or not.
func (v *view) others(me string) []string {
	v.mu.RLock()
	defer v.mu.RUnlock()
	var names []string
	for name := range v.members {
		if name != me {
			names = append(names, name)
		}
	}
	return names
}

// parseLiveness reads a liveness entry; its epoch is the revision that
// began it.
func parseLiveness(value []byte, rev uint64, created time.Time) (string, member, error) {
	var r livenessRecord
	if err := json.Unmarshal(value, &r); err != nil {
		return "", member{}, err
	}
	if r.Epoch == 0 {
		r.Epoch = rev
	}
	return r.Node, member{epoch: r.Epoch, rev: rev, renewed: created, cluster: r.Cluster, leaving: r.Leaving}, nil
}

func (v *view) update(e jetstream.KeyValueEntry) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if e.Operation() != jetstream.KeyValuePut {
		name, err := decodeName(e.Key())
		if err == nil {
			delete(v.members, name)
			v.version++
		}
		return
	}
	name, m, err := parseLiveness(e.Value(), e.Revision(), e.Created())
	if err != nil {
		return
	}
	old, ok := v.members[name]
	if !ok || old.epoch != m.epoch || old.leaving != m.leaving {
		v.version++
	}
	v.members[name] = m
}

// versionNow returns a number that changes when a member joins, leaves
// or begins a new epoch.
func (v *view) versionNow() uint64 {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.version
}

// alive reports whether node lives under epoch now: its record names
// epoch, and it has not been silent for ttl since the later of its last
// renewal and since (see lease.runSince: a node whose own renewals went
// unanswered cannot tell who else's did).
func (v *view) alive(node string, epoch uint64, now, since time.Time) bool {
	v.mu.RLock()
	defer v.mu.RUnlock()
	m, ok := v.members[node]
	return ok && m.epoch == epoch && v.fresh(m, now, since) && !v.gone(node, m)
}

// fresh reports whether m has renewed within ttl of now, counting from
// since if that is later.
func (v *view) fresh(m member, now, since time.Time) bool {
	return now.Sub(m.renewed) < v.ttl || now.Sub(since) < v.ttl
}

// live returns the members alive now (see alive) that are not leaving,
// sorted, with their epochs.
func (v *view) live(now, since time.Time) (names []string, epochs map[string]uint64) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	epochs = make(map[string]uint64, len(v.members))
	for name, m := range v.members {
		if !m.leaving && v.fresh(m, now, since) && !v.gone(name, m) {
			names = append(names, name)
			epochs[name] = m.epoch
		}
	}
	slices.Sort(names)
	return names, epochs
}

// revisionOf returns the revision of node's record as the view has it, 0
// for none.
func (v *view) revisionOf(node string) uint64 {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.members[node].rev
}

// addrNames returns the members' names by their cluster addresses.
func (v *view) addrNames() map[string]string {
	v.mu.RLock()
	defer v.mu.RUnlock()
	names := make(map[string]string, len(v.members))
	for name, m := range v.members {
		if m.cluster != "" {
			names[m.cluster] = name
		}
	}
	return names
}

// clusterAddrs returns the cluster addresses of every member it has seen.
func (v *view) clusterAddrs() []string {
	v.mu.RLock()
	defer v.mu.RUnlock()
	var addrs []string
	for _, m := range v.members {
		if m.cluster != "" {
			addrs = append(addrs, m.cluster)
		}
	}
	return addrs
}

// preferred returns the node a list belongs on among nodes: the one of
// highest rendezvous score. When a node joins, only the lists it now
// scores highest on move, about 1/N of them, where hash-mod-N would move
// nearly all.
func preferred(list string, nodes []string) string {
	var best string
	var bestScore uint64
	for _, n := range nodes {
		if s := score(n, list); best == "" || s > bestScore {
			best, bestScore = n, s
		}
	}
	return best
}

// score hashes a node and a list together: FNV-1a, then a 64-bit
// finalizer, so that every node computes the same score.
func score(node, list string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(node))
	h.Write([]byte{0})
	h.Write([]byte(list))
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// lease is a node's own liveness: its epoch and until when it may serve.
// It is safe for concurrent use.
type lease struct {
	mu     sync.Mutex // guards the fields below
	epoch  uint64     // kept through a lapse; 0 before the first renewal
	rev    uint64     // the last revision of the node's record
	until  time.Time  // serve until then
	lapses uint64     // renewals that came after the lease had lapsed
	// since is when the node's current run of renewals began: the first
	// acknowledgement after a renewal that failed (or the first of all).
	// Until LeaseTTL + ClockSkew after it, the node declares no other node
	// dead (see confirmDeath): if the nodes bucket did not take this
	// node's renewals, it did not take the others' either.
	since  time.Time
	failed bool // the last renewal failed: the next one begins a run
}

// valid returns the epoch the node serves under, or 0 when it must not
// serve: there is no epoch yet, or its lease has lapsed.
func (l *lease) valid(now time.Time) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Before(l.until) {
		return l.epoch
	}
	return 0
}

// failure records a renewal that failed: the run of renewals is broken.
func (l *lease) failure() {
	l.mu.Lock()
	l.failed = true
	l.mu.Unlock()
}

// runSince returns when the current run of renewals began; the zero time
// while a renewal has failed since.
func (l *lease) runSince() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failed {
		return time.Time{}
	}
	return l.since
}

// judgedFrom returns the time from which the node judges the others'
// silence at now: the beginning of its run of renewals, or now while its
// own renewals fail (it judges no one then).
func (l *lease) judgedFrom(now time.Time) time.Time {
	if since := l.runSince(); !since.IsZero() {
		return since
	}
	return now
}

// lapseCount returns how many renewals came after the lease had lapsed.
func (l *lease) lapseCount() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lapses
}

// kept returns the epoch whose lists the node keeps, lapsed or not.
func (l *lease) kept() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.epoch
}

// revision returns the revision of the node's record as its last renewal
// left it.
func (l *lease) revision() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rev
}

// renew writes the node's liveness record once. It renews the node's
// epoch, by compare-and-set on the record's last revision, whether or not
// the lease has lapsed meanwhile, and begins a new epoch only when the
// record is gone or not the node's: the others declared the node dead (or
// there was no epoch yet). It returns the epoch that ended, if one did.
func (n *Node) renew(ctx context.Context) (ended uint64, err error) {
	l := &n.lease
	l.mu.Lock()
	epoch, rev := l.epoch, l.rev
	l.mu.Unlock()
	leaving := n.leaving.Load()
	sent := time.Now()
	key := encodeName(n.opts.Name)
	if epoch != 0 {
		rec, _ := json.Marshal(livenessRecord{Node: n.opts.Name, Epoch: epoch, Cluster: n.clusterAddr, Leaving: leaving})
		newRev, err := n.nodes.Update(ctx, key, rec, rev)
		if err == nil {
			n.renewed(epoch, newRev, sent)
			return 0, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !wrongLastSequence(err) {
			return 0, err // no answer: the lease runs down meanwhile
		}
		// Refused: an earlier renewal whose answer was lost landed, or
		// the record was deleted (the others declared this node dead).
		// Read it to know.
		e, gerr := n.nodes.Get(ctx, key)
		switch {
		case gerr == nil:
			if name, m, perr := parseLiveness(e.Value(), e.Revision(), e.Created()); perr == nil && name == n.opts.Name && m.epoch == epoch {
				l.mu.Lock()
				l.rev = e.Revision()
				l.mu.Unlock()
				return 0, nil // renewed by the lost one; the next renewal extends the lease
			}
		case !errors.Is(gerr, jetstream.ErrKeyNotFound):
			return 0, gerr
		}
	}
	// Begin a new epoch: the record is gone or names another epoch (or
	// there was none yet).
	rec, _ := json.Marshal(livenessRecord{Node: n.opts.Name, Cluster: n.clusterAddr, Leaving: leaving})
	var newRev uint64
	e, err := n.nodes.Get(ctx, key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		newRev, err = n.nodes.Create(ctx, key, rec)
	case err == nil:
		newRev, err = n.nodes.Update(ctx, key, rec, e.Revision())
	}
	if err != nil {
		return 0, err
	}
	now := time.Now()
	l.mu.Lock()
	ended = l.epoch
	l.epoch, l.rev, l.until = newRev, newRev, sent.Add(n.opts.LeaseTTL)
	if l.failed || l.since.IsZero() {
		l.since, l.failed = now, false
	}
	l.mu.Unlock()
	n.log.Info("cluster: new epoch", "node", n.opts.Name, "epoch", newRev, "ended", ended)
	return ended, nil
}

// renewed records a renewal of epoch, sent at sent, that landed at rev.
func (n *Node) renewed(epoch, rev uint64, sent time.Time) {
	l := &n.lease
	now := time.Now()
	l.mu.Lock()
	lapsed := !now.Before(l.until)
	l.rev, l.until = rev, sent.Add(n.opts.LeaseTTL)
	if lapsed {
		l.lapses++
	}
	if l.failed || l.since.IsZero() {
		l.since, l.failed = now, false
	}
	l.mu.Unlock()
	if lapsed {
		n.log.Info("cluster: lease renewed after it lapsed: the node serves its lists again", "node", n.opts.Name, "epoch", epoch)
	}
}

// leaderLiveness reads a node's liveness record from the leader of the
// nodes bucket, not from a replica that may lag, for the decision that a
// node is dead. It returns the record, its revision, and whether there is
// one.
func (n *Node) leaderLiveness(ctx context.Context, node string) (member, uint64, bool, error) {
	subject := "$KV." + nodesBucket + "." + encodeName(node)
	req, _ := json.Marshal(map[string]string{"last_by_subj": subject})
	msg, err := n.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET.KV_"+nodesBucket, req)
	if err != nil {
		return member{}, 0, false, err
	}
	var resp struct {
		Message *struct {
			Seq  uint64    `json:"seq"`
			Hdrs []byte    `json:"hdrs"`
			Data []byte    `json:"data"`
			Time time.Time `json:"time"`
		} `json:"message"`
		Error *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return member{}, 0, false, err
	}
	if resp.Error != nil {
		if resp.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound {
			return member{}, 0, false, nil
		}
		return member{}, 0, false, resp.Error
	}
	if resp.Message == nil {
		return member{}, 0, false, errors.New("cluster: empty message get answer")
	}
	if len(resp.Message.Hdrs) > 0 {
		// A delete or purge marker carries a KV-Operation header.
		if h, err := nats.DecodeHeadersMsg(resp.Message.Hdrs); err == nil && h.Get("KV-Operation") != "" {
			return member{}, 0, false, nil
		}
	}
	_, m, err := parseLiveness(resp.Message.Data, resp.Message.Seq, resp.Message.Time)
	return m, resp.Message.Seq, err == nil, err
}

// encodeOwner and decodeOwner write and read owner records.
func encodeOwner(r ownerRecord) []byte {
	b := binary.AppendUvarint(nil, r.Epoch)
	return append(b, r.Node...)
}

func decodeOwner(b []byte) (ownerRecord, error) {
	epoch, n := binary.Uvarint(b)
	if n <= 0 {
		return ownerRecord{}, fmt.Errorf("cluster: bad owner record %q", b)
	}
	return ownerRecord{Node: string(b[n:]), Epoch: epoch}, nil
}
