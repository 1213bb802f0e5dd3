package todohttp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"syscall"

	"github.com/gotodo/todo"
)

// httpError is an answer decided by the handler itself: a status, a
// one-line reason, and the input the error concerns (a JSON body member,
// a path or query parameter), empty when none is at fault.
type httpError struct {
	status int
	reason string
	field  string
}

func (e *httpError) Error() string { return e.reason }

// badRequest returns a 400 about field.
func badRequest(field, format string, args ...any) error {
	return &httpError{http.StatusBadRequest, oneLine(fmt.Sprintf(format, args...)), field}
}

// listError is an error of the Service about one list, which the reasons
// and logs of errors that do not name the list themselves need.
type listError struct {
	list string
	err  error
}

func (e *listError) Error() string { return e.err.Error() }
func (e *listError) Unwrap() error { return e.err }

// inList wraps a Service error about list; it returns nil for nil.
func inList(list string, err error) error {
	if err == nil {
		return nil
	}
	return &listError{list, err}
}

// A renderer writes an error as the answer, in the format of its API.
type renderer func(w http.ResponseWriter, e *httpError)

// renderText writes the reason alone, in plain text: the original
// protocol's errors.
func renderText(w http.ResponseWriter, e *httpError) { writeText(w, e.status, e.reason) }

// renderJSON writes {"error":reason,"field":field}: the JSON API's errors.
func renderJSON(w http.ResponseWriter, e *httpError) {
	writeJSON(w, e.status, ErrorBody{Error: e.reason, Field: e.field})
}

// rendererFor returns the renderer of the API that path belongs to, for a
// request refused before it is routed.
func rendererFor(path string) renderer {
	if path == "/lists" || strings.HasPrefix(path, "/lists/") {
		return renderJSON
	}
	return renderText
}

// fail answers a failed request with render, once. The reason sent never
// holds a file path: errors that may (corrupt files, failed writes) are
// logged in full and answered with the list's name only.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error, render renderer) {
	e := h.classify(r, err)
	if e.status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", retryAfter)
	}
	render(w, e)
}

// classify turns err into an answer and logs it: a client's fault at
// debug level at most, a server's at warn or error level.
func (h *handler) classify(r *http.Request, err error) *httpError {
	var e *httpError
	if errors.As(err, &e) {
		h.log.Debug("todo: request refused", "method", r.Method, "path", r.URL.Path,
			"status", e.status, "reason", e.reason)
		return e
	}
	var le *listError
	var list string
	if errors.As(err, &le) {
		list = le.list
	}
	client := func(status int, field string) *httpError {
		e := &httpError{status, oneLine(strings.TrimPrefix(err.Error(), "todo: ")), field}
		h.log.Debug("todo: request refused", "list", list, "method", r.Method, "path", r.URL.Path,
			"status", e.status, "reason", e.reason)
		return e
	}
	// A server's fault is logged once per fault, not once per request
	// (see package faults): a full disk fails every write of every
	// client, and must not fill the log too.
	at := []any{"list", list, "method", r.Method, "path", r.URL.Path}
	switch {
	case errors.Is(err, todo.ErrInvalidName):
		return client(http.StatusBadRequest, "list")
	case errors.Is(err, todo.ErrInvalidDate):
		return client(http.StatusBadRequest, "date")
	case errors.Is(err, todo.ErrInvalidTitle):
		return client(http.StatusBadRequest, "title")
	case errors.Is(err, todo.ErrInvalidLimit):
		return client(http.StatusBadRequest, "limit")
	case errors.Is(err, todo.ErrInvalidRevision):
		return client(http.StatusBadRequest, "from")
	case errors.Is(err, todo.ErrTooOld):
		return client(http.StatusGone, "from")
	case errors.Is(err, todo.ErrEmptyPatch):
		return client(http.StatusBadRequest, "body")
	case errors.Is(err, todo.ErrInvalidKey):
		return client(http.StatusBadRequest, "Idempotency-Key")
	case errors.Is(err, todo.ErrKeyReused):
		return client(http.StatusUnprocessableEntity, "Idempotency-Key")
	case errors.Is(err, todo.ErrEntryNotFound):
		return client(http.StatusNotFound, "id")
	case errors.Is(err, todo.ErrCorrupt):
		h.faults.Error("corrupt", "todo: corrupt list file", err, at...)
		return &httpError{status: http.StatusInternalServerError,
			reason: fmt.Sprintf("list %q cannot be read: its file is corrupt", list)}
	case errors.Is(err, todo.ErrClosed):
		h.log.Debug("todo: request after close", at...)
		return &httpError{status: http.StatusServiceUnavailable, reason: "shutting down"}
	case errors.Is(err, todo.ErrTooManyWatches):
		h.faults.Warn("too many watches", "todo: watch refused", err, at...)
		return &httpError{status: http.StatusServiceUnavailable, reason: aboutList(list, "too many watches: try again later")}
	case errors.Is(err, todo.ErrUnavailable):
		h.faults.Warn("unavailable", "todo: list unavailable", err, at...)
		return &httpError{status: http.StatusServiceUnavailable, reason: aboutList(list, "unavailable for now")}
	case errors.Is(err, context.DeadlineExceeded):
		h.faults.Warn("timeout", "todo: request timed out", nil, append(at, "timeout", h.timeout)...)
		return &httpError{status: http.StatusServiceUnavailable, reason: aboutList(list, "busy: timed out")}
	case errors.Is(err, context.Canceled):
		h.log.Debug("todo: client went away", at...)
		return &httpError{status: http.StatusServiceUnavailable, reason: "request canceled"}
	case errors.Is(err, todo.ErrStoreFailing):
		h.faults.Error(faultNotStored, "todo: list not stored", err, at...)
		return &httpError{status: http.StatusInsufficientStorage, reason: aboutList(list, "cannot be stored now: storage is failing")}
	case errors.Is(err, todo.ErrListFull):
		h.faults.Warn("list full", "todo: list full", nil, at...)
		return &httpError{status: http.StatusInsufficientStorage, reason: aboutList(list, "full, no id left")}
	case errors.Is(err, todo.ErrTooLarge):
		h.faults.Error("too large", "todo: list not stored", err, at...)
		return &httpError{status: http.StatusInsufficientStorage, reason: aboutList(list, "cannot be stored")}
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		h.faults.Error(faultNotStored, "todo: list not stored", err, at...)
		return &httpError{status: http.StatusInsufficientStorage, reason: aboutList(list, "cannot be stored")}
	}
	h.faults.Error("failed", "todo: request failed", err, at...)
	return &httpError{status: http.StatusInternalServerError, reason: aboutList(list, "internal error")}
}

// faultNotStored is the kind of fault (see package faults) of changes
// that the Service could not store: it ends when a change succeeds (see
// handler.serve).
const faultNotStored = "not stored"

// aboutList prefixes a reason with the list it concerns, when known:
// list "bob": busy: timed out.
func aboutList(list, reason string) string {
	if list == "" {
		return reason
	}
	return fmt.Sprintf("list %q: %s", list, reason)
}

// oneLine keeps a reason on one line, whatever it quotes.
func oneLine(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	return strings.Map(func(c rune) rune {
		if c == '\n' || c == '\r' {
			return ' '
		}
		return c
	}, s)
}
