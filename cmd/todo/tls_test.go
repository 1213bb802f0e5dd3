package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// testCA is a certificate authority a test makes, as an operator makes a
// private one with openssl: a self-signed certificate that signs the
// servers'.
type testCA struct {
	cert   *x509.Certificate
	key    *ecdsa.PrivateKey
	pem    []byte
	serial int64
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "todo test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), serial: 1}
}

// pool is a certificate pool of the CA alone, as a client given -ca has.
func (ca *testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// issue makes a server certificate for 127.0.0.1 and localhost, with a
// new serial number, and returns it and its key in PEM, and its serial.
// It allows client authentication too: a cluster node's route
// certificate is the client of the routes it dials.
func (ca *testCA) issue(t testing.TB) (certPEM, keyPEM []byte, serial int64) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca.serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(ca.serial),
		Subject:      pkix.Name{CommonName: "todo test server"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), ca.serial
}

// writeFileAtomic replaces path with data, as a tool that renews a
// certificate does: a new file renamed into place.
func writeFileAtomic(t testing.TB, path string, data []byte, mode os.FileMode) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// issueFiles writes a new certificate and key from ca to certFile and
// keyFile, and returns its serial.
func (ca *testCA) issueFiles(t testing.TB, certFile, keyFile string) int64 {
	t.Helper()
	c, k, serial := ca.issue(t)
	writeFileAtomic(t, certFile, c, 0o644)
	writeFileAtomic(t, keyFile, k, 0o600)
	return serial
}

// tlsClient is an HTTP client that trusts pool only, and speaks HTTP/2
// when the server offers it. Each request opens a new connection, so
// that each sees the certificate served at that moment.
func tlsClient(pool *x509.CertPool) *http.Client {
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool},
		ForceAttemptHTTP2: true,
		DisableKeepAlives: true,
	}}
}

// serveTLS serves h with the reloader's configuration on 127.0.0.1, as
// serve does, until the test ends.
func serveTLS(t *testing.T, c *certReloader, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, TLSConfig: c.tlsConfig(), ReadHeaderTimeout: 5 * time.Second,
		ErrorLog: slog.NewLogLogger(slog.DiscardHandler, slog.LevelWarn)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.ServeTLS(ln, "", "")
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return ln.Addr().String()
}

// servedSerial connects to addr with client and returns the serial of
// the certificate the server presented, and the protocol spoken.
func servedSerial(t *testing.T, client *http.Client, addr string) (int64, string) {
	t.Helper()
	resp, err := client.Get("https://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.TLS.PeerCertificates[0].SerialNumber.Int64(), resp.Proto
}

// TestCertReloader serves TLS with a certificate from a private CA: a
// client that trusts the CA connects, over HTTP/2; one that does not is
// refused by its own check; plain HTTP to the port gets no answer from
// the handler; a certificate replaced on disk is served to the next
// connection, with no restart; a pair half replaced (the certificate
// before its key) keeps the one in force, logged once, until the key
// follows.
func TestCertReloader(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	ca := newTestCA(t)
	first := ca.issueFiles(t, certFile, keyFile)
	logs := &syncBuffer{}
	c, err := newCertReloader(certFile, keyFile, 0, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	var served sync.Map
	addr := serveTLS(t, c, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Store(r.URL.Path, true)
		io.WriteString(w, "ok")
	}))
	client := tlsClient(ca.pool())

	if serial, proto := servedSerial(t, client, addr); serial != first || proto != "HTTP/2.0" {
		t.Fatalf("served serial %d over %s, want %d over HTTP/2.0", serial, proto, first)
	}
	// A client that does not trust the CA refuses the server.
	if _, err := tlsClient(nil).Get("https://" + addr + "/untrusted"); err == nil || !errors.As(err, new(*tls.CertificateVerificationError)) {
		t.Errorf("a client without the CA: %v, want a certificate verification error", err)
	}
	// Plain HTTP to the TLS port: Go's TLS server answers 400 itself.
	resp, err := http.Get("http://" + addr + "/plain")
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || !strings.Contains(string(b), "HTTPS") {
			t.Errorf("plain HTTP to the TLS port: %d %q", resp.StatusCode, b)
		}
	}
	// TLS older than 1.2 is refused.
	old := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool(), MaxVersion: tls.VersionTLS11}}}
	if _, err := old.Get("https://" + addr + "/tls11"); err == nil {
		t.Error("a TLS 1.1 client connected")
	}
	for _, p := range []string{"/untrusted", "/plain", "/tls11"} {
		if _, ok := served.Load(p); ok {
			t.Errorf("%s reached the handler", p)
		}
	}

	// Renewed on disk: the next connection gets the new certificate.
	second := ca.issueFiles(t, certFile, keyFile)
	if serial, _ := servedSerial(t, client, addr); serial != second {
		t.Fatalf("after the renewal, serial %d, want %d", serial, second)
	}
	// The certificate replaced, its key not yet: the pair does not load,
	// and the certificate in force stays.
	certPEM, keyPEM, third := ca.issue(t)
	writeFileAtomic(t, certFile, certPEM, 0o644)
	for range 3 {
		if serial, _ := servedSerial(t, client, addr); serial != second {
			t.Fatalf("with a certificate whose key is not there yet, serial %d, want %d still", serial, second)
		}
	}
	if n := strings.Count(logs.String(), "level=ERROR"); n != 1 || !strings.Contains(logs.String(), "private key does not match public key") {
		t.Errorf("want one error logged for the half-replaced pair:\n%s", logs.String())
	}
	writeFileAtomic(t, keyFile, keyPEM, 0o600)
	if serial, _ := servedSerial(t, client, addr); serial != third {
		t.Fatalf("once the key follows, serial %d, want %d", serial, third)
	}
	if !strings.Contains(logs.String(), "TLS certificate reloaded") {
		t.Errorf("no reload logged:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), string(keyPEM)) || bytes.Contains([]byte(logs.String()), []byte("PRIVATE KEY")) {
		t.Error("a key is in the logs")
	}
}

