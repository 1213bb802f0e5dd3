// Command todo serves to-do lists over HTTP: the original protocol of
// Elixir in Action's to-do system (POST /add_entry, GET /entries) and a
// JSON API, over a todo.System on a data directory. It is the Go form of
// the book's `iex -S mix` and of its release.
//
// Usage:
//
//	todo [flags]     serve (go run ./cmd/todo: 127.0.0.1:5454, data in ./persist)
//	todo version     print the module version and VCS revision
//
// Each flag takes its default from an environment variable, the 3rd
// edition's where it has one:
//
//	-addr              TODO_HTTP_PORT        listen address; a bare port means 127.0.0.1:PORT (default 127.0.0.1:5454)
//	-data              TODO_DB_FOLDER        data directory (default ./persist)
//	-idle              TODO_SERVER_EXPIRY    idle time before a list leaves memory: seconds, or a Go duration (default 60)
//	-durability        TODO_DURABILITY       fsync, write or async (default fsync)
//	-workers           TODO_WORKERS          goroutines writing list files (default 3)
//	-timeout           TODO_TIMEOUT          bound on each request (default 5s)
//	-shutdown-timeout  TODO_SHUTDOWN_TIMEOUT bound on finishing in-flight requests at stop (default 10s)
//	-watchdog          TODO_WATCHDOG         how often the data directory is checked (default 5s)
//	-debug-addr        TODO_DEBUG_ADDR       loopback address for pprof and /debug/vars (default none)
//	-log-format        TODO_LOG_FORMAT       text or json (default text)
//	-log-level         TODO_LOG_LEVEL        debug, info, warn or error (default info)
//
// Beside the handler's routes the server answers GET /healthz ("ok", or
// 503 with the reason when the data directory's last check failed) and
// GET /debug/vars (JSON in expvar's shape, with the System's Stats under "todo").
// pprof is served only on -debug-addr, which must be a loopback address.
//
// SIGINT or SIGTERM stops the server gracefully: it stops accepting,
// finishes in-flight requests (up to -shutdown-timeout), closes the System,
// which writes every pending change, and exits 0. If the listener dies or
// the data directory becomes unusable (removed, replaced, not writable),
// it logs why, closes what it can and exits 1, for systemd or Kubernetes to
// restart it, like an Elixir release started permanent.
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
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gotodo/todo"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal, a second one kills at once.
		<-ctx.Done()
		stop()
	}()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "todo:", err)
		os.Exit(1)
	}
}

