package todo_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/gotodo/todo"
)

// scanDay is a day of December 2013.
func scanDay(d int) todo.Date { return todo.Date{Year: 2013, Month: 12, Day: d} }

// collect ranges over seq and returns what it yielded, up to stop items
// (0: all), and the error that ended it.
func collect[T any](seq func(func(T, error) bool), stop int) ([]T, error) {
	var out []T
	for v, err := range seq {
		if err != nil {
			return out, err
		}
		out = append(out, v)
		if len(out) == stop {
			break
		}
	}
	return out, nil
}

func TestSystem_ScanLists(t *testing.T) {
	t.Parallel()
	sys := openMemSystem(t, nil)
	ctx := context.Background()
	names := []string{"b", "a", "é", "a/b", "ab", "Z"}
	for _, n := range names {
		if _, err := sys.AddEntry(ctx, n, todo.Entry{Date: scanDay(19), Title: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	sorted := slices.Sorted(slices.Values(names)) // Z a a/b ab b é
	for _, c := range []struct {
		after string
		stop  int
		want  []string
	}{
		{"", 0, sorted},
		{"a", 0, sorted[2:]},
		{"a/", 0, sorted[2:]}, // not a name: the scan starts where it would sort
		{"a/b", 0, sorted[3:]},
		{"é", 0, nil},
		{"\U0010FFFF", 0, nil},
		{"", 2, sorted[:2]}, // a caller that stops early
	} {
		got, err := collect(sys.ScanLists(ctx, c.after), c.stop)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("ScanLists(%q) stopped at %d: %q %v, want %q", c.after, c.stop, got, err, c.want)
		}
	}
	// Pages are the same scan, cut.
	var paged []string
	for after := ""; ; {
		page, err := sys.ListsPage(ctx, after, 4)
		if err != nil {
			t.Fatal(err)
		}
		paged = append(paged, page...)
		if len(page) < 4 {
			break
		}
		after = page[len(page)-1]
	}
	if !slices.Equal(paged, sorted) {
		t.Errorf("pages of 4: %q", paged)
	}
	for _, limit := range []int{0, -1} {
		if _, err := sys.ListsPage(ctx, "", limit); !errors.Is(err, todo.ErrInvalidLimit) {
			t.Errorf("ListsPage limit %d: %v", limit, err)
		}
	}
}

func TestSystem_ScanLists_Errors(t *testing.T) {
	t.Parallel()
	sys := openMemSystem(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	got, err := collect(sys.ScanLists(ctx, ""), 0)
	if !errors.Is(err, context.Canceled) || len(got) != 0 {
		t.Errorf("canceled: %q %v", got, err)
	}
	if err := sys.Close(); err != nil {
		t.Fatal(err)
	}
	// The error is yielded once, and the scan stops.
	n := 0
	for _, err := range sys.ScanLists(context.Background(), "") {
		n++
		if !errors.Is(err, todo.ErrClosed) {
			t.Errorf("after Close: %v", err)
		}
	}
	if n != 1 {
		t.Errorf("after Close: %d items, want 1 error", n)
	}
	if _, err := sys.ListsPage(context.Background(), "", 10); !errors.Is(err, todo.ErrClosed) {
		t.Errorf("ListsPage after Close: %v", err)
	}
}

func TestServer_Scan(t *testing.T) {
	t.Parallel()
	sys := openMemSystem(t, nil)
	ctx := context.Background()
	s := sys.ServerProcess("bob")
	for i := range 12 {
		if _, err := s.AddEntry(ctx, todo.Entry{Date: scanDay(19 + i%3), Title: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteEntry(ctx, 5); err != nil {
		t.Fatal(err)
	}
	ids := func(es []todo.Entry) []int {
		var out []int
		for _, e := range es {
			out = append(out, e.ID)
		}
		return out
	}
	for _, c := range []struct {
		d       todo.Date
		afterID int
		stop    int
		want    []int
	}{
		{todo.Date{}, 0, 0, []int{1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12}},
		{todo.Date{}, 4, 0, []int{6, 7, 8, 9, 10, 11, 12}},
		{todo.Date{}, 5, 0, []int{6, 7, 8, 9, 10, 11, 12}}, // a deleted id is still a cursor
		{todo.Date{}, -3, 0, []int{1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12}},
		{todo.Date{}, 12, 0, nil},
		{todo.Date{}, 0, 3, []int{1, 2, 3}},
		{scanDay(20), 0, 0, []int{2, 8, 11}},
		{scanDay(20), 2, 0, []int{8, 11}},
		{scanDay(20), 3, 2, []int{8, 11}},
		{scanDay(22), 0, 0, nil},
	} {
		got, err := collect(s.Scan(ctx, c.d, c.afterID), c.stop)
		if err != nil || !slices.Equal(ids(got), c.want) {
			t.Errorf("Scan(%v, %d) stopped at %d: %v %v, want %v", c.d, c.afterID, c.stop, ids(got), err, c.want)
		}
	}
	page, err := sys.EntriesPage(ctx, "bob", scanDay(19), 1, 2)
	if err != nil || !slices.Equal(ids(page), []int{4, 7}) {
		t.Errorf("EntriesPage: %v %v", ids(page), err)
	}
	for _, c := range []struct {
		list  string
		d     todo.Date
		limit int
		want  error
	}{
		{"bob", todo.Date{Year: 2013, Month: 2, Day: 30}, 5, todo.ErrInvalidDate},
		{"", todo.Date{}, 5, todo.ErrInvalidName},
		{"b\x00b", todo.Date{}, 5, todo.ErrInvalidName},
		{"bob", todo.Date{}, 0, todo.ErrInvalidLimit},
	} {
		if _, err := sys.EntriesPage(ctx, c.list, c.d, 0, c.limit); !errors.Is(err, c.want) {
			t.Errorf("EntriesPage(%q, %v, limit %d): %v, want %v", c.list, c.d, c.limit, err, c.want)
		}
	}
	if got, err := collect(sys.ServerProcess("").Scan(ctx, todo.Date{}, 0), 0); !errors.Is(err, todo.ErrInvalidName) || len(got) != 0 {
		t.Errorf("Scan of an invalid name: %v %v", got, err)
	}
}

// TestSystem_ListsPage_DataDir pages through the lists of a data
// directory that are stored only (from before a reopen), both stored and
// in memory, and in memory with changes not yet stored (Async): every
// page size gives each name once, in order, as Lists does.
func TestSystem_ListsPage_DataDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := context.Background()
	var want []string
	add := func(sys *todo.System, n string) {
		if _, err := sys.AddEntry(ctx, n, todo.Entry{Date: scanDay(19), Title: "x"}); err != nil {
			t.Fatal(err)
		}
		want = append(want, n)
	}
	sys, err := todo.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 150 {
		add(sys, fmt.Sprintf("old-%03d", i))
	}
	if err := sys.Close(); err != nil {
		t.Fatal(err)
	}
	sys, err = todo.Open(dir, &todo.Options{Durability: todo.Async, AsyncDelay: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	for i := range 50 { // loaded again: in memory and stored
		if _, err := sys.AddEntry(ctx, fmt.Sprintf("old-%03d", i*3), todo.Entry{Date: scanDay(20), Title: "y"}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 100 { // in memory, not stored yet
		add(sys, fmt.Sprintf("new-%03d", 99-i))
	}
	slices.Sort(want)
	all, err := sys.Lists(ctx)
	if err != nil || !slices.Equal(all, want) {
		t.Fatalf("Lists: %d names, %v; want %d", len(all), err, len(want))
	}
	for _, limit := range []int{1, 7, 100, 1000} {
		var paged []string
		for after := ""; ; {
			page, err := sys.ListsPage(ctx, after, limit)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.IsSorted(page) || len(page) > limit {
				t.Fatalf("limit %d: a page of %d, sorted %v", limit, len(page), slices.IsSorted(page))
			}
			paged = append(paged, page...)
			if len(page) < limit {
				break
			}
			after = page[len(page)-1]
		}
		if !slices.Equal(paged, want) {
			t.Errorf("pages of %d: %d names, want %d", limit, len(paged), len(want))
		}
	}
}
