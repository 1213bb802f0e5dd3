package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/gotodo/todo"
	"github.com/gotodo/todo/todohttp"
)

// The client commands talk to a running server over its JSON API, the Go
// form of the release's remote console.

const (
	defaultServerURL = "http://127.0.0.1:5454"
	// clientTimeout bounds a whole command, retries included; for lists
	// and entries, which may take many pages, each page.
	clientTimeout = 30 * time.Second
	// pageLimit is the page size the listing commands ask for: the API's
	// largest, so that 100,000 lists take 100 requests, not 1,000.
	pageLimit = "1000"
	// writeAttempts is how many times a write is sent in all when no
	// answer came or the server answered 503: each try carries the same
	// Idempotency-Key, so that the server applies it at most once.
	writeAttempts = 3
	// maxRetryWait caps the wait a Retry-After asks for between tries.
	maxRetryWait = 5 * time.Second
	// maxAnswer bounds an answer read from the server.
	maxAnswer = 64 << 20
)

// client is a connection to a server's JSON API, for one command.
type client struct {
	base  *url.URL
	http  *http.Client
	token string // sent as Authorization: Bearer; "" for none. Never printed.
	json  bool   // print the server's JSON instead of lines
	out   io.Writer
}

// clientOptions are a client command's flags.
type clientOptions struct {
	server    string
	asJSON    bool
	tokenFile string
	ca        string
}

// clientHelp is the help of a client command, whose own flags, if any,
// more defines.
func clientHelp(name, args, text string, more ...func(*flag.FlagSet)) func(io.Writer) {
	return func(w io.Writer) {
		fmt.Fprintf(w, "Usage: %s [flags]\n\n%s\n\nFlags:\n", strings.TrimSpace("todo "+name+" "+args), text)
		fs := flag.NewFlagSet(name, flag.ContinueOnError)
		fs.SetOutput(w)
		clientFlags(fs, new(clientOptions))
		for _, m := range more {
			m(fs)
		}
		fs.PrintDefaults()
		fmt.Fprint(w, "\nExit status: 0 done; 1 failed (the server refused, or an I/O or network error); 2 a mistake in the command line.\n")
	}
}

func clientFlags(fs *flag.FlagSet, o *clientOptions) {
	fs.StringVar(&o.server, "server", "", "the server's `URL` [TODO_URL] (default "+defaultServerURL+")")
	fs.BoolVar(&o.asJSON, "json", false, "print the server's JSON answer as it is")
	fs.StringVar(&o.tokenFile, "token-file", "", "a `file` holding the token to send (as Authorization: Bearer); else TODO_TOKEN holds it")
	fs.StringVar(&o.ca, "ca", "", "a PEM `file` of the certificate authority that signed an https server's certificate, trusted beside the system's [TODO_CA]")
}

// newClient parses a client command's flags (and those more defines) and
// returns the client and the positional arguments, of which there must be
// between min and max. It returns flag.ErrHelp after printing the
// command's help.
func newClient(std *stdio, name string, args []string, min, max int, more ...func(*flag.FlagSet)) (*client, []string, error) {
	var o clientOptions
	fs := newFlagSet(name)
	clientFlags(fs, &o)
	for _, m := range more {
		m(fs)
	}
	rest, err := parseFlags(fs, name, args)
	if errors.Is(err, flag.ErrHelp) {
		lookup(name).help(std.stdout)
		return nil, nil, err
	}
	if err != nil {
		return nil, nil, err
	}
	c := lookup(name)
	switch {
	case len(rest) < min:
		return nil, nil, usagef(name, "%s wants %s", name, c.args)
	case len(rest) > max && max == 0:
		return nil, nil, usagef(name, "%s wants no arguments, got %d: %q", name, len(rest), rest)
	case len(rest) > max:
		return nil, nil, usagef(name, "%s wants %s, got %d arguments: %q", name, c.args, len(rest), rest)
	}
	server, source := o.server, "-server"
	if server == "" {
		server, source = std.getenv("TODO_URL"), "TODO_URL"
	}
	if server == "" {
		server = defaultServerURL
	}
	base, err := parseServerURL(server)
	if err != nil {
		return nil, nil, usagef(name, "%s %q: %v", source, server, err)
	}
	token, err := clientToken(std, o.tokenFile)
	if err != nil {
		return nil, nil, err
	}
	tr := &http.Transport{Proxy: http.ProxyFromEnvironment, ForceAttemptHTTP2: true}
	if tr.TLSClientConfig, err = clientTLS(std, o.ca); err != nil {
		return nil, nil, err
	}
	return &client{
		base:  base,
		http:  &http.Client{Transport: tr},
		token: token,
		json:  o.asJSON,
		out:   std.stdout,
	}, rest, nil
}

