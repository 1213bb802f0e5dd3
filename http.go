package todo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"
)

// HandlerOptions configure the handler returned by [NewHandler]. The zero
// value, like a nil *HandlerOptions, gives the defaults written on each
// field.
type HandlerOptions struct {
	// Timeout bounds every request: it is the deadline of the ctx passed
	// to the System, the book's 5-second call timeout. A request still
	// waiting for a busy list when it passes is answered 503 with
	// Retry-After. Zero means 5s; a negative value means no timeout other
	// than the request's own context.
	Timeout time.Duration

	// MaxTitle is the longest title accepted, in bytes. Zero or a negative
	// value means 1 KiB.
	MaxTitle int

	// MaxBody is the largest JSON request body accepted, in bytes; a larger
	// one is answered 413. Zero or a negative value means 64 KiB.
	MaxBody int64

	// Logger receives server-side failures: corrupt list files and other
	// 500s (with the full error, which the client never sees), overloads,
	// and, at debug level, clients that went away. Nil discards it all.
	Logger *slog.Logger
}

const (
	defaultTimeout  = 5 * time.Second
	defaultMaxTitle = 1 << 10
	defaultMaxBody  = 64 << 10
	// retryAfter is the Retry-After of 503 answers, in seconds.
	retryAfter = "1"
	textType   = "text/plain; charset=utf-8"
)

// Header values, set by assigning to the header map: http.Header.Set
// allocates a slice for every value. They are never modified: a header
// map is copied before it is written, and Set and Add replace or extend a
// slice, never write into it.
var (
	textTypeHeader = []string{textType}
	jsonTypeHeader = []string{"application/json"}
	noSniffHeader  = []string{"nosniff"}
	zeroLenHeader  = []string{"0"}
)

