package todohttp_test

import (
	"crypto/sha256"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gotodo/todo"
	"github.com/gotodo/todo/todohttp"
)

// TestOpenTokenFile_Refused: a tokens file that group or others may read
// or write, that is not a file, or that has a line that is not a token,
// is refused with the reason, and the line's number, and nothing opens.
func TestOpenTokenFile_Refused(t *testing.T) {
	t.Parallel()
	good := tokenLine("alice", "s1", "write", "alice,team-*")
	other := tokenLine("bob", "s2", "read", "bob")
	for _, c := range []struct {
		name     string
		contents string
		mode     os.FileMode
		line     int
		reason   string
	}{
		{"readable by others", good, 0o644, 0, "mode 0644 lets group or others read or write it, and its hashes are enough to guess secrets offline: chmod 600 "},
		{"readable by group", good, 0o640, 0, "mode 0640"},
		{"writable by group", good, 0o620, 0, "chmod 600"},
		{"executable by others", good, 0o601, 0, "mode 0601"},
		{"three fields", "# tokens\n\n" + good + "carol 0123 read\n", 0o600, 4, "3 fields, want 4: NAME SHA256-HEX RIGHTS LISTS"},
		{"five fields", good + strings.TrimSuffix(other, "\n") + " extra\n", 0o600, 2, "5 fields, want 4"},
		{"a duplicate name", good + other + tokenLine("alice", "s3", "read", "*"), 0o600, 3, `token name "alice" is already on line 1`},
		{"a duplicate secret", good + other + tokenLine("carol", "s1", "read", "*"), 0o600, 3, "the same secret's hash as line 1"},
		{"a short hash", "alice 0123abc read bob\n", 0o600, 1, "the hash is 7 characters, want the 64 hex digits"},
		{"a hash not in hex", "alice " + strings.Repeat("g", 64) + " read bob\n", 0o600, 1, "the hash is not hex"},
		{"an unknown right", tokenLine("alice", "s1", "read,delete", "bob"), 0o600, 1, `right "delete": want read, write, metrics or admin`},
		{"a right twice", tokenLine("alice", "s1", "read,read", "bob"), 0o600, 1, `right "read" given twice`},
		{"no right", tokenLine("alice", "s1", ",", "bob"), 0o600, 1, `right ""`},
		{"a glob", tokenLine("alice", "s1", "read", "team-*-x"), 0o600, 1, `pattern "team-*-x": a * stands only at the end (write %2A for a * in a name)`},
		{"a bad escape", tokenLine("alice", "s1", "read", "100%"), 0o600, 1, "% must be followed by two hex digits (%25 for a %)"},
		{"an empty name", tokenLine("alice", "s1", "read", "bob,,carol"), 0o600, 1, `pattern "": not a list name: empty`},
		{"a NUL", tokenLine("alice", "s1", "read", "a%00b"), 0o600, 1, "contains a NUL byte"},
		{"not UTF-8", tokenLine("alice", "s1", "read", "a%FFb"), 0o600, 1, "not valid UTF-8"},
		{"a bad token name", tokenLine("-alice", "s1", "read", "bob"), 0o600, 1, `token name "-alice": want letters, digits and ._@- characters, the first a letter or a digit`},
		{"a long token name", tokenLine(strings.Repeat("a", 65), "s1", "read", "bob"), 0o600, 1, "want 1 to 64 characters"},
		{"a comment after a token", strings.TrimSuffix(good, "\n") + " # alice\n", 0o600, 1, "6 fields"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "tokens")
			replaceFile(t, path, c.contents, c.mode)
			tf, err := todohttp.OpenTokenFile(path, nil)
			if err == nil {
				t.Fatalf("opened, with %d tokens", tf.Len())
			}
			var te *todohttp.TokenFileError
			if !errors.Is(err, todohttp.ErrTokenFile) || !errors.As(err, &te) || te.Line != c.line || te.Path != path {
				t.Fatalf("%v (%#v): want a TokenFileError of %s, line %d", err, te, path, c.line)
			}
			if !strings.Contains(err.Error(), c.reason) || !strings.HasPrefix(err.Error(), "todo: tokens file "+path+": ") {
				t.Errorf("%q, want the path and %q", err, c.reason)
			}
			if c.line > 0 && !strings.Contains(err.Error(), ": line ") {
				t.Errorf("%q names no line", err)
			}
			if _, err := todohttp.ReadTokenFile(path); err == nil {
				t.Error("ReadTokenFile read it")
			}
		})
	}
	dir := t.TempDir()
	for _, c := range []struct{ path, reason string }{
		{filepath.Join(dir, "missing"), "no such file or directory"},
		{dir, "not a regular file"},
	} {
		if _, err := todohttp.OpenTokenFile(c.path, nil); !errors.Is(err, todohttp.ErrTokenFile) || !strings.Contains(err.Error(), c.reason) {
			t.Errorf("%s: %v, want %q", c.path, err, c.reason)
		}
	}
	big := filepath.Join(dir, "big")
	replaceFile(t, big, strings.Repeat("#\n", 1<<19+1), 0o600)
	if _, err := todohttp.OpenTokenFile(big, nil); err == nil || !strings.Contains(err.Error(), "more than 1048576") {
		t.Errorf("a file over 1 MiB: %v", err)
	}
}

