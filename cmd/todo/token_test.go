package main

import (
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/gotodo/todo/todohttp"
)

// secretPattern is what `todo token add` prints: 32 bytes in unpadded
// base64url.
var secretPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)

// addToken runs `todo token add` and returns the secret it printed.
func addToken(t *testing.T, path, name string, flags ...string) string {
	t.Helper()
	code, stdout, stderr := runMain(t, nil, append([]string{"token", "add", name, "-tokens", path}, flags...)...)
	secret := strings.TrimSuffix(stdout, "\n")
	if code != exitOK || !secretPattern.MatchString(secret) || !strings.Contains(stderr, "token "+name+" added to "+path) {
		t.Fatalf("token add %s %q: exit %d, stdout %q, stderr %q", name, flags, code, stdout, stderr)
	}
	return secret
}

// authenticates returns the principal a server reading the file at path
// would give secret, or nil.
func authenticates(t *testing.T, path, secret string) *todohttp.Principal {
	t.Helper()
	tf, err := todohttp.OpenTokenFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "Bearer "+secret)
	p, err := tf.Authenticate(r)
	if err != nil {
		return nil
	}
	return p
}

// TestToken_AddRemoveList makes tokens, lists them and revokes one, as an
// operator would: the file is made at mode 0600, each secret is printed
// once and only its hash kept, a server reading the file takes the
// secrets with the rights and lists asked for, and rm leaves the other
// lines, comments included, as they were.
func TestToken_AddRemoveList(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "tokens")
	alice := addToken(t, path, "alice", "-rights", "write", "-lists", "alice,team-*")
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the new file: %v %v, want mode 0600", fi.Mode(), err)
	}
	grafana := addToken(t, path, "grafana", "-rights", "metrics")
	odd := addToken(t, path, "odd", "-rights", "read,metrics", "-lists", "x%20y,%2A,élan*")
	if alice == grafana || grafana == odd {
		t.Fatal("the same secret twice")
	}
	data, _ := os.ReadFile(path)
	for _, s := range []string{alice, grafana, odd} {
		if strings.Contains(string(data), s) {
			t.Fatalf("the file holds a secret:\n%s", data)
		}
	}
	for _, c := range []struct {
		secret, name string
		rights       todohttp.Rights
		lists        string
	}{
		{alice, "alice", todohttp.RightWrite, "[alice team-*]"},
		{grafana, "grafana", todohttp.RightMetrics, "[]"},
		{odd, "odd", todohttp.RightRead | todohttp.RightMetrics, "[x%20y %2A élan*]"},
	} {
		p := authenticates(t, path, c.secret)
		if p == nil || p.Name != c.name || p.Rights != c.rights || fmt.Sprint(p.Lists) != c.lists {
			t.Errorf("%s's secret gives %+v", c.name, p)
		}
	}

	code, stdout, stderr := runMain(t, map[string]string{"TODO_TOKENS": path}, "token", "ls")
	want := "alice\twrite\talice,team-*\ngrafana\tmetrics\t-\nodd\tread,metrics\tx%20y,%2A,élan*\n"
	if code != exitOK || stdout != want || stderr != "" {
		t.Errorf("token ls: exit %d, stdout %q, stderr %q; want %q", code, stdout, stderr, want)
	}

	// A comment an operator wrote stays where it was.
	if err := os.WriteFile(path, append([]byte("# the team's tokens\n"), data...), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, stdout, stderr := runMain(t, nil, "token", "rm", "grafana", "-tokens", path); code != exitOK || stdout != "" || stderr != "" {
		t.Fatalf("token rm: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	after, _ := os.ReadFile(path)
	lines := strings.Split(string(data), "\n")
	if want := "# the team's tokens\n" + lines[0] + "\n" + lines[2] + "\n"; string(after) != want {
		t.Errorf("after rm:\n%s\nwant\n%s", after, want)
	}
	if authenticates(t, path, grafana) != nil || authenticates(t, path, alice) == nil {
		t.Error("rm revoked the wrong token")
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("after rm, mode %v", fi.Mode())
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("files left beside the tokens file: %v", entries)
	}
}

// TestToken_Refused: mistakes in the command line exit 2 and touch
// nothing; a token already there, one that is not, and a file a server
// would refuse exit 1 and leave the file as it was.
func TestToken_Refused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "tokens")
	addToken(t, path, "alice", "-rights", "write", "-lists", "*")
	before, _ := os.ReadFile(path)
	loose := filepath.Join(dir, "loose")
	if err := os.WriteFile(loose, before, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chmod(loose, 0o644)
	for _, c := range []struct {
		args   []string
		env    map[string]string
		code   int
		reason string
	}{
		{[]string{"token"}, nil, exitUsage, "token wants add, rm or ls"},
		{[]string{"token", "mv"}, nil, exitUsage, `unknown token command "mv"`},
		{[]string{"token", "add", "bob", "-rights", "write"}, nil, exitUsage, "no tokens file: give -tokens FILE or set TODO_TOKENS"},
		{[]string{"token", "add", "-tokens", path, "-rights", "read", "-lists", "*"}, nil, exitUsage, "token add wants a token's NAME"},
		{[]string{"token", "add", "bob", "-tokens", path}, nil, exitUsage, "-rights: give read, write, metrics or admin"},
		{[]string{"token", "add", "bob", "-tokens", path, "-rights", "write"}, nil, exitUsage, "-lists: a token with the write right needs the lists it may touch (* for every list)"},
		{[]string{"token", "add", "bob", "-tokens", path, "-rights", "all", "-lists", "*"}, nil, exitUsage, `-rights "all": right "all": want read, write, metrics or admin`},
		{[]string{"token", "add", "bob", "-tokens", path, "-rights", "read", "-lists", "team-*-x"}, nil, exitUsage, "a * stands only at the end"},
		{[]string{"token", "add", "bob smith", "-tokens", path, "-rights", "read", "-lists", "*"}, nil, exitUsage, `token name "bob smith"`},
		{[]string{"token", "add", "alice", "-tokens", path, "-rights", "read", "-lists", "*"}, nil, exitFailed, `token "alice" is already in ` + path + " (line 1): remove it first with todo token rm alice"},
		{[]string{"token", "rm", "bob", "-tokens", path}, nil, exitFailed, `no token "bob" in ` + path},
		{[]string{"token", "rm", "-tokens", path}, nil, exitUsage, "token rm wants a token's NAME"},
		{[]string{"token", "ls", "extra"}, map[string]string{"TODO_TOKENS": path}, exitUsage, `token ls takes no arguments, got ["extra"]`},
		{[]string{"token", "add", "bob", "-tokens", loose, "-rights", "read", "-lists", "*"}, nil, exitFailed, "mode 0644 lets group or others read or write it"},
		{[]string{"token", "ls", "-tokens", loose}, nil, exitFailed, "chmod 600 " + loose},
		{[]string{"token", "ls", "-tokens", filepath.Join(dir, "missing")}, nil, exitFailed, "no such file or directory"},
		{[]string{"token", "add", "bob", "-tokens", filepath.Join(dir, "no", "such", "dir"), "-rights", "read", "-lists", "*"}, nil, exitFailed, "no such file or directory"},
	} {
		code, stdout, stderr := runMain(t, c.env, c.args...)
		if code != c.code || stdout != "" || !strings.Contains(stderr, c.reason) || strings.Count(stderr, "todo: ") != 1 {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want %d and %q", c.args, code, stdout, stderr, c.code, c.reason)
		}
	}
	if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Errorf("refused commands changed the file:\n%s", after)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("files made: %v", entries)
	}
}

