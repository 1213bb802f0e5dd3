package todo

import (
	"cmp"
	"container/heap"
	"context"
	"fmt"
	"iter"
	"slices"
)

// Scans walk the lists of a System, or the entries of a list, in order,
// from a cursor; pages are scans cut at a limit, the form a handler or a
// cluster node forwards. A scan yields each item as it goes, so that a
// caller that stops early, or keeps only a page, never holds the rest.
//
// Server.Scan of a loaded list reads the entries its server published,
// in place: they are never written to again (see List), so nothing is
// copied, whatever the list holds. ScanLists reads System.Lists once per
// scan: the store keeps the names in memory (the data directory's store
// walks its directories once, at the first call), so a scan costs a sort
// of the names, not a walk; ListsPage not even the sort.

// scanCheckEvery is how many items a scan yields between two looks at its
// ctx: a look may cost the allocations of a lazy request context.
const scanCheckEvery = 1024

// ScanLists returns an iterator over the names of the lists of sys,
// stored or in memory, in sorted (byte) order, starting after the name
// after ("" starts at the first). Each range over it scans anew. On an
// error (ctx ended, the System is closed, the store cannot be listed) it
// yields the error once, with an empty name, and stops.
//
// A scan sees every list that was stored or in memory when it began,
// once; a list first written during the scan may be seen or not. Resuming
// from the last name seen, as pages do, never repeats a name, but misses
// a list created since that sorts before the cursor.
func (sys *System) ScanLists(ctx context.Context, after string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		names, err := sys.Lists(ctx)
		if err != nil {
			yield("", err)
			return
		}
		i, found := slices.BinarySearch(names, after)
		if found {
			i++
		}
		for n, name := range names[i:] {
			if n%scanCheckEvery == scanCheckEvery-1 {
				if err := ctx.Err(); err != nil {
					yield("", err)
					return
				}
			}
			if !yield(name, nil) {
				return
			}
		}
	}
}

// Scan returns an iterator over the entries of the list in id order, from
// the first id over afterID (0 starts at the first entry): those of date
// d, or of every date when d is the zero Date. Each range over it scans
// anew. On an error (an invalid date or name, a list that cannot be
// loaded, ctx ended) it yields the error once, with a zero Entry, and
// stops.
//
// A scan sees the list as it was at one moment during the call: every
// change acknowledged before the scan began, and never a change that was
// not stored. Ids only grow, so resuming from the last id seen, as pages
// do, never repeats or skips an entry that stays; entries added since come
// after it.
func (s *Server) Scan(ctx context.Context, d Date, afterID int) iter.Seq2[Entry, error] {
	return func(yield func(Entry, error) bool) {
		entries, err := s.view(ctx, d)
		if err != nil {
			yield(Entry{}, err)
			return
		}
		i, found := slices.BinarySearchFunc(entries, afterID, func(e Entry, id int) int { return cmp.Compare(e.ID, id) })
		if found {
			i++
		}
		for n, e := range entries[i:] {
			if n%scanCheckEvery == scanCheckEvery-1 {
				if err := ctx.Err(); err != nil {
					yield(Entry{}, err)
					return
				}
			}
			if !yield(e, nil) {
				return
			}
		}
	}
}

// view returns the entries of date d of the list, or of every date when d
// is the zero Date, in id order, to be read and not written: those its
// server published when the list is loaded, or else those a read loaded.
func (s *Server) view(ctx context.Context, d Date) ([]Entry, error) {
	if s.err != nil {
		return nil, s.err
	}
	if d == (Date{}) {
		if entries, ok := s.sys.viewAll(s.name); ok {
			return entries, nil
		}
		return s.AllEntries(ctx)
	}
	if !d.Valid() {
		return nil, fmt.Errorf("%w: %v", ErrInvalidDate, d)
	}
	if entries, ok := s.sys.viewDate(s.name, d); ok {
		return entries, nil
	}
	return s.Entries(ctx, d)
}

// ListsPage returns at most limit names of ScanLists(ctx, after): a page
// of a listing. A limit below 1 gives an error wrapping
// [ErrInvalidLimit].
//
// It costs a look at each name, not a sort of them all: of 100,000 lists,
// it keeps the limit smallest names after the cursor as it looks.
func (sys *System) ListsPage(ctx context.Context, after string, limit int) ([]string, error) {
	if limit < 1 {
		return nil, fmt.Errorf("%w: %d", ErrInvalidLimit, limit)
	}
	sel := smallest{limit: limit, in: make(map[string]struct{})}
	err := sys.eachList(ctx, func(name string) {
		if name > after {
			sel.offer(name)
		}
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(sel.names)
	return sel.names, nil
}

// smallest keeps the limit smallest distinct names offered to it: a
// max-heap of them (names[0] the largest), and the set of them.
type smallest struct {
	limit int
	names []string
	in    map[string]struct{}
}

func (s *smallest) offer(name string) {
	if _, ok := s.in[name]; ok {
		return
	}
	if len(s.names) < s.limit {
		s.in[name] = struct{}{}
		heap.Push((*maxHeap)(&s.names), name)
		return
	}
	if name >= s.names[0] {
		return
	}
	delete(s.in, s.names[0])
	s.in[name] = struct{}{}
	s.names[0] = name
	heap.Fix((*maxHeap)(&s.names), 0)
}

// maxHeap is a heap of names, the largest first.
type maxHeap []string

func (h maxHeap) Len() int           { return len(h) }
func (h maxHeap) Less(i, j int) bool { return h[i] > h[j] }
func (h maxHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *maxHeap) Push(x any)        { *h = append(*h, x.(string)) }
func (h *maxHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// EntriesPage returns at most limit entries of
// ServerProcess(list).Scan(ctx, d, afterID): a page of a list's entries.
// A limit below 1 gives an error wrapping [ErrInvalidLimit].
func (sys *System) EntriesPage(ctx context.Context, list string, d Date, afterID, limit int) ([]Entry, error) {
	s := Server{sys: sys, name: list, err: validName(list)}
	return page(s.Scan(ctx, d, afterID), limit)
}

// EntriesPageRev is EntriesPage with the revision of the list the page
// was cut from (see [Service]).
func (sys *System) EntriesPageRev(ctx context.Context, list string, d Date, afterID, limit int) ([]Entry, int64, error) {
	if limit < 1 {
		return nil, 0, fmt.Errorf("%w: %d", ErrInvalidLimit, limit)
	}
	s := Server{sys: sys, name: list, err: validName(list)}
	entries, rev, err := s.viewRev(ctx, d)
	if err != nil {
		return nil, 0, err
	}
	i, found := slices.BinarySearchFunc(entries, afterID, func(e Entry, id int) int { return cmp.Compare(e.ID, id) })
	if found {
		i++
	}
	entries = entries[i:]
	return slices.Clone(entries[:min(limit, len(entries))]), rev, nil
}

// page collects at most limit items of seq.
func page[T any](seq iter.Seq2[T, error], limit int) ([]T, error) {
	if limit < 1 {
		return nil, fmt.Errorf("%w: %d", ErrInvalidLimit, limit)
	}
	var out []T
	for v, err := range seq {
		if err != nil {
			return nil, err
		}
		out = append(out, v)
		if len(out) == limit {
			break
		}
	}
	return out, nil
}
