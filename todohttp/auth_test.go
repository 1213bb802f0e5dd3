package todohttp_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"unicode/utf8"

	"github.com/gotodo/todo"
	"github.com/gotodo/todo/todohttp"
)

// testToken is a token a test writes into a tokens file: its name,
// rights and lists as the file writes them.
type testToken struct{ name, rights, lists string }

// newSecret returns a fresh secret, as `todo token add` makes them.
func newSecret() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// tokenLine is the line of a tokens file for a token with secret.
func tokenLine(name, secret, rights, lists string) string {
	return fmt.Sprintf("%s %x %s %s\n", name, sha256.Sum256([]byte(secret)), rights, lists)
}

// writeTokens writes a tokens file at path, mode 0600, holding toks, each
// with a fresh secret, and returns the secrets by token name.
func writeTokens(t testing.TB, path string, toks ...testToken) map[string]string {
	t.Helper()
	secrets := make(map[string]string)
	var b strings.Builder
	b.WriteString("# a test's tokens\n\n")
	for _, tk := range toks {
		secrets[tk.name] = newSecret()
		b.WriteString(tokenLine(tk.name, secrets[tk.name], tk.rights, tk.lists))
	}
	replaceFile(t, path, b.String(), 0o600)
	return secrets
}

// replaceFile replaces path with a new file of the given contents and
// mode, as an editor that saves by renaming does.
func replaceFile(t testing.TB, path, contents string, mode os.FileMode) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(contents), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(tmp, mode); err != nil { // past the umask
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// openTokens opens the tokens file at path, looked at on every request.
func openTokens(t testing.TB, path string) *todohttp.TokenFile {
	t.Helper()
	tf, err := todohttp.OpenTokenFile(path, &todohttp.TokenFileOptions{CheckEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	return tf
}

// bearer is the header of a request sending secret.
func bearer(secret string) http.Header {
	return http.Header{"Authorization": {"Bearer " + secret}}
}

// authCase is one request of the refusal tables: who sends it (a token's
// name, "" for none, "wrong" for a secret in no file), and the status and
// reason expected.
type authCase struct {
	method, path, query string
	who                 string
	status              int
	reason              string
}

// run sends c to s over a real connection and checks its answer: its
// status, its format (JSON for the JSON API, plain text for the original
// routes), its reason, and a 401's challenge.
func (c authCase) run(t *testing.T, s *webServer, secrets map[string]string) {
	t.Helper()
	header := http.Header{}
	switch c.who {
	case "":
	case "wrong":
		header = bearer(newSecret())
	default:
		header = bearer(secrets[c.who])
	}
	r := s.doWith(t, c.method, c.path, c.query, bodyFor(c.method, c.path), header)
	what := fmt.Sprintf("%s %s?%s by %q", c.method, c.path, c.query, c.who)
	if r.status != c.status {
		t.Fatalf("%s: %d %q, want %d", what, r.status, r.body, c.status)
	}
	reason := r.body
	if strings.HasPrefix(c.path, "/lists") {
		var e todohttp.ErrorBody
		if err := json.Unmarshal([]byte(r.body), &e); err != nil || r.header.Get("Content-Type") != "application/json" {
			t.Fatalf("%s: not a JSON error: %q %q", what, r.header.Get("Content-Type"), r.body)
		}
		reason = e.Error
	} else if r.header.Get("Content-Type") != textPlain {
		t.Errorf("%s: Content-Type %q", what, r.header.Get("Content-Type"))
	}
	if !strings.Contains(reason, c.reason) || strings.ContainsAny(reason, "\r\n") {
		t.Errorf("%s: reason %q, want one line with %q", what, reason, c.reason)
	}
	challenge := r.header.Get("WWW-Authenticate")
	switch {
	case c.status != 401 && challenge != "":
		t.Errorf("%s: a %d with WWW-Authenticate %q", what, c.status, challenge)
	case c.status == 401 && c.who == "" && challenge != `Bearer realm="todo"`:
		t.Errorf("%s: WWW-Authenticate %q", what, challenge)
	case c.status == 401 && c.who != "" && challenge != `Bearer realm="todo", error="invalid_token"`:
		t.Errorf("%s: WWW-Authenticate %q", what, challenge)
	}
	for _, secret := range secrets {
		if strings.Contains(r.body, secret) {
			t.Errorf("%s: the answer holds a secret: %q", what, r.body)
		}
	}
}

// TestHandler_Auth_Refusals sends, with no token, a wrong one, and tokens
// without the rights or the lists asked for, every kind of request on the
// original routes and the JSON API alike: each is refused in its API's
// format, none loads a list or starts its server, and the data directory
// is byte for byte as it was. Then the same requests with the right
// tokens pass, so that the refusals are the tokens' doing.
func TestHandler_Auth_Refusals(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	seed, err := todo.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, list := range []string{"bob", "alice", "team-a"} {
		if _, err := seed.AddEntry(context.Background(), list, todo.Entry{Date: todo.Date{Year: 2013, Month: 12, Day: 19}, Title: "Dentist"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := seed.Close(); err != nil {
		t.Fatal(err)
	}
	tokens := filepath.Join(t.TempDir(), "tokens")
	secrets := writeTokens(t, tokens,
		testToken{"reader", "read", "bob"},
		testToken{"team", "write", "team-*"},
		testToken{"scraper", "metrics", "-"},
		testToken{"boss", "admin", "*"},
	)
	before := dirContents(t, dir)
	s := startWebServerIn(t, dir, nil, &todohttp.HandlerOptions{Authenticate: openTokens(t, tokens).Authenticate}, nil)

	for _, c := range []authCase{
		// The original routes.
		{"POST", "/add_entry", "list=bob&date=20131219&title=x", "", 401, "no token"},
		{"GET", "/entries", "list=bob&date=20131219", "", 401, "no token"},
		{"GET", "/entries", "list=bob&date=20131219", "wrong", 401, "token not recognized"},
		{"POST", "/add_entry", "list=bob&date=20131219&title=x", "wrong", 401, "token not recognized"},
		{"POST", "/add_entry", "list=bob&date=20131219&title=x", "reader", 403, `"reader" may not write list "bob": its rights are read`},
		{"GET", "/entries", "list=alice&date=20131219", "reader", 403, `"reader" may not read list "alice": not one of its lists`},
		{"GET", "/entries", "list=team&date=20131219", "team", 403, `"team" may not read list "team": not one of its lists`},
		{"POST", "/add_entry", "list=alice&date=20131219&title=x", "team", 403, `"team" may not write list "alice"`},
		{"GET", "/entries", "list=bob&date=20131219", "scraper", 403, `"scraper" may not read list "bob": its rights are metrics`},
		// A forbidden list is refused before its other inputs are read.
		{"POST", "/add_entry", "list=alice&date=2013&title=x", "reader", 403, `may not write list "alice"`},
		// Every path, a route or not, needs a token.
		{"GET", "/nowhere", "", "", 401, "no token"},
		{"PUT", "/entries", "list=bob&date=20131219", "", 401, "no token"},
		// The JSON API.
		{"GET", "/lists", "", "", 401, "no token"},
		{"GET", "/lists", "", "wrong", 401, "token not recognized"},
		{"GET", "/lists", "", "scraper", 403, `"scraper" may not read lists: its rights are metrics`},
		{"GET", "/lists/bob/entries", "", "", 401, "no token"},
		{"GET", "/lists/bob/entries", "", "wrong", 401, "token not recognized"},
		{"GET", "/lists/alice/entries", "", "reader", 403, `"reader" may not read list "alice"`},
		{"POST", "/lists/bob/entries", "", "reader", 403, `"reader" may not write list "bob": its rights are read`},
		{"PATCH", "/lists/bob/entries/1", "", "reader", 403, `"reader" may not write list "bob"`},
		{"DELETE", "/lists/bob/entries/1", "", "reader", 403, `"reader" may not write list "bob"`},
		{"POST", "/lists/alice/entries", "", "team", 403, `"team" may not write list "alice": not one of its lists`},
		{"DELETE", "/lists/alice/entries/1", "", "team", 403, `"team" may not write list "alice"`},
		{"PATCH", "/lists/team-a/entries/1", "", "scraper", 403, `"scraper" may not write list "team-a": its rights are metrics`},
		{"DELETE", "/lists/bob/entries/1", "", "", 401, "no token"},
		{"PUT", "/lists/bob/entries", "", "", 401, "no token"},
		{"GET", "/lists/bob/events", "", "", 401, "no token"},
		{"GET", "/lists/bob/events", "", "wrong", 401, "token not recognized"},
		{"GET", "/lists/alice/events", "", "reader", 403, `"reader" may not read list "alice": not one of its lists`},
		{"GET", "/lists/bob/events", "", "scraper", 403, `"scraper" may not read list "bob": its rights are metrics`},
		{"GET", "/lists/team/events", "from=1", "team", 403, `"team" may not read list "team"`},
	} {
		c.run(t, s, secrets)
	}
	// Credentials that are not a bearer token.
	for _, h := range []http.Header{
		{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("boss:"+secrets["boss"]))}},
		{"Authorization": {"Bearer"}},
		{"Authorization": {"Bearer " + secrets["boss"] + " extra"}},
		{"Authorization": {"Bearer " + secrets["boss"], "Bearer " + secrets["boss"]}},
		{"Authorization": {"Bearer " + secrets["boss"][:20]}},
		{"Cookie": {todohttp.SessionCookie + "=" + newSecret()}},
		{"Cookie": {todohttp.SessionCookie + "=\"not a token\""}},
	} {
		r := s.doWith(t, "GET", "/entries", "list=bob&date=20131219", "", h)
		if r.status != 401 || r.header.Get("WWW-Authenticate") != `Bearer realm="todo", error="invalid_token"` {
			t.Errorf("GET /entries with %q: %d %q %q", h, r.status, r.header.Get("WWW-Authenticate"), r.body)
		}
	}

	if st := s.sys.Stats(); st.ServersStarted != 0 || st.ServersRunning != 0 {
		t.Errorf("after refusals only: %d list servers started, %d running; want none", st.ServersStarted, st.ServersRunning)
	}
	if after := dirContents(t, dir); !mapsEqual(before, after) {
		t.Errorf("refusals changed the data directory:\nbefore %q\nafter  %q", before, after)
	}

	// The same requests, from tokens that may.
	for _, c := range []struct {
		method, path, query, who string
		status                   int
	}{
		{"GET", "/entries", "list=bob&date=20131219", "reader", 200},
		{"POST", "/add_entry", "list=team-a&date=20131219&title=x", "team", 200},
		{"GET", "/entries", "list=team-a&date=20131219", "team", 200},
		{"GET", "/lists/bob/entries", "", "reader", 200},
		{"POST", "/lists/bob/entries", "", "boss", 201},
		{"PATCH", "/lists/team-a/entries/1", "", "team", 200},
		{"DELETE", "/lists/alice/entries/1", "", "boss", 204},
		{"GET", "/lists", "", "reader", 200},
	} {
		r := s.doWith(t, c.method, c.path, c.query, bodyFor(c.method, c.path), bearer(secrets[c.who]))
		if r.status != c.status {
			t.Errorf("%s %s?%s by %s: %d %q, want %d", c.method, c.path, c.query, c.who, r.status, r.body, c.status)
		}
	}
	// A Bearer scheme is matched whatever its case, after any spaces.
	r := s.doWith(t, "GET", "/entries", "list=bob&date=20131219", "", http.Header{"Authorization": {"bEaReR   " + secrets["reader"]}})
	if r.status != 200 || r.body != "2013-12-19    Dentist\n2013-12-19    x\n" {
		t.Errorf("bEaReR: %d %q", r.status, r.body)
	}
	if strings.Contains(s.log.String(), secrets["reader"]) || strings.Contains(s.log.String(), secrets["boss"]) {
		t.Error("a secret is in the log")
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestHandler_Auth_Cookie: the session cookie a signed-in page sends is a
// token like a bearer header, and a browser's write with it from another
// origin is refused by the cross-origin guard before it is looked at.
func TestHandler_Auth_Cookie(t *testing.T) {
	t.Parallel()
	tokens := filepath.Join(t.TempDir(), "tokens")
	secrets := writeTokens(t, tokens, testToken{"page", "write", "*"})
	s := startWebServer(t, nil, &todohttp.HandlerOptions{Authenticate: openTokens(t, tokens).Authenticate})
	cookie := http.Header{"Cookie": {"other=1; " + todohttp.SessionCookie + "=" + secrets["page"]}}
	body := `{"date":"2013-12-19","title":"x"}`

	if r := s.doWith(t, "POST", "/lists/bob/entries", "", body, cookie); r.status != 201 {
		t.Fatalf("POST with the cookie: %d %q", r.status, r.body)
	}
	same := cookie.Clone()
	same.Set("Sec-Fetch-Site", "same-origin")
	if r := s.doWith(t, "POST", "/lists/bob/entries", "", body, same); r.status != 201 {
		t.Fatalf("a same-origin POST with the cookie: %d %q", r.status, r.body)
	}
	for _, h := range []http.Header{
		{"Sec-Fetch-Site": {"cross-site"}},
		{"Sec-Fetch-Site": {"same-site"}},
		{"Origin": {"https://evil.example"}},
	} {
		for k, v := range cookie {
			h[k] = v
		}
		r := s.doWith(t, "POST", "/lists/bob/entries", "", body, h)
		if r.status != 403 || !strings.Contains(r.body, "cross-origin") {
			t.Errorf("a cross-origin POST (%q) with the cookie: %d %q, want 403", h, r.status, r.body)
		}
		r = s.doWith(t, "POST", "/add_entry", "list=bob&date=20131219&title=x", "", h)
		if r.status != 403 {
			t.Errorf("a cross-origin POST /add_entry (%q) with the cookie: %d %q, want 403", h, r.status, r.body)
		}
	}
	if r := s.doWith(t, "GET", "/lists/bob/entries", "", "", cookie); !strings.Contains(r.body, `"id":2`) || strings.Contains(r.body, `"id":3`) {
		t.Errorf("after two adds and refused ones: %q", r.body)
	}
}

// The listing of lists as the principal sees it: names of every kind, a
// token's patterns over them, and GET /lists walked page by page.

// countingService counts the pages of list names asked of a Service.
type countingService struct {
	todo.Service
	pages atomic.Int64
}

func (c *countingService) ListsPage(ctx context.Context, after string, limit int) ([]string, error) {
	c.pages.Add(1)
	return c.Service.ListsPage(ctx, after, limit)
}

// walkLists reads GET /lists from h page by page, at limit, as who (nil:
// no authentication), and returns the names and the size of each page.
func walkLists(t *testing.T, h http.Handler, secret string, limit int) (names []string, sizes []int) {
	t.Helper()
	target := fmt.Sprintf("/lists?limit=%d", limit)
	for range 5000 {
		req := httptest.NewRequest("GET", target, nil)
		if secret != "" {
			req.Header.Set("Authorization", "Bearer "+secret)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var p listsPage
		if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &p) != nil {
			t.Fatalf("GET %s: %d %q", target, rec.Code, rec.Body)
		}
		names = append(names, p.Lists...)
		sizes = append(sizes, len(p.Lists))
		if p.Next == nil {
			return names, sizes
		}
		u, err := url.Parse(*p.Next)
		if err != nil {
			t.Fatal(err)
		}
		if after := u.Query().Get("after"); len(p.Lists) == 0 || after != p.Lists[len(p.Lists)-1] {
			t.Fatalf("GET %s: next %q does not follow the page's last name (%q)", target, *p.Next, p.Lists)
		}
		target = *p.Next
	}
	t.Fatal("more than 5000 pages")
	return nil, nil
}

// wantPages are the sizes of the pages of n names at limit: full pages,
// then the rest, and one empty page for no names at all.
func wantPages(n, limit int) []int {
	var sizes []int
	for ; n > limit; n -= limit {
		sizes = append(sizes, limit)
	}
	return append(sizes, n)
}

// TestHandler_Auth_ListsHidden walks GET /lists as principals that may
// read a few lists among many, with names holding the characters a
// pattern escapes: each sees exactly the lists its patterns match, in
// order, in full pages, every cursor one of its own lists, at a cost in
// Service calls bounded by its patterns and pages, not by the lists it
// may not see. The same walks with random patterns over random names
// check the ranges against a plain filter.
func TestHandler_Auth_ListsHidden(t *testing.T) {
	t.Parallel()
	sys := memorySystem(t, &todo.Options{Durability: todo.Async})
	ctx := context.Background()
	names := []string{"bob", "bobby", "bo", "team", "team-", "team-a", "team-b/c", "team-*", "team-*x", "x y", "x,y", "100%",
		"élan", "élan vital", "日本", "*", "a*b", "zz", "-"}
	for i := range 150 {
		names = append(names, fmt.Sprintf("other-%03d", i), fmt.Sprintf("team-%03d", i*7%1000), fmt.Sprintf("zz-%03d", i))
	}
	for _, n := range names {
		if _, err := sys.AddEntry(ctx, n, todo.Entry{Date: todo.Date{Year: 2013, Month: 12, Day: 19}, Title: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	all, err := sys.Lists(ctx)
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	tokens := []testToken{
		{"team", "read", "team-*"},
		{"few", "write", "bob,x%20y,x%2Cy,100%25,%2A,%2D"},
		{"mixed", "read", "team-*,team-a,team-%2A*,bo*,élan*,zz-19*,日本,nothing-*,absent"},
		{"star", "read", "*,bob"},
		{"none", "read", "absent,nothing-*"},
		{"literal", "read", "team-%2A,a%2Ab"},
	}
	for range 30 { // random patterns over the names
		var ps []string
		for range 1 + mrand(4) {
			n := all[mrand(len(all))]
			p := todohttp.ListPattern{Name: n[:mrand(len(n)+1)], Prefix: true}
			if mrand(2) == 0 {
				p = todohttp.ListPattern{Name: n}
			}
			if p.Name == "" && !p.Prefix || !utf8.ValidString(p.Name) {
				continue
			}
			ps = append(ps, p.String())
		}
		if len(ps) > 0 {
			tokens = append(tokens, testToken{fmt.Sprintf("random%d", len(tokens)), "read", strings.Join(ps, ",")})
		}
	}
	path := filepath.Join(dir, "tokens")
	secrets := writeTokens(t, path, tokens...)
	svc := &countingService{Service: sys}
	h := newHandler(t, svc, &todohttp.HandlerOptions{Authenticate: openTokens(t, path).Authenticate})

	hand := map[string][]string{ // written out: the oracle for the patterns' grammar
		"few":     {"*", "-", "100%", "bob", "x y", "x,y"},
		"literal": {"a*b", "team-*"},
		"none":    nil,
	}
	for _, tk := range tokens {
		var patterns []todohttp.ListPattern
		for _, s := range strings.Split(tk.lists, ",") {
			p, err := todohttp.ParseListPattern(s)
			if err != nil {
				t.Fatalf("%s: %v", s, err)
			}
			patterns = append(patterns, p)
		}
		var want []string
		for _, n := range all {
			if slices.ContainsFunc(patterns, func(p todohttp.ListPattern) bool { return p.Match(n) }) {
				want = append(want, n)
			}
		}
		if w, ok := hand[tk.name]; ok && !slices.Equal(w, want) {
			t.Fatalf("%s: the patterns %q match %q, want %q", tk.name, tk.lists, want, w)
		}
		for _, limit := range []int{1, 3, 7, 100, 1000} {
			svc.pages.Store(0)
			got, sizes := walkLists(t, h, secrets[tk.name], limit)
			if !slices.Equal(got, want) || !slices.Equal(sizes, wantPages(len(want), limit)) {
				t.Errorf("%s (%s) at limit %d: pages of %v, %q\nwant pages of %v, %q", tk.name, tk.lists, limit, sizes, got, wantPages(len(want), limit), want)
			}
			// Each page asks once per range it reaches, and once more per
			// page of names in a range.
			if calls, bound := svc.pages.Load(), int64(len(sizes)*(len(patterns)+2)); calls > bound {
				t.Errorf("%s at limit %d: %d pages of names asked of the Service for %d pages, more than %d", tk.name, limit, calls, len(sizes), bound)
			}
		}
	}
	// Without authentication, and for a principal that may read every
	// list, one page is one call, as it always was.
	for _, secret := range []string{"", secrets["star"]} {
		hh := h
		if secret == "" {
			hh = newHandler(t, svc, nil)
		}
		svc.pages.Store(0)
		got, sizes := walkLists(t, hh, secret, 100)
		if !slices.Equal(got, all) || svc.pages.Load() != int64(len(sizes)) {
			t.Errorf("every list: %d names in %d pages with %d calls, want %d names, a call a page", len(got), len(sizes), svc.pages.Load(), len(all))
		}
	}
}

// mrand is a random int in [0, n), for tests that draw cases.
func mrand(n int) int { return mathrand.IntN(n) }

// token68 is RFC 7235's token68, written apart from the handler's reader:
// the oracle of FuzzBearerSecret.
var token68 = regexp.MustCompile(`^[A-Za-z0-9._~+/-]+=*$`)

// FuzzBearerSecret: whatever a request's Authorization and Cookie headers
// hold, BearerSecret returns a token of 1 to 512 token68 characters, the
// one the header sends after "Bearer" and its spaces, or the session
// cookie's when there is no header, or an error wrapping
// ErrUnauthenticated; and any token68 sent as a bearer token is read back
// as it was sent.
func FuzzBearerSecret(f *testing.F) {
	for _, seed := range []struct{ auth, cookie string }{
		{"Bearer abc", ""},
		{"bearer   abc-._~+/==", ""},
		{"Bearer abc=d", ""},
		{"Bearer", ""},
		{"Bearer ", ""},
		{"Bearer\tabc", ""},
		{"Basic YWxpY2U6czE=", ""},
		{"Bearer " + strings.Repeat("a", 513), ""},
		{"Bearerabc", ""},
		{"Bearer a b", ""},
		{"Bearer é", ""},
		{"", todohttp.SessionCookie + "=abc"},
		{"", "a=1; " + todohttp.SessionCookie + "=abc; b=2"},
		{"", todohttp.SessionCookie + `="abc"`},
		{"", todohttp.SessionCookie + "=a b"},
		{"", "x" + todohttp.SessionCookie + "=abc"},
		{"Bearer abc", todohttp.SessionCookie + "=def"},
		{"", ""},
	} {
		f.Add(seed.auth, seed.cookie)
	}
	f.Fuzz(func(t *testing.T, auth, cookie string) {
		r := httptest.NewRequest("GET", "/", nil)
		if auth != "" {
			r.Header["Authorization"] = []string{auth}
		}
		if cookie != "" {
			r.Header["Cookie"] = []string{cookie}
		}
		secret, err := todohttp.BearerSecret(r)
		if err != nil {
			if !errors.Is(err, todohttp.ErrUnauthenticated) {
				t.Fatalf("%q %q: %v does not wrap ErrUnauthenticated", auth, cookie, err)
			}
		} else {
			if len(secret) > 512 || !token68.MatchString(secret) {
				t.Fatalf("%q %q: secret %q is not 1 to 512 token68 characters", auth, cookie, secret)
			}
			if auth != "" {
				if !strings.EqualFold(auth[:6], "Bearer") || strings.TrimLeft(auth[6:], " ") != secret || auth[6] != ' ' {
					t.Fatalf("%q: secret %q is not what follows Bearer", auth, secret)
				}
			} else if !strings.Contains(cookie, todohttp.SessionCookie+"="+secret) &&
				!strings.Contains(cookie, todohttp.SessionCookie+`="`+secret+`"`) { // net/http takes off a cookie's quotes
				t.Fatalf("cookie %q: secret %q is not the session cookie's", cookie, secret)
			}
		}
		if len(auth) <= 512 && token68.MatchString(auth) {
			r.Header["Authorization"] = []string{"Bearer " + auth}
			if got, err := todohttp.BearerSecret(r); err != nil || got != auth {
				t.Fatalf("Bearer %q read as %q, %v", auth, got, err)
			}
		}
	})
}
