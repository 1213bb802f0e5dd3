package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/gotodo/todo/todohttp"
)

// Past loopback, nobody reads or writes without a token (docs/security.md):
// serve's -tokens, -insecure, -tls-cert and -tls-key, the refusal to start
// a server others can reach without one of -tokens or -insecure, and what
// is opened for them before the server listens.

// securityFlags are serve's flags of authentication and TLS, in cfg.
func securityFlags(cfg *config) []serveFlag {
	return []serveFlag{
		{"tokens", "TODO_TOKENS", "tokens `file`: every request needs a token from it, with the rights its route needs (todo token add makes them; docs/security.md)", stringValue{&cfg.tokens}},
		{"insecure", "TODO_INSECURE", "serve without authentication past loopback (another address, or a cluster), and run a cluster past loopback without its secret, on purpose", boolValue{&cfg.insecure}},
		{"tls-cert", "TODO_TLS_CERT", "PEM `file` of the TLS certificate (and its chain): serve HTTPS; read again when it changes", stringValue{&cfg.tlsCert}},
		{"tls-key", "TODO_TLS_KEY", "PEM `file` of the TLS certificate's private key", stringValue{&cfg.tlsKey}},
	}
}

// checkSecurity refuses flags that do not go together, and a server that
// others can reach with neither tokens nor -insecure: that is one line
// saying what to add, and exit status 2.
func (cfg *config) checkSecurity() error {
	switch {
	case (cfg.tlsCert == "") != (cfg.tlsKey == ""):
		return usagef("serve", "-tls-cert and -tls-key (TODO_TLS_CERT, TODO_TLS_KEY) go together: give both files, or neither")
	case cfg.insecure && cfg.tokens != "":
		return usagef("serve", "-insecure and -tokens (TODO_INSECURE, TODO_TOKENS) contradict each other: give one")
	}
	const (
		addTokens = "-tokens FILE to require tokens (todo token add makes them)"
		addSecret = "-cluster-secret-file FILE, the cluster's secret, the same on every node (todo cluster-secret FILE makes one)"
	)
	httpWhy, clusterWhy := cfg.exposure(), cfg.cluster.exposure()
	needTokens := httpWhy != "" && cfg.tokens == "" && !cfg.insecure
	needSecret := clusterWhy != "" && cfg.cluster.secretFile == "" && !cfg.insecure
	var msg string
	switch {
	case needTokens && needSecret:
		msg = clusterWhy + ": add " + addTokens + " and " + addSecret + ", or -insecure to serve and run the cluster without authentication on purpose"
	case needTokens:
		msg = httpWhy + ": add " + addTokens + ", or -insecure to serve without authentication on purpose"
	case needSecret:
		msg = clusterWhy + ": add " + addSecret + ", or -insecure to run the cluster without one on purpose"
	default:
		return nil
	}
	return &usageError{command: "serve", bare: true, msg: msg}
}

// exposure says why others may reach the server (its address is not a
// loopback one, or it is a cluster's node), or "" when only this machine
// can.
func (cfg *config) exposure() string {
	switch {
	case cfg.cluster.enabled():
		return "a cluster node is reached by other machines (-cluster, -join, -peers or -nats)"
	case !isLoopback(cfg.addr):
		return fmt.Sprintf("-addr %s is not a loopback address", cfg.addr)
	}
	return ""
}

// security is what a server authenticates with and serves TLS with: the
// tokens file and the certificate, read before the server listens, so
// that a file refused stops the start with nothing opened. It is safe for
// concurrent use.
type security struct {
	tokens   *todohttp.TokenFile // nil: no authentication
	cert     *certReloader       // nil: plain HTTP
	insecure bool                // -insecure: no authentication, on purpose
}

// openSecurity reads the tokens file and the certificate cfg names.
func openSecurity(cfg *config, log *slog.Logger) (*security, error) {
	s := &security{insecure: cfg.insecure}
	if cfg.tokens != "" {
		tf, err := todohttp.OpenTokenFile(cfg.tokens, &todohttp.TokenFileOptions{Logger: log})
		if err != nil {
			return nil, err
		}
		s.tokens = tf
	}
	if cfg.tlsCert != "" {
		c, err := newCertReloader(cfg.tlsCert, cfg.tlsKey, certCheckEvery, log)
		if err != nil {
			return nil, err
		}
		s.cert = c
	}
	return s, nil
}

