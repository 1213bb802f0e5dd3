package todohttp

import (
	"context"
	"net/http"

	"github.com/gotodo/todo"
	"github.com/gotodo/todo/internal/faults"
)

// The declarations below serve the tests of the handler's internals
// (internal_test.go).

// RequestContext is the handler's lazy request context, with End, which
// the handler calls when the request is answered.
type RequestContext interface {
	context.Context
	End()
}

type requestContextEnd struct{ *requestContext }

func (c requestContextEnd) End() { c.end() }

// NewRequestContext returns the context h would give a request under
// parent.
func NewRequestContext(h http.Handler, parent context.Context) RequestContext {
	return requestContextEnd{h.(*handler).newContext(parent)}
}

// OriginalQuery is what the handler reads of an original route's query:
// the first list, date and title, and how many of each there were.
type OriginalQuery struct {
	List, Date, Title    string
	NList, NDate, NTitle int
}

// ScanQuery is the handler's in-place query reader; ok is false when it
// leaves the query to url.ParseQuery.
func ScanQuery(h http.Handler, raw string) (OriginalQuery, bool) {
	q, ok := h.(*handler).scanQuery(raw)
	return OriginalQuery{q.list, q.date, q.title, q.nList, q.nDate, q.nTitle}, ok
}

// MaxScanPairs is how many pairs ScanQuery reads at most.
const MaxScanPairs = maxScanPairs

// DecodeObject is the handler's strict reader of JSON bodies.
func DecodeObject(data []byte, fields ...string) (map[string]string, error) {
	return decodeObject(data, fields...)
}

// LoneSurrogate reports whether raw JSON text holds a lone UTF-16
// surrogate escape.
func LoneSurrogate(raw []byte) bool { return loneSurrogate(raw) }

// NewHandlerLoggingEveryFailure is NewHandler with the broken twin of
// its fault log: every failed request is logged, as the handler did
// before its failures were logged once per fault.
func NewHandlerLoggingEveryFailure(s todo.Service, opts *HandlerOptions) (http.Handler, error) {
	return newHandler(s, opts, knobs{})
}

// NewHandlerIgnoringLastEventID is NewHandler with the broken twin of
// event streams: they start from their "from" parameter, or now, even
// when Last-Event-ID says where the client stopped.
func NewHandlerIgnoringLastEventID(s todo.Service, opts *HandlerOptions) (http.Handler, error) {
	return newHandler(s, opts, knobs{faultPeriod: faults.Period, ignoreLastEventID: true})
}
