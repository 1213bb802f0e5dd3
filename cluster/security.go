package cluster

// Who may join a cluster and reach a node's NATS server: the cluster's
// secret (Options.SecretFile), route TLS with the cluster's CA
// (Options.TLSCAFile, TLSCertFile, TLSKeyFile), and the credentials of
// the client listener, all through nats-server's own options: the route
// listener's authorization (ClusterOpts.Username and Password, the same
// in the URL of every route a node dials), ClusterOpts.TLSConfig, and the
// server's users. See docs/security.md.

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"golang.org/x/crypto/bcrypt"
)

const (
	// minSecret is the shortest secret taken, in bytes: 32 characters of
	// base64 are 192 random bits.
	minSecret = 32
	// maxSecretFile bounds what is read of a secret file.
	maxSecretFile = 4096

	// The users of the embedded server. Their names are in its logs (a
	// refused route logs the user it claimed); their passwords never are.
	routeUser  = "todo-route" // every route, both ways
	clientUser = "todo"       // a NATS client at ClientAddr
	nodeUser   = "todo-node"  // the node's own in-process connection

	// The labels the passwords are derived with: the secret is the HMAC
	// key, so that a password seen (on a route without TLS, say) leads
	// neither to the secret nor to the other password.
	routeLabel  = "todo cluster route v1"
	clientLabel = "todo nats client v1"
)

// access is what a node's embedded server admits: the passwords derived
// from the cluster's secret, the route TLS configuration, and the node's
// own password. It is read from Options before anything is created, and
// never logged.
type access struct {
	routePassword  string      // "": routes need no credentials (no secret)
	clientPassword string      // "": the client port at ClientAddr takes anyone (no secret)
	nodePassword   string      // the in-process connection's, random per start
	tls            *tls.Config // nil: routes in clear
	// refusalQuiet is how long a refused route or client, once logged,
	// is counted rather than logged again (refusals.go).
	refusalQuiet time.Duration
}

// loadAccess reads the secret and the route certificates o names.
func loadAccess(o *Options) (*access, error) {
	a := &access{refusalQuiet: refusalQuiet}
	if o.SecretFile != "" {
		secret, err := readSecret(o.SecretFile)
		if err != nil {
			return nil, err
		}
		a.routePassword = derive(secret, routeLabel)
		a.clientPassword = derive(secret, clientLabel)
	}
	if o.TLSCAFile != "" {
		var err error
		if a.tls, err = loadRouteTLS(o.TLSCAFile, o.TLSCertFile, o.TLSKeyFile); err != nil {
			return nil, err
		}
	}
	var b [32]byte
	rand.Read(b[:]) // never fails (crypto/rand's documentation)
	a.nodePassword = hex.EncodeToString(b[:])
	return a, nil
}

// ClientPassword returns the password of the user "todo" on the client
// port of a node started with this SecretFile and a ClientAddr, for the
// nats command and other NATS clients: the hex of the HMAC-SHA-256 of
// "todo nats client v1" keyed by the secret. Whoever holds it reads and
// writes every list, as the nodes do.
func ClientPassword(secretFile string) (string, error) {
	secret, err := readSecret(secretFile)
	if err != nil {
		return "", err
	}
	return derive(secret, clientLabel), nil
}

// derive is the hex of the HMAC-SHA-256 of label, keyed by the secret.
func derive(secret []byte, label string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(label))
	return hex.EncodeToString(m.Sum(nil))
}

// readSecret reads a secret file: a regular file, private to its owner,
// holding at least minSecret bytes besides the white space around them.
// Its errors name the file, never what it holds.
func readSecret(path string) ([]byte, error) {
	refuse := func(format string, args ...any) error {
		return errInvalidOptions("SecretFile %s: %s", path, fmt.Sprintf(format, args...))
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, refuse("%v", pathless(err))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, refuse("%v", pathless(err))
	}
	switch {
	case !fi.Mode().IsRegular():
		return nil, refuse("not a regular file (%s)", fi.Mode().Type())
	case fi.Mode().Perm()&0o077 != 0 && runtime.GOOS != "windows":
		return nil, refuse("mode %04o lets group or others read or write it, and whoever reads it joins the cluster: chmod 600 %s", fi.Mode().Perm(), path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return nil, refuse("%v", pathless(err))
	}
	if len(data) > maxSecretFile {
		return nil, refuse("more than %d bytes: a secret is one line", maxSecretFile)
	}
	secret := []byte(strings.TrimSpace(string(data)))
	if len(secret) < minSecret {
		return nil, refuse("the secret is %d characters, want at least %d: make one with `todo cluster-secret FILE` or `openssl rand -base64 32 > FILE`", len(secret), minSecret)
	}
	return secret, nil
}

// pathless is err without the path an *os.PathError repeats.
func pathless(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// loadRouteTLS is the routes' TLS configuration: this node's certificate,
// presented both when it accepts a route and when it dials one, and the
// CA every peer's certificate must chain to, both ways. It refuses, before
// the node starts, a certificate the CA did not sign, one that has
// expired, or one that does not allow both server and client
// authentication: a node with any of these would never route.
func loadRouteTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, errInvalidOptions("TLSCAFile %s: %v", caFile, pathless(err))
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errInvalidOptions("TLSCAFile %s: no PEM certificate in it", caFile)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, errInvalidOptions("TLSCertFile %s and TLSKeyFile %s: %v", certFile, keyFile, pathless(err))
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, errInvalidOptions("TLSCertFile %s: %v", certFile, err)
		}
	}
	inter := x509.NewCertPool()
	for _, c := range cert.Certificate[1:] {
		if ic, err := x509.ParseCertificate(c); err == nil {
			inter.AddCert(ic)
		}
	}
	// Verify accepts a certificate for any of the usages it is given: each
	// is asked for on its own.
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := cert.Leaf.Verify(x509.VerifyOptions{
			Roots:         pool,
			Intermediates: inter,
			CurrentTime:   time.Now(),
			KeyUsages:     []x509.ExtKeyUsage{usage},
		}); err != nil {
			return nil, errInvalidOptions("TLSCertFile %s: not a route certificate of the cluster's CA %s (signed by it, valid now, for server and client authentication): %v", certFile, caFile, err)
		}
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool, // the peers this node dials
		ClientCAs:    pool, // the peers that dial this node
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}, nil
}

