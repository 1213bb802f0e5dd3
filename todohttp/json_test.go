package todohttp_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gotodo/todo"
	"github.com/gotodo/todo/todohttp"
)

// listsPage and entriesPage are the JSON API's pages, read strictly.
type listsPage struct {
	Lists []string `json:"lists"`
	Next  *string  `json:"next"`
}

type entriesPage struct {
	Entries []struct {
		ID    int    `json:"id"`
		Date  string `json:"date"`
		Title string `json:"title"`
	} `json:"entries"`
	Next     *string `json:"next"`
	Revision int64   `json:"revision"`
}

// getPage GETs target (a path and query, as "next" gives it), decodes the
// page into v, and returns its next link, checking that the Link header
// and the "next" member agree, and that neither is there on a last page.
func (s *webServer) getPage(t *testing.T, target string, v any, next func() *string) string {
	t.Helper()
	path, query, _ := strings.Cut(target, "?")
	r := s.do(t, "GET", path, query, "")
	if r.status != 200 || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET %s: %d %q", target, r.status, r.body)
	}
	dec := json.NewDecoder(strings.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("GET %s: %q: %v", target, r.body, err)
	}
	link := r.header.Get("Link")
	n := next()
	if n == nil {
		if link != "" || strings.Contains(r.body, `"next"`) {
			t.Fatalf("GET %s: a last page with Link %q: %q", target, link, r.body)
		}
		return ""
	}
	if *n == "" || link != "<"+*n+`>; rel="next"` {
		t.Fatalf("GET %s: next %q, Link %q", target, *n, link)
	}
	return *n
}

