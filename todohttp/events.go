package todohttp

import (
	"context"
	"encoding/json"
	"errors"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gotodo/todo"
)

// Server-sent events: GET /lists/{list}/events streams a list's changes
// as text/event-stream, the form browsers' EventSource reads, each
// event's id its revision, so that a client that reconnects with
// Last-Event-ID resumes where it stopped.

// RevisionHeader is the header of the JSON API's answers about one list
// that says the list's revision: after the change a POST, PATCH or DELETE
// made, or of what a GET read (see [todo.Watcher]). A client that reads a
// list and then watches its events from that revision misses nothing and
// sees nothing twice.
const RevisionHeader = "Todo-Revision"

// setRevision sets the RevisionHeader of an answer, when the Service told
// the revision (it is never 0 then).
func setRevision(w http.ResponseWriter, rev int64) {
	if rev > 0 {
		w.Header().Set(RevisionHeader, strconv.FormatInt(rev, 10))
	}
}

// Event names of the stream, besides the default one of changes.
const (
	// GoneEvent ends a stream whose revision the list's history no
	// longer holds (or never held): the 410 Gone of an event stream.
	// Its data is an [ErrorBody]. The client reads the list again and
	// watches from the revision it read, with a new stream: reconnecting
	// with the same Last-Event-ID would be refused again.
	GoneEvent = "gone"
)

// Defaults of the event streams.
const (
	defaultHeartbeat = 15 * time.Second
	// streamRetry is the reconnection delay a stream asks of its
	// EventSource, in milliseconds.
	streamRetry = 1000
	// streamBuffer is how many events a stream takes from its watch
	// ahead of writing them: one write and one flush carry them all.
	streamBuffer = 64
)

// events serves GET /lists/{list}/events (see NewHandler): the list's
// changes after the revision of Last-Event-ID, or of the "from"
// parameter, or from now, as server-sent events.
func (h *handler) events(ctx context.Context, w http.ResponseWriter, r *http.Request, who *Principal) error {
	list, err := listParam(r, who, RightRead)
	if err != nil {
		return err
	}
	q, err := jsonQuery(r, "from")
	if err != nil {
		return err
	}
	from, err := streamFrom(r, q, h.knobs.ignoreLastEventID)
	if err != nil {
		return err
	}
	if h.watcher == nil {
		return &httpError{status: http.StatusNotImplemented, reason: "this server's lists cannot be watched"}
	}
	// The watch ends with the stream, whatever ends it.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	seq, err := h.watcher.Watch(ctx, list, from)
	if errors.Is(err, todo.ErrTooOld) {
		s := h.startStream(w)
		s.gone(err)
		return nil
	}
	if err != nil {
		return inList(list, err)
	}
	h.startStream(w).follow(ctx, cancel, seq, h.heartbeat, h.stopping)
	return nil
}

// streamFrom reads the revision a stream starts after: Last-Event-ID,
// which an EventSource sends when it reconnects, or else the "from"
// parameter, or else 0, now.
func streamFrom(r *http.Request, q url.Values, ignoreLastEventID bool) (int64, error) {
	field, s := "from", ""
	if ids := r.Header.Values("Last-Event-ID"); len(ids) > 0 && !ignoreLastEventID {
		if len(ids) > 1 {
			return 0, badRequest("Last-Event-ID", "Last-Event-ID given %d times", len(ids))
		}
		field, s = "Last-Event-ID", ids[0]
	} else if _, ok := q["from"]; ok {
		var err error
		if s, err = param(q, "from"); err != nil {
			return 0, err
		}
	} else {
		return 0, nil
	}
	rev, err := strconv.ParseInt(s, 10, 64)
	if err != nil || rev < 0 || rev > todo.MaxRevision || strconv.FormatInt(rev, 10) != s {
		return 0, badRequest(field, "revision %q is not a decimal integer in 0..%d", s, int64(todo.MaxRevision))
	}
	return rev, nil
}

// stream is an event stream being written.
type stream struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration // the deadline of each write, from its start; 0 for none
	buf     []byte
	err     error // the first write that failed: the client is gone
}

