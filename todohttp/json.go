package todohttp

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/gotodo/todo"
)

// The JSON API: lists and their entries as resources, in pages.

// Page sizes of the JSON API's GETs: the limit when none is asked, and
// the largest that may be asked.
const (
	defaultPageLimit = 100
	maxPageLimit     = 1000
)

func (h *handler) lists(ctx context.Context, w http.ResponseWriter, r *http.Request, who *Principal) error {
	q, err := jsonQuery(r, "after", "limit")
	if err != nil {
		return err
	}
	limit, err := pageLimit(q)
	if err != nil {
		return err
	}
	if who != nil && !who.Rights.Has(RightRead) {
		return forbidden(who, RightRead, "")
	}
	var after string
	if _, ok := q["after"]; ok {
		if after, err = param(q, "after"); err != nil {
			return err
		}
		if err := todo.ValidName(after); err != nil {
			return badRequest("after", "bad cursor: %s", strings.TrimPrefix(err.Error(), "todo: "))
		}
	}
	// One more than the page shows whether there is a next page.
	names, err := visibleLists(ctx, h.svc, who, after, limit+1)
	if err != nil {
		return err
	}
	var next string
	if len(names) > limit {
		names = names[:limit]
		next = "/lists?" + url.Values{"after": {names[limit-1]}, "limit": {strconv.Itoa(limit)}}.Encode()
	}
	if names == nil {
		names = []string{}
	}
	writePage(w, next, ListsPage{Lists: names, Next: next})
	return nil
}

func (h *handler) listEntries(ctx context.Context, w http.ResponseWriter, r *http.Request, who *Principal) error {
	list, err := listParam(r, who, RightRead)
	if err != nil {
		return err
	}
	q, err := jsonQuery(r, "date", "after", "limit")
	if err != nil {
		return err
	}
	limit, err := pageLimit(q)
	if err != nil {
		return err
	}
	var date todo.Date // zero: every date
	if _, ok := q["date"]; ok {
		s, err := param(q, "date")
		if err != nil {
			return err
		}
		if date, err = todo.ParseDate(s); err != nil {
			return err
		}
	}
	var afterID int
	if _, ok := q["after"]; ok {
		s, err := param(q, "after")
		if err != nil {
			return err
		}
		if afterID, err = decimal("after", s, 0, todo.MaxID); err != nil {
			return err
		}
	}
	var entries []todo.Entry
	var rev int64
	if h.watcher != nil {
		entries, rev, err = h.watcher.EntriesPageRev(ctx, list, date, afterID, limit+1)
	} else {
		entries, err = h.svc.EntriesPage(ctx, list, date, afterID, limit+1)
	}
	if err != nil {
		return inList(list, err)
	}
	var next string
	if len(entries) > limit {
		entries = entries[:limit]
		v := url.Values{"after": {strconv.Itoa(entries[limit-1].ID)}, "limit": {strconv.Itoa(limit)}}
		if date != (todo.Date{}) {
			v.Set("date", date.String())
		}
		next = entryPath(list) + "?" + v.Encode()
	}
	out := make([]Entry, len(entries))
	for i, e := range entries {
		out[i] = wireEntry(e)
	}
	setRevision(w, rev)
	writePage(w, next, EntriesPage{Entries: out, Next: next, Revision: rev})
	return nil
}

// pageLimit reads the limit of a page: defaultPageLimit when none is
// given.
func pageLimit(q url.Values) (int, error) {
	if _, ok := q["limit"]; !ok {
		return defaultPageLimit, nil
	}
	s, err := param(q, "limit")
	if err != nil {
		return 0, err
	}
	return decimal("limit", s, 1, maxPageLimit)
}

// writePage answers a page, with the Link to the next one, if any.
func writePage(w http.ResponseWriter, next string, page any) {
	if next != "" {
		w.Header().Set("Link", "<"+next+`>; rel="next"`)
	}
	writeJSON(w, http.StatusOK, page)
}

// entryPath is the path of a list's entries.
func entryPath(list string) string { return "/lists/" + url.PathEscape(list) + "/entries" }

func (h *handler) createEntry(ctx context.Context, w http.ResponseWriter, r *http.Request, who *Principal) error {
	list, err := listParam(r, who, RightWrite)
	if err != nil {
		return err
	}
	if _, err := jsonQuery(r); err != nil {
		return err
	}
	body, err := h.readObject(w, r)
	if err != nil {
		return err
	}
	for _, f := range []string{"date", "title"} {
		if _, ok := body[f]; !ok {
			return badRequest(f, "missing or empty %q", f)
		}
	}
	e, err := h.parseEntry(body)
	if err != nil {
		return err
	}
	if ctx, err = withKey(ctx, r); err != nil {
		return err
	}
	var rev int64
	if h.watcher != nil {
		e, rev, err = h.watcher.AddEntryRev(ctx, list, e)
	} else {
		e, err = h.svc.AddEntry(ctx, list, e)
	}
	if err != nil {
		return inList(list, err)
	}
	setRevision(w, rev)
	w.Header().Set("Location", entryPath(list)+"/"+strconv.Itoa(e.ID))
	writeJSON(w, http.StatusCreated, wireEntry(e))
	return nil
}

