package cluster

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// listPreferring returns a list name that rendezvous hashing over live
// places on want.
func listPreferring(t *testing.T, want string, live []string) string {
	t.Helper()
	for i := range 1000 {
		if l := fmt.Sprint("list-", i); preferred(l, live) == want {
			return l
		}
	}
	t.Fatalf("no list of 1000 prefers %q among %q", want, live)
	return ""
}

// TestDecideRoute covers every verdict of the routing decision, from what
// the node knows: its lease, the held set, the owner cache, the owner
// record, the live nodes, the leader's word on an owner, and what its own
// writes did.
func TestDecideRoute(t *testing.T) {
	t.Parallel()
	const me, other, third = "me", "other", "third"
	live := []string{me, other}
	epochs := map[string]uint64{me: 7, other: 9}
	here := listPreferring(t, me, live)     // preferred on this node
	there := listPreferring(t, other, live) // preferred on the other node
	alive := map[ownerRecord]bool{{other, 9}: true, {third, 3}: true}
	// owned builds the facts after one read of a record naming rec.
	owned := func(list string, rec ownerRecord, o ownerFacts) routeFacts {
		o.rec, o.live, o.epochs = rec, live, epochs
		if rec.Node != "" {
			o.rev = 42
		}
		return routeFacts{list: list, me: me, epoch: 7, reads: 1, owner: &o}
	}
	for _, c := range []struct {
		name string
		f    routeFacts
		want routeVerdict
		why  error  // the sentinel a refusal wraps
		says string // and a word of its message
	}{
		// Before the owner record is read.
		{name: "held here: served", f: routeFacts{list: here, me: me, epoch: 7, held: true},
			want: routeVerdict{action: routeServe}},
		{name: "moving here: refused", f: routeFacts{list: here, me: me, epoch: 7, moving: true},
			want: routeVerdict{action: routeRefuse}, why: ErrNotOwner, says: "moving"},
		{name: "cached live owner: forwarded, no read", f: routeFacts{list: there, me: me, epoch: 7, cached: ownerRecord{third, 3}},
			want: routeVerdict{action: routeForward, node: third}},
		{name: "cached owner dead: read", f: routeFacts{list: there, me: me, epoch: 7, cached: ownerRecord{other, 8}},
			want: routeVerdict{action: routeRead}},
		{name: "cached owner is this node: read", f: routeFacts{list: here, me: me, epoch: 7, cached: ownerRecord{me, 7}},
			want: routeVerdict{action: routeRead}},
		{name: "nothing cached: read", f: routeFacts{list: here, me: me, epoch: 7},
			want: routeVerdict{action: routeRead}},
		{name: "lease lapsed, nothing cached: read", f: routeFacts{list: here, me: me},
			want: routeVerdict{action: routeRead}},
		{name: "a write lost its race: read again, the cache aside", f: routeFacts{list: there, me: me, epoch: 7, cached: ownerRecord{third, 3}, reads: 2},
			want: routeVerdict{action: routeRead}},
		{name: "three writes lost: refused", f: routeFacts{list: here, me: me, epoch: 7, reads: maxOwnerReads},
			want: routeVerdict{action: routeRefuse}, why: ErrNotOwner, says: "keeps changing"},

		// Owned here under this epoch.
		{name: "owned here, preferred here: held", f: owned(here, ownerRecord{me, 7}, ownerFacts{}),
			want: routeVerdict{action: routeHold}},
		{name: "owned here, idle, another preferred: handed over", f: owned(there, ownerRecord{me, 7}, ownerFacts{}),
			want: routeVerdict{action: routeHandOver, to: ownerRecord{other, 9}}},
		{name: "owned here, another preferred, a call holds it: held", f: owned(there, ownerRecord{me, 7}, ownerFacts{busy: true}),
			want: routeVerdict{action: routeHold}},
		{name: "owned here, no live node (leaving): held",
			f: func() routeFacts {
				f := owned(there, ownerRecord{me, 7}, ownerFacts{})
				f.owner.live = nil
				return f
			}(),
			want: routeVerdict{action: routeHold}},
		{name: "handed over: forwarded to the new owner", f: owned(there, ownerRecord{me, 7}, ownerFacts{written: ownerRecord{other, 9}}),
			want: routeVerdict{action: routeForward, node: other}},

		// Owned elsewhere.
		{name: "live owner elsewhere: forwarded and remembered", f: owned(here, ownerRecord{third, 3}, ownerFacts{}),
			want: routeVerdict{action: routeForward, node: third, remember: true}},
		{name: "dead owner, another preferred: forwarded there", f: owned(there, ownerRecord{third, 2}, ownerFacts{}),
			want: routeVerdict{action: routeForward, node: other}},
		{name: "dead owner in this view, preferred here: the leader is asked", f: owned(here, ownerRecord{third, 2}, ownerFacts{}),
			want: routeVerdict{action: routeConfirm}},
		{name: "the leader says the owner lives: forwarded to it", f: owned(here, ownerRecord{third, 2}, ownerFacts{confirmed: ownerLives}),
			want: routeVerdict{action: routeForward, node: third}},
		{name: "the leader says the owner is dead: claimed", f: owned(here, ownerRecord{third, 2}, ownerFacts{confirmed: ownerDead}),
			want: routeVerdict{action: routeClaim, to: ownerRecord{me, 7}}},

		// No owner, or this node's own record of an earlier epoch.
		{name: "no owner, preferred here: claimed", f: owned(here, ownerRecord{}, ownerFacts{}),
			want: routeVerdict{action: routeClaim, to: ownerRecord{me, 7}}},
		{name: "no owner, another preferred: forwarded there", f: owned(there, ownerRecord{}, ownerFacts{}),
			want: routeVerdict{action: routeForward, node: other}},
		{name: "owned here under an earlier epoch: claimed again, nobody asked", f: owned(here, ownerRecord{me, 3}, ownerFacts{}),
			want: routeVerdict{action: routeClaim, to: ownerRecord{me, 7}}},
		{name: "claimed: held", f: owned(here, ownerRecord{}, ownerFacts{written: ownerRecord{me, 7}}),
			want: routeVerdict{action: routeHold}},
		{name: "no owner, no live node: refused",
			f: func() routeFacts {
				f := owned(here, ownerRecord{}, ownerFacts{})
				f.owner.live = nil
				return f
			}(),
			want: routeVerdict{action: routeRefuse}, why: ErrNotReady, says: "no live node"},
		{name: "lease lapsed: refused, never claimed",
			// liveNodes leaves a node out while its lease has lapsed; were
			// it in, the decision would still not claim without an epoch.
			f: func() routeFacts {
				f := owned(here, ownerRecord{}, ownerFacts{})
				f.epoch = 0
				return f
			}(),
			want: routeVerdict{action: routeRefuse}, why: ErrNotOwner, says: "lapsed"},

		// This node's lease has lapsed: it keeps its epoch and its lists
		// until a renewal says whether it was declared dead.
		{name: "held under the lapsed epoch: waits, no read", f: routeFacts{list: here, me: me, lapsed: 7, waiting: true},
			want: routeVerdict{action: routeRefuse}, why: ErrNotReady, says: "cannot renew its lease"},
		{name: "owned here under the lapsed epoch, not held: waits, never claimed or sent away",
			f: func() routeFacts {
				f := owned(there, ownerRecord{me, 7}, ownerFacts{})
				f.epoch, f.lapsed = 0, 7
				f.owner.live = []string{other} // liveNodes leaves this node out
				return f
			}(),
			want: routeVerdict{action: routeRefuse}, why: ErrNotReady, says: "cannot renew its lease"},
		{name: "owned here under an epoch before the lapsed one: refused, never claimed",
			f: func() routeFacts {
				f := owned(here, ownerRecord{me, 3}, ownerFacts{})
				f.epoch, f.lapsed = 0, 7
				f.owner.live = []string{me, other}
				return f
			}(),
			want: routeVerdict{action: routeRefuse}, why: ErrNotOwner, says: "lapsed"},
		{name: "owned elsewhere, lease lapsed here: forwarded to the live owner", f: func() routeFacts {
			f := owned(here, ownerRecord{third, 3}, ownerFacts{})
			f.epoch, f.lapsed = 0, 7
			return f
		}(),
			want: routeVerdict{action: routeForward, node: third, remember: true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.f.alive = func(node string, epoch uint64) bool { return alive[ownerRecord{node, epoch}] }
			got := decideRoute(&c.f)
			err := got.err
			got.err = nil
			if got != c.want {
				t.Errorf("verdict %+v, want %+v", got, c.want)
			}
			switch {
			case c.why == nil && err != nil:
				t.Errorf("error %v, want none", err)
			case c.why != nil && (!errors.Is(err, c.why) || !strings.Contains(err.Error(), c.says)):
				t.Errorf("error %v, want one wrapping %v that says %q", err, c.why, c.says)
			}
		})
	}
}
