package cluster

import (
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// refusalQuiet is how long a refusal, once logged, is not logged again
// for the same address and reason: it is counted, and the count comes
// with the next line.
const refusalQuiet = 10 * time.Minute

// maxRefusalKeys bounds the refusals remembered: past it, the oldest
// quiet ones are forgotten, and if none is, refusals from new addresses
// are logged under one key, "other".
const maxRefusalKeys = 1024

// refusalLine matches the embedded server's line for a refused
// connection (nats-server v2.15): "HOST:PORT - rid:N - REASON" for a
// route, "cid:N" for a client, where REASON is one of those below.
var refusalLine = regexp.MustCompile(`^(\S+) - (rid|cid):\d+ - ((?:authentication error|TLS route handshake error|attempted to connect to route port|Route Error 'Authorization Violation'|Route Error 'Secure Connection - TLS Required').*)$`)

// refusals sits between the embedded server and its logger (natsLogger):
// it passes every line through but those of refused connections. A
// server logs one for each attempt, and a peer with the wrong secret or
// certificate tries again every second: refusals logs the first of each
// address and reason at once, in its own words, then at most one line
// per refusalQuiet with the count of those it kept back. It is safe for
// concurrent use.
type refusals struct {
	server.Logger
	log   *slog.Logger
	now   func() time.Time
	quiet time.Duration

	mu   sync.Mutex // guards seen
	seen map[refusalKey]*refusalCount
}

type refusalKey struct {
	kind, host, reason string
}

type refusalCount struct {
	logged time.Time // when a line last named it; zero: never
	kept   int       // refusals since, not logged
}

// newRefusals returns the logger of refusals before next, logging them to
// log at most once per quiet for each address and reason (0: each one).
func newRefusals(next server.Logger, log *slog.Logger, quiet time.Duration) *refusals {
	return &refusals{Logger: next, log: log, now: time.Now, quiet: quiet, seen: make(map[refusalKey]*refusalCount)}
}

func (r *refusals) Errorf(format string, v ...any) {
	m := refusalLine.FindStringSubmatch(fmt.Sprintf(format, v...))
	if m == nil {
		r.Logger.Errorf(format, v...)
		return
	}
	r.refused(m[1], m[2], m[3])
}

// refused counts a refusal, and logs it if its key has been quiet long
// enough. remote is the other side's host:port, kind "rid" for a route
// or "cid" for a client.
func (r *refusals) refused(remote, kind, reason string) {
	k := refusalKey{kind: kind, host: remote, reason: reason}
	if !isOutbound(reason) {
		// A connection from a peer comes from a new port each time:
		// its host names it. A peer this node dials keeps its port.
		if h, _, err := net.SplitHostPort(remote); err == nil {
			k.host = h
		}
	}
	now := r.now()
	r.mu.Lock()
	c := r.counter(k, now)
	if !c.logged.IsZero() && now.Sub(c.logged) < r.quiet {
		c.kept++
		r.mu.Unlock()
		return
	}
	kept := c.kept
	c.logged, c.kept = now, 0
	r.mu.Unlock()
	r.logRefusal(k, kept)
}

// counter returns k's count, adding it, and forgetting quiet keys if
// there are too many. r.mu is held.
func (r *refusals) counter(k refusalKey, now time.Time) *refusalCount {
	if c := r.seen[k]; c != nil {
		return c
	}
	if len(r.seen) >= maxRefusalKeys {
		for old, c := range r.seen {
			if now.Sub(c.logged) >= r.quiet {
				delete(r.seen, old)
			}
		}
		if len(r.seen) >= maxRefusalKeys {
			k.host = "other"
			if c := r.seen[k]; c != nil {
				return c
			}
		}
	}
	c := &refusalCount{}
	r.seen[k] = c
	return c
}

// isOutbound reports whether a route error is this node's route being
// refused by its peer, rather than this node refusing one.
func isOutbound(reason string) bool {
	return strings.HasPrefix(reason, "Route Error")
}

func (r *refusals) logRefusal(k refusalKey, kept int) {
	attrs := []any{"reason", "nats: " + k.reason, "refusals_not_logged", kept, "quiet_for", r.quiet.String()}
	switch {
	case k.kind == "cid":
		r.log.Warn("cluster: refused a NATS client: no credentials, or wrong ones", append([]any{"from", k.host}, attrs...)...)
	case strings.HasPrefix(k.reason, "attempted to connect to route port"):
		r.log.Warn("cluster: refused a NATS client on the route port", append([]any{"from", k.host}, attrs...)...)
	case isOutbound(k.reason):
		r.log.Error("cluster: a peer refused this node's route: the cluster secrets or the route TLS settings differ", append([]any{"peer", k.host}, attrs...)...)
	case strings.HasPrefix(k.reason, "TLS"):
		r.log.Warn("cluster: a route failed its TLS handshake: one side's certificate is not of the other's CA, or it has none", append([]any{"remote", k.host}, attrs...)...)
	default:
		r.log.Warn("cluster: refused a route: the peer has a wrong cluster secret, or none", append([]any{"from", k.host}, attrs...)...)
	}
}
