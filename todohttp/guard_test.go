package todohttp_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gotodo/todo/todohttp"
)

// guardCase is one request of the Host and cross-origin tables: its
// method and target, its Host, the Origin and Sec-Fetch-Site a browser
// would send (empty: not sent), and the status expected, with a
// substring of the reason for a refusal.
type guardCase struct {
	method, target string
	host           string
	origin, site   string
	status         int
	reason         string
}

// bodyFor is a good body for each route, so that only the guards can
// refuse a request.
func bodyFor(method, target string) string {
	switch {
	case method == "POST" && strings.HasPrefix(target, "/lists/"):
		return `{"date":"2013-12-19","title":"x"}`
	case method == "PATCH":
		return `{"title":"y"}`
	}
	return ""
}

// run sends c to s over a real connection and checks its answer.
func (c guardCase) run(t *testing.T, s *webServer) {
	t.Helper()
	var body io.Reader
	if b := bodyFor(c.method, c.target); b != "" {
		body = strings.NewReader(b)
	}
	req, err := http.NewRequest(c.method, s.URL+c.target, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = c.host
	if c.origin != "" {
		req.Header.Set("Origin", c.origin)
	}
	if c.site != "" {
		req.Header.Set("Sec-Fetch-Site", c.site)
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != c.status {
		t.Fatalf("%s %s Host %q Origin %q Sec-Fetch-Site %q: %d %q, want %d",
			c.method, c.target, c.host, c.origin, c.site, resp.StatusCode, b, c.status)
	}
	if c.status < 400 {
		return
	}
	reason := string(b)
	if strings.HasPrefix(c.target, "/lists") {
		var e struct{ Error, Field string }
		if err := json.Unmarshal(b, &e); err != nil || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("not a JSON error: %q %q", resp.Header.Get("Content-Type"), b)
		}
		reason = e.Error
	} else if resp.Header.Get("Content-Type") != textPlain {
		t.Errorf("Content-Type %q", resp.Header.Get("Content-Type"))
	}
	if !strings.Contains(reason, c.reason) || strings.ContainsAny(reason, "\r\n") {
		t.Errorf("reason %q, want one line with %q", reason, c.reason)
	}
}

// TestHandler_Host checks the DNS rebinding guard on a server listening
// on 127.0.0.1: loopback names and addresses pass, with or without a
// port, whatever their case; any other name is refused with 421, on every
// route and method, and nothing is written.
func TestHandler_Host(t *testing.T) {
	t.Parallel()
	s := startWebServer(t, nil, nil)
	port := s.Listener.Addr().(*net.TCPAddr).Port
	p := ":" + strconv.Itoa(port)
	const add = "/add_entry?list=bob&date=20131219&title=x"
	const get = "/entries?list=bob&date=20131219"
	var cases []guardCase
	for _, host := range []string{
		"localhost", "localhost" + p, "LocalHost" + p, "localhost.", "localhost." + p,
		"app.localhost" + p, "a.b.LOCALHOST", "127.0.0.1", "127.0.0.1" + p, "127.1.2.3" + p,
		"[::1]", "[::1]" + p, "[::ffff:127.0.0.1]" + p,
	} {
		cases = append(cases, guardCase{method: "GET", target: get, host: host, status: 200})
	}
	for _, host := range []string{
		"evil.example", "evil.example" + p, "localhost.evil.example" + p, "127.0.0.1.evil.example",
		"evillocalhost" + p, "localhost.com", "10.0.0.1" + p, "[2001:db8::1]" + p, "0.0.0.0" + p,
		"192.168.1.10", "[::]" + p, "xn--lcalhost-9za" + p,
	} {
		for _, route := range []struct{ method, target string }{
			{"GET", get}, {"POST", add}, {"GET", "/lists"}, {"GET", "/lists/bob/entries"},
			{"POST", "/lists/bob/entries"}, {"PATCH", "/lists/bob/entries/1"}, {"DELETE", "/lists/bob/entries/1"},
			{"GET", "/nowhere"}, {"OPTIONS", "/lists"}, {"GET", "/lists/bob/events"},
		} {
			cases = append(cases, guardCase{method: route.method, target: route.target, host: host,
				status: http.StatusMisdirectedRequest, reason: "is not served here"})
		}
	}
	for _, c := range cases {
		t.Run(c.method+" "+c.target+" Host "+c.host, func(t *testing.T) { c.run(t, s) })
	}
	if r := s.do(t, "GET", "/lists", "", ""); r.body != "{\"lists\":[]}\n" {
		t.Errorf("a refused request wrote: %q", r.body)
	}
	checkNoErrors(t, s)
}

// TestHandler_CrossOrigin checks the cross-site request forgery guard: a
// browser's unsafe request from another origin (told by Sec-Fetch-Site,
// or by an Origin that is not the Host) is refused with 403 and writes
// nothing; safe methods, same-origin requests and requests that are not
// a browser's (no Origin, no Sec-Fetch-Site: curl) pass.
func TestHandler_CrossOrigin(t *testing.T) {
	t.Parallel()
	s := startWebServer(t, nil, nil)
	host := "localhost:" + strconv.Itoa(s.Listener.Addr().(*net.TCPAddr).Port)
	self := "http://" + host
	unsafe := []struct{ method, target string }{
		{"POST", "/add_entry?list=bob&date=20131219&title=x"},
		{"POST", "/lists/bob/entries"},
		{"PATCH", "/lists/bob/entries/1"},
		{"DELETE", "/lists/bob/entries/1"},
	}
	var cases []guardCase
	for _, r := range unsafe {
		for _, h := range []struct{ origin, site string }{
			{"http://evil.example", ""},
			{"http://evil.example", "cross-site"},
			{"", "cross-site"},
			{"http://localhost:3000", "same-site"}, // another port is another origin
			{"null", ""},
			{self, "cross-site"}, // Sec-Fetch-Site wins over a matching Origin
		} {
			cases = append(cases, guardCase{method: r.method, target: r.target, host: host,
				origin: h.origin, site: h.site, status: 403, reason: "cross-origin " + r.method + " refused"})
		}
	}
	// Then the same routes, allowed, four rounds of them: a curl-like
	// request, the server's own page, a user typing the URL. Round k adds
	// entries 2k+1 and 2k+2, renames the first and deletes the second.
	for k, h := range []struct{ origin, site string }{{"", ""}, {self, ""}, {self, "same-origin"}, {"", "none"}} {
		a, b := strconv.Itoa(2*k+1), strconv.Itoa(2*k+2)
		cases = append(cases,
			guardCase{"POST", unsafe[0].target, host, h.origin, h.site, 200, ""},
			guardCase{"POST", unsafe[1].target, host, h.origin, h.site, 201, ""},
			guardCase{"PATCH", "/lists/bob/entries/" + a, host, h.origin, h.site, 200, ""},
			guardCase{"DELETE", "/lists/bob/entries/" + b, host, h.origin, h.site, 204, ""})
	}
	// Safe methods are never refused: they change nothing.
	for _, m := range []string{"GET", "HEAD"} {
		cases = append(cases, guardCase{method: m, target: "/entries?list=bob&date=20131219", host: host,
			origin: "http://evil.example", site: "cross-site", status: 200})
		cases = append(cases, guardCase{method: m, target: "/lists", host: host,
			origin: "http://evil.example", site: "cross-site", status: 200})
	}
	for _, c := range cases {
		c.run(t, s)
	}
	// Each round left one entry, renamed; the refused requests none.
	r := s.do(t, "GET", "/entries", "list=bob&date=20131219", "")
	if r.body != "2013-12-19    y\n2013-12-19    y\n2013-12-19    y\n2013-12-19    y\n" {
		t.Errorf("entries: %q", r.body)
	}
	checkNoErrors(t, s)
}

// TestHandler_AllowedHosts checks the options for a real deployment:
// AllowedHosts names the hosts served besides the loopback ones, and
// TrustedOrigins the origins whose pages may write.
func TestHandler_AllowedHosts(t *testing.T) {
	t.Parallel()
	s := startWebServer(t, nil, &todohttp.HandlerOptions{
		AllowedHosts:   []string{"todo.example.com", "Todo.Example.Org.", "192.0.2.7", "2001:db8::7"},
		TrustedOrigins: []string{"https://app.example.com"},
	})
	const add = "/add_entry?list=bob&date=20131219&title=x"
	for _, c := range []guardCase{
		{method: "POST", target: add, host: "todo.example.com", status: 200},
		{method: "POST", target: add, host: "TODO.example.COM:443", status: 200},
		{method: "POST", target: add, host: "todo.example.org", status: 200},
		{method: "POST", target: add, host: "192.0.2.7:5454", status: 200},
		{method: "POST", target: add, host: "[2001:db8::7]:5454", status: 200},
		{method: "POST", target: add, host: "localhost", status: 200},
		{method: "POST", target: add, host: "www.todo.example.com", status: 421, reason: "is not served here"},
		{method: "POST", target: add, host: "example.com", status: 421, reason: "is not served here"},
		{method: "POST", target: add, host: "todo.example.com", origin: "https://app.example.com", site: "cross-site", status: 200},
		{method: "POST", target: add, host: "todo.example.com", origin: "http://app.example.com", site: "cross-site", status: 403, reason: "cross-origin"},
		{method: "POST", target: add, host: "todo.example.com", origin: "https://evil.example", site: "cross-site", status: 403, reason: "cross-origin"},
	} {
		c.run(t, s)
	}
	if r := s.do(t, "GET", "/entries", "list=bob&date=20131219", ""); strings.Count(r.body, "\n") != 7 {
		t.Errorf("entries: %q", r.body)
	}

	// "*" turns the Host check off.
	open := startWebServer(t, nil, &todohttp.HandlerOptions{AllowedHosts: []string{"*"}})
	guardCase{method: "POST", target: add, host: "anything.example", status: 200}.run(t, open)
}

// TestHandler_Host_NotLoopback checks the Host rule on a connection to an
// address that is not loopback, which the tests cannot listen on: the
// handler is given the request as http.Server gives it, with the
// connection's local address in its context. With no AllowedHosts any
// Host passes there (the names a public server is reached by are not
// known); with AllowedHosts only those, not even localhost, pass.
func TestHandler_Host_NotLoopback(t *testing.T) {
	t.Parallel()
	public := &net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 5454}
	loopback := &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 5454}
	open := newHandler(t, memorySystem(t, nil), nil)
	listed := newHandler(t, memorySystem(t, nil), &todohttp.HandlerOptions{AllowedHosts: []string{"todo.example.com"}})
	for _, c := range []struct {
		name  string
		h     http.Handler
		local net.Addr
		host  string
		want  int
	}{
		{"open, public, any name", open, public, "whatever.example", 200},
		{"open, public, localhost", open, public, "localhost", 200},
		{"open, loopback, any name", open, loopback, "whatever.example", 421},
		{"open, no address (not from http.Server)", open, nil, "whatever.example", 200},
		{"listed, public, listed name", listed, public, "todo.example.com:5454", 200},
		{"listed, public, other name", listed, public, "whatever.example", 421},
		{"listed, public, localhost", listed, public, "localhost", 421},
		{"listed, public, an address", listed, public, "192.0.2.1:5454", 421},
		{"listed, loopback, localhost", listed, loopback, "localhost", 200},
		{"listed, loopback, listed name", listed, loopback, "todo.example.com", 200},
		{"any, no Host (HTTP/1.0)", listed, loopback, "", 200},
		{"open, public, empty Host (HTTP/1.1)", open, public, "", 400},
		{"open, public, port out of range", open, public, "whatever.example:65536", 400},
		{"open, public, not a host", open, public, "what ever", 400},
		{"listed, loopback, port out of range", listed, loopback, "localhost:99999999", 400},
	} {
		req := httptest.NewRequest("GET", "/entries?list=bob&date=20131219", nil)
		if strings.HasSuffix(c.name, "(HTTP/1.0)") {
			req.Proto, req.ProtoMajor, req.ProtoMinor = "HTTP/1.0", 1, 0
		}
		req.Host = c.host
		if c.local != nil {
			req = req.WithContext(context.WithValue(req.Context(), http.LocalAddrContextKey, c.local))
		}
		rec := httptest.NewRecorder()
		c.h.ServeHTTP(rec, req)
		if rec.Code != c.want {
			t.Errorf("%s: %d %q, want %d", c.name, rec.Code, rec.Body, c.want)
		}
	}
}