func (h *handler) updateEntry(ctx context.Context, w http.ResponseWriter, r *http.Request, who *Principal) error {
	list, err := listParam(r, who, RightWrite)
	if err != nil {
		return err
	}
	if _, err := jsonQuery(r); err != nil {
		return err
	}
	id, err := entryID(r)
	if err != nil {
		return err
	}
	body, err := h.readObject(w, r)
	if err != nil {
		return err
	}
	if len(body) == 0 {
		return badRequest("body", `nothing to change: give "date", "title" or both`)
	}
	// What the body leaves out is zero in the entry parsed, and so left
	// as it is by the patch.
	set, err := h.parseEntry(body)
	if err != nil {
		return err
	}
	if ctx, err = withKey(ctx, r); err != nil {
		return err
	}
	p := todo.Patch{Date: set.Date, Title: set.Title}
	var e todo.Entry
	var rev int64
	if h.watcher != nil {
		e, rev, err = h.watcher.UpdateEntryRev(ctx, list, id, p)
	} else {
		e, err = h.svc.UpdateEntry(ctx, list, id, p)
	}
	if err != nil {
		return inList(list, err)
	}
	setRevision(w, rev)
	writeJSON(w, http.StatusOK, wireEntry(e))
	return nil
}

func (h *handler) deleteEntry(ctx context.Context, w http.ResponseWriter, r *http.Request, who *Principal) error {
	list, err := listParam(r, who, RightWrite)
	if err != nil {
		return err
	}
	if _, err := jsonQuery(r); err != nil {
		return err
	}
	id, err := entryID(r)
	if err != nil {
		return err
	}
	if ctx, err = withKey(ctx, r); err != nil {
		return err
	}
	var rev int64
	if h.watcher != nil {
		rev, err = h.watcher.DeleteEntryRev(ctx, list, id)
	} else {
		err = h.svc.DeleteEntry(ctx, list, id)
	}
	if err != nil {
		return inList(list, err)
	}
	setRevision(w, rev)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// withKey returns ctx with the request's Idempotency-Key, if it has one
// (see WithIdempotencyKey): a retry with the key of a change already made
// is answered as the change was, and changes nothing.
func withKey(ctx context.Context, r *http.Request) (context.Context, error) {
	keys := r.Header.Values("Idempotency-Key")
	switch len(keys) {
	case 0:
		return ctx, nil
	case 1:
		if err := todo.ValidKey(keys[0]); err != nil {
			return ctx, err
		}
		return todo.WithIdempotencyKey(ctx, keys[0]), nil
	}
	return ctx, badRequest("Idempotency-Key", "Idempotency-Key given %d times", len(keys))
}

// readObject reads the body of an entry: an object of "date" and
// "title", both optional here (see decodeObject).
func (h *handler) readObject(w http.ResponseWriter, r *http.Request) (map[string]string, error) {
	data, err := h.readBody(w, r)
	if err != nil {
		return nil, err
	}
	return decodeObject(data, "date", "title")
}

// parseEntry checks the date and title of a body; one absent is left
// zero in the entry.
func (h *handler) parseEntry(body map[string]string) (todo.Entry, error) {
	var e todo.Entry
	if s, ok := body["date"]; ok {
		if s == "" {
			return e, badRequest("date", `missing or empty "date"`)
		}
		d, err := todo.ParseDate(s)
		if err != nil {
			return e, err
		}
		e.Date = d
	}
	if s, ok := body["title"]; ok {
		if s == "" {
			return e, badRequest("title", `missing or empty "title"`)
		}
		if err := h.checkTitle(s); err != nil {
			return e, err
		}
		e.Title = s
	}
	return e, nil
}

// listParam reads the {list} of a path, and refuses a list that who may
// not touch with the rights need.
func listParam(r *http.Request, who *Principal, need Rights) (string, error) {
	list := r.PathValue("list")
	if err := todo.ValidName(list); err != nil {
		return list, err
	}
	return list, allow(who, need, list)
}

// entryID reads the {id} of a path: a decimal integer, written the way
// strconv.Itoa writes it.
func entryID(r *http.Request) (int, error) {
	s := r.PathValue("id")
	id, err := strconv.Atoi(s)
	if err != nil || strconv.Itoa(id) != s {
		return 0, badRequest("id", "entry id %q is not a decimal integer", s)
	}
	return id, nil
}