// NewHandler returns the HTTP face of sys, the Go form of Todo.Web: the
// original protocol, byte for byte, and a JSON API beside it, on a
// ServeMux of its own (never net/http's default one). Mount it on any mux,
// at the root: its routes are absolute. opts may be nil.
//
// The original protocol:
//
//	POST /add_entry?list=bob&date=20131219&title=Dentist   200 text/plain "OK"
//	GET  /entries?list=bob&date=20131219                   200 text/plain "2013-12-19    Dentist\n"
//
// Entries are written one a line, "Y-M-D    title\n", with year, month and
// day as plain integers, not zero-padded, and four spaces; a list or date
// with no entries gives an empty body. Dates may also be written
// 2013-12-19. Any other path answers 404 "not found". Plain-text answers
// carry no trailing newline, like the original's "OK" and "not found";
// neither do the one-line reasons of its 4xx and 5xx answers.
//
// The JSON API, whose errors are {"error":"reason"}:
//
//	GET    /lists                          200 {"lists":["bob"]}
//	GET    /lists/{list}/entries[?date=D]  200 {"entries":[{"id":1,"date":"2013-12-19","title":"Dentist"}]}
//	POST   /lists/{list}/entries           201 the entry; body {"date":"2013-12-19","title":"Dentist"}
//	PATCH  /lists/{list}/entries/{id}      200 the entry; body with "date", "title" or both
//	DELETE /lists/{list}/entries/{id}      204
//
// A list name in a path is escaped as a path segment (bob%2Fs for "bob/s").
// A path that is not clean (//entries) is redirected to its clean form, as
// ServeMux does.
// Bodies are read as JSON whatever their Content-Type; unknown fields,
// trailing data and invalid UTF-8 are refused.
//
// Status codes: 400 for bad input, with a one-line reason, and nothing is
// written (a missing, repeated or empty list, date or title; a date that is
// not a calendar day; a query that does not parse, with a ';' or a bad %
// escape; a list name over 255 bytes, or with a NUL byte or invalid UTF-8;
// a title over [HandlerOptions.MaxTitle], or with invalid UTF-8 or a control
// character other than tab, since a title is one line of the original's
// answers; an id that is not a decimal integer; an unknown JSON field or
// query parameter in the JSON API). 404 for an unknown entry id and for
// unknown paths. 405, with Allow, for a known path with the wrong method
// (GET /add_entry). 413 for a body over [HandlerOptions.MaxBody]. 500
// naming the list when its file is corrupt (the error, with the file's
// path, goes to the log only); other lists keep working. 503 with
// Retry-After when the list stays busy until the timeout, or when the
// System is closed. 507 when a list can no longer be stored (it outgrew
// [Options.MaxFileSize], or the disk is full).
//
// The handler is safe for concurrent use by multiple goroutines.
func NewHandler(sys *System, opts *HandlerOptions) http.Handler {
	h := &handler{sys: sys, timeout: defaultTimeout, maxTitle: defaultMaxTitle, maxBody: defaultMaxBody,
		scanPairs: scanPairs()}
	if opts != nil {
		if opts.Timeout != 0 {
			h.timeout = opts.Timeout
		}
		if opts.MaxTitle > 0 {
			h.maxTitle = opts.MaxTitle
		}
		if opts.MaxBody > 0 {
			h.maxBody = opts.MaxBody
		}
		h.log = opts.Logger
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}

	mux := http.NewServeMux()
	mux.Handle("POST /add_entry", h.route(h.addEntry))
	mux.Handle("GET /entries", h.route(h.entries))
	mux.Handle("GET /lists", h.route(h.lists))
	mux.Handle("GET /lists/{list}/entries", h.route(h.listEntries))
	mux.Handle("POST /lists/{list}/entries", h.route(h.createEntry))
	mux.Handle("PATCH /lists/{list}/entries/{id}", h.route(h.updateEntry))
	mux.Handle("DELETE /lists/{list}/entries/{id}", h.route(h.deleteEntry))
	// The same paths without a method catch the other methods, so that
	// they are answered 405 in each API's own format rather than 404 by
	// the catch-all below (which would otherwise match them).
	mux.Handle("/add_entry", methodNotAllowed("POST", false))
	mux.Handle("/entries", methodNotAllowed("GET, HEAD", false))
	mux.Handle("/lists", methodNotAllowed("GET, HEAD", true))
	mux.Handle("/lists/{list}/entries", methodNotAllowed("GET, HEAD, POST", true))
	mux.Handle("/lists/{list}/entries/{id}", methodNotAllowed("PATCH, DELETE", true))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeText(w, http.StatusNotFound, "not found")
	})
	h.mux = mux
	return h
}

// handler serves a System over HTTP. Its fields are set by NewHandler and
// never change, but for bufs, which is safe for concurrent use.
type handler struct {
	sys       *System
	mux       *http.ServeMux
	timeout   time.Duration
	maxTitle  int
	maxBody   int64
	log       *slog.Logger
	scanPairs int       // see scanQuery
	bufs      sync.Pool // of *entriesBuf, the buffers of GET /entries
}

// route is a handler's function: it answers r, under ctx.
type route func(ctx context.Context, w http.ResponseWriter, r *http.Request)

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The original routes, which take nearly every request, skip the
	// ServeMux: matching costs it several allocations. This is the
	// match it makes: a path that is clean and has no escapes, and the
	// method of the pattern (GET also matches HEAD). Any other request,
	// unclean paths included, goes through the mux.
	if r.URL.RawPath == "" {
		switch r.URL.Path {
		case "/entries":
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				r.Pattern = "GET /entries"
				h.serve(w, r, h.entries)
				return
			}
		case "/add_entry":
			if r.Method == http.MethodPost {
				r.Pattern = "POST /add_entry"
				h.serve(w, r, h.addEntry)
				return
			}
		}
	}
	h.mux.ServeHTTP(w, r)
}

// route returns fn as an http.Handler for the mux.
func (h *handler) route(fn route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.serve(w, r, fn) })
}

