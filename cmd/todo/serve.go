package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/gotodo/todo"
	"github.com/gotodo/todo/todohttp"
)

// runServe is `todo serve`: it parses the flags and serves what they ask
// for, one node's System or a cluster node, until ctx ends.
func runServe(ctx context.Context, std *stdio, args []string) error {
	cfg, err := parseConfig(args, std.getenv)
	switch {
	case errors.Is(err, flag.ErrHelp):
		serveHelp(std.stdout)
		return nil
	case err != nil:
		return err
	case cfg.version:
		printVersion(std.stdout)
		return nil
	}
	open := openSystem
	if cfg.cluster.enabled() {
		open = openNode // cmd/todo/cluster.go
	}
	return serve(ctx, cfg, newLogger(cfg, std.stderr), open)
}

// config is what the flags and the environment ask for.
type config struct {
	addr            string
	data            string
	idle            time.Duration
	hibernateAfter  time.Duration
	durability      todo.Durability
	workers         int
	maxLoaded       int
	timeout         time.Duration
	shutdownTimeout time.Duration
	watchdog        time.Duration
	debugAddr       string
	allowedHosts    string // comma-separated; kept a string so that config stays comparable
	trustedOrigins  string // comma-separated
	logFormat       string
	logLevel        slog.Level
	version         bool          // print the version instead of serving
	cluster         clusterConfig // cmd/todo/cluster.go
	tokens          string        // the tokens file; cmd/todo/security.go
	insecure        bool          // serve past loopback without authentication, on purpose
	tlsCert         string        // the TLS certificate's file; with tlsKey, serve HTTPS
	tlsKey          string
}

// serveFlag is one of serve's flags, with the environment variable it
// defaults to.
type serveFlag struct {
	name, env, usage string
	value            flag.Value
}

// serveFlags are the flags of cfg, which holds their defaults.
func serveFlags(cfg *config) []serveFlag {
	return append([]serveFlag{
		{"addr", "TODO_HTTP_PORT", "listen `address`; a bare port means 127.0.0.1:PORT", addrValue{&cfg.addr}},
		{"data", "TODO_DB_FOLDER", "data `directory`", stringValue{&cfg.data}},
		{"idle", "TODO_SERVER_EXPIRY", "how long an unused list stays in memory: seconds or a Go `duration`; negative means forever", durationValue{&cfg.idle, true}},
		{"hibernate-after", "TODO_HIBERNATE_AFTER", "how long a list's server waits without requests before it hibernates (its goroutine ends, its list stays loaded): a Go `duration`; negative means never", durationValue{&cfg.hibernateAfter, false}},
		{"durability", "TODO_DURABILITY", "`mode` of acknowledging a change: fsync, write or async", durabilityValue{&cfg.durability}},
		{"workers", "TODO_WORKERS", "`number` of goroutines committing changes to the log, at least 1 (more split its group commits)", intValue{&cfg.workers}},
		{"max-loaded", "TODO_MAX_LOADED", "most `lists` held in memory; past it the least recently used idle ones leave early; negative means no cap", intValue{&cfg.maxLoaded}},
		{"timeout", "TODO_TIMEOUT", "bound on each request (a Go `duration`)", durationValue{&cfg.timeout, false}},
		{"shutdown-timeout", "TODO_SHUTDOWN_TIMEOUT", "bound on each step of stopping: finishing in-flight requests, then storing the lists (a cluster node hands them off first) (a Go `duration`)", durationValue{&cfg.shutdownTimeout, false}},
		{"watchdog", "TODO_WATCHDOG", "how often the data directory is checked (a Go `duration`)", durationValue{&cfg.watchdog, false}},
		{"allowed-hosts", "TODO_ALLOWED_HOSTS", "comma-separated host `names` requests may name besides the loopback ones (the names a proxy or DNS gives this server); * allows any", stringValue{&cfg.allowedHosts}},
		{"trusted-origins", "TODO_TRUSTED_ORIGINS", "comma-separated `origins` (https://host[:port]) whose web pages may also write here", stringValue{&cfg.trustedOrigins}},
		{"debug-addr", "TODO_DEBUG_ADDR", "loopback `address` for pprof, /debug/vars and /metrics; empty means none", stringValue{&cfg.debugAddr}},
		{"log-format", "TODO_LOG_FORMAT", "log `format`: text or json", choiceValue{&cfg.logFormat, []string{"text", "json"}}},
		{"log-level", "TODO_LOG_LEVEL", "log `level`: debug, info, warn or error", levelValue{&cfg.logLevel}},
	}, append(securityFlags(cfg), clusterFlags(&cfg.cluster)...)...)
}

