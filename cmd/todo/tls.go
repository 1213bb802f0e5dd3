package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// TLS: serve's -tls-cert and -tls-key are PEM files, a certificate (with
// its chain) and its private key, served with TLS 1.2 at least and Go's
// defaults otherwise, HTTP/2 included. The files are read again when they
// change, so that a certificate is renewed (by certbot, cert-manager, an
// operator) without a restart, as etcd and Caddy do.

// certCheckEvery is how often a handshake looks at the certificate's
// files for a change.
const certCheckEvery = time.Second

// certReloader gives TLS handshakes the certificate in its two files,
// read again when either changes: the first handshake after the last
// look is older than every stats both files, and reads them again if
// either changed; Reload (on SIGHUP) reads them at once. A pair that does
// not load (a certificate written before its key, a key that is not the
// certificate's) leaves the certificate in force as it was, and is logged
// once at error level; the next change is tried again. It owns no
// goroutine and is safe for concurrent use.
type certReloader struct {
	certFile, keyFile string
	every             time.Duration // <= 0: look on every handshake
	log               *slog.Logger

	cert      atomic.Pointer[tls.Certificate]
	nextCheck atomic.Int64 // when the files are looked at next, in Unix nanoseconds

	mu     sync.Mutex     // serializes looks at the files; guards the fields below
	loaded [2]os.FileInfo // the files as the certificate in force was read from them
	failed [2]os.FileInfo // the last versions refused, logged once
}

// newCertReloader reads the certificate and key files; it fails if they
// do not load.
func newCertReloader(certFile, keyFile string, every time.Duration, log *slog.Logger) (*certReloader, error) {
	c := &certReloader{certFile: certFile, keyFile: keyFile, every: every, log: log}
	stats := c.stat()
	cert, err := c.load()
	if err != nil {
		return nil, err
	}
	c.cert.Store(cert)
	c.loaded = stats
	c.nextCheck.Store(time.Now().Add(every).UnixNano())
	return c, nil
}

// tlsConfig is the server's TLS configuration: TLS 1.2 at least, the
// certificate from c, Go's defaults otherwise. http.Server adds HTTP/2.
func (c *certReloader) tlsConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: c.GetCertificate}
}

// GetCertificate is the tls.Config's: the certificate in force, after a
// look at the files if the last is old.
func (c *certReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.maybeCheck()
	return c.cert.Load(), nil
}

func (c *certReloader) maybeCheck() {
	if c.every > 0 {
		now := time.Now().UnixNano()
		if now < c.nextCheck.Load() || !c.mu.TryLock() {
			return
		}
		c.nextCheck.Store(now + int64(c.every))
	} else {
		c.mu.Lock()
	}
	defer c.mu.Unlock()
	c.checkLocked(false)
}

// Reload reads the files again now, and returns why the pair was
// refused, if it was: then the certificate in force stays.
func (c *certReloader) Reload() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.checkLocked(true)
}

// checkLocked reads the files again if either changed since it was last
// read or refused, or if force is set. c.mu is held.
func (c *certReloader) checkLocked(force bool) error {
	stats := c.stat()
	if !force && (sameFiles(stats, c.loaded) || sameFiles(stats, c.failed)) {
		return nil
	}
	cert, err := c.load()
	if err != nil {
		c.failed = stats
		c.log.Error("todo: TLS certificate not reloaded: the one in force is kept", "err", err)
		return err
	}
	c.cert.Store(cert)
	c.loaded, c.failed = stats, [2]os.FileInfo{}
	c.logLoaded("TLS certificate reloaded", cert)
	return nil
}

// stat looks at both files; a file that cannot be looked at is nil.
func (c *certReloader) stat() [2]os.FileInfo {
	var s [2]os.FileInfo
	s[0], _ = os.Stat(c.certFile)
	s[1], _ = os.Stat(c.keyFile)
	return s
}

// sameFiles reports whether a and b are the same versions of both files
// (see sameVersion); a file that could not be looked at is no version.
func sameFiles(a, b [2]os.FileInfo) bool {
	return sameVersion(a[0], b[0]) && sameVersion(a[1], b[1])
}

// sameVersion reports whether a and b are the same version of one file:
// the same file (device and inode), size, modification time and mode.
func sameVersion(a, b os.FileInfo) bool {
	return a != nil && b != nil && os.SameFile(a, b) &&
		a.Size() == b.Size() && a.ModTime().Equal(b.ModTime()) && a.Mode() == b.Mode()
}

// load reads the pair, and checks that the certificate is one a server
// can use now.
func (c *certReloader) load() (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate %s and key %s: %w", c.certFile, c.keyFile, err)
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("TLS certificate %s: %w", c.certFile, err)
		}
	}
	if now := time.Now(); now.After(cert.Leaf.NotAfter) {
		return nil, fmt.Errorf("TLS certificate %s expired on %s", c.certFile, cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return &cert, nil
}

// logLoaded logs what a certificate names and until when.
func (c *certReloader) logLoaded(msg string, cert *tls.Certificate) {
	names := cert.Leaf.DNSNames
	for _, ip := range cert.Leaf.IPAddresses {
		names = append(names, ip.String())
	}
	c.log.Info(msg, "cert", c.certFile, "names", strings.Join(names, ","),
		"not_after", cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
}