// clientToken returns the token to send: the contents of file, or else of
// TODO_TOKEN, without the spaces and newline around it; "" for none. The
// errors never hold the token.
func clientToken(std *stdio, file string) (string, error) {
	token, source := std.getenv("TODO_TOKEN"), "TODO_TOKEN"
	if file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("-token-file: %w", err)
		}
		token, source = string(data), "-token-file "+file
	}
	token = strings.TrimSpace(token)
	if token == "" {
		if file != "" {
			return "", fmt.Errorf("%s holds no token", source)
		}
		return "", nil
	}
	if !isToken68(token) {
		return "", fmt.Errorf("%s does not hold a token: want one line of letters, digits and -._~+/ (then = signs)", source)
	}
	return token, nil
}

// isToken68 reports whether s may be sent as a bearer token: RFC 7235's
// token68, as the server reads it.
func isToken68(s string) bool {
	body := strings.TrimRight(s, "=")
	if body == "" {
		return false
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~+/", c) >= 0) {
			return false
		}
	}
	return true
}

// clientTLS returns the client's TLS configuration: the system's roots,
// and with file (or else TODO_CA) the certificates of a private CA too;
// nil, Go's defaults, when neither is given.
func clientTLS(std *stdio, file string) (*tls.Config, error) {
	source := "-ca"
	if file == "" {
		file, source = std.getenv("TODO_CA"), "TODO_CA"
	}
	if file == "" {
		return nil, nil
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("%s %s: no PEM certificate in it", source, file)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// parseServerURL checks a server's URL: http or https, a host, no query.
// A bare host:port means http.
func parseServerURL(s string) (*url.URL, error) {
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			return nil, ue.Err
		}
		return nil, err
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, errors.New("want an http or https URL")
	case u.Host == "":
		return nil, errors.New("no host")
	case u.RawQuery != "" || u.Fragment != "":
		return nil, errors.New("want no query or fragment")
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// apiError is a request the server refused: its status and one-line reason,
// and the input it concerns when the server names it.
type apiError struct {
	status int
	reason string
	field  string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.status, http.StatusText(e.status), e.reason)
}

// request sends one request to the API and decodes its answer into out
// (unless out is nil), or returns what went wrong. A write (key not
// empty) is sent again, with the same key, when no answer came or the
// answer was 503.
func (c *client) request(ctx context.Context, method, path string, query url.Values, body any, key string, out any) ([]byte, error) {
	// path is escaped (a list name in it is url.PathEscape'd): RawPath
	// keeps its escapes, "a%2Fb" for the list "a/b".
	u := *c.base
	u.RawPath = c.base.EscapedPath() + path
	var err error
	if u.Path, err = url.PathUnescape(u.RawPath); err != nil {
		return nil, err
	}
	u.RawQuery = query.Encode()
	var payload []byte
	if body != nil {
		if payload, err = json.Marshal(body); err != nil {
			return nil, err
		}
	}
	attempts := 1
	if key != "" {
		attempts = writeAttempts
	}
	for attempt := 1; ; attempt++ {
		data, wait, err := c.try(ctx, method, &u, payload, key)
		if err == nil {
			if out != nil && len(data) > 0 {
				if err := json.Unmarshal(data, out); err != nil {
					return nil, fmt.Errorf("%s %s: the answer is not the JSON expected: %v", method, u.Redacted(), err)
				}
			}
			return data, nil
		}
		if wait < 0 || attempt >= attempts {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(wait):
		}
	}
}

// try sends a request once. It returns the answer's body, or an error and
// how long to wait before trying again (negative: do not).
func (c *client) try(ctx context.Context, method string, u *url.URL, payload []byte, key string) ([]byte, time.Duration, error) {
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, -1, err
	}
	req.Header.Set("Accept", "application/json")
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return nil, -1, fmt.Errorf("cannot reach the server at %s (is it running? -server or TODO_URL name another): %v", c.base.Redacted(), op.Err)
		}
		return nil, time.Second, fmt.Errorf("%s %s: %v", method, u.Redacted(), errors.Unwrap(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return nil, time.Second, fmt.Errorf("%s %s: reading the answer: %v", method, u.Redacted(), err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return data, 0, nil
	}
	ae, wait := c.refusal(resp, data)
	return nil, wait, ae
}

// refusal reads the answer of a request the server refused, whose body
// is data: the error to return, and how long to wait before trying again
// (negative: do not).
func (c *client) refusal(resp *http.Response, data []byte) (*apiError, time.Duration) {
	ae := &apiError{status: resp.StatusCode, reason: strings.TrimSpace(string(data))}
	var e todohttp.ErrorBody
	if json.Unmarshal(data, &e) == nil && e.Error != "" {
		ae.reason, ae.field = e.Error, e.Field
	}
	if ae.reason == "" {
		ae.reason = "(no reason given)"
	}
	ae.reason = oneLine(errors.New(ae.reason))
	if resp.StatusCode == http.StatusUnauthorized && c.token == "" {
		ae.reason += " (set TODO_TOKEN, or give -token-file)"
	}
	wait := time.Duration(-1)
	if resp.StatusCode == http.StatusServiceUnavailable {
		wait = time.Second
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
			wait = min(time.Duration(s)*time.Second, maxRetryWait)
		}
	}
	return ae, wait
}