func defaultConfig() *config {
	return &config{
		addr:            "127.0.0.1:5454",
		data:            "./persist",
		idle:            60 * time.Second,
		hibernateAfter:  time.Second,
		durability:      todo.Fsync,
		workers:         1,
		maxLoaded:       20_000,
		timeout:         5 * time.Second,
		shutdownTimeout: 10 * time.Second,
		watchdog:        5 * time.Second,
		logFormat:       "text",
		logLevel:        slog.LevelInfo,
		cluster:         clusterConfig{lease: 4 * time.Second}, // cluster.Options' default
	}
}

// parseConfig reads the flags in args, each defaulting to its environment
// variable, and that to the built-in default. An invalid environment value
// is an error naming the variable, never silently ignored. Every value is
// the one the server uses: a value the System would replace by a default
// of its own (an idle time or a worker count of zero) is refused, so that
// what the server logs is what it does.
func parseConfig(args []string, getenv func(string) string) (*config, error) {
	cfg := defaultConfig()
	fs := newFlagSet("serve")
	fs.BoolVar(&cfg.version, "version", false, "print the version and exit")
	vars := serveFlags(cfg)
	for _, v := range vars {
		if s := getenv(v.env); s != "" {
			if err := v.value.Set(s); err != nil {
				return nil, usagef("serve", "%s=%q: %v", v.env, s, err)
			}
		}
		fs.Var(v.value, v.name, v.usage+" ["+v.env+"]")
	}
	rest, err := parseFlags(fs, "serve", args)
	if err != nil {
		return nil, err
	}
	if len(rest) > 0 {
		return nil, usagef("serve", "unexpected arguments %q", rest)
	}
	if err := cfg.check(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// check refuses the values that the System would not take as they are.
func (cfg *config) check() error {
	switch {
	case cfg.idle == 0:
		return usagef("serve", "-idle 0 (TODO_SERVER_EXPIRY): want a positive duration, or a negative one for never")
	case cfg.hibernateAfter == 0:
		return usagef("serve", "-hibernate-after 0 (TODO_HIBERNATE_AFTER): want a positive duration, or a negative one for never")
	case cfg.workers < 1:
		return usagef("serve", "-workers %d (TODO_WORKERS): want at least 1", cfg.workers)
	case cfg.maxLoaded == 0:
		return usagef("serve", "-max-loaded 0 (TODO_MAX_LOADED): want a positive number of lists, or a negative one for no cap")
	case cfg.timeout <= 0:
		return usagef("serve", "-timeout %v (TODO_TIMEOUT): want a positive duration", cfg.timeout)
	case cfg.shutdownTimeout <= 0:
		return usagef("serve", "-shutdown-timeout %v (TODO_SHUTDOWN_TIMEOUT): want a positive duration", cfg.shutdownTimeout)
	case cfg.watchdog <= 0:
		return usagef("serve", "-watchdog %v (TODO_WATCHDOG): want a positive duration", cfg.watchdog)
	case cfg.data == "":
		return usagef("serve", "-data (TODO_DB_FOLDER) is empty")
	case cfg.debugAddr != "" && !isLoopback(cfg.debugAddr):
		return usagef("serve", "-debug-addr %s (TODO_DEBUG_ADDR): want a loopback address (127.0.0.1:PORT, [::1]:PORT or localhost:PORT): pprof must not be reachable from another machine", cfg.debugAddr)
	}
	if err := cfg.cluster.check(); err != nil {
		return usagef("serve", "%v", err)
	}
	if err := cfg.checkSecurity(); err != nil {
		return err
	}
	// The library's handler checks its hosts and origins; ask it now, over
	// no lists, so that a mistake stops the start before anything opens.
	for _, f := range []struct {
		flag, field string
		opts        todohttp.HandlerOptions
	}{
		{"-allowed-hosts (TODO_ALLOWED_HOSTS)", "AllowedHosts", todohttp.HandlerOptions{AllowedHosts: splitList(cfg.allowedHosts)}},
		{"-trusted-origins (TODO_TRUSTED_ORIGINS)", "TrustedOrigins", todohttp.HandlerOptions{TrustedOrigins: splitList(cfg.trustedOrigins)}},
	} {
		if _, err := todohttp.NewHandler(struct{ todo.Service }{}, &f.opts); err != nil {
			why := strings.TrimPrefix(err.Error(), todo.ErrInvalidOptions.Error()+": "+f.field+": ")
			return usagef("serve", "%s: %s", f.flag, why)
		}
	}
	return nil
}

// isLoopback reports whether addr is host:port with a loopback host: an
// IP address of the loopback, or localhost.
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

// systemOptions are the options of the System that cfg asks for: one
// node's, or a cluster node's local one.
func (cfg *config) systemOptions(log *slog.Logger) *todo.Options {
	return &todo.Options{
		IdleTimeout:    cfg.idle,
		HibernateAfter: cfg.hibernateAfter,
		Durability:     cfg.durability,
		Workers:        cfg.workers,
		MaxLoaded:      cfg.maxLoaded,
		Logger:         log,
	}
}

// handlerOptions are the library handler's options that cfg asks for.
func (cfg *config) handlerOptions(log *slog.Logger) *todohttp.HandlerOptions {
	return &todohttp.HandlerOptions{
		Timeout:        cfg.timeout,
		Logger:         log,
		AllowedHosts:   splitList(cfg.allowedHosts),
		TrustedOrigins: splitList(cfg.trustedOrigins),
	}
}

// idleString is the idle time as the log shows it.
func (cfg *config) idleString() string {
	if cfg.idle < 0 {
		return "never"
	}
	return cfg.idle.String()
}

// serveHelp prints serve's usage and flags, with their defaults.
func serveHelp(w io.Writer) {
	fmt.Fprint(w, `Usage: todo serve [flags]     (or: todo [flags], or todo alone)

Serves the lists of a data directory over HTTP: the web page at /, the
original protocol (POST /add_entry, GET /entries), the JSON API (/lists/...),
GET /healthz, GET /metrics and GET /debug/vars. SIGINT or SIGTERM stops it
gracefully, every change written.

Past loopback (an -addr that is not a loopback address, or a cluster node)
it wants -tokens FILE, whose tokens every request must then carry, or
-insecure to serve without authentication on purpose; -tls-cert and
-tls-key serve HTTPS. A cluster node whose -cluster, -nats-addr or peers
others may reach also wants -cluster-secret-file, the cluster's secret
(todo cluster-secret makes one), or -insecure; -cluster-ca, -cluster-cert
and -cluster-key make its routes TLS (docs/security.md).

With -cluster, -join, -peers or -nats it serves as a node of a cluster
(docs/cluster.md). The flags marked "cluster:" apply to a cluster node
only; every other flag applies to both.

Flags (each defaults to the environment variable in brackets):
`)
	cfg := defaultConfig()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(w)
	for _, v := range serveFlags(cfg) {
		fs.Var(v.value, v.name, v.usage+" ["+v.env+"]")
	}
	fs.BoolVar(&cfg.version, "version", false, "print the version and exit")
	fs.PrintDefaults()
}

func newLogger(cfg *config, w io.Writer) *slog.Logger {
	o := &slog.HandlerOptions{Level: cfg.logLevel}
	var h slog.Handler = slog.NewTextHandler(w, o)
	if cfg.logFormat == "json" {
		h = slog.NewJSONHandler(w, o)
	}
	if !cfg.cluster.enabled() { // a cluster node's lists are in JetStream
		h = repairHints{h, repairHint(cfg.data)}
	}
	return slog.New(h)
}

// Flag values. Their errors say what is wanted: the flag package adds
// which flag and which value.

type stringValue struct{ p *string }

func (v stringValue) String() string {
	if v.p == nil {
		return ""
	}
	return *v.p
}
func (v stringValue) Set(s string) error { *v.p = s; return nil }

// addrValue is a listen address; a bare port number, as TODO_HTTP_PORT
// holds, means that port on 127.0.0.1.
type addrValue struct{ p *string }

func (v addrValue) String() string { return stringValue(v).String() }
func (v addrValue) Set(s string) error {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 0 || n > 65535 {
			return fmt.Errorf("port %d out of range", n)
		}
		s = net.JoinHostPort("127.0.0.1", s)
	}
	if _, _, err := net.SplitHostPort(s); err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			return errors.New(ae.Err) // the address is already in the flag package's message
		}
		return err
	}
	*v.p = s
	return nil
}

