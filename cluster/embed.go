package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// startServer starts the node's embedded NATS server: JetStream on, every
// write fsynced before it is acknowledged (SyncAlways: JetStream's default
// lazy fsync lost acknowledged writes in Jepsen's tests), a max_payload
// large enough for the largest list, and routes to every peer the node
// knows and to itself.
//
// The route to itself is what lets the first node of a cluster start:
// server.New refuses clustered JetStream without a configured route, and
// the server ignores a route to itself. Such a node has no JetStream until
// a second one joins (a lone node never elects a meta leader); Start
// returns at once all the same, and the node answers ErrNotReady until
// then.
//
// The server logs through natsLogger, whose Fatalf records the error
// instead of calling os.Exit as the stock logger does, which would kill
// the process embedding the node; refusals comes before it, to log a peer
// or client refused once rather than at each attempt, and routeLog sums up
// the attempts to route to a peer that is down.
//
// a is who the server admits (security.go): the route credentials, in
// the route listener's authorization and in the URL of each route, the
// route TLS, and the users of the client listener.
func startServer(ctx context.Context, o *Options, a *access, clusterAddr string, routes []string, maxPayload int, rlog *routeLog, fatal func(error)) (*server.Server, error) {
	host, portStr, _ := net.SplitHostPort(clusterAddr)
	port, _ := strconv.Atoi(portStr)
	so := &server.Options{
		ServerName: o.Name,
		// The node talks to its server in-process, but a server with
		// DontListen never starts its routes (they wait for the client
		// listener, in v2.15.2 still): listen on a loopback port nobody
		// is told of, which admits only the node's in-process user.
		Host:       "127.0.0.1",
		Port:       server.RANDOM_PORT,
		JetStream:  true,
		StoreDir:   filepath.Join(o.Dir, "jetstream"),
		SyncAlways: true,
		MaxPayload: int32(maxPayload),
		// Routes carry whole lists: let a slow peer fall this far behind.
		MaxPending: 4 * int64(maxPayload),
		NoSigs:     true,
		// Every failed attempt to route to a peer comes to natsLogger,
		// which counts them and logs one line (see routeLog): the
		// server's own default reports one in 3,600 of those before the
		// first route to a peer, and none of them to the log at all.
		ConnectErrorReports: 1,
		Cluster: server.ClusterOpts{
			Name: clusterName,
			Host: host,
			Port: port,
			// A peer cut off without a reset (a partition) is noticed
			// after 3 unanswered pings, 3-4s, not the default 4 minutes:
			// messages stop queueing for it, and requests for it fail
			// at once.
			PingInterval: time.Second,
			MaxPingsOut:  3,
			// A peer that is down is tried again after 1s, then 2s,
			// 4s... up to 30s (the server's bound), not every second
			// for ever. A restarted peer routes to this one at once
			// itself; only a network that heals waits for the next try.
			ConnectBackoff: true,
		},
	}
	if o.ClientAddr != "" {
		h, p, _ := net.SplitHostPort(o.ClientAddr)
		so.Host = h
		so.Port, _ = strconv.Atoi(p)
		if so.Port == 0 {
			so.Port = server.RANDOM_PORT
		}
	}
	a.apply(so, o.ClientAddr != "")
	for _, r := range routes {
		so.Routes = append(so.Routes, a.routeURL(r))
	}
	srv, err := server.NewServer(so)
	if err != nil {
		return nil, fmt.Errorf("cluster: start the embedded NATS server: %w", err)
	}
	var startErr atomic.Pointer[error]
	srv.SetLoggerV2(newRefusals(&natsLogger{log: o.Logger, routes: rlog, fatal: func(err error) {
		startErr.CompareAndSwap(nil, &err)
		fatal(err)
	}}, o.Logger, a.refusalQuiet), false, false, false)
	srv.Start()
	// Wait for the listeners, but not past a fatal error (one that cannot
	// listen, a port in use, says so at once) or the end of ctx.
	for deadline := time.Now().Add(10 * time.Second); ; {
		if err := startErr.Load(); err != nil {
			srv.Shutdown()
			srv.WaitForShutdown()
			return nil, fmt.Errorf("cluster: the embedded NATS server cannot start: %w", *err)
		}
		if ctx.Err() != nil {
			srv.Shutdown()
			srv.WaitForShutdown()
			return nil, fmt.Errorf("cluster: start: %w", ctx.Err())
		}
		if srv.ReadyForConnections(50 * time.Millisecond) {
			return srv, nil
		}
		if time.Now().After(deadline) {
			srv.Shutdown()
			srv.WaitForShutdown()
			return nil, fmt.Errorf("cluster: the embedded NATS server did not start within 10s (cluster address %s)", clusterAddr)
		}
	}
}

