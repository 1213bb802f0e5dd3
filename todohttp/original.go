package todohttp

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/gotodo/todo"
)

// The original protocol: POST /add_entry and GET /entries, answered in
// plain text byte for byte as the book's Todo.Web answers them. These
// routes take nearly every request, so they read their query in place
// and reuse their buffers.

func (h *handler) addEntry(ctx context.Context, w http.ResponseWriter, r *http.Request, who *Principal) error {
	q, err := h.originalQuery(r.URL.RawQuery)
	if err != nil {
		return err
	}
	list, date, err := listAndDate(&q, who, RightWrite)
	if err != nil {
		return err
	}
	title, err := checkParam("title", q.title, q.nTitle)
	if err != nil {
		return err
	}
	if err := h.checkTitle(title); err != nil {
		return err
	}
	if _, err := h.svc.AddEntry(ctx, list, todo.Entry{Date: date, Title: title}); err != nil {
		return inList(list, err)
	}
	writeText(w, http.StatusOK, "OK")
	return nil
}

func (h *handler) entries(ctx context.Context, w http.ResponseWriter, r *http.Request, who *Principal) error {
	q, err := h.originalQuery(r.URL.RawQuery)
	if err != nil {
		return err
	}
	list, date, err := listAndDate(&q, who, RightRead)
	if err != nil {
		return err
	}
	buf, _ := h.bufs.Get().(*entriesBuf)
	if buf == nil {
		buf = &entriesBuf{}
	}
	defer h.putBuf(buf)
	if buf.entries, err = h.svc.AppendEntries(ctx, list, buf.entries[:0], date); err != nil {
		return inList(list, err)
	}
	b := buf.body[:0]
	for _, e := range buf.entries {
		b = strconv.AppendInt(b, int64(e.Date.Year), 10)
		b = append(b, '-')
		b = strconv.AppendInt(b, int64(e.Date.Month), 10)
		b = append(b, '-')
		b = strconv.AppendInt(b, int64(e.Date.Day), 10)
		b = append(b, "    "...)
		b = append(b, e.Title...)
		b = append(b, '\n')
	}
	buf.body = b
	hdr := w.Header()
	hdr["Content-Type"] = textTypeHeader
	hdr["X-Content-Type-Options"] = noSniffHeader
	if len(b) == 0 {
		hdr["Content-Length"] = zeroLenHeader
	} else {
		hdr["Content-Length"] = []string{strconv.Itoa(len(b))}
	}
	w.WriteHeader(http.StatusOK)
	w.Write(b)
	return nil
}

// entriesBuf holds the buffers of one GET /entries, reused through
// handler.bufs: the entries read and the body written.
type entriesBuf struct {
	entries []todo.Entry
	body    []byte
}

// Buffers over these sizes are not kept for reuse: a rare day with
// thousands of entries must not pin its buffers for good.
const (
	maxPooledEntries = 1 << 10
	maxPooledBody    = 64 << 10
)

func (h *handler) putBuf(buf *entriesBuf) {
	if cap(buf.entries) > maxPooledEntries || cap(buf.body) > maxPooledBody {
		return
	}
	clear(buf.entries) // let the titles go
	h.bufs.Put(buf)
}

// originalQuery is what the original routes read from a query: the first
// value of list, date and title, and how many times each was given.
type originalQuery struct {
	list, date, title    string
	nList, nDate, nTitle int
}

// originalQuery parses the query of an original route as url.ParseQuery
// does. A plain query, the usual one, is scanned in place (see
// scanQuery), without the map and the slices of url.Values; any other is
// given to url.ParseQuery, whose error is the answer.
func (h *handler) originalQuery(raw string) (originalQuery, error) {
	if q, ok := h.scanQuery(raw); ok {
		return q, nil
	}
	vs, err := parseQuery(raw)
	if err != nil {
		return originalQuery{}, err
	}
	var q originalQuery
	q.list, q.nList = first(vs["list"])
	q.date, q.nDate = first(vs["date"])
	q.title, q.nTitle = first(vs["title"])
	return q, nil
}

// scanQuery reads raw as url.ParseQuery reads it, pair by pair, and
// reports false, leaving it to url.ParseQuery, for any query that
// function would refuse (a ';', a bad % escape) or that has more pairs
// than h.scanPairs. It allocates only to unescape a key or a value that
// has escapes.
func (h *handler) scanQuery(raw string) (q originalQuery, ok bool) {
	if strings.Count(raw, "&") >= h.scanPairs {
		return q, false
	}
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		if strings.IndexByte(pair, ';') >= 0 {
			return q, false
		}
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		k, err := url.QueryUnescape(k)
		if err != nil {
			return q, false
		}
		if v, err = url.QueryUnescape(v); err != nil {
			return q, false
		}
		switch k {
		case "list":
			if q.nList++; q.nList == 1 {
				q.list = v
			}
		case "date":
			if q.nDate++; q.nDate == 1 {
				q.date = v
			}
		case "title":
			if q.nTitle++; q.nTitle == 1 {
				q.title = v
			}
		}
	}
	return q, true
}

// maxScanPairs bounds the pairs scanQuery reads; url.ParseQuery refuses
// queries over a limit that the GODEBUG setting urlmaxqueryparams may set
// as low as it likes, and NewHandler lowers the bound under it.
const maxScanPairs = 16

// scanPairs returns how many pairs of a query scanQuery may read: as many
// as url.ParseQuery accepts, up to maxScanPairs.
func scanPairs() int {
	for n := 1; n <= maxScanPairs; n++ {
		if _, err := url.ParseQuery(strings.Repeat("&", n-1)); err != nil {
			return n - 1
		}
	}
	return maxScanPairs
}

// listAndDate reads the two parameters both original routes take, and
// refuses a list that who may not touch with the rights need before it
// reads the date.
func listAndDate(q *originalQuery, who *Principal, need Rights) (list string, date todo.Date, err error) {
	if list, err = checkParam("list", q.list, q.nList); err != nil {
		return "", todo.Date{}, err
	}
	if err = todo.ValidName(list); err != nil {
		return "", todo.Date{}, err
	}
	if err = allow(who, need, list); err != nil {
		return "", todo.Date{}, err
	}
	s, err := checkParam("date", q.date, q.nDate)
	if err != nil {
		return "", todo.Date{}, err
	}
	date, err = todo.ParseDate(s)
	return list, date, err
}