// TestParseTokens reads a file with every form a line may take, and
// writes each token back as the line it parses from.
func TestParseTokens(t *testing.T) {
	t.Parallel()
	data := "\ufeff# tokens\r\n" +
		"  \t\r\n" +
		"   # an indented comment\n" +
		"alice\t" + strings.ToUpper(strings.Fields(tokenLine("x", "s1", "", ""))[1]) + "  write\talice,team-*\r\n" +
		tokenLine("grafana", "s2", "metrics", "-") +
		tokenLine("ops@example.com", "s3", "admin,metrics", "*") +
		tokenLine("odd.name_1", "s4", "read", "x%20y,x%2Cy,%2A,a%2Ab*,%2D,100%25,élan*") +
		strings.TrimSuffix(tokenLine("last", "s5", "read", "bob"), "\n") // no final newline
	tokens, err := todohttp.ParseTokens([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	hash := func(s string) [32]byte { return sha256.Sum256([]byte(s)) }
	want := []todohttp.Token{
		{Name: "alice", Hash: hash("s1"), Rights: todohttp.RightWrite, Line: 4,
			Lists: []todohttp.ListPattern{{Name: "alice"}, {Name: "team-", Prefix: true}}},
		{Name: "grafana", Hash: hash("s2"), Rights: todohttp.RightMetrics, Line: 5},
		{Name: "ops@example.com", Hash: hash("s3"), Rights: todohttp.RightAdmin | todohttp.RightMetrics, Line: 6,
			Lists: []todohttp.ListPattern{{Name: "", Prefix: true}}},
		{Name: "odd.name_1", Hash: hash("s4"), Rights: todohttp.RightRead, Line: 7,
			Lists: []todohttp.ListPattern{{Name: "x y"}, {Name: "x,y"}, {Name: "*"}, {Name: "a*b", Prefix: true}, {Name: "-"}, {Name: "100%"}, {Name: "élan", Prefix: true}}},
		{Name: "last", Hash: hash("s5"), Rights: todohttp.RightRead, Line: 8, Lists: []todohttp.ListPattern{{Name: "bob"}}},
	}
	if !reflect.DeepEqual(tokens, want) {
		t.Fatalf("got  %+v\nwant %+v", tokens, want)
	}
	for _, tk := range tokens {
		again, err := todohttp.ParseTokens([]byte(tk.String()))
		tk.Line = 1
		if err != nil || len(again) != 1 || !reflect.DeepEqual(again[0], tk) {
			t.Errorf("%q reads back as %+v, %v", tk.String(), again, err)
		}
	}
	if s := want[3].String(); !strings.HasSuffix(s, " read x%20y,x%2Cy,%2A,a%2Ab*,%2D,100%25,élan*") {
		t.Errorf("String: %q", s)
	}
}

// TestListPattern: what a pattern matches, and how it is written.
func TestListPattern(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		text    string
		want    todohttp.ListPattern
		match   []string
		noMatch []string
	}{
		{"bob", todohttp.ListPattern{Name: "bob"}, []string{"bob"}, []string{"bobby", "bo", "Bob", "bob "}},
		{"team-*", todohttp.ListPattern{Name: "team-", Prefix: true}, []string{"team-", "team-a", "team-*", "team-/x"}, []string{"team", "Team-a", "xteam-a"}},
		{"*", todohttp.ListPattern{Prefix: true}, []string{"a", "*", "日本", " "}, nil},
		{"%2A", todohttp.ListPattern{Name: "*"}, []string{"*"}, []string{"a", "**"}},
		{"a%2A*", todohttp.ListPattern{Name: "a*", Prefix: true}, []string{"a*", "a*b"}, []string{"ab", "a"}},
		{"x%20y", todohttp.ListPattern{Name: "x y"}, []string{"x y"}, []string{"x%20y", "xy"}},
		{"a/b", todohttp.ListPattern{Name: "a/b"}, []string{"a/b"}, []string{"a%2Fb"}},
		{"%e6%97%a5*", todohttp.ListPattern{Name: "日", Prefix: true}, []string{"日本"}, []string{"本"}},
		{"élan", todohttp.ListPattern{Name: "élan"}, []string{"élan"}, []string{"elan"}},
	} {
		p, err := todohttp.ParseListPattern(c.text)
		if err != nil || p != c.want {
			t.Errorf("%q: %+v %v, want %+v", c.text, p, err, c.want)
			continue
		}
		for _, n := range c.match {
			if !p.Match(n) {
				t.Errorf("%q does not match %q", c.text, n)
			}
		}
		for _, n := range c.noMatch {
			if p.Match(n) {
				t.Errorf("%q matches %q", c.text, n)
			}
		}
		if again, err := todohttp.ParseListPattern(p.String()); err != nil || again != p {
			t.Errorf("%q is written %q, which reads %+v %v", c.text, p.String(), again, err)
		}
	}
	for _, c := range []struct {
		p    todohttp.ListPattern
		text string
	}{
		{todohttp.ListPattern{Name: "a b,c*d%e"}, "a%20b%2Cc%2Ad%25e"},
		{todohttp.ListPattern{Name: "tab\there\u00a0nbsp\u2028"}, "tab%09here%C2%A0nbsp%E2%80%A8"},
		{todohttp.ListPattern{Name: "日本", Prefix: true}, "日本*"},
	} {
		if s := c.p.String(); s != c.text {
			t.Errorf("%+v is written %q, want %q", c.p, s, c.text)
		}
	}
}

// TestRights: what each right includes, and how rights are written.
func TestRights(t *testing.T) {
	t.Parallel()
	r, w, m, a := todohttp.RightRead, todohttp.RightWrite, todohttp.RightMetrics, todohttp.RightAdmin
	for _, c := range []struct {
		have, need todohttp.Rights
		ok         bool
	}{
		{r, r, true}, {r, w, false}, {r, m, false}, {r, a, false},
		{w, r, true}, {w, w, true}, {w, r | w, true}, {w, m, false},
		{m, m, true}, {m, r, false},
		{a, r | w | m | a, true},
		{r | m, r | m, true}, {r | m, w, false},
		{0, r, false}, {0, 0, true},
	} {
		if got := c.have.Has(c.need); got != c.ok {
			t.Errorf("%v.Has(%v) = %v", c.have, c.need, got)
		}
	}
	for _, c := range []struct {
		text string
		want todohttp.Rights
	}{
		{"read", r}, {"write,metrics", w | m}, {"admin,read,write,metrics", r | w | m | a},
	} {
		if got, err := todohttp.ParseRights(c.text); err != nil || got != c.want {
			t.Errorf("ParseRights(%q) = %v, %v", c.text, got, err)
		}
	}
	if s := (a | r).String(); s != "read,admin" {
		t.Errorf("String %q", s)
	}
	for _, bad := range []string{"", "Read", "read,", " read", "read write", "all"} {
		if _, err := todohttp.ParseRights(bad); err == nil {
			t.Errorf("ParseRights(%q) took it", bad)
		}
	}
}

// TestTokenFile_Revoke serves a tokens file that is edited while the
// server runs: a token removed is refused from the next request, one
// added is taken, with no restart; a version of the file that is refused
// (a bad line, a mode others may read, the file gone) keeps the tokens in
// force and is logged once at error level, naming the line, whatever the
// number of requests after it; fixed, it is read again.
func TestTokenFile_Revoke(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "tokens")
	secrets := writeTokens(t, path, testToken{"alice", "write", "*"}, testToken{"bob", "write", "*"})
	logs := &webLogBuffer{}
	tf, err := todohttp.OpenTokenFile(path, &todohttp.TokenFileOptions{CheckEvery: -1,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	s := startWebServer(t, nil, &todohttp.HandlerOptions{Authenticate: tf.Authenticate})
	status := func(who string) int {
		t.Helper()
		return s.doWith(t, "GET", "/entries", "list=x&date=20131219", "", bearer(secrets[who])).status
	}
	if status("alice") != 200 || status("bob") != 200 {
		t.Fatal("the tokens in the file are refused")
	}

	// Revoked by an editor that renames its new file into place.
	carol := newSecret()
	replaceFile(t, path, tokenLine("bob", secrets["bob"], "write", "*")+tokenLine("carol", carol, "read", "*"), 0o600)
	secrets["carol"] = carol
	if got := [3]int{status("alice"), status("bob"), status("carol")}; got != [3]int{401, 200, 200} {
		t.Fatalf("after alice's line is removed and carol's added: alice, bob, carol answered %v", got)
	}
	// Revoked by an edit in place (the same file, written over).
	if err := os.WriteFile(path, []byte(tokenLine("carol", carol, "read", "*")), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := [2]int{status("bob"), status("carol")}; got != [2]int{401, 200} {
		t.Fatalf("after bob's line is removed in place: bob, carol answered %v", got)
	}

	errorLines := func() []string {
		var lines []string
		for l := range strings.Lines(logs.String()) {
			if strings.Contains(l, "level=ERROR") {
				lines = append(lines, l)
			}
		}
		return lines
	}
	for i, bad := range []struct {
		apply  func()
		reason string
	}{
		{func() { replaceFile(t, path, tokenLine("carol", carol, "read", "*")+"dave 1234 read *\n", 0o600) }, "line 2: the hash is 4 characters"},
		{func() { replaceFile(t, path, tokenLine("alice", secrets["alice"], "read", "*"), 0o644) }, "mode 0644"},
		{func() { os.Remove(path) }, "no such file or directory"},
	} {
		bad.apply()
		for range 5 {
			if status("carol") != 200 || status("alice") != 401 {
				t.Fatalf("%s: the tokens in force were not kept", bad.reason)
			}
		}
		lines := errorLines()
		if len(lines) != i+1 || !strings.Contains(lines[i], bad.reason) || !strings.Contains(lines[i], "tokens file refused") {
			t.Fatalf("%s: the log's error lines are %q, want one more, with the reason", bad.reason, lines)
		}
	}
	replaceFile(t, path, tokenLine("alice", secrets["alice"], "read", "*"), 0o600)
	if status("alice") != 200 || status("carol") != 401 {
		t.Fatal("the fixed file was not read again")
	}
	if len(errorLines()) != 3 || tf.Len() != 1 {
		t.Errorf("logs: %s", logs.String())
	}
	for _, secret := range secrets {
		if strings.Contains(logs.String(), secret) || strings.Contains(s.log.String(), secret) {
			t.Error("a secret is in the logs")
		}
	}
}

// TestTokenFile_CheckEvery: with the default CheckEvery of 1s, a change
// to the file is taken by the first request a second or more after the
// last look, not before; Reload takes it at once.
func TestTokenFile_CheckEvery(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "tokens")
		secrets := writeTokens(t, path, testToken{"alice", "read", "*"})
		tf, err := todohttp.OpenTokenFile(path, nil)
		if err != nil {
			t.Fatal(err)
		}
		ok := func() bool {
			r := httptest.NewRequest("GET", "/", nil)
			r.Header = bearer(secrets["alice"])
			p, err := tf.Authenticate(r)
			return err == nil && p.Name == "alice"
		}
		replaceFile(t, path, "", 0o600) // alice revoked
		time.Sleep(999 * time.Millisecond)
		if !ok() {
			t.Fatal("the file was looked at again before a second passed")
		}
		time.Sleep(time.Millisecond)
		if ok() {
			t.Fatal("a second after, alice's token is still taken")
		}
		replaceFile(t, path, tokenLine("alice", secrets["alice"], "read", "*"), 0o600)
		if ok() {
			t.Fatal("the file was looked at again at once")
		}
		if err := tf.Reload(); err != nil || !ok() {
			t.Fatalf("Reload: %v", err)
		}
		replaceFile(t, path, "bad\n", 0o600)
		if err := tf.Reload(); !errors.Is(err, todohttp.ErrTokenFile) || !ok() {
			t.Fatalf("Reload of a bad file: %v, and the tokens in force kept: %v", err, ok())
		}
	})
}

