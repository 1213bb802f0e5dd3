package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gotodo/todo/todohttp"
)

// todo watch LIST follows a list's event stream (GET
// /lists/{list}/events) and prints each change as it comes, reconnecting
// from the last revision it printed when the stream ends, as a browser's
// EventSource does.

const (
	// watchIdle is how long a stream may send nothing, not even a
	// heartbeat (every 15 s by default), before the watch takes the
	// connection for dead and reconnects.
	watchIdle = time.Minute
	// maxReconnectWait caps the wait between reconnections, which
	// doubles from the stream's retry (1 s) while they fail.
	maxReconnectWait = 30 * time.Second
	// maxEventLine bounds a line of the stream.
	maxEventLine = 1 << 20
)

const watchText = `Prints the changes of LIST as they are made, one a line: what happened
(added, updated or deleted), then the entry's id, date and title, separated
by tabs (for a delete, the entry as it was); with -json, each change as the
server sends it, with the list's revision after it. It starts with the
changes after the list as it is now, or after revision -from, and runs
until interrupted. When the connection drops (the server restarts, say) it
reconnects and goes on where it stopped; when the server no longer keeps
the changes after that revision, it says so and exits 1: read the list
again (todo entries -json LIST prints its revision) and watch from there.`

// watchFlags defines watch's own flag.
func watchFlags(from *int64) func(*flag.FlagSet) {
	return func(fs *flag.FlagSet) {
		fs.Int64Var(from, "from", 0, "print the changes after `revision` (0: after the list as it is now)")
	}
}

// goneError is the gone event of a stream: the server no longer keeps
// the changes after the revision asked.
type goneError struct {
	list   string
	after  int64
	reason string
}

func (e *goneError) Error() string {
	return fmt.Sprintf("watch %s: the server no longer keeps the changes after revision %d (%s): read the list again and watch from its revision", e.list, e.after, e.reason)
}

func runWatch(ctx context.Context, std *stdio, args []string) error {
	var from int64
	c, rest, err := newClient(std, "watch", args, 1, 1, watchFlags(&from))
	if err != nil {
		return helpIsDone(err)
	}
	if from < 0 {
		return usagef("watch", "-from %d: want a revision, 0 or more", from)
	}
	w := &watcher{client: c, list: rest[0], last: from, stderr: std.stderr}
	// A first read: of the revision to start from, and of whether the
	// server is there and lets us read the list at all.
	now, err := w.revision(ctx)
	if err != nil {
		return err
	}
	if w.last == 0 {
		w.last = now
	}
	return w.run(ctx)
}

// watcher is one todo watch.
type watcher struct {
	*client
	list   string
	last   int64 // the revision of the last change printed, or where the watch starts
	stderr io.Writer
}

// revision reads the list's revision now.
func (w *watcher) revision(ctx context.Context) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, clientTimeout)
	defer cancel()
	var page todohttp.EntriesPage
	if _, err := w.request(ctx, http.MethodGet, listPath(w.list), url.Values{"limit": {"1"}}, nil, "", &page); err != nil {
		return 0, err
	}
	if page.Revision < 1 {
		return 0, fmt.Errorf("watch %s: the server does not tell the list's revision: its lists cannot be watched", w.list)
	}
	return page.Revision, nil
}

// run follows the stream until ctx ends, reconnecting after every end
// but a refusal. A stream that delivered something resets the wait.
// Each reconnection is said on stderr, and when it worked.
func (w *watcher) run(ctx context.Context) error {
	wait := time.Duration(0)
	for {
		delivered, err := w.follow(ctx, wait > 0)
		if ctx.Err() != nil {
			return nil // interrupted: done
		}
		var gone *goneError
		var refused *apiError
		switch {
		case errors.As(err, &gone):
			return err
		case errors.As(err, &refused) && refused.status != http.StatusServiceUnavailable:
			return err
		case delivered:
			wait = 0
		}
		wait = min(max(2*wait, time.Second), maxReconnectWait)
		if err == nil {
			err = errors.New("the server ended the stream")
		}
		fmt.Fprintf(w.stderr, "todo: watch %s: %s; reconnecting in %v\n", w.list, oneLine(err), wait)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// follow opens the stream after w.last and prints its changes until it
// ends; after a reconnection, it says on stderr that the stream is back.
// It reports whether it printed any, and why the stream ended (nil: the
// server ended it, as it does when it stops).
func (w *watcher) follow(ctx context.Context, reconnecting bool) (bool, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	u := *w.base
	u.RawPath = w.base.EscapedPath() + "/lists/" + url.PathEscape(w.list) + "/events"
	u.Path, _ = url.PathUnescape(u.RawPath)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Last-Event-ID", strconv.FormatInt(w.last, 10))
	if w.token != "" {
		req.Header.Set("Authorization", "Bearer "+w.token)
	}
	resp, err := w.http.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
		ae, _ := w.refusal(resp, data)
		return false, ae
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		return false, fmt.Errorf("watch %s: the answer is %q, not an event stream", w.list, ct)
	}
	if reconnecting {
		fmt.Fprintf(w.stderr, "todo: watch %s: reconnected, after revision %d\n", w.list, w.last)
	}
	// A connection that carries nothing, not even heartbeats, is dead.
	var stale atomic.Bool
	idle := time.AfterFunc(watchIdle, func() {
		stale.Store(true)
		cancel()
	})
	defer idle.Stop()
	delivered := false
	lines := bufio.NewScanner(resp.Body)
	lines.Buffer(make([]byte, 0, 4096), maxEventLine)
	var event, data string
	for lines.Scan() {
		idle.Reset(watchIdle)
		line := lines.Text()
		if line != "" {
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "event":
				event = value
			case "data":
				if data != "" {
					data += "\n"
				}
				data += value
			}
			continue
		}
		switch {
		case event == todohttp.GoneEvent:
			var body todohttp.ErrorBody
			json.Unmarshal([]byte(data), &body)
			return delivered, &goneError{list: w.list, after: w.last, reason: body.Error}
		case event == "" && data != "":
			if err := w.print(data); err != nil {
				return delivered, err
			}
			delivered = true
		}
		event, data = "", ""
	}
	switch {
	case stale.Load():
		return delivered, fmt.Errorf("the stream sent nothing for %v", watchIdle)
	case ctx.Err() != nil:
		return delivered, nil // interrupted: run sees it
	}
	return delivered, lines.Err() // nil: the server ended the stream
}

// print prints one change, and notes its revision.
func (w *watcher) print(data string) error {
	var ev todohttp.Event
	if err := json.Unmarshal([]byte(data), &ev); err != nil {
		return fmt.Errorf("watch %s: an event is not the JSON expected: %v", w.list, err)
	}
	var err error
	if w.json {
		_, err = io.WriteString(w.out, data+"\n")
	} else {
		_, err = io.WriteString(w.out, ev.Kind+"\t"+entryLine(ev.Entry))
	}
	w.last = ev.Revision
	return err
}
