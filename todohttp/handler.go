package todohttp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/gotodo/todo"
	"github.com/gotodo/todo/internal/faults"
)

// HandlerOptions configure the handler returned by [NewHandler]. The zero
// value, like a nil *HandlerOptions, gives the defaults written on each
// field; NewHandler refuses a value out of range with an error wrapping
// [todo.ErrInvalidOptions] that names the field.
type HandlerOptions struct {
	// Timeout bounds every request: it is the deadline of the ctx passed
	// to the Service, the book's 5-second call timeout. A request still
	// waiting for a busy list when it passes is answered 503 with
	// Retry-After. Zero means 5s; a negative value means no timeout other
	// than the request's own context.
	Timeout time.Duration

	// MaxTitle is the longest title accepted, in bytes. Zero means
	// todo.MaxTitle (1 KiB), the library's own limit, which is also the
	// most: a handler may refuse more than its Service, never less.
	MaxTitle int

	// MaxBody is the largest JSON request body accepted, in bytes; a larger
	// one is answered 413 unread. Zero means 64 KiB; at most 64 MiB.
	MaxBody int64

	// AllowedHosts are the host names and IP addresses, without port, that
	// requests may name in their Host header besides the loopback ones:
	// the names a real deployment is reached by ("todo.example.com").
	// Names match whatever their case.
	//
	// When it is empty, a request that came in on a loopback address must
	// name a loopback host (localhost, a name under .localhost, an address
	// in 127.0.0.0/8 or ::1, with or without a port), and a request on any
	// other address may name any host. That is what defeats DNS rebinding
	// against a server on 127.0.0.1, which any web page can otherwise reach
	// under a name of its own. When it is not empty, every request must
	// name one of its hosts, or a loopback host on a loopback connection.
	// "*" allows every host: for a proxy in front that checks Host itself.
	// A refused request is answered 421 Misdirected Request; a Host that
	// is not host[:port] at all, 400, whatever this allows.
	AllowedHosts []string

	// TrustedOrigins are the origins ("https://todo.example.com", scheme,
	// host and port only) whose web pages may send unsafe requests (POST,
	// PATCH, DELETE) to this handler. A browser's unsafe request from any
	// other origin is answered 403; requests that carry neither Origin nor
	// Sec-Fetch-Site (curl, scripts, other servers) are not a browser's and
	// pass. See [http.CrossOriginProtection].
	TrustedOrigins []string

	// Authenticate, when not nil, names who sends each request: it is
	// called once per request, after the Host and cross-origin guards and
	// before anything else (any Service call, any read of the body), and
	// returns the request's [Principal], or an error. An error wrapping
	// [ErrUnauthenticated] (or a nil Principal) is answered 401 with
	// WWW-Authenticate: Bearer realm="todo"; any other error, 500, and is
	// logged. The principal's rights and list patterns then decide each
	// request: a list outside its patterns, or a change without
	// [RightWrite], is answered 403, and GET /lists shows only the lists
	// it may read. Both APIs are guarded alike, each answering in its own
	// format; a request refused changes nothing and loads no list.
	//
	// A [*TokenFile]'s Authenticate method is one: bearer tokens from a
	// file. A program behind its own sign-in (an OAuth proxy's header, a
	// client certificate in r.TLS) plugs in its own. Nil means no
	// authentication: every request may read and write every list, as on
	// a server only its own machine can reach.
	Authenticate func(r *http.Request) (*Principal, error)

	// EventHeartbeat is how often an event stream (GET
	// /lists/{list}/events) with no change to send writes a comment line,
	// so that proxies and load balancers keep an idle stream open. Zero
	// means 15s.
	EventHeartbeat time.Duration

	// Stopping, when closed, ends every event stream, whose clients then
	// reconnect (to this server when it is back, or another): close it
	// when the server stops, before http.Server.Shutdown, which otherwise
	// waits for streams that never end (http.Server.RegisterOnShutdown
	// can). Nil: a stream ends with its request, or with the Service.
	Stopping <-chan struct{}

	// Logger receives server-side failures: corrupt list files, changes
	// that cannot be stored (507) and other 500s (with the full error,
	// which the client never sees) at error level, overloads at warn
	// level, and, at debug level, refused requests and clients that went
	// away. Failures are logged once per fault, not once per request: the
	// first of a kind with its cause, the next ones within 10s counted into
	// the first line after them ("(and 5,351 more in the last 10 s)"), and,
	// for changes that could not be stored, one line at info level when a
	// change succeeds again. Nil discards it all.
	Logger *slog.Logger
}