// TestRequireRights guards a route beside the handler: 401 without a
// token, 403 without the right, and the route itself with it.
func TestRequireRights(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "tokens")
	secrets := writeTokens(t, path, testToken{"scraper", "metrics", "-"}, testToken{"reader", "read", "*"}, testToken{"ops", "admin", "-"})
	tf := openTokens(t, path)
	route := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("metrics")) })
	h := todohttp.RequireRights(tf.Authenticate, todohttp.RightMetrics, route)
	for _, c := range []struct {
		who    string
		status int
		body   string
	}{
		{"", 401, "no token: send Authorization: Bearer TOKEN"},
		{"wrong", 401, "token not recognized"},
		{"reader", 403, `"reader" may not do this: it needs the metrics right`},
		{"scraper", 200, "metrics"},
		{"ops", 200, "metrics"},
	} {
		r := httptest.NewRequest("GET", "/metrics", nil)
		switch c.who {
		case "":
		case "wrong":
			r.Header = bearer(newSecret())
		default:
			r.Header = bearer(secrets[c.who])
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code != c.status || rec.Body.String() != c.body || (c.status == 401) != (rec.Header().Get("WWW-Authenticate") != "") {
			t.Errorf("%q: %d %q %q, want %d %q", c.who, rec.Code, rec.Body, rec.Header().Get("WWW-Authenticate"), c.status, c.body)
		}
	}
	if todohttp.RequireRights(nil, todohttp.RightAdmin, route) == nil {
		t.Error("RequireRights without auth is nil")
	}
}

