package todohttp

import "github.com/gotodo/todo"

// The JSON API's bodies, as the handler writes and reads them: for Go
// clients, which decode answers into them and encode requests from them.
// encoding/json reads and writes them as documented here.

// Entry is an entry as the JSON API writes it:
// {"id":1,"date":"2013-12-19","title":"Dentist"}. Date is written
// 2013-12-19 ([todo.ParseDate] reads it).
type Entry struct {
	ID    int    `json:"id"`
	Date  string `json:"date"`
	Title string `json:"title"`
}

// wireEntry returns e as the JSON API writes it.
func wireEntry(e todo.Entry) Entry { return Entry{ID: e.ID, Date: e.Date.String(), Title: e.Title} }

// ListsPage is the answer of GET /lists: a page of list names, sorted.
// Next, when there are more, is the path and query of the next page
// (/lists?after=bob&limit=100), which the Link header gives too; it is
// absent on the last page.
type ListsPage struct {
	Lists []string `json:"lists"`
	Next  string   `json:"next,omitempty"`
}

// EntriesPage is the answer of GET /lists/{list}/entries: a page of
// entries in id order, with Next as in [ListsPage], and the list's
// revision when the page was cut (see [RevisionHeader]), absent when the
// handler's Service does not tell it (see [todo.Watcher]).
type EntriesPage struct {
	Entries  []Entry `json:"entries"`
	Next     string  `json:"next,omitempty"`
	Revision int64   `json:"revision,omitempty"`
}

// Event is a change of a list as GET /lists/{list}/events writes it, the
// data of an event whose id is Revision:
// {"kind":"added","revision":5,"entry":{"id":1,"date":"2013-12-19","title":"Dentist"}}.
// Kind is "added", "updated" or "deleted"; Entry is the entry as the
// change left it, or as it was, for a delete; Revision is the list's
// revision after the change (see [todo.Event]).
type Event struct {
	Kind     string `json:"kind"`
	Revision int64  `json:"revision"`
	Entry    Entry  `json:"entry"`
}

// ErrorBody is the body of every error of the JSON API:
// {"error":"reason","field":"title"}. Error is a one-line reason; Field
// names the input at fault (a body member, a path or query parameter, or
// a header such as Idempotency-Key), and is absent when none is.
type ErrorBody struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

// AddBody is the body of POST /lists/{list}/entries: both members are
// required. Date may be written 2013-12-19 or 20131219.
type AddBody struct {
	Date  string `json:"date"`
	Title string `json:"title"`
}

// PatchBody is the body of PATCH /lists/{list}/entries/{id}: the date,
// the title or both to set; a member left empty is not sent and not
// changed. A body with neither is refused.
type PatchBody struct {
	Date  string `json:"date,omitempty"`
	Title string `json:"title,omitempty"`
}
