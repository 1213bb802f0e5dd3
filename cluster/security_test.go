package cluster_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gotodo/todo"
	"github.com/gotodo/todo/cluster"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// secretFile returns the path of the cluster secret of the nodes whose
// directories are in dir, writing a new random one, mode 0600, the first
// time: 32 bytes from crypto/rand in base64 and a newline, as `openssl
// rand -base64 32` writes.
func secretFile(dir string) string {
	path := filepath.Join(dir, "cluster-secret")
	if _, err := os.Stat(path); err == nil {
		return path
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return path // Start says what is wrong with it
	}
	b := make([]byte, 32)
	rand.Read(b)
	tmp, err := os.CreateTemp(dir, "secret-*") // mode 0600
	if err != nil {
		return path
	}
	tmp.WriteString(base64.StdEncoding.EncodeToString(b) + "\n")
	tmp.Close()
	os.Link(tmp.Name(), path) // a node that raced here keeps the first secret
	os.Remove(tmp.Name())
	return path
}

// secretOf is the secret in a secret file, as docs/security.md defines
// it: the file's contents without the white space around them.
func secretOf(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// derived is a password as docs/security.md says it is derived from the
// secret: the hex of the HMAC-SHA-256 of label, keyed by the secret.
func derived(secret, label string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(label))
	return hex.EncodeToString(m.Sum(nil))
}

// logBuffer keeps what a logger wrote. It is safe for concurrent use.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// count is how many lines hold every one of words.
func (l *logBuffer) count(words ...string) int {
	n := 0
	for line := range strings.Lines(l.String()) {
		all := true
		for _, w := range words {
			all = all && strings.Contains(line, w)
		}
		if all {
			n++
		}
	}
	return n
}

// capture makes o's node log everything, at every level, into a buffer.
func capture(o *cluster.Options) *logBuffer {
	l := &logBuffer{}
	o.Logger = slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return l
}

// testCA is a certificate authority the test makes, and the PEM file of
// its certificate.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string
}

func newTestCA(t testing.TB, dir, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
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
	cert, _ := x509.ParseCertificate(der)
	ca := &testCA{cert: cert, key: key, file: filepath.Join(dir, name+".pem")}
	writePEM(t, ca.file, "CERTIFICATE", der)
	return ca
}

// issue makes a node's certificate for 127.0.0.1 and localhost, for
// server and client authentication (or those usages given), and returns
// its files.
func (ca *testCA) issue(t testing.TB, dir, name string, usages ...x509.ExtKeyUsage) (certFile, keyFile string) {
	t.Helper()
	if usages == nil {
		usages = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  usages,
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "PRIVATE KEY", kder)
	return certFile, keyFile
}

