package cluster

import (
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"
)

// routeConnectError is the embedded server's format for a failed attempt
// to route to a peer: it logs one at ERROR for every attempt, about 4 a
// second for a peer that is down (one per connection of the route pool).
const routeConnectError = "Error trying to connect to route (attempt %v): %v"

// routeLog turns what the embedded server says of its routes into three
// kinds of lines: one when a peer becomes unreachable, a summary every
// while it stays so, and one when the server routes to it again. It is
// safe for concurrent use.
//
// A peer is known by its name once the server has routed to it (a closed
// route names its remote), else by its address (an attempt to connect
// names the address it dialed). Whether the server routes to a peer now
// is for the node to say, at each tick, from the server's routes.
type routeLog struct {
	log   *slog.Logger
	every time.Duration // between summaries

	mu     sync.Mutex           // guards the fields below
	down   map[string]*downPeer // by name, or address
	closed map[string]bool      // names whose routes closed since the last tick
	names  map[string]string    // address → name, as the node learned them
}

// downPeer is what routeLog knows of a peer it cannot reach.
type downPeer struct {
	since, summarized time.Time
	attempts          int
	lastErr           string
}

// defaultRouteSummaryEvery is how often a peer still unreachable is
// summarized: 1,440 lines a day, where the server's own log had 345,000.
const defaultRouteSummaryEvery = time.Minute

func newRouteLog(log *slog.Logger, every time.Duration) *routeLog {
	if every <= 0 {
		every = defaultRouteSummaryEvery
	}
	return &routeLog{log: log, every: every, down: make(map[string]*downPeer), closed: make(map[string]bool), names: make(map[string]string)}
}

// failed records a failed attempt to route to a peer; err is the
// server's, whose net.OpError names the address.
func (r *routeLog) failed(err error) {
	addr := "unknown"
	var op *net.OpError
	if errors.As(err, &op) && op.Addr != nil {
		addr = op.Addr.String()
	}
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	key := addr
	if name := r.names[addr]; name != "" {
		key = name
	}
	p := r.goneLocked(key, now, err.Error())
	p.attempts++
	p.lastErr = err.Error()
	r.summarizeLocked(key, p, now)
}

// goneLocked returns what is known of the unreachable peer key, logging
// the line that it went if it was not known to be. r.mu is held.
func (r *routeLog) goneLocked(key string, now time.Time, why string) *downPeer {
	if p := r.down[key]; p != nil {
		return p
	}
	p := &downPeer{since: now, summarized: now, lastErr: why}
	r.down[key] = p
	r.log.Warn("cluster: cannot route to a peer; retrying, with back-off (one summary a while until it is back)", "peer", key, "err", why)
	return p
}

// summarizeLocked logs a summary of p if one is due. r.mu is held.
func (r *routeLog) summarizeLocked(key string, p *downPeer, now time.Time) {
	if now.Sub(p.summarized) < r.every {
		return
	}
	p.summarized = now
	r.log.Warn("cluster: a peer is still unreachable", "peer", key, "for", now.Sub(p.since).Round(time.Second), "attempts", p.attempts, "err", p.lastErr)
}

// routeClosed records that a route to the peer called name closed: the
// next tick says whether the server still routes to it.
func (r *routeLog) routeClosed(name string) {
	r.mu.Lock()
	r.closed[name] = true
	r.mu.Unlock()
}

// tick logs what changed: the peers whose last route closed, those routed
// to again, and the summaries due. names maps the peers' addresses to
// their names, as far as the node knows them; routed reports whether the
// server routes to a peer (a name, or an address it solicited).
func (r *routeLog) tick(now time.Time, names map[string]string, routed func(peer string) bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for addr, name := range names {
		r.names[addr] = name
		if p := r.down[addr]; p != nil { // known by its address until now
			delete(r.down, addr)
			if q := r.down[name]; q != nil {
				q.attempts += p.attempts
			} else {
				r.down[name] = p
			}
		}
	}
	for name := range r.closed {
		if !routed(name) {
			r.goneLocked(name, now, "its last route closed")
		}
	}
	clear(r.closed)
	for key, p := range r.down {
		if routed(key) {
			delete(r.down, key)
			r.log.Info("cluster: a peer is reachable again", "peer", key, "after", now.Sub(p.since).Round(time.Millisecond), "attempts", p.attempts)
			continue
		}
		r.summarizeLocked(key, p, now)
	}
}

// unreachable returns the peers it cannot reach now, by name or address.
func (r *routeLog) unreachable() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var keys []string
	for k := range r.down {
		keys = append(keys, k)
	}
	return keys
}

// routeClosedBy returns the name of the remote of a route whose closing a
// notice of the server tells ("127.0.0.1:6222 - rid:8 - Router connection
// closed: Client Closed - Remote: n3").
func routeClosedBy(msg string) (string, bool) {
	if !strings.Contains(msg, "Router connection closed") {
		return "", false
	}
	_, name, ok := strings.Cut(msg, " - Remote: ")
	name, _, _ = strings.Cut(name, ",")
	name = strings.TrimSpace(name)
	return name, ok && name != ""
}