// TestHandler_Authenticate_Hook: an Authenticate function of a program's
// own (here, a header set by a proxy in front) decides as a tokens file
// does; its other errors are answered 500 and logged, never passed.
func TestHandler_Authenticate_Hook(t *testing.T) {
	t.Parallel()
	broken := errors.New("the identity provider is down")
	auth := func(r *http.Request) (*todohttp.Principal, error) {
		switch user := r.Header.Get("X-Proxy-User"); user {
		case "":
			return nil, todohttp.ErrUnauthenticated
		case "nil":
			return nil, nil
		case "down":
			return nil, broken
		default:
			return &todohttp.Principal{Name: user, Rights: todohttp.RightWrite, Lists: []todohttp.ListPattern{{Name: user}}}, nil
		}
	}
	s := startWebServer(t, nil, &todohttp.HandlerOptions{Authenticate: auth})
	for _, c := range []struct {
		user, list string
		status     int
		body       string
	}{
		{"", "bob", 401, "unauthenticated"},
		{"nil", "bob", 401, "not signed in"},
		{"down", "bob", 500, "internal error"},
		{"bob", "bob", 200, "OK"},
		{"bob", "alice", 403, `"bob" may not write list "alice": not one of its lists`},
	} {
		r := s.doWith(t, "POST", "/add_entry", "list="+c.list+"&date=20131219&title=x", "", http.Header{"X-Proxy-User": {c.user}})
		if r.status != c.status || !strings.Contains(r.body, c.body) {
			t.Errorf("%q on %s: %d %q, want %d %q", c.user, c.list, r.status, r.body, c.status, c.body)
		}
	}
	if !strings.Contains(s.log.String(), broken.Error()) {
		t.Errorf("the hook's failure is not logged: %s", s.log.String())
	}
}

