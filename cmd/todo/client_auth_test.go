package main

import (
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gotodo/todo"
	"github.com/gotodo/todo/todohttp"
)

// tlsTokenServer serves a System over TLS, with a certificate from a
// private CA and the tokens given (name -> rights and lists), on
// 127.0.0.1; it returns the server's URL, the CA's PEM file and the
// tokens' secrets.
func tlsTokenServer(t *testing.T, tokens map[string][2]string) (url, caFile string, secrets map[string]string) {
	t.Helper()
	dir := t.TempDir()
	sys, err := todo.Open(filepath.Join(dir, "data"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sys.Close() })
	secrets = make(map[string]string)
	var file strings.Builder
	for name, rl := range tokens {
		secret, err := newTokenSecret()
		if err != nil {
			t.Fatal(err)
		}
		secrets[name] = secret
		fmt.Fprintf(&file, "%s %x %s %s\n", name, sha256.Sum256([]byte(secret)), rl[0], rl[1])
	}
	tokensFile := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokensFile, []byte(file.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	tf, err := todohttp.OpenTokenFile(tokensFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	h, err := todohttp.NewHandler(sys, &todohttp.HandlerOptions{Authenticate: tf.Authenticate})
	if err != nil {
		t.Fatal(err)
	}
	ca := newTestCA(t)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	ca.issueFiles(t, certFile, keyFile)
	c, err := newCertReloader(certFile, keyFile, 0, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	caFile = filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, ca.pem, 0o644); err != nil {
		t.Fatal(err)
	}
	return "https://" + serveTLS(t, c, h), caFile, secrets
}

// TestClient_TokenAndCA: the client commands send the token of
// TODO_TOKEN or -token-file, verify an https server against -ca or
// TODO_CA, and never print the token, whatever goes wrong.
func TestClient_TokenAndCA(t *testing.T) {
	t.Parallel()
	url, caFile, secrets := tlsTokenServer(t, map[string][2]string{
		"writer": {"write", "bob"},
		"reader": {"read", "*"},
	})
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(secrets["reader"]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, contents := range map[string]string{"empty": "\n", "junk": "not a token " + secrets["writer"]} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(contents), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	notPEM := filepath.Join(dir, "ca.txt")
	os.WriteFile(notPEM, []byte("no certificate"), 0o644)

	for _, c := range []struct {
		env    map[string]string
		args   []string
		code   int
		stdout string
		stderr string // a substring
	}{
		{map[string]string{"TODO_TOKEN": secrets["writer"], "TODO_CA": caFile}, []string{"add", "bob", "2013-12-19", "Dentist"}, exitOK, "1\t2013-12-19\tDentist\n", ""},
		{map[string]string{"TODO_TOKEN": secrets["writer"]}, []string{"entries", "bob", "-ca", caFile}, exitOK, "1\t2013-12-19\tDentist\n", ""},
		{nil, []string{"lists", "-ca", caFile, "-token-file", tokenFile}, exitOK, "bob\n", ""},
		{map[string]string{"TODO_TOKEN": secrets["writer"]}, []string{"lists", "-ca", caFile, "-token-file", tokenFile}, exitOK, "bob\n", ""},
		// Refused by the server.
		{map[string]string{"TODO_CA": caFile}, []string{"lists"}, exitFailed, "", "401 Unauthorized: no token: send Authorization: Bearer TOKEN (set TODO_TOKEN, or give -token-file)"},
		{map[string]string{"TODO_CA": caFile, "TODO_TOKEN": "x" + secrets["reader"]}, []string{"lists"}, exitFailed, "", "401 Unauthorized: token not recognized"},
		{map[string]string{"TODO_CA": caFile}, []string{"add", "bob", "2013-12-19", "x", "-token-file", tokenFile}, exitFailed, "", `403 Forbidden: "reader" may not write list "bob": its rights are read`},
		{map[string]string{"TODO_CA": caFile, "TODO_TOKEN": secrets["writer"]}, []string{"entries", "alice"}, exitFailed, "", `403 Forbidden: "writer" may not read list "alice": not one of its lists`},
		// Refused by the client.
		{map[string]string{"TODO_TOKEN": secrets["writer"]}, []string{"lists"}, exitFailed, "", "certificate signed by unknown authority"},
		{map[string]string{"TODO_TOKEN": secrets["writer"]}, []string{"lists", "-ca", notPEM}, exitFailed, "", "-ca " + notPEM + ": no PEM certificate in it"},
		{map[string]string{"TODO_CA": filepath.Join(dir, "missing")}, []string{"lists"}, exitFailed, "", "TODO_CA: open " + filepath.Join(dir, "missing")},
		{map[string]string{"TODO_CA": caFile}, []string{"lists", "-token-file", filepath.Join(dir, "empty")}, exitFailed, "", "holds no token"},
		{map[string]string{"TODO_CA": caFile}, []string{"lists", "-token-file", filepath.Join(dir, "junk")}, exitFailed, "", "does not hold a token"},
		{map[string]string{"TODO_CA": caFile, "TODO_TOKEN": "two words"}, []string{"lists"}, exitFailed, "", "TODO_TOKEN does not hold a token"},
	} {
		env := map[string]string{"TODO_URL": url}
		for k, v := range c.env {
			env[k] = v
		}
		code, stdout, stderr := runMain(t, env, c.args...)
		if code != c.code || stdout != c.stdout || !strings.Contains(stderr, c.stderr) || (c.stderr == "") != (stderr == "") {
			t.Errorf("%v %q: exit %d, stdout %q, stderr %q; want %d, %q, %q", c.env, c.args, code, stdout, stderr, c.code, c.stdout, c.stderr)
		}
		for _, s := range secrets {
			if strings.Contains(stdout+stderr, s) {
				t.Errorf("%q printed a token: %q %q", c.args, stdout, stderr)
			}
		}
	}
}