// TestHandler_ListsPages walks GET /lists page by page, following
// "next", at the default limit and at others: every list comes once, in
// order, whatever its name, and a page that ends the listing exactly has
// no next.
func TestHandler_ListsPages(t *testing.T) {
	t.Parallel()
	s := startWebServer(t, &todo.Options{Durability: todo.Async}, nil)
	ctx := context.Background()
	var want []string
	for i := range 150 {
		name := fmt.Sprintf("list %03d", i)
		switch i {
		case 7:
			name = "a/b?c=d&e"
		case 8:
			name = "élan <x>"
		case 9:
			name = "100%"
		}
		want = append(want, name)
		if _, err := s.sys.AddEntry(ctx, name, todo.Entry{Date: todo.Date{Year: 2013, Month: 12, Day: 19}, Title: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(want)
	for _, c := range []struct {
		first string
		pages []int // the size of each page
	}{
		{"/lists", []int{100, 50}},
		{"/lists?limit=1000", []int{150}},
		{"/lists?limit=150", []int{150}},
		{"/lists?limit=149", []int{149, 1}},
		{"/lists?limit=40", []int{40, 40, 40, 30}},
		{"/lists?limit=75", []int{75, 75}},
		{"/lists?limit=1&after=" + url.QueryEscape(want[148]), []int{1}},
		{"/lists?after=" + url.QueryEscape(want[149]), []int{0}},
		{"/lists?after=zzz", []int{1}}, // "élan <x>": names sort by bytes
		{"/lists?after=list+100&limit=30", []int{30, 20}},
	} {
		var got []string
		var sizes []int
		for target := c.first; target != ""; {
			var p listsPage
			target = s.getPage(t, target, &p, func() *string { return p.Next })
			if p.Lists == nil {
				t.Fatalf("%s: lists is null, want []", c.first)
			}
			got = append(got, p.Lists...)
			sizes = append(sizes, len(p.Lists))
			if len(sizes) > 10 {
				t.Fatalf("%s: more than 10 pages", c.first)
			}
		}
		start := 0
		if _, after, ok := strings.Cut(c.first, "after="); ok {
			a, _ := url.QueryUnescape(strings.Split(after, "&")[0])
			start, _ = slices.BinarySearch(want, a)
			if start < len(want) && want[start] == a {
				start++
			}
		}
		if !slices.Equal(got, want[start:]) || !slices.Equal(sizes, c.pages) {
			t.Errorf("%s: pages of %v, %q\nwant pages of %v, %q", c.first, sizes, got, c.pages, want[start:])
		}
	}
}

// TestHandler_EntriesPages walks a list's entries page by page, for
// every date and for one, while entries are added and deleted between
// pages: no entry that stays is skipped or repeated, and those added
// come after the cursor.
func TestHandler_EntriesPages(t *testing.T) {
	t.Parallel()
	s := startWebServer(t, &todo.Options{Durability: todo.Async}, nil)
	ctx := context.Background()
	const list = "Bob's list/2"
	day := func(d int) todo.Date { return todo.Date{Year: 2013, Month: 12, Day: d} }
	add := func(d int) int {
		e, err := s.sys.AddEntry(ctx, list, todo.Entry{Date: day(d), Title: "t" + strconv.Itoa(d)})
		if err != nil {
			t.Fatal(err)
		}
		return e.ID
	}
	for i := range 23 {
		add(19 + i%3) // ids 1..23 over the 19th, 20th and 21st
	}
	walk := func(first string, between func(page int)) (ids []int, sizes []int, nexts []string) {
		for target := first; target != ""; {
			var p entriesPage
			target = s.getPage(t, target, &p, func() *string { return p.Next })
			for _, e := range p.Entries {
				ids = append(ids, e.ID)
			}
			sizes = append(sizes, len(p.Entries))
			nexts = append(nexts, target)
			if between != nil {
				between(len(sizes))
			}
			if len(sizes) > 20 {
				t.Fatalf("%s: more than 20 pages", first)
			}
		}
		return ids, sizes, nexts
	}
	seq := func(lo, hi, step int) []int {
		var s []int
		for i := lo; i <= hi; i += step {
			s = append(s, i)
		}
		return s
	}
	path := "/lists/" + url.PathEscape(list) + "/entries"

	ids, sizes, nexts := walk(path+"?limit=10", nil)
	if !slices.Equal(ids, seq(1, 23, 1)) || !slices.Equal(sizes, []int{10, 10, 3}) {
		t.Errorf("every date: ids %v, pages %v", ids, sizes)
	}
	if nexts[0] != path+"?after=10&limit=10" {
		t.Errorf("first next %q", nexts[0])
	}
	ids, sizes, nexts = walk(path+"?date=20131220&limit=3", nil)
	if !slices.Equal(ids, seq(2, 23, 3)) || !slices.Equal(sizes, []int{3, 3, 2}) {
		t.Errorf("the 20th: ids %v, pages %v", ids, sizes)
	}
	if nexts[0] != path+"?after=8&date=2013-12-20&limit=3" {
		t.Errorf("first next of a date %q", nexts[0])
	}
	ids, sizes, _ = walk(path, nil)
	if !slices.Equal(ids, seq(1, 23, 1)) || !slices.Equal(sizes, []int{23}) {
		t.Errorf("default limit: ids %v, pages %v", ids, sizes)
	}
	ids, _, _ = walk(path+"?after=20", nil)
	if !slices.Equal(ids, []int{21, 22, 23}) {
		t.Errorf("after=20: %v", ids)
	}
	ids, _, _ = walk(path+"?after=23&limit=1", nil)
	if len(ids) != 0 {
		t.Errorf("after the last: %v", ids)
	}

	// Changes between pages: after page 1 (ids 1-5), delete 3 (seen) and
	// 7 (not yet seen), add 24; after page 2, add 25 on another date.
	ids, _, _ = walk(path+"?limit=5", func(page int) {
		switch page {
		case 1:
			for _, id := range []int{3, 7} {
				if err := s.sys.DeleteEntry(ctx, list, id); err != nil {
					t.Fatal(err)
				}
			}
			add(19)
		case 2:
			add(25)
		}
	})
	want := append(seq(1, 6, 1), seq(8, 25, 1)...)
	if !slices.Equal(ids, want) {
		t.Errorf("while changing: %v, want %v", ids, want)
	}

	// A list that does not exist is an empty last page.
	var p entriesPage
	if next := s.getPage(t, "/lists/nobody/entries?limit=5", &p, func() *string { return p.Next }); next != "" || p.Entries == nil || len(p.Entries) != 0 {
		t.Errorf("nobody: %+v %q", p, next)
	}
}

// TestHandler_ErrorShape checks the JSON API's error body exactly: one
// line of JSON, "error" always, "field" only when an input is at fault.
func TestHandler_ErrorShape(t *testing.T) {
	t.Parallel()
	s := startWebServer(t, nil, &todohttp.HandlerOptions{Timeout: time.Minute})
	for _, c := range []struct{ method, path, query, body, want string }{
		{"POST", "/lists/bob/entries", "", `{"date":"2013-12-19"}`, `{"error":"missing or empty \"title\"","field":"title"}` + "\n"},
		{"GET", "/lists", "limit=0", "", `{"error":"limit 0 is not in 1..1000","field":"limit"}` + "\n"},
		{"DELETE", "/lists/bob/entries/5", "", "", `{"error":"entry not found: id 5","field":"id"}` + "\n"},
		{"GET", "/lists", "a;b", "", `{"error":"bad query: invalid semicolon separator in query"}` + "\n"},
		{"PUT", "/lists", "", "", `{"error":"method PUT not allowed: use GET, HEAD"}` + "\n"},
	} {
		if r := s.do(t, c.method, c.path, c.query, c.body); r.body != c.want {
			t.Errorf("%s %s?%s: %q, want %q", c.method, c.path, c.query, r.body, c.want)
		}
	}
}