// serve runs fn under the handler's timeout: the ctx it passes down to the
// System ends at the timeout, or when the client goes away.
func (h *handler) serve(w http.ResponseWriter, r *http.Request, fn route) {
	if h.timeout <= 0 {
		fn(r.Context(), w, r)
		return
	}
	ctx := h.newContext(r.Context())
	defer ctx.end()
	fn(ctx, w, r)
}

// requestContext is the ctx of one request: what context.WithTimeout
// returns, made when it is first needed. The timer and the link to the
// parent that WithTimeout makes cost about five allocations, while most
// requests never look at their ctx: a read of a loaded list does not; only
// a change, or a read of a list that must load, waits, and so asks for
// Done or Err. Deadline is known from the start; Done, Err and Value make
// the real context, once, and use it. It is safe for concurrent use, as a
// context must be: a list's server asks a queued request's Err.
type requestContext struct {
	parent   context.Context
	deadline time.Time

	mu     sync.Mutex // guards the fields below
	ctx    context.Context
	cancel context.CancelFunc
	ended  bool // end was called
}

func (h *handler) newContext(parent context.Context) *requestContext {
	d := time.Now().Add(h.timeout)
	if pd, ok := parent.Deadline(); ok && pd.Before(d) {
		d = pd // as WithDeadline does, the earlier deadline holds
	}
	return &requestContext{parent: parent, deadline: d}
}

// real returns the real context, made on the first call. One made after
// end (nothing should ask, the request being over) is canceled at once.
func (c *requestContext) real() context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctx == nil {
		c.ctx, c.cancel = context.WithDeadline(c.parent, c.deadline)
		if c.ended {
			c.cancel()
		}
	}
	return c.ctx
}