// startStream answers 200 with the headers of an event stream, and the
// reconnection delay, at once: the client knows it is connected.
func (h *handler) startStream(w http.ResponseWriter) *stream {
	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Accel-Buffering", "no") // nginx: pass each event on at once
	hdr["X-Content-Type-Options"] = noSniffHeader
	w.WriteHeader(http.StatusOK)
	s := &stream{w: w, rc: http.NewResponseController(w), timeout: h.timeout}
	s.buf = append(s.buf, "retry: "+strconv.Itoa(streamRetry)+"\n\n"...)
	s.flush()
	return s
}

// follow writes the changes seq yields as they come, and a heartbeat
// comment when none came for a while, until seq ends, the client goes
// away, or stopping is closed; then it ends seq's watch with cancel, the
// cancel of ctx, which seq's watch was begun under. A watch that fell behind, or was ended by
// the System's Close, ends the stream: the client reconnects with the
// revision it got last. One whose revision is no longer kept ends it with
// the gone event.
func (s *stream) follow(ctx context.Context, cancel context.CancelFunc, seq iter.Seq2[todo.Event, error], heartbeat time.Duration, stopping <-chan struct{}) {
	type item struct {
		ev  todo.Event
		err error
	}
	items := make(chan item, streamBuffer)
	var wg sync.WaitGroup
	// The watch is ranged over on a goroutine of its own, so that the
	// stream can wait for its next event, a heartbeat, the client and the
	// server at once. It ends when ctx does, before follow returns.
	wg.Go(func() {
		defer close(items)
		for ev, err := range seq {
			select {
			case items <- item{ev, err}:
			case <-ctx.Done():
				return
			}
		}
	})
	defer wg.Wait()
	defer cancel()

	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	for s.err == nil {
		select {
		case it, ok := <-items:
			if !ok {
				return
			}
			for more := true; more; {
				if it.err != nil {
					s.end(it.err)
					return
				}
				s.event(it.ev)
				select {
				case it, more = <-items: // ready too: one write for them all
				default:
					more = false
				}
			}
			s.flush()
			tick.Reset(heartbeat)
		case <-tick.C:
			s.buf = append(s.buf, ": heartbeat\n\n"...)
			s.flush()
		case <-ctx.Done():
			return
		case <-stopping:
			return
		}
	}
}

// end ends the stream with the error that ended its watch: the gone event
// for ErrTooOld; for any other (the watch fell behind, the System closed,
// the client went away) the events written so far, and the client
// reconnects from the last one's revision.
func (s *stream) end(err error) {
	if errors.Is(err, todo.ErrTooOld) {
		s.gone(err)
		return
	}
	s.flush()
}

// event appends one change to the buffer: its revision as the event's
// id, and an [Event] as its data.
func (s *stream) event(ev todo.Event) {
	s.buf = append(s.buf, "id: "...)
	s.buf = strconv.AppendInt(s.buf, ev.Revision, 10)
	s.buf = append(s.buf, "\ndata: "...)
	s.buf = appendJSON(s.buf, Event{Kind: ev.Kind.String(), Revision: ev.Revision, Entry: wireEntry(ev.Entry)})
	s.buf = append(s.buf, "\n\n"...)
}

// gone writes the gone event, with why the revision is refused, and
// flushes it.
func (s *stream) gone(err error) {
	s.buf = append(s.buf, "event: "+GoneEvent+"\ndata: "...)
	reason := oneLine(strings.TrimPrefix(err.Error(), "todo: "))
	s.buf = appendJSON(s.buf, ErrorBody{Error: reason, Field: "Last-Event-ID"})
	s.buf = append(s.buf, "\n\n"...)
	s.flush()
}

// flush writes what the buffer holds and flushes it to the client, each
// write within the handler's Timeout: a client that takes nothing for
// that long is dropped, rather than holding the stream's goroutines.
func (s *stream) flush() {
	if s.err != nil || len(s.buf) == 0 {
		return
	}
	if s.timeout > 0 {
		// Unsupported only by a ResponseWriter that hides the
		// connection's; the server's own WriteTimeout then applies.
		_ = s.rc.SetWriteDeadline(time.Now().Add(s.timeout))
	}
	if _, err := s.w.Write(s.buf); err != nil {
		s.err = err
	} else if err := s.rc.Flush(); err != nil {
		s.err = err
	}
	s.buf = s.buf[:0]
}

// appendJSON appends v encoded as JSON, which holds no newline.
func appendJSON(b []byte, v any) []byte {
	data, err := json.Marshal(v)
	if err != nil { // cannot happen with the types written here
		data = []byte(`{"error":"internal error"}`)
	}
	return append(b, data...)
}