// pages requests path and every page after it, following each answer's
// "next", and calls page with each answer. "next" is a path of the server,
// or a cursor to pass as "after".
func (c *client) pages(ctx context.Context, path string, query url.Values, page func(data []byte) (next string, err error)) error {
	const maxPages = 1 << 20 // a server that loops must not keep us forever
	for range maxPages {
		pageCtx, cancel := context.WithTimeout(ctx, clientTimeout)
		data, err := c.request(pageCtx, http.MethodGet, path, query, nil, "", nil)
		cancel()
		if err != nil {
			return err
		}
		next, err := page(data)
		if err != nil || next == "" {
			return err
		}
		if strings.HasPrefix(next, "/") {
			u, err := url.Parse(next)
			if err != nil {
				return fmt.Errorf("the server's next page %q: %v", next, err)
			}
			path, _ = strings.CutPrefix(u.EscapedPath(), c.base.EscapedPath())
			if query, err = url.ParseQuery(u.RawQuery); err != nil {
				return fmt.Errorf("the server's next page %q: %v", next, err)
			}
			continue
		}
		query = cloneValues(query)
		query.Set("after", next)
	}
	return errors.New("the server gave more than a million pages")
}

func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v)+1)
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

// nextOf reads the "next" of a page: a string, or a number (a cursor).
func nextOf(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}