const (
	defaultTimeout  = 5 * time.Second
	defaultMaxTitle = todo.MaxTitle
	maxMaxTitle     = todo.MaxTitle
	defaultMaxBody  = 64 << 10
	maxMaxBody      = 64 << 20
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

// NewHandler returns the HTTP face of s (a [*todo.System], or a node of a
// cluster), the Go form of Todo.Web: the original protocol, byte for byte,
// and a JSON API beside it, on a ServeMux of its own (never net/http's
// default one). Mount it on any mux, at the root: its routes are absolute.
// opts may be nil; a field out of range gives an error wrapping
// [todo.ErrInvalidOptions].
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
// neither do the one-line reasons of its 4xx and 5xx answers. The body of
// a request to these routes is not read.
//
// The JSON API, whose errors are {"error":"reason","field":"title"}, field
// naming the input at fault and absent when none is:
//
//	GET    /lists[?after=NAME&limit=N]                     200 {"lists":["bob"],"next":"/lists?after=bob&limit=1"}
//	GET    /lists/{list}/entries[?date=D&after=ID&limit=N] 200 {"entries":[{"id":1,"date":"2013-12-19","title":"Dentist"}]}
//	POST   /lists/{list}/entries                           201 the entry; body {"date":"2013-12-19","title":"Dentist"}
//	PATCH  /lists/{list}/entries/{id}                      200 the entry; body with "date", "title" or both
//	DELETE /lists/{list}/entries/{id}                      204
//	GET    /lists/{list}/events[?from=REV]                 200 text/event-stream: the list's changes
//
// When the Service is a [todo.Watcher] (a System is), every answer about
// one list carries its revision in the Todo-Revision header
// ([RevisionHeader]), and a page of entries in its "revision" member too:
// after the change made, or of what was read. GET /lists/{list}/events
// then streams the list's changes after a revision as server-sent events,
// for as long as the client stays: each an event whose id is the
// revision after the change and whose data is an [Event],
//
//	id: 7
//	data: {"kind":"added","revision":7,"entry":{"id":3,"date":"2013-12-19","title":"Dentist"}}
//
// after the revision of Last-Event-ID (which an EventSource sends when it
// reconnects), or else of ?from=, or else from now; a ": heartbeat"
// comment every [HandlerOptions.EventHeartbeat] when nothing changed; and,
// when the list no longer keeps the changes after that revision, the
// event "gone" ([GoneEvent]) with an [ErrorBody], after which the client
// reads the list again and watches from the revision it read. A stream
// that falls too far behind its list, or whose server closes, ends: the
// client reconnects with the last id it got, and goes on. A stream needs
// the read right on its list; with a Service that is not a Watcher it is
// answered 501.
//
// The two GETs answer a page of at most limit items (100 unless asked,
// at most 1000); when there are more, "next" and a Link header with
// rel="next" give the URL of the next page. A list name in a path is
// escaped as a path segment (bob%2Fs for "bob/s"). A path that is not
// clean (//entries) is redirected to its clean form, as ServeMux does.
// Bodies are read as JSON whatever their Content-Type, and strictly: one
// object of known members, named in their exact case, each once, with
// string values (or null for absent), valid UTF-8 and no lone UTF-16
// surrogate escape, nothing after it.
//
// Every request must name a host in its Host header, host[:port] with a
// port in 0..65535 (400 otherwise; an HTTP/1.0 request may name none), an
// allowed one (see [HandlerOptions.AllowedHosts]; 421 otherwise), and a
// browser may send unsafe requests only from the same origin or a trusted
// one (see [HandlerOptions.TrustedOrigins]; 403 otherwise).
//
// With [HandlerOptions.Authenticate] set, every request must then carry
// credentials it accepts (401 with WWW-Authenticate: Bearer realm="todo"
// otherwise, on every path); a request may read only the lists its
// principal may read, and change only those it may write (403 otherwise,
// with a reason naming the principal and what it lacks); GET /lists shows
// only the lists it may read, in full pages.
//
// An Idempotency-Key header on POST, PATCH or DELETE makes the change
// idempotent (see [todo.WithIdempotencyKey]): a retry with the key is
// answered as the first request was; a key that made a change of another
// kind is answered 422.
//
// Status codes: 400 for bad input, with a one-line reason, and nothing is
// written; 401 and 403 for a request its principal may not send (see
// above); 404 for an unknown entry id and for unknown paths; 405, with
// Allow, for a known path with the wrong method; 408 for a body that does
// not arrive before the server's read timeout; 413 for a body over
// [HandlerOptions.MaxBody]; 422 for an Idempotency-Key reused for another
// kind of change; 500 naming the list when its file is corrupt
// (the error, with the file's path, goes to the log only), other lists
// working on; 501 for an event stream over a Service that is not a
// [todo.Watcher]; 503 with Retry-After when the list stays busy until the
// timeout, is unavailable for now, has too many watches open, or the
// System is closed; 507 when a
// list can no longer be stored (it outgrew [todo.Options.MaxFileSize], or the
// disk is full). docs/http.md has every case.
//
// The handler is safe for concurrent use by multiple goroutines.
func NewHandler(s todo.Service, opts *HandlerOptions) (http.Handler, error) {
	return newHandler(s, opts, knobs{faultPeriod: faults.Period})
}

// knobs are the seams of the tests that make the handler's broken twins;
// NewHandler's are the handler as it runs.
type knobs struct {
	// faultPeriod is the period within which the failures of one kind
	// are counted rather than logged (see package faults): 0 makes the
	// broken twin that logs a line per failed request.
	faultPeriod time.Duration
	// ignoreLastEventID makes the broken twin of event streams that
	// start from their "from" parameter even when Last-Event-ID says
	// where the client stopped.
	ignoreLastEventID bool
}

// newHandler is NewHandler with the knobs of the tests.
func newHandler(s todo.Service, opts *HandlerOptions, k knobs) (http.Handler, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if s == nil {
		return nil, fmt.Errorf("%w: NewHandler needs a Service", todo.ErrInvalidOptions)
	}
	h := &handler{svc: s, timeout: o.Timeout, maxTitle: o.MaxTitle, maxBody: o.MaxBody,
		heartbeat: o.EventHeartbeat, stopping: o.Stopping, knobs: k,
		auth: o.Authenticate, log: o.Logger, faults: faults.New(o.Logger, k.faultPeriod), scanPairs: scanPairs()}
	h.watcher, _ = s.(todo.Watcher)
	if h.hosts, err = newHostPolicy(o.AllowedHosts); err != nil {
		return nil, err
	}
	if h.origins, err = newOriginPolicy(o.TrustedOrigins); err != nil {
		return nil, err
	}

	mux := http.NewServeMux()
	mux.Handle("POST /add_entry", h.route(h.addEntry, renderText))
	mux.Handle("GET /entries", h.route(h.entries, renderText))
	mux.Handle("GET /lists", h.route(h.lists, renderJSON))
	mux.Handle("GET /lists/{list}/entries", h.route(h.listEntries, renderJSON))
	mux.Handle("POST /lists/{list}/entries", h.route(h.createEntry, renderJSON))
	mux.Handle("PATCH /lists/{list}/entries/{id}", h.route(h.updateEntry, renderJSON))
	mux.Handle("DELETE /lists/{list}/entries/{id}", h.route(h.deleteEntry, renderJSON))
	mux.Handle("GET /lists/{list}/events", h.streamRoute(h.events))
	// The same paths without a method catch the other methods, so that
	// they are answered 405 in each API's own format rather than 404 by
	// the catch-all below (which would otherwise match them).
	mux.Handle("/add_entry", h.route(methodNotAllowed("POST"), renderText))
	mux.Handle("/entries", h.route(methodNotAllowed("GET, HEAD"), renderText))
	mux.Handle("/lists", h.route(methodNotAllowed("GET, HEAD"), renderJSON))
	mux.Handle("/lists/{list}/entries", h.route(methodNotAllowed("GET, HEAD, POST"), renderJSON))
	mux.Handle("/lists/{list}/entries/{id}", h.route(methodNotAllowed("PATCH, DELETE"), renderJSON))
	mux.Handle("/lists/{list}/events", h.route(methodNotAllowed("GET, HEAD"), renderJSON))
	mux.Handle("/", h.route(notFound, renderText))
	h.mux = mux
	return h, nil
}

// withDefaults returns o with its defaults filled in, or an error naming
// the first field out of range.
func (o *HandlerOptions) withDefaults() (HandlerOptions, error) {
	var c HandlerOptions
	if o != nil {
		c = *o
	}
	if c.Timeout == 0 {
		c.Timeout = defaultTimeout
	}
	if c.MaxTitle == 0 {
		c.MaxTitle = defaultMaxTitle
	}
	if c.MaxBody == 0 {
		c.MaxBody = defaultMaxBody
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.EventHeartbeat == 0 {
		c.EventHeartbeat = defaultHeartbeat
	}
	switch {
	case c.EventHeartbeat < 0:
		return c, fmt.Errorf("%w: EventHeartbeat %v is below 0", todo.ErrInvalidOptions, c.EventHeartbeat)
	case c.MaxTitle < 0 || c.MaxTitle > maxMaxTitle:
		return c, fmt.Errorf("%w: MaxTitle %d is not in 1..%d", todo.ErrInvalidOptions, c.MaxTitle, maxMaxTitle)
	case c.MaxBody < 0 || c.MaxBody > maxMaxBody:
		return c, fmt.Errorf("%w: MaxBody %d is not in 1..%d", todo.ErrInvalidOptions, c.MaxBody, maxMaxBody)
	}
	return c, nil
}

// handler serves a Service over HTTP. Its fields are set by NewHandler and
// never change, but for bufs, which is safe for concurrent use.
type handler struct {
	svc       todo.Service
	watcher   todo.Watcher // svc, when it tells revisions and watches; nil otherwise
	mux       *http.ServeMux
	timeout   time.Duration
	maxTitle  int
	maxBody   int64
	heartbeat time.Duration   // of event streams
	stopping  <-chan struct{} // ends event streams; nil for never
	knobs     knobs
	hosts     hostPolicy
	origins   *http.CrossOriginProtection
	auth      func(*http.Request) (*Principal, error) // nil: no authentication
	log       *slog.Logger
	faults    *faults.Log // logs the server's failures once per fault
	scanPairs int         // see scanQuery
	bufs      sync.Pool   // of *entriesBuf, the buffers of GET /entries
}

// route is a handler's function: it answers r, sent by who, under ctx, or
// returns the error that the route's renderer writes as the answer,
// having written nothing itself. who is nil when the handler
// authenticates no one: then every request may do everything.
type route func(ctx context.Context, w http.ResponseWriter, r *http.Request, who *Principal) error

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := h.admit(r); err != nil {
		h.fail(w, r, err, rendererFor(r.URL.Path))
		return
	}
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
				h.serve(w, r, h.entries, renderText, h.timeout)
				return
			}
		case "/add_entry":
			if r.Method == http.MethodPost {
				r.Pattern = "POST /add_entry"
				h.serve(w, r, h.addEntry, renderText, h.timeout)
				return
			}
		}
	}
	h.mux.ServeHTTP(w, r)
}