// checkAccess refuses options that leave the cluster open past loopback
// without Insecure, and security options that cannot go together.
func (o *Options) checkAccess() error {
	tlsFiles := []string{o.TLSCAFile, o.TLSCertFile, o.TLSKeyFile}
	some, all := false, true
	for _, f := range tlsFiles {
		some = some || f != ""
		all = all && f != ""
	}
	switch {
	case some && !all:
		return errInvalidOptions("TLSCAFile, TLSCertFile and TLSKeyFile go together: give all three, or none")
	case o.NATSURL != "" && (o.SecretFile != "" || some):
		return errInvalidOptions("SecretFile and the TLS files protect the embedded server's routes: with NATSURL there is none (put the NATS cluster's credentials in the URL)")
	case o.NATSURL != "" || o.SecretFile != "" || o.Insecure:
		return nil
	}
	if field, addr := o.exposed(); field != "" {
		return errInvalidOptions("SecretFile is empty, and %s %s is not a loopback address: anyone who reaches it would join the cluster and read and write every list; give the cluster a SecretFile (or set Insecure, to run without one on purpose)", field, addr)
	}
	return nil
}

// exposed names the first address of o, and its field, that is not a
// loopback one, or returns "" if they all are.
func (o *Options) exposed() (field, addr string) {
	if !isLoopback(o.ClusterAddr) {
		return "ClusterAddr", o.ClusterAddr
	}
	if o.ClientAddr != "" && !isLoopback(o.ClientAddr) {
		return "ClientAddr", o.ClientAddr
	}
	for _, p := range o.Peers {
		if !isLoopback(p) {
			return "Peers", p
		}
	}
	return "", ""
}

// isLoopback reports whether addr is host:port with a loopback host: an
// IP address of the loopback, or localhost. An empty host is every
// interface: not loopback.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// apply sets the embedded server's options: the route listener's
// authorization and TLS, and the users of the client listener. clientAddr
// tells whether the client listener is one the user asked for.
func (a *access) apply(so *server.Options, clientAddr bool) {
	if a.routePassword != "" {
		so.Cluster.Username = routeUser
		so.Cluster.Password = a.routePassword
	}
	if a.tls != nil {
		so.Cluster.TLSConfig = a.tls
		so.Cluster.TLSTimeout = 2 // seconds, nats-server's default
	}
	if clientAddr && a.clientPassword == "" {
		return // no secret: the client port the user asked for takes anyone, as before
	}
	// The node's own user may connect in-process only: not even its
	// password would let a client in through a port.
	so.Users = []*server.User{{
		Username:               nodeUser,
		Password:               bcryptOf(a.nodePassword),
		AllowedConnectionTypes: map[string]struct{}{"IN_PROCESS": {}},
	}}
	if clientAddr {
		so.Users = append(so.Users, &server.User{Username: clientUser, Password: bcryptOf(a.clientPassword)})
	}
}

// bcryptOf is the bcrypt hash of a password for the server's users, at
// the least cost: the passwords are 256 bits, random or derived, which no
// cost makes harder to guess. It keeps them out of the server's options
// in clear, and nats-server warns at each start of plaintext ones.
func bcryptOf(password string) string {
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		panic(err) // only a password over 72 bytes fails: ours are 64
	}
	return string(h)
}

// routeURL is the URL of the route to the peer at hostPort, with the
// route credentials when there is a secret.
func (a *access) routeURL(hostPort string) *url.URL {
	u := &url.URL{Scheme: "nats-route", Host: hostPort}
	if a.routePassword != "" {
		u.User = url.UserPassword(routeUser, a.routePassword)
	}
	return u
}

// warn logs, once at start, what an operator of a node whose ports
// others may reach must know: that anyone may join (Insecure, without a
// secret), or that its routes travel in clear (no route TLS); and until
// when the route certificate is valid, when there is one.
func (a *access) warn(o *Options, log *slog.Logger) {
	if a.tls != nil {
		leaf := a.tls.Certificates[0].Leaf
		log.Info("cluster: routes use TLS", "cert", o.TLSCertFile, "ca", o.TLSCAFile, "not_after", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	field, addr := o.exposed()
	switch {
	case field == "":
	case a.routePassword == "":
		log.Warn("cluster: no cluster secret (Insecure): anyone who reaches this node's ports joins the cluster and reads and writes every list", "field", field, "addr", addr)
	case a.tls == nil:
		log.Warn("cluster: routes travel in clear past loopback: whoever sees the traffic reads the lists, and may replay the route password; give the nodes route TLS (a cluster CA)", "field", field, "addr", addr)
	}
}

// connectOption is the credentials of the node's in-process connection.
func (a *access) connectOption() nats.Option {
	return nats.UserInfo(nodeUser, a.nodePassword)
}

// redactURL is a NATS URL, or a comma-separated list of them, without
// the passwords they may hold, for errors and logs.
func redactURL(s string) string {
	parts := strings.Split(s, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil {
			parts[i] = "(a URL that does not parse)"
			continue
		}
		parts[i] = u.Redacted()
	}
	return strings.Join(parts, ",")
}
