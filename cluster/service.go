package cluster

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/gotodo/todo"
)

var _ todo.Watcher = (*Node)(nil)

// do runs a call on list where it is served: through the local System
// when this node owns the list, else forwarded to the owner. A call
// refused with a retryable error (the list is moving, its owner died, the
// fence failed: nothing was changed) is routed and sent again, with a
// growing pause, until ctx ends, bounded by RequestTimeout when ctx has
// no deadline; then the last refusal is returned. Only the node the call
// came to retries it.
func (n *Node) do(ctx context.Context, list string, hops int, local func(context.Context) error, remote func(context.Context, string) error) error {
	if err := validName(list); err != nil {
		return err
	}
	if n.leaving.Load() && hops == 0 && n.isClosed() {
		return todo.ErrClosed
	}
	if !n.isReady() {
		return ErrNotReady
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, n.opts.RequestTimeout)
		defer cancel()
	}
	pause := 5 * time.Millisecond
	for {
		err := n.try(ctx, list, hops, local, remote)
		if err == nil || !isRetryable(err) || hops > 0 {
			// A forwarded call is retried by the node it came from,
			// which routes it afresh: retries at every hop would
			// multiply.
			return err
		}
		n.stats.retries.Add(1)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(pause):
		}
		pause = min(2*pause, 200*time.Millisecond)
	}
}

func (n *Node) try(ctx context.Context, list string, hops int, local func(context.Context) error, remote func(context.Context, string) error) error {
	isLocal, node, err := n.route(ctx, list)
	if err != nil {
		return err
	}
	if isLocal {
		defer n.held.release(list)
		noteServed(ctx, n.opts.Name, n.epochNow(time.Now()))
		return local(ctx)
	}
	if hops >= maxHops {
		return fmt.Errorf("%w: list %q is served by node %s", ErrNotOwner, list, node)
	}
	return remote(ctx, node)
}

func (n *Node) isClosed() bool {
	select {
	case <-n.stop:
		return true
	default:
		return false
	}
}

// AddEntry adds e to the list, on the node that owns it.
func (n *Node) AddEntry(ctx context.Context, list string, e todo.Entry) (todo.Entry, error) {
	res, _, err := n.addEntry(ctx, list, e, 0)
	return res, err
}

// AddEntryRev is AddEntry, with the list's revision after the add.
func (n *Node) AddEntryRev(ctx context.Context, list string, e todo.Entry) (todo.Entry, int64, error) {
	return n.addEntry(ctx, list, e, 0)
}

func (n *Node) addEntry(ctx context.Context, list string, e todo.Entry, hops int) (res todo.Entry, rev int64, err error) {
	err = n.do(ctx, list, hops, func(ctx context.Context) (err error) {
		res, rev, err = n.sys.AddEntryRev(ctx, list, e)
		return err
	}, func(ctx context.Context, node string) error {
		rep, err := n.forward(ctx, node, &rpcRequest{op: rpcAdd, hops: hops + 1, list: list, entry: e})
		res, rev = rep.entry, rep.rev
		return err
	})
	return res, rev, err
}

// UpdateEntry sets what p sets in the entry with the given id, on the
// node that owns the list: the patch is forwarded there as an add is, and
// applied in the list's server.
func (n *Node) UpdateEntry(ctx context.Context, list string, id int, p todo.Patch) (todo.Entry, error) {
	res, _, err := n.updateEntry(ctx, list, id, p, 0)
	return res, err
}

// UpdateEntryRev is UpdateEntry, with the list's revision after the
// update.
func (n *Node) UpdateEntryRev(ctx context.Context, list string, id int, p todo.Patch) (todo.Entry, int64, error) {
	return n.updateEntry(ctx, list, id, p, 0)
}

func (n *Node) updateEntry(ctx context.Context, list string, id int, p todo.Patch, hops int) (res todo.Entry, rev int64, err error) {
	err = n.do(ctx, list, hops, func(ctx context.Context) (err error) {
		res, rev, err = n.sys.UpdateEntryRev(ctx, list, id, p)
		return err
	}, func(ctx context.Context, node string) error {
		rep, err := n.forward(ctx, node, &rpcRequest{op: rpcUpdate, hops: hops + 1, list: list, id: id, entry: todo.Entry{Date: p.Date, Title: p.Title}})
		res, rev = rep.entry, rep.rev
		return err
	})
	return res, rev, err
}

// DeleteEntry removes the entry with the given id, on the owner.
func (n *Node) DeleteEntry(ctx context.Context, list string, id int) error {
	_, err := n.deleteEntry(ctx, list, id, 0)
	return err
}

// DeleteEntryRev is DeleteEntry, with the list's revision after the
// delete.
func (n *Node) DeleteEntryRev(ctx context.Context, list string, id int) (int64, error) {
	return n.deleteEntry(ctx, list, id, 0)
}