// authenticate is the library handler's Authenticate: nil without tokens.
func (s *security) authenticate() func(*http.Request) (*todohttp.Principal, error) {
	if s == nil || s.tokens == nil {
		return nil
	}
	return s.tokens.Authenticate
}

// tls reports whether the server speaks TLS.
func (s *security) tls() bool { return s != nil && s.cert != nil }

// logAttrs are what "listening" logs of it.
func (s *security) logAttrs() []any {
	auth, tokens := "none", ""
	switch {
	case s == nil:
	case s.tokens != nil:
		auth, tokens = "tokens", s.tokens.Path()
	case s.insecure:
		auth = "insecure"
	}
	return []any{"auth", auth, "tokens", tokens, "tls", s.tls()}
}

// warn logs, once at start, what an operator must know: a server that
// others may reach without authentication, or whose tokens travel in
// clear.
func (s *security) warn(cfg *config, addr string, log *slog.Logger) {
	exposed := cfg.exposure()
	switch {
	case s == nil:
	case s.insecure && exposed != "":
		log.Warn("serving without authentication (-insecure): anyone who reaches this server reads and writes every list", "addr", addr, "why", exposed)
	case s.insecure:
		log.Warn("serving without authentication (-insecure)", "addr", addr)
	case s.tokens != nil && s.cert == nil && exposed != "":
		log.Warn("tokens travel in clear over plain HTTP past loopback: serve TLS (-tls-cert, -tls-key) or put a proxy that does in front", "addr", addr)
	}
}

// catchHangups starts catching SIGHUP, when there is something to read
// again on it (otherwise SIGHUP does what it always did), and returns the
// channel that receives them and the function that stops catching them.
// It is called before the server says it listens, so that a SIGHUP sent
// from then on never finds the process without its handler.
func (s *security) catchHangups() (<-chan os.Signal, func()) {
	if s == nil || s.tokens == nil && s.cert == nil {
		return nil, func() {}
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	return hup, func() { signal.Stop(hup) }
}

// reloadOnHangups reads the tokens file and the certificate again on each
// SIGHUP from hup until ctx ends.
func (s *security) reloadOnHangups(ctx context.Context, hup <-chan os.Signal, log *slog.Logger) {
	if hup == nil {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			log.Info("SIGHUP: reading the tokens file and the certificate again")
			s.reload()
		}
	}
}

// reload reads the tokens file and the certificate again now; each
// logs its own outcome, and keeps what is in force if it fails.
func (s *security) reload() error {
	var errs []error
	if s.tokens != nil {
		errs = append(errs, s.tokens.Reload())
	}
	if s.cert != nil {
		errs = append(errs, s.cert.Reload())
	}
	return errors.Join(errs...)
}

// insecureHealth adds to a /healthz answer that the server runs
// -insecure: a line of a plain-text answer, an "insecure" member of a
// JSON one.
func insecureHealth(r healthReport) healthReport {
	if strings.HasPrefix(r.contentType, "application/json") {
		body := strings.TrimSpace(string(r.body))
		if strings.HasPrefix(body, "{") && strings.HasSuffix(body, "}") {
			inner := strings.TrimSpace(body[1 : len(body)-1])
			if inner != "" {
				inner += ","
			}
			r.body = []byte("{" + inner + `"insecure":true}` + "\n")
		}
		return r
	}
	r.body = append(append([]byte(nil), r.body...), "\ninsecure: serving without authentication"...)
	return r
}

// boolValue is a flag that is true when given alone (-insecure), or
// takes a value as strconv.ParseBool reads it (-insecure=false, or 1 and
// true in its environment variable).
type boolValue struct{ p *bool }

func (v boolValue) IsBoolFlag() bool { return true }

func (v boolValue) String() string {
	if v.p == nil {
		return "false"
	}
	return strconv.FormatBool(*v.p)
}

func (v boolValue) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return errors.New("want true or false (1 or 0)")
	}
	*v.p = b
	return nil
}
