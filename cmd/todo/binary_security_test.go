package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// eventually polls cond, every 50ms, until it is true or 10s have passed.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 10s, still not %s", what)
		}
		time.Sleep(50 * time.Millisecond) // polling a child process: nothing to synchronise on
	}
}

// TestBinary_TLSTokensHangup runs the binary over TLS with tokens, as an
// operator would past loopback: a client with the CA connects, over
// HTTP/2, and `todo lists -ca` with a token works; a client without the
// CA, and plain HTTP, do not get in; a certificate renewed on disk is
// served to the next connections, and SIGHUP reads the certificate and
// the tokens file again at once; SIGTERM still stops it cleanly.
func TestBinary_TLSTokensHangup(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	dir := t.TempDir()
	tokens, secrets := makeTokens(t, dir, map[string][2]string{"writer": {"write", "*"}, "reader": {"read", "*"}})
	ca := newTestCA(t)
	certFile, keyFile, caFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "ca.pem")
	first := ca.issueFiles(t, certFile, keyFile)
	if err := os.WriteFile(caFile, ca.pem, 0o644); err != nil {
		t.Fatal(err)
	}
	c := startChild(t, bin, filepath.Join(dir, "data"), "-tokens", tokens, "-tls-cert", certFile, "-tls-key", keyFile)
	url := "https://" + c.addr
	client := tlsClient(ca.pool())
	get := func(secret string) (int, string, int64) {
		t.Helper()
		req, _ := http.NewRequest("GET", url+"/lists", nil)
		req.Header.Set("Authorization", "Bearer "+secret)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, resp.Proto, resp.TLS.PeerCertificates[0].SerialNumber.Int64()
	}
	if code, proto, serial := get(secrets["reader"]); code != 200 || proto != "HTTP/2.0" || serial != first {
		t.Fatalf("GET /lists: %d over %s, serial %d; want 200 over HTTP/2.0, serial %d", code, proto, serial, first)
	}
	env := map[string]string{"TODO_URL": url, "TODO_TOKEN": secrets["writer"]}
	if code, stdout, stderr := runMain(t, env, "add", "bob", "2013-12-19", "Dentist", "-ca", caFile); code != exitOK || stdout != "1\t2013-12-19\tDentist\n" {
		t.Errorf("todo add -ca: %d %q %q", code, stdout, stderr)
	}
	if code, _, stderr := runMain(t, env, "lists"); code != exitFailed || !strings.Contains(stderr, "certificate signed by unknown authority") {
		t.Errorf("todo lists without the CA: %d %q", code, stderr)
	}
	resp, err := http.Get("http://" + c.addr + "/lists")
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || !strings.Contains(string(b), "HTTPS") {
			t.Errorf("plain HTTP to the TLS port: %d %q", resp.StatusCode, b)
		}
	}

	// Renewed on disk: served within a second, with no signal.
	second := ca.issueFiles(t, certFile, keyFile)
	eventually(t, "serving the renewed certificate", func() bool { _, _, s := get(secrets["reader"]); return s == second })

	// SIGHUP: the certificate and the tokens file are read again at once.
	third := ca.issueFiles(t, certFile, keyFile)
	if code, _, stderr := runMain(t, nil, "token", "rm", "reader", "-tokens", tokens); code != exitOK {
		t.Fatalf("token rm: %s", stderr)
	}
	if err := c.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, "reading both again on SIGHUP", func() bool {
		return strings.Contains(c.logs.String(), "SIGHUP: reading the tokens file and the certificate again")
	})
	eventually(t, "refusing the revoked token", func() bool { code, _, _ := get(secrets["reader"]); return code == 401 })
	if code, _, serial := get(secrets["writer"]); code != 200 || serial != third {
		t.Errorf("after SIGHUP: %d, serial %d; want 200, serial %d", code, serial, third)
	}
	// A renewal that does not load (a key that is not the certificate's)
	// keeps the certificate in force, and the server up.
	if err := os.WriteFile(keyFile, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.cmd.Process.Signal(syscall.SIGHUP)
	eventually(t, "logging the refused key", func() bool { return strings.Contains(c.logs.String(), "TLS certificate not reloaded") })
	if code, _, serial := get(secrets["writer"]); code != 200 || serial != third {
		t.Errorf("after a bad key: %d, serial %d; want 200, serial %d", code, serial, third)
	}
	c.stop(t)
	for _, s := range secrets {
		if strings.Contains(c.logs.String(), s) {
			t.Error("a secret is in the log")
		}
	}
	if strings.Contains(c.logs.String(), "PRIVATE KEY") {
		t.Error("a key is in the log")
	}
}
