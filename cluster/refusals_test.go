package cluster

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// passed records the lines refusals lets through.
type passed struct{ lines []string }

func (p *passed) Noticef(format string, v ...any) { p.add("notice", format, v...) }
func (p *passed) Warnf(format string, v ...any)   { p.add("warn", format, v...) }
func (p *passed) Errorf(format string, v ...any)  { p.add("error", format, v...) }
func (p *passed) Fatalf(format string, v ...any)  { p.add("fatal", format, v...) }
func (p *passed) Debugf(format string, v ...any)  { p.add("debug", format, v...) }
func (p *passed) Tracef(format string, v ...any)  { p.add("trace", format, v...) }
func (p *passed) add(level, format string, v ...any) {
	p.lines = append(p.lines, level+" "+fmt.Sprintf(format, v...))
}

// A refused route or client is logged once per address and reason, then
// counted until refusalQuiet has passed, when the next one is logged with
// the count of those kept back; every other line passes through, and the
// addresses remembered are bounded.
func TestRefusals_OncePerQuiet(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	next := &passed{}
	r := newRefusals(next, slog.New(slog.NewTextHandler(&out, nil)), time.Minute)
	now := time.Unix(1_000_000, 0)
	r.now = func() time.Time { return now }
	lines := func() []string { return strings.Split(strings.TrimSpace(out.String()), "\n") }

	// The embedded server's own format: the connection's prefix is part
	// of the format, as its client.Errorf makes it.
	r.Errorf("10.0.0.7:50001 - rid:12 - %v - %s", "authentication error", `User "todo-route"`)
	for i := range 30 { // a second each, from a new port
		now = now.Add(time.Second)
		r.Errorf("10.0.0.7:%d - rid:%d - authentication error - User \"todo-route\"", 50002+i, 13+i)
	}
	r.Errorf("10.0.0.8:40000 - rid:99 - authentication error") // another host
	r.Errorf("10.0.0.7:50100 - rid:98 - authentication error") // another reason: no user
	r.Errorf("10.0.0.9:6222 - rid:5 - Route Error 'Authorization Violation'")
	r.Errorf("10.0.0.9:6222 - rid:6 - Route Error 'Authorization Violation'")
	r.Errorf("10.0.0.10:6222 - rid:7 - Route Error 'Authorization Violation'") // another peer
	r.Errorf("127.0.0.1:1234 - cid:8 - authentication error")
	r.Errorf("127.0.0.1:1235 - rid:9 - TLS route handshake error: remote error: tls: bad certificate")
	r.Errorf("127.0.0.1:1236 - rid:10 - attempted to connect to route port")
	r.Errorf("Error trying to connect to route (attempt %d): %v", 1, "dial tcp: refused")
	r.Errorf("127.0.0.1:1237 - rid:11 - Router Error 'Stale Connection'")
	r.Warnf("Waiting for routing to be established...")
	if got := lines(); len(got) != 8 {
		t.Fatalf("logged %d lines, want 8:\n%s", len(got), out.String())
	}
	for i, want := range []string{
		`msg="cluster: refused a route: the peer has a wrong cluster secret, or none" from=10.0.0.7 reason="nats: authentication error - User \"todo-route\"" refusals_not_logged=0 quiet_for=1m0s`,
		`from=10.0.0.8 reason="nats: authentication error"`,
		`from=10.0.0.7 reason="nats: authentication error"`,
		`level=ERROR msg="cluster: a peer refused this node's route: the cluster secrets or the route TLS settings differ" peer=10.0.0.9:6222`,
		`peer=10.0.0.10:6222`,
		`msg="cluster: refused a NATS client: no credentials, or wrong ones" from=127.0.0.1`,
		`msg="cluster: a route failed its TLS handshake`,
		`msg="cluster: refused a NATS client on the route port" from=127.0.0.1`,
	} {
		if !strings.Contains(lines()[i], want) {
			t.Errorf("line %d: %s\nwant it to hold %s", i+1, lines()[i], want)
		}
	}
	if want := []string{
		"error Error trying to connect to route (attempt 1): dial tcp: refused",
		"error 127.0.0.1:1237 - rid:11 - Router Error 'Stale Connection'",
		"warn Waiting for routing to be established...",
	}; strings.Join(next.lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("passed through:\n%s\nwant:\n%s", strings.Join(next.lines, "\n"), strings.Join(want, "\n"))
	}

	// A minute after the first line, the next refusal is logged, with the
	// count of those kept back meanwhile.
	now = now.Add(30 * time.Second)
	r.Errorf("10.0.0.7:50200 - rid:200 - authentication error - User \"todo-route\"")
	if got := lines(); len(got) != 9 || !strings.Contains(got[8], `from=10.0.0.7 reason="nats: authentication error - User \"todo-route\"" refusals_not_logged=30`) {
		t.Fatalf("after the quiet minute:\n%s", out.String())
	}

	// Past maxRefusalKeys addresses at once, new ones share one key.
	out.Reset()
	for i := range maxRefusalKeys + 10 {
		r.Errorf("10.1.%d.%d:1 - cid:1 - authentication error", i/256, i%256)
	}
	if len(r.seen) > maxRefusalKeys+1 {
		t.Errorf("%d refusals remembered, want at most %d", len(r.seen), maxRefusalKeys+1)
	}
	if n := len(lines()); n > maxRefusalKeys+1 {
		t.Errorf("%d lines for %d addresses at once, want at most %d", n, maxRefusalKeys+10, maxRefusalKeys+1)
	}
}