// TestHandler_Host_Malformed sends, over raw connections, Host headers
// that name no host a client could have connected to: each is answered
// 400 with a one-line reason about the Host, in the format of the API
// asked, before any guard or route, and nothing is written. The same
// requests with a good Host, and an HTTP/1.0 request with no Host, which
// that protocol allows, pass.
func TestHandler_Host_Malformed(t *testing.T) {
	t.Parallel()
	s := startWebServer(t, nil, nil)
	addr := s.Listener.Addr().String()
	request := func(target, host string) string {
		hostLine := "Host: " + host + "\r\n"
		if host == "(none)" {
			hostLine = ""
		}
		method, proto := "POST", "HTTP/1.1"
		if strings.HasPrefix(target, "/lists") {
			method = "GET"
		}
		if host == "(none)" || strings.HasPrefix(host, "(1.0)") {
			proto = "HTTP/1.0"
			hostLine = strings.Replace(hostLine, "(1.0)", "", 1)
		}
		return method + " " + target + " " + proto + "\r\n" + hostLine + "Content-Length: 0\r\nConnection: close\r\n\r\n"
	}
	const add = "/add_entry?list=bob&date=20131219&title=x"
	for _, c := range []struct{ host, reason string }{
		{"", "empty Host header"},
		{"localhost:99999999", "port 99999999 is out of range 0..65535"},
		{"localhost:65536", "port 65536 is out of range"},
		{"127.0.0.1:5x", `port "5x" is not a number`},
		{"localhost:-1", `port "-1" is not a number`},
		{":5454", "no host before the port"},
		{"::1", "an IPv6 address must be in brackets"},
		{"[::1", "no ] after the IPv6 address"},
		{"[127.0.0.1]:5454", `"127.0.0.1" is not an IPv6 address`},
		{"[::1]5454", `"5454" after the IPv6 address`},
		{"local!host", `"local!host" is not a host name or an IP address`},
		{"a,b;c", `"a,b;c" is not a host name or an IP address`},
	} {
		r := sendRaw(t, addr, request(add, c.host), false)
		if r.status != 400 || !strings.Contains(r.body, c.reason) || strings.ContainsAny(r.body, "\r\n") || r.header.Get("Content-Type") != textPlain {
			t.Errorf("Host %q: %d %q %q, want 400 with %q", c.host, r.status, r.header.Get("Content-Type"), r.body, c.reason)
		}
		r = sendRaw(t, addr, request("/lists", c.host), false)
		var e struct{ Error, Field string }
		if err := json.Unmarshal([]byte(r.body), &e); err != nil || r.status != 400 || e.Field != "Host" || !strings.Contains(e.Error, c.reason) {
			t.Errorf("Host %q on the JSON API: %d %q, want 400 about Host with %q", c.host, r.status, r.body, c.reason)
		}
	}
	if r := s.do(t, "GET", "/entries", "list=bob&date=20131219", ""); r.status != 200 || r.body != "" {
		t.Fatalf("a refused request wrote: %d %q", r.status, r.body)
	}
	for _, host := range []string{"localhost", "localhost:65535", "localhost:", "LOCALHOST.:0", "127.0.0.1:5454", "[::1]:5454", "(none)", "(1.0)localhost", "(1.0)"} {
		if r := sendRaw(t, addr, request(add, host), false); r.status != 200 || r.body != "OK" {
			t.Errorf("Host %q: %d %q, want 200", host, r.status, r.body)
		}
	}
	if r := s.do(t, "GET", "/entries", "list=bob&date=20131219", ""); strings.Count(r.body, "\n") != 9 {
		t.Errorf("entries %q, want the 9 adds with a good Host", r.body)
	}
	checkNoErrors(t, s)
}