// freeAddr turns a host:0 into a host:port that was free a moment ago.
// The server's own listener would pick one too, but the node must know it
// before the server starts: it is the route to itself.
func freeAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port != "0" {
		return addr, err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", fmt.Errorf("cluster: find a free port on %s: %w", host, err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// natsLogger passes the embedded server's log to the node's Logger:
// notices at debug level (the server is chatty), warnings and errors as
// they are, except the errors of each attempt to route to a peer that is
// down, which routes sums up (see routeLog). It is safe for concurrent use.
type natsLogger struct {
	log    *slog.Logger
	routes *routeLog
	fatal  func(error)
}

func (l *natsLogger) Noticef(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	if name, ok := routeClosedBy(msg); ok {
		l.routes.routeClosed(name)
	}
	l.log.Debug("nats: " + msg)
}
func (l *natsLogger) Warnf(format string, v ...any) {
	msg := "nats: " + fmt.Sprintf(format, v...)
	if strings.HasPrefix(msg, "nats: Metalayer") || strings.HasPrefix(msg, "nats: Maximum payloads") {
		l.log.Debug(msg)
		return
	}
	l.log.Warn(msg)
}
func (l *natsLogger) Errorf(format string, v ...any) {
	if format == routeConnectError && len(v) == 2 {
		if err, ok := v[1].(error); ok {
			l.log.Debug("nats: " + fmt.Sprintf(format, v...))
			l.routes.failed(err)
			return
		}
	}
	l.log.Error("nats: " + fmt.Sprintf(format, v...))
}
func (l *natsLogger) Debugf(format string, v ...any) {}
func (l *natsLogger) Tracef(format string, v ...any) {}

// Fatalf records a fatal error instead of exiting.
func (l *natsLogger) Fatalf(format string, v ...any) {
	err := fmt.Errorf("nats: "+format, v...)
	l.log.Error(err.Error())
	l.fatal(err)
}

// peersFile keeps the cluster addresses a node has learned, one a line, in
// its data directory, so that a restarted node routes to all of them: a
// node whose only route is a dead seed never rejoins. It is safe for
// concurrent use.
type peersFile struct {
	path string

	mu    sync.Mutex // guards known
	known []string   // sorted
}

func openPeersFile(dir string) (*peersFile, error) {
	f := &peersFile{path: filepath.Join(dir, peersFileName)}
	data, err := os.ReadFile(f.path)
	if errors.Is(err, os.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cluster: read the learned peers: %w", err)
	}
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(line); err != nil {
			return nil, fmt.Errorf("cluster: %s: bad peer %q: %w", f.path, line, err)
		}
		f.known = append(f.known, line)
	}
	slices.Sort(f.known)
	f.known = slices.Compact(f.known)
	return f, nil
}

// peers returns the learned peers.
func (f *peersFile) peers() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.known)
}

// learn adds addrs to the learned peers and writes the file if that
// changed them: a temporary file, fsynced, renamed over the old one.
func (f *peersFile) learn(addrs ...string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	next := slices.Clone(f.known)
	next = append(next, addrs...)
	slices.Sort(next)
	next = slices.Compact(next)
	if slices.Equal(next, f.known) {
		return nil
	}
	tmp := f.path + ".tmp"
	data := strings.Join(next, "\n") + "\n"
	file, err := os.Create(tmp)
	if err != nil {
		return err
	}
	_, err = file.WriteString(data)
	if err == nil {
		err = file.Sync()
	}
	if cerr := file.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, f.path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("cluster: write the learned peers: %w", err)
	}
	f.known = next
	return nil
}
