// Package clustertest holds what the cluster's tests share: a history of
// acknowledged operations and its checker. It is not for use outside
// tests.
package clustertest

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/gotodo/todo"
)

// Outcome is what a client learned of an add.
type Outcome int

const (
	// Acked: the add was acknowledged with its id; the entry must be
	// there, once, under that id.
	Acked Outcome = iota
	// Refused: the add was refused for sure (a retryable 503 that says
	// nothing was changed, a 400): the entry must not be there.
	Refused
	// Unknown: the answer never came (a timeout, a lost connection): the
	// entry may be there, at most once.
	Unknown
)

// Op is one add as the client saw it.
type Op struct {
	List    string
	Title   string // unique in the history
	ID      int    // for Acked
	Outcome Outcome
	Node    string        // where it was sent
	Start   time.Duration // since the history began
	End     time.Duration
	Err     string
}

// History records the adds of a test. It is safe for concurrent use.
type History struct {
	start time.Time

	mu  sync.Mutex // guards ops
	ops []Op
}

// NewHistory begins a history now.
func NewHistory() *History { return &History{start: time.Now()} }

// Since returns the time since the history began.
func (h *History) Since() time.Duration { return time.Since(h.start) }

// Record records an add that began at start.
func (h *History) Record(op Op, start time.Time) {
	op.Start, op.End = start.Sub(h.start), time.Since(h.start)
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

// Ops returns a copy of the operations recorded.
func (h *History) Ops() []Op {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.ops)
}

// Check compares the history with the final entries of each list and
// returns every violation: an acknowledged entry lost or changed, an
// entry present twice, an entry present though its add was refused, an
// entry no add in the history explains, an id held twice.
func (h *History) Check(final map[string][]todo.Entry) []string {
	var problems []string
	byTitle := make(map[string]Op)
	for _, op := range h.Ops() {
		byTitle[op.Title] = op
	}
	lists := make(map[string]bool)
	for _, op := range h.Ops() {
		lists[op.List] = true
	}
	for list := range lists {
		entries := final[list]
		ids := make(map[int]bool)
		seen := make(map[string]int)
		for _, e := range entries {
			if ids[e.ID] {
				problems = append(problems, fmt.Sprintf("list %q: id %d twice", list, e.ID))
			}
			ids[e.ID] = true
			seen[e.Title]++
			op, ok := byTitle[e.Title]
			switch {
			case !ok:
				problems = append(problems, fmt.Sprintf("list %q: entry %d %q that no add explains", list, e.ID, e.Title))
			case op.List != list:
				problems = append(problems, fmt.Sprintf("list %q: entry %q added to list %q", list, e.Title, op.List))
			case op.Outcome == Refused:
				problems = append(problems, fmt.Sprintf("list %q: entry %d %q present though its add was refused at %v on %s: %s", list, e.ID, e.Title, op.Start, op.Node, op.Err))
			case op.Outcome == Acked && op.ID != e.ID:
				problems = append(problems, fmt.Sprintf("list %q: entry %q acknowledged as id %d, stored as id %d", list, e.Title, op.ID, e.ID))
			}
		}
		for title, n := range seen {
			if n > 1 {
				problems = append(problems, fmt.Sprintf("list %q: entry %q present %d times", list, title, n))
			}
		}
		for _, op := range h.Ops() {
			if op.List == list && op.Outcome == Acked && seen[op.Title] == 0 {
				problems = append(problems, fmt.Sprintf("list %q: acknowledged entry %d %q (acked at %v by %s) lost", list, op.ID, op.Title, op.End, op.Node))
			}
		}
	}
	slices.Sort(problems)
	return problems
}

// Counts returns how many adds had each outcome.
func (h *History) Counts() (acked, refused, unknown int) {
	for _, op := range h.Ops() {
		switch op.Outcome {
		case Acked:
			acked++
		case Refused:
			refused++
		default:
			unknown++
		}
	}
	return
}

// LongestGap returns the longest time between two acknowledgements from
// from to to (0 for the end of the history), and when it began: how long
// writes stalled.
func (h *History) LongestGap(from, to time.Duration) (gap, at time.Duration) {
	var ends []time.Duration
	for _, op := range h.Ops() {
		if op.Outcome == Acked && op.End >= from && (to == 0 || op.End <= to) {
			ends = append(ends, op.End)
		}
	}
	slices.Sort(ends)
	prev := from
	if to != 0 {
		ends = append(ends, to)
	}
	for _, e := range ends {
		if e-prev > gap {
			gap, at = e-prev, prev
		}
		prev = e
	}
	return gap, at
}
