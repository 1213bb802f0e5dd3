package todohttp

import (
	"context"
	"fmt"
	"github.com/gotodo/todo"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// The guards below refuse, before routing, the requests a web page the
// user visits could make against a server on their own machine: a write
// from a page of another origin (cross-site request forgery), and any
// request under a name the page's owner controls and has pointed at
// 127.0.0.1 (DNS rebinding, which makes the page same-origin with the
// server, so that the browser lets it read the answers too).

// admit returns nil for a request the guards let through, or the error
// that answers it.
func (h *handler) admit(r *http.Request) error {
	if !h.hosts.allows(r) {
		return &httpError{status: http.StatusMisdirectedRequest,
			reason: fmt.Sprintf("host %q is not served here", r.Host)}
	}
	if err := h.origins.Check(r); err != nil {
		return &httpError{status: http.StatusForbidden,
			reason: fmt.Sprintf("cross-origin %s refused: %v", r.Method, err)}
	}
	return nil
}

// hostPolicy says which hosts a request may name in its Host header (see
// HandlerOptions.AllowedHosts). It is not changed after NewHandler.
type hostPolicy struct {
	any   bool                // every host is allowed
	names map[string]struct{} // allowed host names, lower case, and addresses, in netip's form
}

func newHostPolicy(hosts []string) (hostPolicy, error) {
	var p hostPolicy
	for _, host := range hosts {
		if host == "*" {
			p.any = true
			continue
		}
		name, ok := canonicalHost(host)
		if !ok {
			return p, fmt.Errorf("%w: AllowedHosts: %q is not a host name or an IP address without port", todo.ErrInvalidOptions, host)
		}
		if p.names == nil {
			p.names = make(map[string]struct{})
		}
		p.names[name] = struct{}{}
	}
	return p, nil
}

// allows reports whether r names a host it may name. A request without a
// Host (HTTP/1.0 allows none; no browser sends one) names none and passes.
func (p *hostPolicy) allows(r *http.Request) bool {
	if p.any {
		return true
	}
	loopback := loopbackConn(r.Context())
	if !loopback && p.names == nil {
		return true
	}
	host := hostName(r.Host)
	if host == "" {
		return true
	}
	if loopback && loopbackHost(host) {
		return true
	}
	name, ok := canonicalHost(host)
	if !ok {
		return false
	}
	_, ok = p.names[name]
	return ok
}

// loopbackConn reports whether the request came in on a loopback address
// (ctx is the request's, which http.Server gives the connection's local
// address).
func loopbackConn(ctx context.Context) bool {
	a, ok := ctx.Value(http.LocalAddrContextKey).(*net.TCPAddr)
	return ok && a.IP.IsLoopback()
}

// hostName returns the host of a Host header, without its port, its IPv6
// brackets or a final dot.
func hostName(host string) string {
	if strings.HasPrefix(host, "[") {
		end := strings.IndexByte(host, ']')
		if end < 0 {
			return host // not a valid host: matches nothing
		}
		return host[1:end]
	}
	if i := strings.LastIndexByte(host, ':'); i >= 0 && strings.IndexByte(host, ':') == i {
		host = host[:i]
	}
	return strings.TrimSuffix(host, ".")
}

// loopbackHost reports whether host (without port) is a name or address
// that can only mean this machine: localhost and the names under it
// (RFC 6761 reserves them, and browsers resolve them to loopback
// themselves), and the loopback addresses.
func loopbackHost(host string) bool {
	const suffix = ".localhost"
	if strings.EqualFold(host, "localhost") ||
		len(host) > len(suffix) && strings.EqualFold(host[len(host)-len(suffix):], suffix) {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// canonicalHost returns host (without port) in the form hostPolicy keeps:
// an IP address as netip writes it, a name in lower case without a final
// dot. It reports false for anything else.
func canonicalHost(host string) (string, bool) {
	if a, err := netip.ParseAddr(host); err == nil {
		return a.Unmap().WithZone("").String(), true
	}
	host = strings.TrimSuffix(host, ".")
	if host == "" || len(host) > 253 {
		return "", false
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_') {
			return "", false
		}
	}
	return strings.ToLower(host), true
}

// newOriginPolicy returns the cross-origin protection of the handler:
// Go's, which refuses a browser's unsafe request from another origin,
// with the trusted origins added.
func newOriginPolicy(trusted []string) (*http.CrossOriginProtection, error) {
	c := http.NewCrossOriginProtection()
	for _, o := range trusted {
		if err := c.AddTrustedOrigin(o); err != nil {
			return nil, fmt.Errorf("%w: TrustedOrigins: %v", todo.ErrInvalidOptions, err)
		}
	}
	return c, nil
}
