package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// maxHops bounds how often a request is forwarded on: a node that gets a
// forwarded request for a list that has moved on sends it once more, and
// no further, so that nodes with different views never bounce a request
// between them.
const maxHops = 2

// route finds where a request for list is served. For a list this node
// serves it returns local set, having held the list for the call (the
// caller must call n.held.release); else the node to forward to.
//
// A list whose owner record names a live node is served there. A list
// with no owner, or whose owner is dead, is claimed by the node that
// rendezvous hashing over the live nodes prefers: by this node, with an
// atomic create (or compare-and-set over the dead owner's record), or by
// that node, to which the request is forwarded. Concurrent first requests
// at every node thus make one owner.
//
// route gathers what the node knows and acts; decideRoute, a pure
// function of what route gathered, says what to do next.
func (n *Node) route(ctx context.Context, list string) (local bool, node string, err error) {
	now := time.Now()
	f := routeFacts{
		list:  list,
		me:    n.opts.Name,
		epoch: n.epochNow(now),
		alive: func(node string, epoch uint64) bool { return n.view.alive(node, epoch, now, n.lease.judgedFrom(now)) },
	}
	if f.epoch != 0 {
		f.held, f.moving = n.held.acquire(list, f.epoch)
	} else if f.lapsed = n.lease.kept(); f.lapsed != 0 {
		f.waiting = n.held.has(list, f.lapsed)
	}
	if !f.held {
		f.cached, _ = n.ownerCache.get(list)
	}
	for {
		v := decideRoute(&f)
		switch v.action {
		case routeServe:
			return true, "", nil
		case routeHold:
			return n.holdLocal(list, f.epoch)
		case routeForward:
			if v.remember {
				n.ownerCache.put(list, f.owner.rec)
			}
			return false, v.node, nil
		case routeRefuse:
			return false, "", v.err
		case routeRead:
			if f.owner, err = n.readOwner(ctx, list, now, f.epoch); err != nil {
				return false, "", err
			}
			f.reads++
		case routeConfirm:
			f.owner.confirmed = n.confirmDeath(ctx, f.owner.rec)
		case routeHandOver:
			f.owner = n.handOverIdle(ctx, list, f.owner, v.to)
		case routeClaim:
			f.owner = n.claim(ctx, list, f.owner, v.to)
		}
	}
}

// maxOwnerReads bounds how often route reads a list's owner record: each
// read after the first follows a write that lost a race.
const maxOwnerReads = 3

// routeFacts are what a node knows when it routes a request for a list:
// what route gathers, step by step, and decideRoute judges.
type routeFacts struct {
	list  string
	me    string // this node's name
	epoch uint64 // this node's epoch; 0 when its lease has lapsed
	// lapsed is the epoch of a lease that has lapsed, which the node
	// keeps until a renewal succeeds or is refused; 0 while epoch is set.
	lapsed  uint64
	held    bool        // the list is held here under epoch, for this call
	moving  bool        // the list is being handed off or unloaded here
	waiting bool        // the list is held here under lapsed: it waits for the renewal
	cached  ownerRecord // the owner cache's record of the list; zero if none
	// alive is the node's view of the members: whether node lives under
	// epoch now (a leaving node lives until it has gone).
	alive func(node string, epoch uint64) bool
	reads int         // owner records read so far
	owner *ownerFacts // what the last read told; nil before the first and after a failed write
}

// ownerFacts are what one read of a list's owner record tells, the live
// nodes at that moment, and what became of the record since.
type ownerFacts struct {
	rec       ownerRecord
	rev       uint64            // the record's revision; 0 when the list has none
	live      []string          // the nodes that may own lists now (liveNodes)
	epochs    map[string]uint64 // their epochs
	confirmed ownerLiveness     // what the nodes bucket's leader said of rec.Node
	busy      bool              // a call holds the list here: it cannot be handed over on the way
	written   ownerRecord       // the record this node wrote over it; zero if none
}

// ownerLiveness is whether the leader of the nodes bucket, asked, says
// that the owner of a record lives.
type ownerLiveness uint8

const (
	ownerUnasked ownerLiveness = iota
	ownerDead
	ownerLives // or the leader could not tell: the list is not taken
)

// routeAction is what route does next.
type routeAction uint8