// run is the whole command: it serves until ctx ends (a signal, in main)
// or a part it cannot live without fails, which it returns as an error.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		switch args[0] {
		case "version":
			if len(args) > 1 {
				return fmt.Errorf("version takes no arguments, got %q", args[1:])
			}
			printVersion(stdout)
			return nil
		}
		return fmt.Errorf("unknown command %q: want flags only, to serve, or version", args[0])
	}
	cfg, err := parseConfig(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	if cfg.cluster.enabled() { // cluster mode: cmd/todo/cluster.go
		return serveCluster(ctx, cfg, log)
	}

	sys, err := todo.Open(cfg.data, &todo.Options{
		IdleTimeout: cfg.idle,
		Durability:  cfg.durability,
		Workers:     cfg.workers,
		Logger:      log,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return errors.Join(err, sys.Close())
	}
	var debugLn net.Listener
	if cfg.debugAddr != "" {
		if debugLn, err = listenLoopback(cfg.debugAddr); err != nil {
			return errors.Join(err, ln.Close(), sys.Close())
		}
	}
	return serve(ctx, cfg, log, sys, ln, debugLn)
}

// config is what the flags and the environment ask for.
type config struct {
	addr            string
	data            string
	idle            time.Duration
	durability      todo.Durability
	workers         int
	timeout         time.Duration
	shutdownTimeout time.Duration
	watchdog        time.Duration
	debugAddr       string
	logFormat       string
	logLevel        slog.Level
	cluster         clusterConfig // cmd/todo/cluster.go
}

// parseConfig reads the flags in args, each defaulting to its environment
// variable, and that to the built-in default. An invalid environment value
// is an error naming the variable, never silently ignored.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (*config, error) {
	cfg := &config{
		addr:            "127.0.0.1:5454",
		data:            "./persist",
		idle:            60 * time.Second,
		durability:      todo.Fsync,
		workers:         3,
		timeout:         5 * time.Second,
		shutdownTimeout: 10 * time.Second,
		watchdog:        5 * time.Second,
		logFormat:       "text",
		logLevel:        slog.LevelInfo,
	}
	fs := flag.NewFlagSet("todo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: todo [flags]   serve the to-do lists over HTTP\n       todo version   print the version\n\nflags (each defaults to the environment variable in brackets):\n")
		fs.PrintDefaults()
	}
	vars := []struct {
		name, env, usage string
		value            flag.Value
	}{
		{"addr", "TODO_HTTP_PORT", "listen `address`; a bare port means 127.0.0.1:PORT", addrValue{&cfg.addr}},
		{"data", "TODO_DB_FOLDER", "data `directory`", stringValue{&cfg.data}},
		{"idle", "TODO_SERVER_EXPIRY", "how long a list stays in memory unused: seconds or a Go `duration`; negative means forever", durationValue{&cfg.idle, true}},
		{"durability", "TODO_DURABILITY", "`mode` of acknowledging a change: fsync, write or async", durabilityValue{&cfg.durability}},
		{"workers", "TODO_WORKERS", "`number` of goroutines writing list files", intValue{&cfg.workers}},
		{"timeout", "TODO_TIMEOUT", "bound on each request (a Go `duration`)", durationValue{&cfg.timeout, false}},
		{"shutdown-timeout", "TODO_SHUTDOWN_TIMEOUT", "bound on finishing in-flight requests when stopping (a Go `duration`)", durationValue{&cfg.shutdownTimeout, false}},
		{"watchdog", "TODO_WATCHDOG", "how often the data directory is checked (a Go `duration`)", durationValue{&cfg.watchdog, false}},
		{"debug-addr", "TODO_DEBUG_ADDR", "loopback `address` for pprof and /debug/vars; empty means none", stringValue{&cfg.debugAddr}},
		{"log-format", "TODO_LOG_FORMAT", "log `format`: text or json", choiceValue{&cfg.logFormat, []string{"text", "json"}}},
		{"log-level", "TODO_LOG_LEVEL", "log `level`: debug, info, warn or error", levelValue{&cfg.logLevel}},
	}
	for _, v := range vars {
		if s := getenv(v.env); s != "" {
			if err := v.value.Set(s); err != nil {
				return nil, fmt.Errorf("%s=%q: %w", v.env, s, err)
			}
		}
		fs.Var(v.value, v.name, v.usage+" ["+v.env+"]")
	}
	if err := addClusterFlags(fs, &cfg.cluster, getenv); err != nil { // cmd/todo/cluster.go
		return nil, err
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if err := cfg.cluster.check(); err != nil { // cmd/todo/cluster.go
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	switch {
	case cfg.workers < 0:
		return nil, fmt.Errorf("-workers %d is negative", cfg.workers)
	case cfg.timeout <= 0:
		return nil, fmt.Errorf("-timeout %v is not positive", cfg.timeout)
	case cfg.shutdownTimeout <= 0:
		return nil, fmt.Errorf("-shutdown-timeout %v is not positive", cfg.shutdownTimeout)
	case cfg.watchdog <= 0:
		return nil, fmt.Errorf("-watchdog %v is not positive", cfg.watchdog)
	case cfg.data == "":
		return nil, errors.New("-data is empty")
	}
	return cfg, nil
}

func newLogger(cfg *config, w io.Writer) *slog.Logger {
	o := &slog.HandlerOptions{Level: cfg.logLevel}
	if cfg.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, o))
	}
	return slog.New(slog.NewTextHandler(w, o))
}

// printVersion prints the module version and VCS revision recorded in the
// binary; either is "unknown" when the build did not record it (go run,
// -buildvcs=false, a build outside a repository).
func printVersion(w io.Writer) {
	version, revision, modified, goVersion := "unknown", "unknown", "", runtime.Version()
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
		goVersion = bi.GoVersion
		for _, s := range bi.Settings {
			switch {
			case s.Key == "vcs.revision" && s.Value != "":
				revision = s.Value
			case s.Key == "vcs.modified" && s.Value == "true":
				modified = " (modified)"
			}
		}
	}
	fmt.Fprintf(w, "todo %s revision %s%s %s %s/%s\n", version, revision, modified, goVersion, runtime.GOOS, runtime.GOARCH)
}

// Flag values.

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
			return fmt.Errorf("want seconds or a Go duration: %w", err)
		}
		return err
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
		return err
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
	return fmt.Errorf("want one of %s", strings.Join(v.choices, ", "))
}

type levelValue struct{ p *slog.Level }

func (v levelValue) String() string {
	if v.p == nil {
		return ""
	}
	return strings.ToLower(v.p.String())
}

func (v levelValue) Set(s string) error { return v.p.UnmarshalText([]byte(s)) }
