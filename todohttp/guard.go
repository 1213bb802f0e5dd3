package todohttp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/gotodo/todo"
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
	host, err := requestHost(r)
	if err != nil {
		return err
	}
	if !h.hosts.allows(r.Context(), host) {
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

// allows reports whether a request, under ctx, may name host (see
// requestHost). An HTTP/1.0 request without a Host names none and passes:
// no browser sends one.
func (p *hostPolicy) allows(ctx context.Context, host string) bool {
	if p.any {
		return true
	}
	loopback := loopbackConn(ctx)
	if !loopback && p.names == nil {
		return true
	}
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

// requestHost returns the host r names in its Host header, without its
// port, its IPv6 brackets or a final dot; or a 400 for a Host that names
// no host a client could have connected to: an empty one, a port that is
// not a number in 0..65535, or a host that is neither a name nor an IP
// address (see parseHost). An HTTP/1.0 request may have no Host at all:
// its host is "".
func requestHost(r *http.Request) (string, error) {
	if r.Host == "" {
		if r.ProtoAtLeast(1, 1) {
			return "", badRequest("Host", "empty Host header: name the host you connect to")
		}
		return "", nil
	}
	host, err := parseHost(r.Host)
	if err != nil {
		return "", badRequest("Host", "Host %q: %v", r.Host, err)
	}
	return host, nil
}

// parseHost reads a Host header, host[:port], as RFC 9110 writes it: a
// name or an IPv4 address, or an IPv6 address in brackets, then a
// decimal port in 0..65535 if there is a colon. It returns the host
// without brackets or a final dot, or why h is not one.
func parseHost(h string) (string, error) {
	host, port, hasPort := h, "", false
	if strings.HasPrefix(h, "[") {
		end := strings.IndexByte(h, ']')
		if end < 0 {
			return "", errors.New("no ] after the IPv6 address")
		}
		host, port = h[1:end], h[end+1:]
		if a, err := netip.ParseAddr(host); err != nil || !a.Is6() {
			return "", fmt.Errorf("%q is not an IPv6 address", host)
		}
		if port != "" {
			if port[0] != ':' {
				return "", fmt.Errorf("%q after the IPv6 address", port)
			}
			port, hasPort = port[1:], true
		}
	} else {
		if strings.Count(h, ":") > 1 {
			return "", errors.New("an IPv6 address must be in brackets")
		}
		host, port, hasPort = strings.Cut(h, ":")
		host = strings.TrimSuffix(host, ".")
		if host == "" {
			return "", errors.New("no host before the port")
		}
		if !nameChars(host) { // an IPv4 address is made of them too
			return "", fmt.Errorf("%q is not a host name or an IP address", host)
		}
	}
	if hasPort && port != "" {
		if !allDigits(port) {
			return "", fmt.Errorf("port %q is not a number", port)
		}
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return "", fmt.Errorf("port %s is out of range 0..65535", port)
		}
	}
	return host, nil
}

// allDigits reports whether s is made of ASCII digits only. It is
// strings.Trim(s, "0123456789") == "" without building the cutset's
// table on every request.
func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
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
	if !nameChars(host) {
		return "", false
	}
	return strings.ToLower(host), true
}

// nameChars reports whether host, without a final dot, is 1 to 253 of the
// characters of a host name: letters, digits, '-', '.' and '_'. It does
// not allocate: every request asks.
func nameChars(host string) bool {
	if host == "" || len(host) > 253 {
		return false
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
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