// durationValue is a Go duration, or, when seconds is set, also a plain
// number of seconds, as the 3rd edition's TODO_SERVER_EXPIRY is.
type durationValue struct {
	p       *time.Duration
	seconds bool
}

func (v durationValue) String() string {
	if v.p == nil {
		return ""
	}
	return v.p.String()
}

func (v durationValue) Set(s string) error {
	if v.seconds {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			const maxSeconds = math.MaxInt64 / int64(time.Second)
			if n > maxSeconds || n < -maxSeconds {
				return fmt.Errorf("%d seconds is out of range", n)
			}
			*v.p = time.Duration(n) * time.Second
			return nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		if v.seconds {
			return errors.New("want seconds or a Go duration (90s, 2m)")
		}
		return errors.New("want a Go duration (5s, 1m30s)")
	}
	*v.p = d
	return nil
}

type intValue struct{ p *int }

func (v intValue) String() string {
	if v.p == nil {
		return ""
	}
	return strconv.Itoa(*v.p)
}

func (v intValue) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return errors.New("not an integer")
	}
	*v.p = n
	return nil
}

type durabilityValue struct{ p *todo.Durability }

func (v durabilityValue) String() string {
	if v.p == nil {
		return ""
	}
	return v.p.String()
}

func (v durabilityValue) Set(s string) error {
	d, err := todo.ParseDurability(s)
	if err != nil {
		// The library's error says "todo: invalid options: durability
		// \"x\": ..."; the flag package already names the flag and value.
		return errors.New("want fsync, write or async")
	}
	*v.p = d
	return nil
}

type choiceValue struct {
	p       *string
	choices []string
}

func (v choiceValue) String() string { return stringValue{v.p}.String() }

func (v choiceValue) Set(s string) error {
	for _, c := range v.choices {
		if s == c {
			*v.p = s
			return nil
		}
	}
	return fmt.Errorf("want %s", orList(v.choices))
}

type levelValue struct{ p *slog.Level }

func (v levelValue) String() string {
	if v.p == nil {
		return ""
	}
	return strings.ToLower(v.p.String())
}

func (v levelValue) Set(s string) error {
	if err := v.p.UnmarshalText([]byte(s)); err != nil {
		return errors.New("want debug, info, warn or error")
	}
	return nil
}

// orList writes "a, b or c".
func orList(s []string) string {
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}
