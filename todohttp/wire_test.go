package todohttp_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/gotodo/todo/todohttp"
)

// decodeExact decodes body strictly into v (no member v lacks), and
// checks that v encodes back to body exactly: the exported type then
// names every member the handler writes, in its order, with its
// omissions.
func decodeExact(t *testing.T, what, body string, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %q does not decode into %T: %v", what, body, v, err)
	}
	again, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if string(again)+"\n" != body {
		t.Errorf("%s: %T encodes %s, the handler wrote %q", what, v, again, body)
	}
}

// TestWire_Types sends the exported request bodies to a real server and
// reads every kind of answer into the exported types, byte for byte.
func TestWire_Types(t *testing.T) {
	t.Parallel()
	s := startWebServer(t, nil, nil)
	send := func(method, path, query string, body any) webResponse {
		t.Helper()
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		return s.do(t, method, path, query, string(b))
	}

	r := send("POST", "/lists/bob/entries", "", todohttp.AddBody{Date: "20131219", Title: "Dentist"})
	var added todohttp.Entry
	decodeExact(t, "POST", r.body, &added)
	if r.status != 201 || added != (todohttp.Entry{ID: 1, Date: "2013-12-19", Title: "Dentist"}) {
		t.Fatalf("POST: %d %+v", r.status, added)
	}
	send("POST", "/lists/bob/entries", "", todohttp.AddBody{Date: "2013-12-19", Title: "Movies"})

	for _, c := range []struct {
		patch todohttp.PatchBody
		want  todohttp.Entry
	}{
		{todohttp.PatchBody{Title: "Dentist at 10"}, todohttp.Entry{ID: 1, Date: "2013-12-19", Title: "Dentist at 10"}},
		{todohttp.PatchBody{Date: "2013-12-20"}, todohttp.Entry{ID: 1, Date: "2013-12-20", Title: "Dentist at 10"}},
		{todohttp.PatchBody{Date: "20131219", Title: "Dentist"}, todohttp.Entry{ID: 1, Date: "2013-12-19", Title: "Dentist"}},
	} {
		r := send("PATCH", "/lists/bob/entries/1", "", c.patch)
		var got todohttp.Entry
		decodeExact(t, "PATCH", r.body, &got)
		if r.status != 200 || got != c.want {
			t.Errorf("PATCH %+v: %d %+v, want %+v", c.patch, r.status, got, c.want)
		}
	}
	r = send("PATCH", "/lists/bob/entries/1", "", todohttp.PatchBody{})
	var refused todohttp.ErrorBody
	decodeExact(t, "an empty PATCH", r.body, &refused)
	if r.status != 400 || refused.Field != "body" || refused.Error == "" {
		t.Errorf("an empty PatchBody: %d %+v, want 400 about the body", r.status, refused)
	}

	var page todohttp.EntriesPage
	r = s.do(t, "GET", "/lists/bob/entries", "limit=1", "")
	decodeExact(t, "a first page of entries", r.body, &page)
	if len(page.Entries) != 1 || page.Entries[0].ID != 1 || page.Next != "/lists/bob/entries?after=1&limit=1" {
		t.Errorf("a first page of entries: %+v", page)
	}
	page = todohttp.EntriesPage{}
	r = s.do(t, "GET", "/lists/bob/entries", "after=1&limit=1", "")
	decodeExact(t, "a last page of entries", r.body, &page)
	if len(page.Entries) != 1 || page.Entries[0].Title != "Movies" || page.Next != "" {
		t.Errorf("a last page of entries: %+v", page)
	}

	send("POST", "/lists/alice/entries", "", todohttp.AddBody{Date: "2013-12-19", Title: "x"})
	var lists todohttp.ListsPage
	r = s.do(t, "GET", "/lists", "limit=1", "")
	decodeExact(t, "a page of lists", r.body, &lists)
	if strings.Join(lists.Lists, ",") != "alice" || lists.Next != "/lists?after=alice&limit=1" {
		t.Errorf("a page of lists: %+v", lists)
	}
	lists = todohttp.ListsPage{}
	r = s.do(t, "GET", "/lists", "after=zz", "")
	decodeExact(t, "an empty page of lists", r.body, &lists)
	if lists.Lists == nil || len(lists.Lists) != 0 {
		t.Errorf("an empty page of lists: %+v, want an empty list", lists)
	}

	refused = todohttp.ErrorBody{}
	r = s.do(t, "DELETE", "/lists/bob/entries/99", "", "")
	decodeExact(t, "DELETE of an unknown id", r.body, &refused)
	if r.status != 404 || refused.Field != "id" {
		t.Errorf("DELETE of an unknown id: %d %+v", r.status, refused)
	}
	refused = todohttp.ErrorBody{}
	r = s.do(t, "GET", "/lists/bob/entries", "limit=0", "")
	decodeExact(t, "a bad limit", r.body, &refused)
	if r.status != 400 || refused.Field != "limit" {
		t.Errorf("a bad limit: %d %+v", r.status, refused)
	}
	refused = todohttp.ErrorBody{}
	r = s.do(t, "GET", "/lists", "after=%zz", "")
	decodeExact(t, "a query that does not parse", r.body, &refused)
	if r.status != 400 || refused.Field != "" || strings.Contains(r.body, "field") {
		t.Errorf("a query that does not parse: %d %q, want 400 with no field", r.status, r.body)
	}
}
