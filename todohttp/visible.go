package todohttp

import (
	"context"
	"slices"
	"strings"

	"github.com/gotodo/todo"
)

// visibleLists returns, sorted, the names of at most n lists that sort
// after after and that who may read: every list when who is nil.
//
// It asks the Service only for the names its patterns can match, so that
// a page is full and its cursor right however many lists it may not see,
// and no name it may not see is ever put in an answer (a cursor
// included). Each pattern is a range of names in byte order, one name or
// every name with a prefix; taken in order, each range is read from its
// first name for as long as the names are in it. That costs a Service
// call per range reached and per page of its names, never a scan of names
// the principal may not see.
func visibleLists(ctx context.Context, svc todo.Service, who *Principal, after string, n int) ([]string, error) {
	if who == nil {
		return svc.ListsPage(ctx, after, n)
	}
	var out []string
ranges:
	for _, rg := range nameRanges(who.Lists) {
		if rg.endsBefore(after) {
			continue
		}
		from := after
		if rg.Name > after {
			from = justBefore(rg.Name)
		}
		for len(out) < n {
			ask := n - len(out)
			if !rg.Prefix {
				ask = 1 // one name can be in it
			}
			names, err := svc.ListsPage(ctx, from, ask)
			if err != nil {
				return nil, err
			}
			for _, name := range names {
				if !rg.Match(name) {
					continue ranges // the names past the range are another's
				}
				out = append(out, name)
			}
			if len(names) < ask {
				return out, nil // there are no more names at all
			}
			from = names[len(names)-1]
			if !rg.Prefix {
				break
			}
		}
		if len(out) == n {
			return out, nil
		}
	}
	return out, nil
}

// nameRanges returns patterns as ranges of names, disjoint and in order:
// sorted by name (a prefix before the exact name it is), without those
// another one holds ("team-a" and "team-b*" under "team-*").
func nameRanges(patterns []ListPattern) []ListPattern {
	ps := slices.Clone(patterns)
	slices.SortFunc(ps, func(a, b ListPattern) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		switch {
		case a.Prefix == b.Prefix:
			return 0
		case a.Prefix:
			return -1
		}
		return 1
	})
	out := ps[:0]
	for _, p := range ps {
		if len(out) > 0 {
			last := out[len(out)-1]
			if last.Prefix && strings.HasPrefix(p.Name, last.Name) || last == p {
				continue
			}
		}
		out = append(out, p)
	}
	return out
}

// endsBefore reports whether every name in p sorts at or before after.
func (p ListPattern) endsBefore(after string) bool {
	if p.Prefix {
		return after > p.Name && !strings.HasPrefix(after, p.Name)
	}
	return p.Name <= after
}

// justBefore returns a string that sorts before name and after every
// list name that sorts before name: ListsPage(justBefore(name)) starts at
// name. It is name with its last byte one less and 0xFF after it: no list
// name holds a 0xFF byte (it is never in UTF-8), so none sorts between.
// A last byte of 0 (never in a list name) is dropped instead.
func justBefore(name string) string {
	last := name[len(name)-1]
	if last == 0 {
		return name[:len(name)-1]
	}
	return name[:len(name)-1] + string([]byte{last - 1, 0xff})
}