const (
	routeServe    routeAction = iota // serve here: the list is held for the call already
	routeHold                        // serve here: hold the list for the call
	routeForward                     // forward the request to verdict.node
	routeRefuse                      // fail with verdict.err
	routeRead                        // read the owner record, then decide again
	routeConfirm                     // ask the leader whether the record's owner lives, then decide again
	routeHandOver                    // write verdict.to over the idle list's record, then decide again
	routeClaim                       // write verdict.to, this node's claim, then decide again
)

// routeVerdict is decideRoute's answer.
type routeVerdict struct {
	action   routeAction
	node     string      // routeForward: where to
	remember bool        // routeForward: put the record read in the owner cache
	to       ownerRecord // routeHandOver, routeClaim: the record to write
	err      error       // routeRefuse
}

// decideRoute says what route does next with what it knows: serve the
// list here, forward the request, refuse it, or the next step to learn or
// to change (read the owner record, confirm that its owner lives, hand the
// list over, claim it). It reads nothing but f and changes nothing.
func decideRoute(f *routeFacts) routeVerdict {
	switch {
	case f.held:
		return routeVerdict{action: routeServe}
	case f.moving:
		return refuse(fmt.Errorf("%w: list %q is moving", ErrNotOwner, f.list))
	case f.waiting:
		return refuse(errLapsed(f.list, f.me))
	case f.owner != nil:
		return decideOwner(f, f.owner)
	case f.reads == 0 && f.cached.Node != "" && f.cached.Node != f.me && f.alive(f.cached.Node, f.cached.Epoch):
		return forward(f.cached.Node)
	case f.reads == maxOwnerReads:
		return refuse(fmt.Errorf("%w: the owner of list %q keeps changing", ErrNotOwner, f.list))
	}
	return routeVerdict{action: routeRead}
}

// decideOwner is decideRoute once the owner record o has been read.
func decideOwner(f *routeFacts, o *ownerFacts) routeVerdict {
	mine := o.rev != 0 && o.rec.Node == f.me && o.rec.Epoch == f.epoch && f.epoch != 0
	other := o.rev != 0 && o.rec.Node != f.me // an owner, not this node
	target := preferred(f.list, o.live)
	switch {
	case o.written.Node == f.me:
		return routeVerdict{action: routeHold}
	case o.written.Node != "":
		return forward(o.written.Node)
	case mine && (target == f.me || target == "" || o.busy):
		return routeVerdict{action: routeHold}
	case mine:
		// Owned but idle here, and another node is preferred now (one
		// joined): hand the record over on the way.
		return routeVerdict{action: routeHandOver, to: ownerRecord{target, o.epochs[target]}}
	case o.rev != 0 && f.lapsed != 0 && o.rec == ownerRecord{f.me, f.lapsed}:
		// Owned here under the epoch whose lease lapsed: nobody else may
		// take it until this node is declared dead, and this node serves
		// it again once it renews.
		return refuse(errLapsed(f.list, f.me))
	case other && f.alive(o.rec.Node, o.rec.Epoch):
		return routeVerdict{action: routeForward, node: o.rec.Node, remember: true}
	}
	// No owner, or a dead one: the preferred node claims the list.
	switch {
	case target == "":
		return refuse(fmt.Errorf("%w: no live node", ErrNotReady))
	case target != f.me:
		return forward(target)
	case other && o.confirmed == ownerUnasked:
		// This node's view may lag: the leader has the last word on a
		// death.
		return routeVerdict{action: routeConfirm}
	case other && o.confirmed == ownerLives:
		return forward(o.rec.Node)
	case f.epoch == 0:
		return refuse(fmt.Errorf("%w: this node's lease has lapsed", ErrNotOwner))
	}
	return routeVerdict{action: routeClaim, to: ownerRecord{f.me, f.epoch}}
}

func forward(node string) routeVerdict { return routeVerdict{action: routeForward, node: node} }

// errLapsed is the refusal of a list this node owns while its lease has
// lapsed: retryable, the list is kept here for when the lease is renewed.
func errLapsed(list, me string) error {
	return fmt.Errorf("%w: list %q waits: node %s cannot renew its lease now (it keeps its lists meanwhile)", ErrNotReady, list, me)
}
func refuse(err error) routeVerdict { return routeVerdict{action: routeRefuse, err: err} }