// TestCertReloader_CheckEvery: with serve's one second, a handshake looks
// at the files only once the last look is a second old; Reload at once.
func TestCertReloader_CheckEvery(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
		ca := newTestCA(t)
		first := ca.issueFiles(t, certFile, keyFile)
		c, err := newCertReloader(certFile, keyFile, certCheckEvery, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		serial := func() int64 {
			cert, err := c.GetCertificate(nil)
			if err != nil {
				t.Fatal(err)
			}
			return cert.Leaf.SerialNumber.Int64()
		}
		second := ca.issueFiles(t, certFile, keyFile)
		time.Sleep(certCheckEvery - time.Nanosecond)
		if s := serial(); s != first {
			t.Fatalf("before a second passed: serial %d, want %d", s, first)
		}
		time.Sleep(time.Nanosecond)
		if s := serial(); s != second {
			t.Fatalf("a second after: serial %d, want %d", s, second)
		}
		third := ca.issueFiles(t, certFile, keyFile)
		if s := serial(); s != second {
			t.Fatalf("at once: serial %d, want %d", s, second)
		}
		if err := c.Reload(); err != nil || serial() != third {
			t.Fatalf("Reload: %v, serial %d, want %d", err, serial(), third)
		}
		writeFileAtomic(t, keyFile, []byte("not a key"), 0o600)
		if err := c.Reload(); err == nil || serial() != third {
			t.Fatalf("Reload of a bad key: %v, serial %d, want an error and %d kept", err, serial(), third)
		}
	})
}

// TestNewCertReloader_Refused: files that do not make a certificate a
// server can use are refused at start, naming them.
func TestNewCertReloader_Refused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := newTestCA(t)
	certPEM, keyPEM, _ := ca.issue(t)
	_, otherKey, _ := ca.issue(t)
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cert, key, wrongKey := write("cert.pem", certPEM), write("key.pem", keyPEM), write("other.pem", otherKey)
	for _, c := range []struct{ cert, key, want string }{
		{filepath.Join(dir, "missing.pem"), key, "no such file or directory"},
		{cert, wrongKey, "private key does not match public key"},
		{key, cert, "failed to find certificate PEM data"},
		{write("empty.pem", nil), key, "failed to find any PEM data"},
	} {
		if _, err := newCertReloader(c.cert, c.key, 0, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.cert) {
			t.Errorf("%s, %s: %v, want %q", c.cert, c.key, err, c.want)
		}
	}
}