// tlsFor gives o the route TLS of a node called name, certified by ca.
func (ca *testCA) tlsFor(t testing.TB, o *cluster.Options, dir, name string) {
	o.TLSCAFile = ca.file
	o.TLSCertFile, o.TLSKeyFile = ca.issue(t, dir, name)
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// startCaptured starts the nodes of opts, in order, each logging into a
// buffer of its own, and waits for them all to be ready.
func startCaptured(t *testing.T, opts ...cluster.Options) ([]*cluster.Node, []*logBuffer) {
	t.Helper()
	var nodes []*cluster.Node
	var logs []*logBuffer
	for _, o := range opts {
		logs = append(logs, capture(&o))
		n, err := cluster.Start(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		nodes = append(nodes, n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, n := range nodes {
		if err := n.Ready(ctx); err != nil {
			t.Fatalf("node %s: %v", n.Name(), err)
		}
	}
	return nodes, logs
}

// observed is how long the tests watch strangers try to route: the
// embedded server tries again every second, so several attempts.
const observed = 5 * time.Second

// watchNoRoutes checks routed every 100ms for observed, and fails the
// test at its first error: the strangers are trying meanwhile.
func watchNoRoutes(t *testing.T, routed func() error) {
	t.Helper()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for end := time.After(observed); ; {
		if err := routed(); err != nil {
			t.Fatal(err)
		}
		select {
		case <-end:
			return
		case <-tick.C:
		}
	}
}

// A stranger with the wrong secret, and one with none, get no route to
// a cluster with a secret: each sees no list and writes nothing, its
// JetStream never joins (from its side and from the cluster's), and each
// node of the cluster logs the refusal of each once, where it was tried
// every second. The broken twin, a cluster logging every refusal as the
// embedded server does, logs several.
func TestNode_StrangersGetNoRoute(t *testing.T) {
	for _, twin := range []bool{false, true} {
		t.Run(fmt.Sprintf("every_refusal=%v", twin), func(t *testing.T) {
			strangersGetNoRoute(t, twin)
		})
	}
}

func strangersGetNoRoute(t *testing.T, everyRefusal bool) {
	dir := t.TempDir()
	o1 := nodeOptions(dir, "n1")
	o1.ClusterAddr = freeAddr(t)
	o2 := nodeOptions(dir, "n2", o1.ClusterAddr)
	o2.ClusterAddr = freeAddr(t)
	var nodes []*cluster.Node
	var logs []*logBuffer
	if !everyRefusal {
		nodes, logs = startCaptured(t, o1, o2)
	} else {
		for _, o := range []cluster.Options{o1, o2} {
			logs = append(logs, capture(&o))
			n, err := cluster.StartLoggingEveryRefusal(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { n.Close() })
			nodes = append(nodes, n)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, n := range nodes {
			if err := n.Ready(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), addTimeout)
	defer cancel()
	if _, err := nodes[0].AddEntry(ctx, "bob", todo.Entry{Date: day, Title: "Dentist"}); err != nil {
		t.Fatal(err)
	}
	if to := nodes[0].RoutedTo(); !slices.Contains(to, "n2") {
		t.Fatalf("n1's routes go to %v, not to n2", to)
	}

	otherDir := t.TempDir()
	wrong := nodeOptions(otherDir, "wrong", o1.ClusterAddr, o2.ClusterAddr) // its own secret
	none := nodeOptions(otherDir, "none", o1.ClusterAddr, o2.ClusterAddr)
	none.SecretFile = ""
	var strangers []*cluster.Node
	var strangerLogs []*logBuffer
	for _, o := range []cluster.Options{wrong, none} {
		strangerLogs = append(strangerLogs, capture(&o))
		n, err := cluster.Start(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		strangers = append(strangers, n)
	}
	// Watch them try for a while: the cluster never has more routes, and
	// the strangers' JetStream never knows its nodes. (A stranger counts
	// a route for the instant between the INFO its peer sends first and
	// the refusal of its credentials: its count says nothing.)
	watchNoRoutes(t, func() error {
		for _, s := range strangers {
			if peers := s.MetaPeers(); slices.Contains(peers, "n1") || slices.Contains(peers, "n2") || s.Health().Ready {
				return fmt.Errorf("the stranger %s knows the servers %v, health %+v", s.Name(), peers, s.Health())
			}
		}
		for _, n := range nodes {
			if to := n.RoutedTo(); slices.Contains(to, "wrong") || slices.Contains(to, "none") {
				return fmt.Errorf("node %s has routes to %v", n.Name(), to)
			}
		}
		return nil
	})
	for _, s := range strangers {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := s.AddEntry(ctx, "stranger", todo.Entry{Date: day, Title: "x"})
		cancel()
		if !errors.Is(err, todo.ErrUnavailable) {
			t.Errorf("stranger %s's add: %v, want ErrUnavailable", s.Name(), err)
		}
	}

	// From the strangers' side: no JetStream, no list.
	for _, s := range strangers {
		h := s.Health()
		if h.Ready || len(h.Nodes) != 0 {
			t.Errorf("stranger %s's health: %+v", s.Name(), h)
		}
		if peers := s.MetaPeers(); slices.Contains(peers, "n1") || slices.Contains(peers, "n2") {
			t.Errorf("stranger %s's JetStream knows %v", s.Name(), peers)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if lists, err := s.Lists(ctx); err == nil {
			t.Errorf("stranger %s sees the lists %v", s.Name(), lists)
		}
		cancel()
	}
	// From the cluster's: the same two nodes, one list.
	for _, n := range nodes {
		if h := n.Health(); !slices.Equal(h.Nodes, []string{"n1", "n2"}) {
			t.Errorf("node %s's health with strangers about: %+v", n.Name(), h)
		}
		for _, p := range n.MetaPeers() {
			if p == "wrong" || p == "none" {
				t.Errorf("node %s's JetStream knows the stranger %s", n.Name(), p)
			}
		}
	}
	ctx, cancel = context.WithTimeout(context.Background(), addTimeout)
	defer cancel()
	if lists, err := nodes[1].Lists(ctx); err != nil || !slices.Equal(lists, []string{"bob"}) {
		t.Errorf("the cluster's lists: %v, %v; want only bob", lists, err)
	}

	// The refusals, as each node of the cluster logged them.
	for i, n := range nodes {
		withUser := logs[i].count(`refused a route`) - logs[i].count(`authentication error"`)
		withoutUser := logs[i].count(`authentication error"`)
		t.Logf("node %s logged %d refusals of the wrong secret and %d of none", n.Name(), withUser, withoutUser)
		switch {
		case !everyRefusal && (withUser != 1 || withoutUser != 1):
			t.Errorf("node %s logged the wrong secret's refusal %d times and no secret's %d times in %v, want once each:\n%s", n.Name(), withUser, withoutUser, observed, logs[i])
		case everyRefusal && (withUser < 3 || withoutUser < 3):
			t.Errorf("the broken twin: node %s logged %d and %d refusals in %v, want one a second", n.Name(), withUser, withoutUser, observed)
		}
	}
	if everyRefusal {
		return
	}
	// The strangers name the peers that refused them, once each.
	for i, s := range strangers {
		for _, o := range []cluster.Options{o1, o2} {
			if c := strangerLogs[i].count("refused this node's route", "peer="+o.ClusterAddr); c != 1 {
				t.Errorf("stranger %s logged %d refusals by %s, want 1:\n%s", s.Name(), c, o.ClusterAddr, strangerLogs[i])
			}
		}
	}
	secret := secretOf(t, o1.SecretFile)
	checkSecretKept(t, secret, append(logs, strangerLogs...), nodes)
}

// checkSecretKept checks that neither the secret nor the passwords
// derived from it appear in any line logs hold, nor in any node's /varz.
func checkSecretKept(t *testing.T, secret string, logs []*logBuffer, nodes []*cluster.Node) {
	t.Helper()
	words := map[string]string{
		"the secret":          secret,
		"the route password":  derived(secret, "todo cluster route v1"),
		"the client password": derived(secret, "todo nats client v1"),
	}
	lines := 0
	for _, l := range logs {
		s := l.String()
		lines += strings.Count(s, "\n")
		for what, w := range words {
			if strings.Contains(s, w) {
				t.Errorf("%s is in the logs:\n%s", what, s)
			}
		}
	}
	for _, n := range nodes {
		varz, err := n.Varz()
		if err != nil {
			t.Fatal(err)
		}
		for what, w := range words {
			if bytes.Contains(varz, []byte(w)) {
				t.Errorf("%s is in node %s's /varz: %s", what, n.Name(), varz)
			}
		}
	}
	if lines == 0 {
		t.Fatal("no log line captured: the check saw nothing")
	}
	t.Logf("the secret is in none of %d log lines nor in %d nodes' /varz", lines, len(nodes))
}

// A plain NATS client without credentials is refused on every port a
// node of a cluster with a secret opens: its client port (ClientAddr),
// the hidden loopback one of a node without ClientAddr, and the route
// port. With the user "todo" and the password derived from the secret,
// as docs/security.md says, a client reads the stream at ClientAddr, and
// only there.
func TestNode_PortsRefusePlainClients(t *testing.T) {
	dir := t.TempDir()
	o1 := nodeOptions(dir, "n1")
	o1.ClientAddr = freeAddr(t)
	o2 := nodeOptions(dir, "n2")
	o1.ClusterAddr, o2.ClusterAddr = freeAddr(t), freeAddr(t)
	o1.Peers, o2.Peers = []string{o2.ClusterAddr}, []string{o1.ClusterAddr}
	nodes, logs := startCaptured(t, o1, o2)
	ctx, cancel := context.WithTimeout(context.Background(), addTimeout)
	defer cancel()
	if _, err := nodes[0].AddEntry(ctx, "bob", todo.Entry{Date: day, Title: "Dentist"}); err != nil {
		t.Fatal(err)
	}
	secret := secretOf(t, o1.SecretFile)
	password := derived(secret, "todo nats client v1")
	ports := 0
	for _, n := range nodes {
		urls := n.Ports()
		if len(urls) < 2 {
			t.Fatalf("node %s opened %v: want its client and route ports", n.Name(), urls)
		}
		for _, u := range urls {
			ports++
			for _, cred := range []struct {
				name string
				opts []nats.Option
			}{
				{"no credentials", nil},
				{"the route user", []nats.Option{nats.UserInfo("todo-route", derived(secret, "todo cluster route v1"))}},
				{"the node's user", []nats.Option{nats.UserInfo("todo-node", password)}},
				{"a wrong password", []nats.Option{nats.UserInfo("todo", derived("not the secret", "todo nats client v1"))}},
			} {
				if err := readStream(u, cred.opts...); err == nil {
					t.Errorf("node %s, %s with %s: the stream was read", n.Name(), u, cred.name)
				} else {
					t.Logf("node %s, %s with %s: %v", n.Name(), u, cred.name, err)
				}
			}
		}
	}
	// The positive control: the client port with the client's credentials.
	if err := readStream("nats://"+o1.ClientAddr, nats.UserInfo("todo", password)); err != nil {
		t.Errorf("the client port with the derived password: %v", err)
	}
	if p, err := cluster.ClientPassword(o1.SecretFile); err != nil || p != password {
		t.Errorf("ClientPassword: %q, %v; want %q", p, err, password)
	}
	t.Logf("%d ports refused every stranger", ports)
	if c := logs[0].count("refused a NATS client: no credentials"); c != 4 {
		t.Errorf("n1 logged %d refused NATS clients, want 4 (no credentials, the route's user, the node's user, a wrong password: once each):\n%s", c, logs[0])
	}
	checkSecretKept(t, secret, logs, nodes)
}

// readStream connects to url and reads the lists' stream's info.
func readStream(url string, opts ...nats.Option) error {
	nc, err := nats.Connect(url, append(opts, nats.Timeout(2*time.Second), nats.NoReconnect())...)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, "TODO_LISTS")
	if err != nil {
		return err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return err
	}
	if info.State.Msgs == 0 {
		return errors.New("the stream is empty")
	}
	return nil
}

// Route TLS with a cluster CA: a server whose certificate another CA
// signed gets no route, even with the secret and trusting any
// certificate itself, and neither does one without TLS; a node with a
// certificate of the cluster's CA joins. Each refusal is logged once by
// each node.
func TestNode_RouteTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, dir, "cluster-ca")
	other := newTestCA(t, dir, "other-ca")
	o1 := nodeOptions(dir, "n1")
	o2 := nodeOptions(dir, "n2")
	o1.ClusterAddr, o2.ClusterAddr = freeAddr(t), freeAddr(t)
	o1.Peers, o2.Peers = []string{o2.ClusterAddr}, []string{o1.ClusterAddr}
	ca.tlsFor(t, &o1, dir, "n1")
	ca.tlsFor(t, &o2, dir, "n2")
	nodes, logs := startCaptured(t, o1, o2)
	secret := secretOf(t, o1.SecretFile)

	// Strangers that are no todo node: nats-servers with the cluster's
	// name and route credentials, one with a certificate of another CA
	// that would accept any certificate, one without TLS.
	certFile, keyFile := other.issue(t, dir, "forged")
	forged, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	forgedTLS := &tls.Config{
		Certificates: []tls.Certificate{forged},
		// Present it even to a server that asks for the cluster CA's.
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &forged, nil },
		InsecureSkipVerify:   true,
		MinVersion:           tls.VersionTLS12,
	}
	strangers := []*server.Server{
		strangerServer(t, "forged", secret, forgedTLS, o1.ClusterAddr, o2.ClusterAddr),
		strangerServer(t, "plain", secret, nil, o1.ClusterAddr, o2.ClusterAddr),
	}
	watchNoRoutes(t, func() error {
		for _, s := range strangers {
			if peers := s.JetStreamClusterPeers(); slices.Contains(peers, "n1") || slices.Contains(peers, "n2") {
				return fmt.Errorf("the stranger %s's JetStream knows %v", s.Name(), peers)
			}
		}
		for _, n := range nodes {
			if to := n.RoutedTo(); slices.Contains(to, "forged") || slices.Contains(to, "plain") {
				return fmt.Errorf("node %s has routes to %v", n.Name(), to)
			}
		}
		return nil
	})
	for _, n := range nodes {
		if h := n.Health(); len(h.Nodes) != 2 {
			t.Errorf("node %s with strangers about: %+v", n.Name(), h)
		}
		for _, p := range n.MetaPeers() {
			if p == "forged" || p == "plain" {
				t.Errorf("node %s's JetStream knows the stranger %s", n.Name(), p)
			}
		}
	}
	for i, n := range nodes {
		// The forged certificate fails the handshake; the plain server is
		// told TLS is required, before any credentials: one line each.
		tlsLines := logs[i].count("failed its TLS handshake")
		if tlsLines != 2 {
			t.Errorf("node %s logged %d TLS refusals in %v, want 2 (the forged certificate, the plain server: once each):\n%s", n.Name(), tlsLines, observed, logs[i])
		}
	}

	// A node with a certificate of the cluster's CA joins.
	o3 := nodeOptions(dir, "n3", o1.ClusterAddr, o2.ClusterAddr)
	ca.tlsFor(t, &o3, dir, "n3")
	logs = append(logs, capture(&o3))
	n3, err := cluster.Start(context.Background(), o3)
	if err != nil {
		t.Fatal(err)
	}
	defer n3.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n3.Ready(ctx); err != nil {
		t.Fatalf("n3, certified by the cluster's CA: %v\n%s", err, logs[2])
	}
	waitCanWrite(t, []*cluster.Node{n3})
	if _, err := n3.AddEntry(ctx, "bob", todo.Entry{Date: day, Title: "Dentist"}); err != nil {
		t.Fatal(err)
	}
	all, err := nodes[0].AllEntries(ctx, "bob")
	if err != nil || len(all) != 1 {
		t.Fatalf("bob, added through n3, read through n1: %v, %v", all, err)
	}
	if to := nodes[0].RoutedTo(); !slices.Contains(to, "n3") || slices.Contains(to, "forged") || slices.Contains(to, "plain") {
		t.Errorf("n1's routes go to %v: want n3, and no stranger", to)
	}
	checkSecretKept(t, secret, logs, append(nodes, n3))
}

// strangerServer starts a nats-server with JetStream that routes to
// peers with the cluster's name and the route credentials derived from
// secret, with tlsConfig (nil: in clear).
func strangerServer(t *testing.T, name, secret string, tlsConfig *tls.Config, peers ...string) *server.Server {
	t.Helper()
	o := &server.Options{
		ServerName: name,
		Host:       "127.0.0.1",
		Port:       server.RANDOM_PORT,
		JetStream:  true,
		StoreDir:   t.TempDir(),
		NoSigs:     true,
		Cluster: server.ClusterOpts{
			Name:      "todo",
			Host:      "127.0.0.1",
			Port:      server.RANDOM_PORT,
			Username:  "todo-route",
			Password:  derived(secret, "todo cluster route v1"),
			TLSConfig: tlsConfig,
		},
	}
	for _, p := range peers {
		o.Routes = append(o.Routes, &url.URL{Scheme: "nats-route", Host: p, User: url.UserPassword("todo-route", o.Cluster.Password)})
	}
	s, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

// A node refuses to start on an address others may reach without the
// cluster's secret (unless Insecure), with a secret file others may read
// or too short, and with route TLS files that are missing, partial or
// not of the CA; each error names the field and what to do, and wraps
// todo.ErrInvalidOptions, and none leaves the node's directory behind.
func TestStart_AccessRefused(t *testing.T) {
	dir := t.TempDir()
	secret := secretFile(dir)
	loose := filepath.Join(dir, "loose")
	short := filepath.Join(dir, "short")
	os.WriteFile(loose, []byte(secretOf(t, secret)), 0o644)
	os.Chmod(loose, 0o644)
	os.WriteFile(short, []byte("hunter2\n"), 0o600)
	ca := newTestCA(t, dir, "ca")
	other := newTestCA(t, dir, "other")
	certFile, keyFile := ca.issue(t, dir, "node")
	otherCert, otherKey := other.issue(t, dir, "stranger")
	serverOnly, serverOnlyKey := ca.issue(t, dir, "server-only", x509.ExtKeyUsageServerAuth)
	for _, c := range []struct {
		name string
		set  func(o *cluster.Options)
		want string
	}{
		{"every interface", func(o *cluster.Options) { o.SecretFile, o.ClusterAddr = "", "0.0.0.0:0" },
			"SecretFile is empty, and ClusterAddr 0.0.0.0:0 is not a loopback address: anyone who reaches it would join the cluster and read and write every list; give the cluster a SecretFile (or set Insecure, to run without one on purpose)"},
		{"no host", func(o *cluster.Options) { o.SecretFile, o.ClusterAddr = "", ":0" }, "ClusterAddr :0 is not a loopback address"},
		{"a peer elsewhere", func(o *cluster.Options) { o.SecretFile, o.Peers = "", []string{"10.1.2.3:6222"} }, "Peers 10.1.2.3:6222 is not a loopback address"},
		{"a client port for all", func(o *cluster.Options) { o.SecretFile, o.ClientAddr = "", "0.0.0.0:0" }, "ClientAddr 0.0.0.0:0 is not a loopback address"},
		{"a secret others may read", func(o *cluster.Options) { o.SecretFile = loose },
			"SecretFile " + loose + ": mode 0644 lets group or others read or write it, and whoever reads it joins the cluster: chmod 600 " + loose},
		{"a short secret", func(o *cluster.Options) { o.SecretFile = short },
			"SecretFile " + short + ": the secret is 7 characters, want at least 32: make one with `todo cluster-secret FILE` or `openssl rand -base64 32 > FILE`"},
		{"no secret file", func(o *cluster.Options) { o.SecretFile = filepath.Join(dir, "missing") }, "SecretFile " + filepath.Join(dir, "missing") + ": no such file or directory"},
		{"a certificate without its CA", func(o *cluster.Options) { o.TLSCertFile, o.TLSKeyFile = certFile, keyFile },
			"TLSCAFile, TLSCertFile and TLSKeyFile go together: give all three, or none"},
		{"no certificate file", func(o *cluster.Options) {
			o.TLSCAFile, o.TLSCertFile, o.TLSKeyFile = ca.file, filepath.Join(dir, "missing.pem"), keyFile
		}, "TLSCertFile " + filepath.Join(dir, "missing.pem") + " and TLSKeyFile " + keyFile + ": no such file or directory"},
		{"no CA file", func(o *cluster.Options) {
			o.TLSCAFile, o.TLSCertFile, o.TLSKeyFile = filepath.Join(dir, "missing-ca.pem"), certFile, keyFile
		}, "TLSCAFile " + filepath.Join(dir, "missing-ca.pem") + ": no such file or directory"},
		{"a CA file without a certificate", func(o *cluster.Options) { o.TLSCAFile, o.TLSCertFile, o.TLSKeyFile = keyFile, certFile, keyFile },
			"TLSCAFile " + keyFile + ": no PEM certificate in it"},
		{"a certificate of another CA", func(o *cluster.Options) { o.TLSCAFile, o.TLSCertFile, o.TLSKeyFile = ca.file, otherCert, otherKey },
			"TLSCertFile " + otherCert + ": not a route certificate of the cluster's CA " + ca.file},
		{"a server-only certificate", func(o *cluster.Options) {
			o.TLSCAFile, o.TLSCertFile, o.TLSKeyFile = ca.file, serverOnly, serverOnlyKey
		},
			"TLSCertFile " + serverOnly + ": not a route certificate of the cluster's CA " + ca.file},
		{"a key that is not the certificate's", func(o *cluster.Options) { o.TLSCAFile, o.TLSCertFile, o.TLSKeyFile = ca.file, certFile, otherKey },
			"TLSCertFile " + certFile + " and TLSKeyFile " + otherKey + ": tls: private key does not match public key"},
		{"a secret for an outside NATS", func(o *cluster.Options) { o.NATSURL = "nats://127.0.0.1:1" },
			"SecretFile and the TLS files protect the embedded server's routes: with NATSURL there is none"},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := nodeOptions(t.TempDir(), "refused") // with a secret, on loopback
			c.set(&o)
			n, err := cluster.Start(context.Background(), o)
			if err == nil {
				n.Close()
				t.Fatal("started")
			}
			if !errors.Is(err, todo.ErrInvalidOptions) || !strings.HasPrefix(err.Error(), "todo: invalid options: cluster: ") || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got  %v\nwant %s (wrapping ErrInvalidOptions)", err, c.want)
			}
			if _, err := os.Stat(o.Dir); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a refused start left %s behind (stat: %v)", o.Dir, err)
			}
		})
	}

	// On loopback a secret is optional: then the client port asked for
	// takes any client, as docs/security.md says, and the node's own
	// in-process connection still works.
	o := nodeOptions(t.TempDir(), "open")
	o.SecretFile, o.ClientAddr = "", freeAddr(t)
	n, err := cluster.Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect("nats://"+o.ClientAddr, nats.NoReconnect())
	if err != nil {
		t.Errorf("a client without credentials at ClientAddr of a node without a secret: %v", err)
	} else {
		nc.Close()
	}
	n.Close()

	// Insecure starts a node on every interface without a secret, and
	// says so once.
	o = nodeOptions(t.TempDir(), "insecure")
	o.SecretFile, o.ClusterAddr, o.Insecure = "", "0.0.0.0:0", true
	logs := capture(&o)
	n, err = cluster.Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	n.Close()
	if c := logs.count("no cluster secret (Insecure): anyone who reaches this node's ports joins the cluster"); c != 1 {
		t.Errorf("an insecure node warned %d times:\n%s", c, logs)
	}
}