// readOwner reads the list's owner record, and the live nodes now.
func (n *Node) readOwner(ctx context.Context, list string, now time.Time, epoch uint64) (*ownerFacts, error) {
	o := &ownerFacts{}
	e, err := n.owners.Get(ctx, encodeName(list))
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
	case err != nil:
		return nil, fmt.Errorf("%w: read the owner of list %q: %w", ErrNotReady, list, err)
	default:
		if o.rec, err = decodeOwner(e.Value()); err != nil {
			return nil, err
		}
		o.rev = e.Revision()
	}
	o.live, o.epochs = n.liveNodes(now, epoch)
	return o, nil
}

// handOverIdle moves the record of a list owned here but idle to the node
// now preferred for it (one joined), on the way of a request: the list is
// marked moving meanwhile, so that no call loads it here. It returns what
// to decide on next: o with written set when the list was handed over, o
// with busy set when a call holds the list here (it keeps it, for
// rebalance to move), or nil when the write failed and the record must be
// read again.
func (n *Node) handOverIdle(ctx context.Context, list string, o *ownerFacts, to ownerRecord) *ownerFacts {
	if !n.held.startMovingIfAbsent(list) {
		o.busy = true
		return o
	}
	_, err := n.owners.Update(ctx, encodeName(list), encodeOwner(to), o.rev)
	n.held.drop(list)
	if err != nil {
		return nil
	}
	n.log.Debug("cluster: idle list handed off", "node", n.opts.Name, "list", list, "to", to.Node)
	n.stats.handoffs.Add(1)
	n.ownerCache.put(list, to)
	o.written = to
	return o
}

// claim writes the record that makes this node the list's owner, over
// the record read (o.rev 0: there was none). It returns o with written
// set, or nil when it lost the race or had no answer, and the record
// must be read again.
func (n *Node) claim(ctx context.Context, list string, o *ownerFacts, me ownerRecord) *ownerFacts {
	key, val := encodeName(list), encodeOwner(me)
	var err error
	if o.rev == 0 {
		_, err = n.owners.Create(ctx, key, val)
	} else {
		_, err = n.owners.Update(ctx, key, val, o.rev)
	}
	if err != nil {
		return nil
	}
	n.log.Debug("cluster: list claimed", "node", n.opts.Name, "list", list, "from", o.rec.Node, "epoch", o.rec.Epoch, "live", o.live)
	n.stats.claims.Add(1)
	o.written = me
	return o
}

// holdLocal holds a list this node owns for a local call.
func (n *Node) holdLocal(list string, epoch uint64) (bool, string, error) {
	if !n.held.add(list, epoch) {
		return false, "", fmt.Errorf("%w: list %q is moving", ErrNotOwner, list)
	}
	return true, "", nil
}

// liveNodes returns the nodes that may own lists now, with their epochs:
// the live members, this node among them while its lease holds and it is
// not leaving (its own record may not have reached its watcher yet). A
// member is live until it has been silent for LeaseTTL + ClockSkew while
// this node's own renewals succeeded (see view.alive): after the nodes
// bucket elected a leader, every record is stale, and a node that took
// the others for dead would claim lists they are preferred for, only to
// hand them on once their renewals came through.
func (n *Node) liveNodes(now time.Time, epoch uint64) ([]string, map[string]uint64) {
	live, epochs := n.view.live(now, n.lease.judgedFrom(now))
	me := n.opts.Name
	has := false
	for i, name := range live {
		if name == me {
			if epoch == 0 || n.leaving.Load() {
				live = append(live[:i:i], live[i+1:]...)
			}
			has = true
			break
		}
	}
	if !has && epoch != 0 && !n.leaving.Load() {
		live = append(live, me)
	}
	epochs[me] = epoch
	return live, epochs
}