func (n *Node) deleteEntry(ctx context.Context, list string, id int, hops int) (rev int64, err error) {
	err = n.do(ctx, list, hops, func(ctx context.Context) (err error) {
		rev, err = n.sys.DeleteEntryRev(ctx, list, id)
		return err
	}, func(ctx context.Context, node string) error {
		rep, err := n.forward(ctx, node, &rpcRequest{op: rpcDelete, hops: hops + 1, list: list, id: id})
		rev = rep.rev
		return err
	})
	return rev, err
}

// AppendEntries appends the entries of date d of the list to dst, read on
// the owner: it holds the list's latest state.
func (n *Node) AppendEntries(ctx context.Context, list string, dst []todo.Entry, d todo.Date) ([]todo.Entry, error) {
	return n.appendEntries(ctx, list, dst, d, 0)
}

func (n *Node) appendEntries(ctx context.Context, list string, dst []todo.Entry, d todo.Date, hops int) ([]todo.Entry, error) {
	mark := len(dst)
	err := n.do(ctx, list, hops, func(ctx context.Context) (err error) {
		dst, err = n.sys.AppendEntries(ctx, list, dst[:mark], d)
		return err
	}, func(ctx context.Context, node string) error {
		rep, err := n.forward(ctx, node, &rpcRequest{op: rpcEntries, hops: hops + 1, list: list, entry: todo.Entry{Date: d}})
		dst = append(dst[:mark], rep.entries...)
		return err
	})
	return dst, err
}

// AllEntries returns every entry of the list, read on the owner.
func (n *Node) AllEntries(ctx context.Context, list string) ([]todo.Entry, error) {
	return n.allEntries(ctx, list, 0)
}

func (n *Node) allEntries(ctx context.Context, list string, hops int) (res []todo.Entry, err error) {
	err = n.do(ctx, list, hops, func(ctx context.Context) (err error) {
		res, err = n.sys.AllEntries(ctx, list)
		return err
	}, func(ctx context.Context, node string) error {
		rep, err := n.forward(ctx, node, &rpcRequest{op: rpcAll, hops: hops + 1, list: list})
		res = rep.entries
		return err
	})
	return res, err
}

// Lists returns the names of every list stored in the cluster, sorted:
// those whose changes some node has stored in the stream.
func (n *Node) Lists(ctx context.Context) ([]string, error) {
	if n.isClosed() {
		return nil, todo.ErrClosed
	}
	if !n.isReady() {
		return nil, ErrNotReady
	}
	names, err := n.store.Lists(ctx)
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	return names, nil
}

// errInvalidLimit is the error of a page limit below 1.
func errInvalidLimit(limit int) error {
	return fmt.Errorf("%w: page limit %d is below 1", todo.ErrInvalidLimit, limit)
}

// ListsPage returns, sorted, the names of at most limit lists that sort
// after after ("" for the first page), of those Lists returns.
func (n *Node) ListsPage(ctx context.Context, after string, limit int) ([]string, error) {
	if limit < 1 {
		return nil, errInvalidLimit(limit)
	}
	names, err := n.Lists(ctx)
	if err != nil {
		return nil, err
	}
	i, found := slices.BinarySearch(names, after)
	if found {
		i++
	}
	names = names[i:]
	return slices.Clip(names[:min(limit, len(names))]), nil
}

// EntriesPage returns, in id order, at most limit entries of the list
// whose ids are over afterID: those of date d, or of every date when d is
// the zero Date. The page is cut on the owner, so only it travels.
func (n *Node) EntriesPage(ctx context.Context, list string, d todo.Date, afterID, limit int) ([]todo.Entry, error) {
	res, _, err := n.EntriesPageRev(ctx, list, d, afterID, limit)
	return res, err
}

// EntriesPageRev is EntriesPage with the revision the list stood at when
// the page was cut, on the owner (see todo.Watcher).
func (n *Node) EntriesPageRev(ctx context.Context, list string, d todo.Date, afterID, limit int) ([]todo.Entry, int64, error) {
	if limit < 1 {
		return nil, 0, errInvalidLimit(limit)
	}
	return n.entriesPage(ctx, list, d, afterID, limit, 0)
}

func (n *Node) entriesPage(ctx context.Context, list string, d todo.Date, afterID, limit, hops int) (res []todo.Entry, rev int64, err error) {
	err = n.do(ctx, list, hops, func(ctx context.Context) (err error) {
		res, rev, err = n.sys.EntriesPageRev(ctx, list, d, afterID, limit)
		return err
	}, func(ctx context.Context, node string) error {
		rep, err := n.forward(ctx, node, &rpcRequest{op: rpcPage, hops: hops + 1, list: list, id: afterID, limit: limit, entry: todo.Entry{Date: d}})
		res, rev = rep.entries, rep.rev
		return err
	})
	return res, rev, err
}