// TestToken_AddConcurrently: adds at once, each a process of its own in
// the field, all land: each reads and replaces the file under the lock on
// its directory.
func TestToken_AddConcurrently(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "tokens")
	secrets := make([]string, 8)
	codes := make([]int, len(secrets))
	var wg sync.WaitGroup
	for i := range secrets {
		wg.Go(func() {
			codes[i], secrets[i], _ = runMain(t, nil, "token", "add", fmt.Sprintf("client%d", i), "-tokens", path, "-rights", "read", "-lists", "*")
			secrets[i] = strings.TrimSuffix(secrets[i], "\n")
		})
	}
	wg.Wait()
	for i, code := range codes {
		if code != exitOK || !secretPattern.MatchString(secrets[i]) {
			t.Fatalf("client%d: exit %d, secret %q", i, code, secrets[i])
		}
	}
	tokens, err := todohttp.ReadTokenFile(path)
	if err != nil || len(tokens) != len(secrets) {
		t.Fatalf("%d tokens, %v; want %d", len(tokens), err, len(secrets))
	}
	for i, s := range secrets {
		if p := authenticates(t, path, s); p == nil || p.Name != fmt.Sprintf("client%d", i) {
			t.Errorf("client%d's secret gives %+v", i, p)
		}
	}
}