// confirmDeath asks the leader of the nodes bucket, not this node's view,
// whether the owner of a record lives: a view that lags would take a live
// node for dead. An owner whose record is gone or names another epoch is
// dead. One whose record has not been renewed for LeaseTTL + ClockSkew
// while this node's own renewals succeeded is declared dead: its record is
// deleted by compare-and-set on the revision read, which the owner's own
// renewal, a compare-and-set on the same revision, would make fail (see
// lease). Only then may its lists be taken. When the leader cannot tell,
// or the declaration fails, the owner is taken to live: the list is not
// taken.
//
// The wait is counted from the later of the owner's last renewal and the
// beginning of this node's own run of renewals: when the nodes bucket
// elected a leader, nobody could renew, and every record looks stale once
// it has one; the first node to renew must give the others as long as a
// lease lasts to renew too, or it would take the lists of live nodes.
func (n *Node) confirmDeath(ctx context.Context, rec ownerRecord) ownerLiveness {
	since := n.lease.runSince()
	if since.IsZero() {
		return ownerLives // this node's own renewals fail: it cannot judge
	}
	m, rev, ok, err := n.leaderLiveness(ctx, rec.Node)
	switch {
	case err != nil:
		return ownerLives
	case !ok || m.epoch != rec.Epoch:
		return ownerDead
	case time.Since(m.renewed) < n.view.ttl || time.Since(since) < n.view.ttl:
		return ownerLives
	}
	if err := n.nodes.Delete(ctx, encodeName(rec.Node), jetstream.LastRevision(rev)); err != nil {
		return ownerLives // it renewed meanwhile, or no answer: ask again next time
	}
	n.stats.declared.Add(1)
	n.log.Warn("cluster: node declared dead: its lease ran out; its lists are taken over", "node", n.opts.Name, "dead", rec.Node, "epoch", rec.Epoch, "renewed", m.renewed)
	return ownerDead
}

// rebalance hands off the lists held here that another live node is now
// preferred for: a node joined, or came back. It reports whether it is
// done: false when a handoff failed and left a list here that belongs
// elsewhere, for the next tick to try again.
func (n *Node) rebalance() bool {
	if n.leaving.Load() {
		return true
	}
	now := time.Now()
	epoch := n.epochNow(now)
	if epoch == 0 {
		return true
	}
	live, epochs := n.liveNodes(now, epoch)
	return n.handOff(context.Background(), live, epochs) == 0
}

// handOffAll hands every held list to the node preferred among the others,
// until ctx ends: the graceful leave. The node first tells the others it
// is leaving, so that they send it no new list. It returns how many lists
// stay here.
func (n *Node) handOffAll(ctx context.Context) (left int) {
	rctx, cancel := context.WithTimeout(ctx, n.opts.AckTimeout)
	n.renew(rctx)
	cancel()
	live, epochs := n.liveNodes(time.Now(), n.epochNow(time.Now()))
	return n.handOff(ctx, live, epochs)
}

// handOff hands each held list whose preferred node among live is another
// one to it, eight at a time, until ctx ends. It returns how many of them
// stay here.
func (n *Node) handOff(ctx context.Context, live []string, epochs map[string]uint64) (left int) {
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	var failed atomic.Int64
	for _, list := range n.held.all() {
		target := preferred(list, live)
		if target == "" || target == n.opts.Name {
			continue
		}
		if ctx.Err() != nil {
			failed.Add(1) // not tried: ctx is over
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			failed.Add(1)
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if !n.handOffOne(ctx, list, ownerRecord{target, epochs[target]}) {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	return int(failed.Load())
}

// handOffOne drains a list of its local calls, unloads it (its last
// change is stored and the store lets go of it), and moves its owner
// record to the target. No data is copied: the target loads the list
// from the stream on its first request. It reports false when the list
// stays held here: its unload failed, or ctx ended first.
func (n *Node) handOffOne(ctx context.Context, list string, to ownerRecord) bool {
	if !n.held.startMoving(list) {
		return true // no longer held here, or moving already
	}
	defer n.held.drop(list)
	n.ownerCache.forget(list)
	n.held.waitIdle(list)
	ctx, cancel := context.WithTimeout(ctx, n.opts.WriteTimeout+2*n.opts.AckTimeout)
	defer cancel()
	if err := n.sys.Unload(ctx, list); err != nil {
		n.log.Warn("cluster: handoff: unload failed; the list stays here for now", "list", list, "err", err)
		return false
	}
	// Unloaded: whatever happens to the record now, the list is no longer
	// held here, and the next request for it routes it afresh (an idle list
	// whose record still names this node is handed over on the way).
	key := encodeName(list)
	e, err := n.owners.Get(ctx, key)
	if err != nil {
		return true
	}
	rec, err := decodeOwner(e.Value())
	if err != nil || rec.Node != n.opts.Name {
		return true
	}
	if _, err := n.owners.Update(ctx, key, encodeOwner(to), e.Revision()); err == nil {
		n.log.Debug("cluster: list handed off", "node", n.opts.Name, "list", list, "to", to.Node)
		n.stats.handoffs.Add(1)
	}
	return true
}