// end is the cancel of WithTimeout, called when the request is answered.
func (c *requestContext) end() {
	c.mu.Lock()
	c.ended = true
	cancel := c.cancel
	c.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

func (c *requestContext) Deadline() (time.Time, bool) { return c.deadline, true }
func (c *requestContext) Done() <-chan struct{}       { return c.real().Done() }
func (c *requestContext) Err() error                  { return c.real().Err() }
func (c *requestContext) Value(key any) any           { return c.real().Value(key) }

// The original protocol.

func (h *handler) addEntry(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	q, err := h.originalQuery(r.URL.RawQuery)
	var list, title string
	var date Date
	if err == nil {
		list, date, err = listAndDate(&q)
	}
	if err == nil {
		title, err = checkParam("title", q.title, q.nTitle)
	}
	if err == nil {
		err = h.validTitle(title)
	}
	if err == nil {
		_, err = h.sys.ServerProcess(list).AddEntry(ctx, Entry{Date: date, Title: title})
	}
	if err != nil {
		h.fail(w, r, list, err, false)
		return
	}
	writeText(w, http.StatusOK, "OK")
}

func (h *handler) entries(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	q, err := h.originalQuery(r.URL.RawQuery)
	var list string
	var date Date
	if err == nil {
		list, date, err = listAndDate(&q)
	}
	buf, _ := h.bufs.Get().(*entriesBuf)
	if buf == nil {
		buf = &entriesBuf{}
	}
	defer h.putBuf(buf)
	if err == nil {
		buf.entries, err = h.sys.ServerProcess(list).AppendEntries(ctx, buf.entries[:0], date)
	}
	if err != nil {
		h.fail(w, r, list, err, false)
		return
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
}

// entriesBuf holds the buffers of one GET /entries, reused through
// handler.bufs: the entries read and the body written.
type entriesBuf struct {
	entries []Entry
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

func first(vs []string) (string, int) {
	if len(vs) == 0 {
		return "", 0
	}
	return vs[0], len(vs)
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

// listAndDate reads the two parameters both original routes take.
func listAndDate(q *originalQuery) (list string, date Date, err error) {
	if list, err = checkParam("list", q.list, q.nList); err != nil {
		return "", Date{}, err
	}
	if err = validName(list); err != nil {
		return "", Date{}, err
	}
	s, err := checkParam("date", q.date, q.nDate)
	if err != nil {
		return "", Date{}, err
	}
	date, err = ParseDate(s)
	return list, date, err
}

// The JSON API.

// entryJSON is an entry as the JSON API writes it.
type entryJSON struct {
	ID    int    `json:"id"`
	Date  string `json:"date"`
	Title string `json:"title"`
}

func toJSON(e Entry) entryJSON { return entryJSON{ID: e.ID, Date: e.Date.String(), Title: e.Title} }

func (h *handler) lists(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	_, err := h.jsonQuery(r)
	var names []string
	if err == nil {
		names, err = h.sys.Lists(ctx)
	}
	if err != nil {
		h.fail(w, r, "", err, true)
		return
	}
	if names == nil {
		names = []string{}
	}
	writeJSON(w, http.StatusOK, struct {
		Lists []string `json:"lists"`
	}{names})
}

func (h *handler) listEntries(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	list := r.PathValue("list")
	q, err := h.jsonQuery(r, "date")
	if err == nil {
		err = validName(list)
	}
	var entries []Entry
	if err == nil {
		s := h.sys.ServerProcess(list)
		if _, ok := q["date"]; ok {
			var date Date
			if date, err = dateParam(q); err == nil {
				entries, err = s.Entries(ctx, date)
			}
		} else {
			entries, err = s.AllEntries(ctx)
		}
	}
	if err != nil {
		h.fail(w, r, list, err, true)
		return
	}
	out := make([]entryJSON, len(entries))
	for i, e := range entries {
		out[i] = toJSON(e)
	}
	writeJSON(w, http.StatusOK, struct {
		Entries []entryJSON `json:"entries"`
	}{out})
}

func (h *handler) createEntry(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	list := r.PathValue("list")
	var body struct {
		Date  string `json:"date"`
		Title string `json:"title"`
	}
	_, err := h.jsonQuery(r)
	if err == nil {
		err = validName(list)
	}
	if err == nil {
		err = h.decode(w, r, &body)
	}
	var e Entry
	if err == nil {
		e, err = h.parseEntry(&body.Date, &body.Title)
	}
	if err == nil {
		e, err = h.sys.ServerProcess(list).AddEntry(ctx, e)
	}
	if err != nil {
		h.fail(w, r, list, err, true)
		return
	}
	w.Header().Set("Location", "/lists/"+url.PathEscape(list)+"/entries/"+strconv.Itoa(e.ID))
	writeJSON(w, http.StatusCreated, toJSON(e))
}

func (h *handler) updateEntry(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	list := r.PathValue("list")
	// Pointers tell an absent field, left as it is, from an empty one; a
	// null is taken as absent.
	var body struct {
		Date  *string `json:"date"`
		Title *string `json:"title"`
	}
	_, err := h.jsonQuery(r)
	if err == nil {
		err = validName(list)
	}
	var id int
	if err == nil {
		id, err = entryID(r)
	}
	if err == nil {
		err = h.decode(w, r, &body)
	}
	if err == nil && body.Date == nil && body.Title == nil {
		err = badRequest(`nothing to change: give "date", "title" or both`)
	}
	var patch Entry
	if err == nil {
		patch, err = h.parseEntry(body.Date, body.Title)
	}
	var e Entry
	if err == nil {
		e, err = h.sys.ServerProcess(list).UpdateEntry(ctx, id, func(e Entry) Entry {
			if body.Date != nil {
				e.Date = patch.Date
			}
			if body.Title != nil {
				e.Title = patch.Title
			}
			return e
		})
	}
	if err != nil {
		h.fail(w, r, list, err, true)
		return
	}
	writeJSON(w, http.StatusOK, toJSON(e))
}

func (h *handler) deleteEntry(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	list := r.PathValue("list")
	_, err := h.jsonQuery(r)
	if err == nil {
		err = validName(list)
	}
	var id int
	if err == nil {
		id, err = entryID(r)
	}
	if err == nil {
		err = h.sys.ServerProcess(list).DeleteEntry(ctx, id)
	}
	if err != nil {
		h.fail(w, r, list, err, true)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// parseEntry checks the date and title of a JSON body; a nil one is not
// checked and is left zero in the entry.
func (h *handler) parseEntry(date, title *string) (Entry, error) {
	var e Entry
	var err error
	if date != nil {
		if *date == "" {
			return e, badRequest(`missing or empty "date"`)
		}
		if e.Date, err = ParseDate(*date); err != nil {
			return e, err
		}
	}
	if title != nil {
		if *title == "" {
			return e, badRequest(`missing or empty "title"`)
		}
		if err = h.validTitle(*title); err != nil {
			return e, err
		}
		e.Title = *title
	}
	return e, nil
}

// jsonQuery parses the query of a JSON API request, which may hold only
// the parameters allowed, each once.
func (h *handler) jsonQuery(r *http.Request, allowed ...string) (url.Values, error) {
	q, err := parseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, err
	}
	for k, vs := range q {
		if !contains(allowed, k) {
			return nil, badRequest("unknown query parameter %q", k)
		}
		if len(vs) > 1 {
			return nil, badRequest("query parameter %q given %d times", k, len(vs))
		}
	}
	return q, nil
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func dateParam(q url.Values) (Date, error) {
	s, err := param(q, "date")
	if err != nil {
		return Date{}, err
	}
	return ParseDate(s)
}

// entryID reads the {id} of a path: a decimal integer, written the way
// strconv.Itoa writes it.
func entryID(r *http.Request) (int, error) {
	s := r.PathValue("id")
	id, err := strconv.Atoi(s)
	if err != nil || strconv.Itoa(id) != s {
		return 0, badRequest("entry id %q is not a decimal integer", s)
	}
	return id, nil
}

// decode reads a JSON object of at most maxBody bytes into v: valid UTF-8,
// no unknown field, nothing after it but white space.
func (h *handler) decode(w http.ResponseWriter, r *http.Request, v any) error {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBody))
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return badRequest("empty body: want a JSON object")
	}
	if !utf8.Valid(data) {
		return badRequest("body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("bad JSON body: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest("bad JSON body: data after the object")
	}
	return nil
}

// Inputs and errors.

// parseQuery parses a raw query strictly: unlike r.URL.Query, it reports
// a ';', a bad escape or too many parameters instead of dropping them.
func parseQuery(raw string) (url.Values, error) {
	q, err := url.ParseQuery(raw)
	if err != nil {
		return nil, badRequest("bad query: %v", err)
	}
	return q, nil
}

// param returns the one non-empty value of key in q.
func param(q url.Values, key string) (string, error) {
	v, n := first(q[key])
	return checkParam(key, v, n)
}

// checkParam returns v, the first of the n values given for key, if it
// is the only one and not empty.
func checkParam(key, v string, n int) (string, error) {
	switch {
	case n == 0:
		return "", badRequest("missing query parameter %q", key)
	case n > 1:
		return "", badRequest("query parameter %q given %d times", key, n)
	case v == "":
		return "", badRequest("empty query parameter %q", key)
	}
	return v, nil
}

// validTitle checks that a title is one line of text within the cap: the
// original protocol writes one entry a line, so a line break in a title
// would forge entries.
func (h *handler) validTitle(t string) error {
	switch {
	case t == "":
		return badRequest("empty title")
	case len(t) > h.maxTitle:
		return badRequest("title is %d bytes, more than %d", len(t), h.maxTitle)
	case !utf8.ValidString(t):
		return badRequest("title is not valid UTF-8")
	}
	for _, c := range t {
		if c == 0 {
			return badRequest("title contains a NUL byte")
		}
		if unicode.IsControl(c) && c != '\t' {
			return badRequest("title contains the control character %U", c)
		}
	}
	return nil
}

// requestError is an answer decided by the handler itself.
type requestError struct {
	status int
	msg    string
}

func (e *requestError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &requestError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

// fail answers a failed request in the format of its API. The reason sent
// never holds a file path: errors that may (corrupt files, failed writes)
// are logged in full and answered with the list's name only.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, list string, err error, isJSON bool) {
	status, msg := h.classify(r, list, err)
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", retryAfter)
	}
	if isJSON {
		writeJSON(w, status, struct {
			Error string `json:"error"`
		}{msg})
		return
	}
	writeText(w, status, msg)
}

func (h *handler) classify(r *http.Request, list string, err error) (int, string) {
	var re *requestError
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &re):
		return re.status, oneLine(re.msg)
	case errors.As(err, &tooBig):
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("body over %d bytes", tooBig.Limit)
	case errors.Is(err, ErrInvalidName), errors.Is(err, ErrInvalidDate):
		return http.StatusBadRequest, oneLine(strings.TrimPrefix(err.Error(), "todo: "))
	case errors.Is(err, ErrEntryNotFound):
		return http.StatusNotFound, oneLine(strings.TrimPrefix(err.Error(), "todo: "))
	case errors.Is(err, ErrCorrupt):
		h.log.Error("todo: corrupt list file", "list", list, "method", r.Method, "path", r.URL.Path, "err", err)
		return http.StatusInternalServerError, fmt.Sprintf("list %q cannot be read: its file is corrupt", list)
	case errors.Is(err, ErrClosed):
		h.log.Debug("todo: request after close", "list", list, "method", r.Method, "path", r.URL.Path)
		return http.StatusServiceUnavailable, "shutting down"
	case errors.Is(err, context.DeadlineExceeded):
		h.log.Warn("todo: request timed out", "list", list, "method", r.Method, "path", r.URL.Path, "timeout", h.timeout)
		if list == "" {
			return http.StatusServiceUnavailable, "busy: timed out"
		}
		return http.StatusServiceUnavailable, fmt.Sprintf("list %q is busy: timed out", list)
	case errors.Is(err, context.Canceled):
		h.log.Debug("todo: client went away", "list", list, "method", r.Method, "path", r.URL.Path)
		return http.StatusServiceUnavailable, "request canceled"
	case errors.Is(err, ErrTooLarge), errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		h.log.Error("todo: list not stored", "list", list, "method", r.Method, "path", r.URL.Path, "err", err)
		return http.StatusInsufficientStorage, fmt.Sprintf("list %q cannot be stored", list)
	}
	h.log.Error("todo: request failed", "list", list, "method", r.Method, "path", r.URL.Path, "err", err)
	if list == "" {
		return http.StatusInternalServerError, "internal error"
	}
	return http.StatusInternalServerError, fmt.Sprintf("list %q: internal error", list)
}

// oneLine keeps a reason on one line, whatever it quotes.
func oneLine(s string) string {
	return strings.Map(func(c rune) rune {
		if c == '\n' || c == '\r' {
			return ' '
		}
		return c
	}, s)
}

// methodNotAllowed answers 405 with the allowed methods, and an OPTIONS
// request 204 with the same Allow header.
func methodNotAllowed(allow string, isJSON bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		if r.Method == http.MethodOptions {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		msg := fmt.Sprintf("method %s not allowed: use %s", r.Method, allow)
		if isJSON {
			writeJSON(w, http.StatusMethodNotAllowed, struct {
				Error string `json:"error"`
			}{msg})
			return
		}
		writeText(w, http.StatusMethodNotAllowed, msg)
	})
}

// writeText answers a plain-text body, with no newline added.
func writeText(w http.ResponseWriter, status int, body string) {
	hdr := w.Header()
	hdr["Content-Type"] = textTypeHeader
	hdr["X-Content-Type-Options"] = noSniffHeader
	w.WriteHeader(status)
	io.WriteString(w, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil { // cannot happen with the types written here
		b = []byte(`{"error":"internal error"}`)
		status = http.StatusInternalServerError
	}
	hdr := w.Header()
	hdr["Content-Type"] = jsonTypeHeader
	hdr["X-Content-Type-Options"] = noSniffHeader
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