// curlRequests are the requests of the book's curl session as curl 8
// writes them on the wire (an empty -d adds the form Content-Type).
const (
	curlAdd = "POST /add_entry?list=bob&date=20131219&title=Dentist HTTP/1.1\r\nHost: localhost:%d\r\n" +
		"User-Agent: curl/8.5.0\r\nAccept: */*\r\nContent-Length: 0\r\n" +
		"Content-Type: application/x-www-form-urlencoded\r\n\r\n"
	curlGet = "GET /entries?list=bob&date=20131219 HTTP/1.1\r\nHost: localhost:%d\r\n" +
		"User-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n"
)

// TestHandler_CurlSession plays the book's curl session on one
// keep-alive connection, byte for byte as curl sends it, and checks every
// byte of the answers (but the Date), as the handler wrote them before
// the guards existed.
func TestHandler_CurlSession(t *testing.T) {
	t.Parallel()
	s := startWebServer(t, nil, nil)
	port := s.Listener.Addr().(*net.TCPAddr).Port
	conn, err := net.Dial("tcp", s.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	date := regexp.MustCompile(`\r\nDate: [^\r]*`)
	for _, c := range []struct{ req, want string }{
		{curlAdd, "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\n" +
			"Content-Length: 2\r\n\r\nOK"},
		{curlGet, "HTTP/1.1 200 OK\r\nContent-Length: 22\r\nContent-Type: text/plain; charset=utf-8\r\n" +
			"X-Content-Type-Options: nosniff\r\n\r\n2013-12-19    Dentist\n"},
	} {
		if _, err := io.WriteString(conn, strings.ReplaceAll(c.req, "%d", strconv.Itoa(port))); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, len(c.want)+len("\r\nDate: Mon, 02 Jan 2006 15:04:05 GMT"))
		n, err := io.ReadFull(conn, buf)
		if err != nil {
			t.Fatalf("%q: %v after %q", c.req, err, buf[:n])
		}
		if got := date.ReplaceAllString(string(buf), ""); got != c.want {
			t.Errorf("answer to %q:\n%q\nwant\n%q", c.req, got, c.want)
		}
	}
}

// TestHandler_CurlSession_RealCurl runs the book's curl session with the
// curl command, when the machine has one.
func TestHandler_CurlSession_RealCurl(t *testing.T) {
	t.Parallel()
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("no curl on this machine (apt-get install curl): TestHandler_CurlSession sends its bytes instead")
	}
	s := startWebServer(t, nil, nil)
	base := "http://localhost:" + strconv.Itoa(s.Listener.Addr().(*net.TCPAddr).Port)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-d", "", base + "/add_entry?list=bob&date=20131219&title=Dentist"}, "OK"},
		{[]string{base + "/entries?list=bob&date=20131219"}, "2013-12-19    Dentist\n"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		out, err := exec.CommandContext(ctx, curl, append([]string{"-sS", "--noproxy", "*"}, c.args...)...).Output()
		cancel()
		if err != nil || string(out) != c.want {
			t.Errorf("curl %q: %q %v, want %q", c.args, out, err, c.want)
		}
	}
}
