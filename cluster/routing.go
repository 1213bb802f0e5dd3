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
func (n *Node) route(ctx context.Context, list string) (local bool, node string, err error) {
	now := time.Now()
	epoch := n.lease.valid(now)
	if epoch != 0 {
		ok, moving := n.held.acquire(list, epoch)
		if ok {
			return true, "", nil
		}
		if moving {
			return false, "", fmt.Errorf("%w: list %q is moving", ErrNotOwner, list)
		}
	}
	if r, ok := n.ownerCache.get(list); ok && r.Node != n.opts.Name && n.view.alive(r.Node, r.Epoch, now) {
		return false, r.Node, nil
	}
	key := encodeName(list)
	for range 3 {
		var rec ownerRecord
		var rev uint64
		e, err := n.owners.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return false, "", fmt.Errorf("%w: read the owner of list %q: %w", ErrNotReady, list, err)
		default:
			if rec, err = decodeOwner(e.Value()); err != nil {
				return false, "", err
			}
			rev = e.Revision()
		}
		live, epochs := n.liveNodes(now, epoch)
		switch {
		case rev != 0 && rec.Node == n.opts.Name && rec.Epoch == epoch && epoch != 0:
			target := preferred(list, live)
			if target == n.opts.Name || target == "" {
				return n.holdLocal(list, epoch)
			}
			// Owned but idle here, and another node is preferred now (one
			// joined): hand the record over on the way. The list is
			// marked moving meanwhile, so that no call loads it here; one
			// that holds it already keeps it, for rebalance to move.
			if !n.held.startMovingIfAbsent(list) {
				return n.holdLocal(list, epoch)
			}
			_, err := n.owners.Update(ctx, key, encodeOwner(ownerRecord{target, epochs[target]}), rev)
			n.held.drop(list)
			if err == nil {
				n.log.Debug("cluster: idle list handed off", "node", n.opts.Name, "list", list, "to", target)
				n.stats.handoffs.Add(1)
				n.ownerCache.put(list, ownerRecord{target, epochs[target]})
				return false, target, nil
			}
			continue
		case rev != 0 && rec.Node != n.opts.Name && n.view.alive(rec.Node, rec.Epoch, now):
			n.ownerCache.put(list, rec)
			return false, rec.Node, nil
		}
		// No owner, or a dead one.
		target := preferred(list, live)
		if target == "" {
			return false, "", fmt.Errorf("%w: no live node", ErrNotReady)
		}
		if target != n.opts.Name {
			return false, target, nil
		}
		if rev != 0 && rec.Node != n.opts.Name && n.confirmedAlive(ctx, rec) {
			return false, rec.Node, nil
		}
		if epoch == 0 {
			return false, "", fmt.Errorf("%w: this node's lease has lapsed", ErrNotOwner)
		}
		val := encodeOwner(ownerRecord{n.opts.Name, epoch})
		if rev == 0 {
			_, err = n.owners.Create(ctx, key, val)
		} else {
			_, err = n.owners.Update(ctx, key, val, rev)
		}
		if err == nil {
			n.log.Debug("cluster: list claimed", "node", n.opts.Name, "list", list, "from", rec.Node, "epoch", rec.Epoch, "live", live)
			n.stats.claims.Add(1)
			return n.holdLocal(list, epoch)
		}
		// Lost the race, or no answer: read the record again.
	}
	return false, "", fmt.Errorf("%w: the owner of list %q keeps changing", ErrNotOwner, list)
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
// not leaving (its own record may not have reached its watcher yet).
func (n *Node) liveNodes(now time.Time, epoch uint64) ([]string, map[string]uint64) {
	live, epochs := n.view.live(now)
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

// confirmedAlive asks the leader of the nodes bucket, not this node's
// view, whether the owner of a record lives: a view that lags would take
// a live node for dead.
func (n *Node) confirmedAlive(ctx context.Context, rec ownerRecord) bool {
	m, ok, err := n.leaderLiveness(ctx, rec.Node)
	if err != nil {
		return true // cannot tell: do not take the list
	}
	return ok && m.epoch == rec.Epoch && time.Since(m.renewed) < n.view.ttl
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
	epoch := n.lease.valid(now)
	if epoch == 0 {
		return true
	}
	live, epochs := n.liveNodes(now, epoch)
	return n.handOff(live, epochs) == 0
}

// handOffAll hands every held list to the node preferred among the others:
// the graceful leave. The node first tells the others it is leaving, so
// that they send it no new list.
func (n *Node) handOffAll() {
	ctx, cancel := context.WithTimeout(context.Background(), n.opts.AckTimeout)
	n.renew(ctx)
	cancel()
	live, epochs := n.liveNodes(time.Now(), n.lease.valid(time.Now()))
	n.handOff(live, epochs)
}

// handOff hands each held list whose preferred node among live is another
// one to it, eight at a time. It returns how many of them stay here.
func (n *Node) handOff(live []string, epochs map[string]uint64) (left int) {
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	var failed atomic.Int64
	for _, list := range n.held.all() {
		target := preferred(list, live)
		if target == "" || target == n.opts.Name {
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if !n.handOffOne(list, ownerRecord{target, epochs[target]}) {
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
// stays held here: its unload failed.
func (n *Node) handOffOne(list string, to ownerRecord) bool {
	if !n.held.startMoving(list) {
		return true // no longer held here, or moving already
	}
	defer n.held.drop(list)
	n.ownerCache.forget(list)
	n.held.waitIdle(list)
	ctx, cancel := context.WithTimeout(context.Background(), n.opts.WriteTimeout+2*n.opts.AckTimeout)
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