// route returns fn as an http.Handler for the mux, its errors written by
// render.
func (h *handler) route(fn route, render renderer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.serve(w, r, fn, render, h.timeout) })
}

// streamRoute is route for a JSON route that streams its answer for as
// long as the client stays: its ctx has no timeout (each write of the
// stream has one: see stream.flush).
func (h *handler) streamRoute(fn route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.serve(w, r, fn, renderJSON, 0) })
}

// serve authenticates r, runs fn under timeout (none when it is 0 or
// less), and answers its error with render: the ctx it passes down to the
// Service ends at the timeout, or when the client goes away.
func (h *handler) serve(w http.ResponseWriter, r *http.Request, fn route, render renderer, timeout time.Duration) {
	var who *Principal
	if h.auth != nil {
		var err error
		if who, err = authenticate(h.auth, r); err != nil {
			h.refuse(w, r, err, render)
			return
		}
	}
	var err error
	if timeout <= 0 {
		err = fn(r.Context(), w, r, who)
	} else {
		ctx := h.newContext(r.Context())
		defer ctx.end()
		err = fn(ctx, w, r, who)
	}
	if err != nil {
		h.fail(w, r, err, render)
	} else if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.faults.Recovered(faultNotStored, "todo: changes accepted again")
	}
}

// refuse answers a request that authenticate refused: 401 with its
// challenge, or 500 for an Authenticate that failed.
func (h *handler) refuse(w http.ResponseWriter, r *http.Request, err error, render renderer) {
	var e *httpError
	if !errors.As(err, &e) {
		h.fail(w, r, err, render) // logged, and answered 500
		return
	}
	setChallenge(w, r, e)
	h.fail(w, r, e, render)
}

// methodNotAllowed answers 405 with the allowed methods, and an OPTIONS
// request 204 with the same Allow header.
func methodNotAllowed(allow string) route {
	return func(_ context.Context, w http.ResponseWriter, r *http.Request, _ *Principal) error {
		w.Header().Set("Allow", allow)
		if r.Method == http.MethodOptions {
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
		return &httpError{status: http.StatusMethodNotAllowed,
			reason: fmt.Sprintf("method %s not allowed: use %s", r.Method, allow)}
	}
}

// notFound answers every path that is not a route.
func notFound(context.Context, http.ResponseWriter, *http.Request, *Principal) error {
	return &httpError{status: http.StatusNotFound, reason: "not found"}
}

// writeText answers a plain-text body, with no newline added.
func writeText(w http.ResponseWriter, status int, body string) {
	hdr := w.Header()
	hdr["Content-Type"] = textTypeHeader
	hdr["X-Content-Type-Options"] = noSniffHeader
	w.WriteHeader(status)
	io.WriteString(w, body)
}

// writeJSON answers v as a JSON body, with a newline after it.
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