// FuzzParseTokens: whatever a tokens file holds, ParseTokens returns its
// tokens, every one written back by String as a line that reads as the
// same token, with no name or hash twice; or a TokenFileError naming a
// line of the file.
func FuzzParseTokens(f *testing.F) {
	f.Add([]byte(tokenLine("alice", "s1", "write", "alice,team-*") + tokenLine("grafana", "s2", "metrics", "-")))
	f.Add([]byte("# comment\n\n  \t\r\n" + tokenLine("ops", "s3", "admin,read", "*")))
	f.Add([]byte(tokenLine("odd", "s4", "read", "x%20y,%2A,a%2Ab*,%2D,100%25,élan*")))
	f.Add([]byte(tokenLine("a", "s1", "read", "*") + tokenLine("a", "s2", "read", "*")))
	f.Add([]byte(tokenLine("a", "s1", "read", "*") + tokenLine("b", "s1", "read", "*")))
	f.Add([]byte("alice 0123 read bob\n"))
	f.Add([]byte("\ufeffalice\t" + strings.Repeat("A", 64) + "\tread\t%e6%97%a5*\r\n"))
	f.Add([]byte(tokenLine("x", "s", "read", "a*b")))
	f.Add([]byte(tokenLine("x", "s", "read", "a%zz")))
	f.Fuzz(func(t *testing.T, data []byte) {
		tokens, err := todohttp.ParseTokens(data)
		if err != nil {
			var te *todohttp.TokenFileError
			if !errors.As(err, &te) || te.Line < 1 || te.Line > strings.Count(string(data), "\n")+1 || te.Reason == "" {
				t.Fatalf("%q: %v: want a TokenFileError naming a line", data, err)
			}
			return
		}
		names := map[string]bool{}
		hashes := map[[32]byte]bool{}
		var file strings.Builder
		for _, tk := range tokens {
			if names[tk.Name] || hashes[tk.Hash] {
				t.Fatalf("%q: %q or its hash twice", data, tk.Name)
			}
			names[tk.Name], hashes[tk.Hash] = true, true
			line := tk.String()
			again, err := todohttp.ParseTokens([]byte(line))
			want := tk
			want.Line = 1
			if err != nil || len(again) != 1 || !reflect.DeepEqual(again[0], want) {
				t.Fatalf("%+v is written %q, which reads %+v, %v", tk, line, again, err)
			}
			file.WriteString(line + "\n")
		}
		again, err := todohttp.ParseTokens([]byte(file.String()))
		if err != nil || len(again) != len(tokens) {
			t.Fatalf("the tokens written back, %q, read as %d tokens, %v", file.String(), len(again), err)
		}
	})
}

// FuzzParseListPattern: a pattern read is written back by String as text
// that reads as the same pattern, names a valid list (or is a prefix),
// and matches its own name.
func FuzzParseListPattern(f *testing.F) {
	for _, s := range []string{"bob", "team-*", "*", "%2A", "a%2A*", "x%20y", "a/b", "%e6%97%a5*", "élan", "a*b", "**", "%", "%2", "%zz", "%00", "%FF", ",", "a b", "\t", "日本"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := todohttp.ParseListPattern(s)
		if err != nil {
			return
		}
		if !(p.Prefix && p.Name == "") {
			if err := todo.ValidName(p.Name); err != nil {
				t.Fatalf("%q reads as %+v: %v", s, p, err)
			}
		}
		if !p.Match(p.Name) {
			t.Fatalf("%q: %+v does not match its own name", s, p)
		}
		text := p.String()
		if strings.ContainsAny(text, " \t\r\n,") {
			t.Fatalf("%+v is written %q, which a tokens file would split", p, text)
		}
		again, err := todohttp.ParseListPattern(text)
		if err != nil || again != p {
			t.Fatalf("%+v is written %q, which reads %+v, %v", p, text, again, err)
		}
	})
}