// newKey returns a fresh Idempotency-Key: a random (version 4) UUID, as
// the web page sends.
func newKey() string {
	var b [16]byte
	rand.Read(b[:]) // never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func listPath(list string) string { return "/lists/" + url.PathEscape(list) + "/entries" }

func runLists(ctx context.Context, std *stdio, args []string) error {
	c, _, err := newClient(std, "lists", args, 0, 0)
	if err != nil {
		return helpIsDone(err)
	}
	return c.pages(ctx, "/lists", url.Values{"limit": {pageLimit}}, func(data []byte) (string, error) {
		var page struct {
			todohttp.ListsPage
			Next json.RawMessage `json:"next"` // a path, or a cursor (see nextOf)
		}
		if err := json.Unmarshal(data, &page); err != nil {
			return "", fmt.Errorf("GET /lists: the answer is not the JSON expected: %v", err)
		}
		if c.json {
			_, err := c.out.Write(data)
			return nextOf(page.Next), err
		}
		var b strings.Builder
		for _, name := range page.Lists {
			b.WriteString(name)
			b.WriteByte('\n')
		}
		_, err := io.WriteString(c.out, b.String())
		return nextOf(page.Next), err
	})
}

// entryLine is an entry as the listing commands print it: id, date and
// title, separated by tabs.
func entryLine(e todohttp.Entry) string { return fmt.Sprintf("%d\t%s\t%s\n", e.ID, e.Date, e.Title) }

func runEntries(ctx context.Context, std *stdio, args []string) error {
	c, rest, err := newClient(std, "entries", args, 1, 2)
	if err != nil {
		return helpIsDone(err)
	}
	list := rest[0]
	query := url.Values{"limit": {pageLimit}}
	if len(rest) == 2 {
		d, err := parseDateArg(rest[1])
		if err != nil {
			return usagef("entries", "%v", err)
		}
		query.Set("date", d)
	}
	return c.pages(ctx, listPath(list), query, func(data []byte) (string, error) {
		var page struct {
			todohttp.EntriesPage
			Next json.RawMessage `json:"next"` // a path, or a cursor (see nextOf)
		}
		if err := json.Unmarshal(data, &page); err != nil {
			return "", fmt.Errorf("the answer is not the JSON expected: %v", err)
		}
		if c.json {
			_, err := c.out.Write(data)
			return nextOf(page.Next), err
		}
		var b strings.Builder
		for _, e := range page.Entries {
			b.WriteString(entryLine(e))
		}
		_, err := io.WriteString(c.out, b.String())
		return nextOf(page.Next), err
	})
}

func runAdd(ctx context.Context, std *stdio, args []string) error {
	c, rest, err := newClient(std, "add", args, 3, 1<<20)
	if err != nil {
		return helpIsDone(err)
	}
	date, err := parseDateArg(rest[1])
	if err != nil {
		return usagef("add", "%v", err)
	}
	title := strings.Join(rest[2:], " ")
	ctx, cancel := context.WithTimeout(ctx, clientTimeout)
	defer cancel()
	var e todohttp.Entry
	data, err := c.request(ctx, http.MethodPost, listPath(rest[0]), nil, todohttp.AddBody{Date: date, Title: title}, newKey(), &e)
	if err != nil {
		return err
	}
	if c.json {
		_, err = c.out.Write(data)
		return err
	}
	_, err = io.WriteString(c.out, entryLine(e))
	return err
}

func runRemove(ctx context.Context, std *stdio, args []string) error {
	c, rest, err := newClient(std, "rm", args, 2, 2)
	if err != nil {
		return helpIsDone(err)
	}
	id, err := strconv.Atoi(rest[1])
	if err != nil || id < 1 {
		return usagef("rm", "entry id %q is not a positive integer", rest[1])
	}
	ctx, cancel := context.WithTimeout(ctx, clientTimeout)
	defer cancel()
	_, err = c.request(ctx, http.MethodDelete, listPath(rest[0])+"/"+strconv.Itoa(id), nil, nil, newKey(), nil)
	return err
}

func runStats(ctx context.Context, std *stdio, args []string) error {
	c, _, err := newClient(std, "stats", args, 0, 0)
	if err != nil {
		return helpIsDone(err)
	}
	ctx, cancel := context.WithTimeout(ctx, clientTimeout)
	defer cancel()
	var vars struct {
		Todo json.RawMessage `json:"todo"`
	}
	if _, err := c.request(ctx, http.MethodGet, "/debug/vars", nil, nil, "", &vars); err != nil {
		return err
	}
	if len(vars.Todo) == 0 {
		return errors.New("the server's /debug/vars has no \"todo\" counters")
	}
	if c.json {
		_, err := c.out.Write(append(vars.Todo, '\n'))
		return err
	}
	var stats todo.Stats
	if err := json.Unmarshal(vars.Todo, &stats); err != nil {
		return fmt.Errorf("the server's counters are not the JSON expected: %v", err)
	}
	_, err = io.WriteString(c.out, statsLines(stats))
	return err
}

// statsLines writes every field of s, one a line: its name and value, in
// the order todo.Stats declares them.
func statsLines(s todo.Stats) string {
	var b strings.Builder
	v := reflect.ValueOf(s)
	for i := range v.NumField() {
		fmt.Fprintf(&b, "%s\t%v\n", v.Type().Field(i).Name, v.Field(i).Interface())
	}
	return b.String()
}

// helpIsDone turns the flag.ErrHelp of a command that printed its help
// into success.
func helpIsDone(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

// parseDateArg reads a date argument: 2013-12-19, 20131219, or today (the
// local date), as the API writes dates.
func parseDateArg(s string) (string, error) {
	if s == "today" {
		return time.Now().Format(time.DateOnly), nil
	}
	d, err := todo.ParseDate(s)
	if err != nil {
		return "", fmt.Errorf("date %q: want 2013-12-19, 20131219 or today", s)
	}
	return d.String(), nil
}
