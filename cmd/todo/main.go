// Command todo serves to-do lists over HTTP and is a client of a running
// server. It is the Go form of the book's `iex -S mix`, of its release
// (start, stop) and of the release's remote console.
//
// Serving: `todo`, `todo serve` or `todo -flags` serve the lists of a data
// directory (./persist by default) on 127.0.0.1:5454: a web page at /, the
// original protocol of Elixir in Action's to-do system (POST /add_entry,
// GET /entries), the library's JSON API, GET /healthz, GET /metrics
// (Prometheus) and GET /debug/vars. `todo help serve` lists the flags, each
// of which defaults to an environment variable.
//
// As a client: `todo lists`, `todo entries LIST [DATE]`, `todo add LIST DATE
// TITLE`, `todo watch LIST`, `todo rm LIST ID` and `todo stats` talk to a
// running server over its JSON API, at -server URL, or TODO_URL, or
// http://127.0.0.1:5454.
//
// Exit status: 0 when the command did what it was asked, 1 when it failed
// (the server refused, or an I/O or network error), 2 for a mistake in the
// command line. A failure is one line on stderr; a mistake is one line and
// a hint to run `todo help`.
//
// SIGINT or SIGTERM stops a server gracefully: it stops accepting,
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
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal, a second one kills at once.
		<-ctx.Done()
		stop()
	}()
	os.Exit(report(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr), os.Stderr))
}

// Exit statuses, which scripts may rely on.
const (
	exitOK     = 0 // done
	exitFailed = 1 // the server refused, or an I/O or network error
	exitUsage  = 2 // a mistake in the command line
)

// stdio is what a command writes to, and the environment it reads.
type stdio struct {
	getenv         func(string) string
	stdout, stderr io.Writer
}

// command is one of todo's commands.
type command struct {
	name    string
	args    string // the arguments, as the usage line shows them
	summary string
	run     func(ctx context.Context, std *stdio, args []string) error
	help    func(w io.Writer) // the command's own help: its usage and flags
}

// commands are todo's commands, in the order `todo help` lists them. It
// is set in init: the help command reads it, which a plain initializer
// would make an initialization cycle.
var commands []*command

func init() {
	commands = []*command{
		{name: "serve", args: "[flags]", summary: "serve the lists: web page, HTTP API, /metrics (the default command)",
			run: runServe, help: serveHelp},
		{name: "lists", args: "", summary: "print the names of the lists, one a line",
			run: runLists, help: clientHelp("lists", "", "Prints the name of every list, one a line, sorted.")},
		{name: "entries", args: "LIST [DATE]", summary: "print a list's entries (every one, or DATE's): ID, date, title",
			run: runEntries, help: clientHelp("entries", "LIST [DATE]",
				"Prints the entries of LIST, one a line: id, date and title, separated by tabs.\nWith DATE (2013-12-19, 20131219 or today), only that day's.")},
		{name: "add", args: "LIST DATE TITLE", summary: "add an entry to a list and print it",
			run: runAdd, help: clientHelp("add", "LIST DATE TITLE",
				"Adds an entry to LIST (which need not exist yet) and prints it: id, date and title.\nDATE is 2013-12-19, 20131219 or today; the words of TITLE are joined with spaces.")},
		{name: "watch", args: "LIST", summary: "print a list's changes as they are made",
			run: runWatch, help: clientHelp("watch", "LIST", watchText, watchFlags(new(int64)))},
		{name: "rm", args: "LIST ID", summary: "delete an entry",
			run: runRemove, help: clientHelp("rm", "LIST ID", "Deletes the entry ID of LIST. It prints nothing.")},
		{name: "stats", args: "", summary: "print the server's counters",
			run: runStats, help: clientHelp("stats", "", "Prints the counters of the server's System (its /debug/vars), one a line: name and value.")},
		{name: "check", args: "[-repair]", summary: "verify a data directory (-data) offline, and set damage aside",
			run: runCheck, help: checkHelp},
		{name: "token", args: "add|rm|ls [NAME]", summary: "make, revoke and list the tokens of a tokens file (serve -tokens)",
			run: runToken, help: tokenHelp},
		{name: "cluster-secret", args: "FILE", summary: "make a cluster's secret (serve -cluster-secret-file)",
			run: runClusterSecret, help: clusterSecretHelp},
		{name: "version", args: "", summary: "print the version",
			run: runVersion, help: simpleHelp("version", "", "Prints the module version, the VCS revision, the Go version and the platform.")},
		{name: "help", args: "[COMMAND]", summary: "print this, or a command's usage and flags",
			run: runHelp, help: simpleHelp("help", "[COMMAND]", "Prints the commands, or the usage and flags of COMMAND.")},
	}
}

func lookup(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// run is the whole command: it runs the command args name, or serves
// when there is none (or only flags). A server runs until ctx ends (a
// signal, in main) or a part it cannot live without fails.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	std := &stdio{getenv: getenv, stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		return runServe(ctx, std, nil)
	}
	switch a := args[0]; {
	case isHelpFlag(a):
		printHelp(stdout)
		return nil
	case strings.HasPrefix(a, "-"):
		return runServe(ctx, std, args) // `todo -flags` serves, as it always did
	}
	c := lookup(args[0])
	if c == nil {
		return usagef("", "unknown command %q", args[0])
	}
	return c.run(ctx, std, args[1:])
}

func isHelpFlag(a string) bool { return a == "-h" || a == "-help" || a == "--help" || a == "--h" }

// usageError is a mistake in the command line. It is reported as one line
// and a hint to read the help of the command it names ("" for todo's),
// with exit status 2.
type usageError struct {
	command string
	msg     string
	bare    bool // no hint: the message says what to do
}

func (e *usageError) Error() string { return e.msg }

func usagef(command, format string, args ...any) error {
	return &usageError{command: command, msg: fmt.Sprintf(format, args...)}
}

// report prints err, if any, on stderr and returns the exit status for it.
// The message is one line, prefixed "todo: " once, whatever the error
// wraps; a usage error adds a second line, the hint.
func report(err error, stderr io.Writer) int {
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "todo: %s\n", oneLine(err))
	var ue *usageError
	if errors.As(err, &ue) {
		if ue.bare {
			return exitUsage
		}
		if ue.command == "" {
			fmt.Fprintln(stderr, "Run 'todo help' for usage.")
		} else {
			fmt.Fprintf(stderr, "Run 'todo help %s' for usage.\n", ue.command)
		}
		return exitUsage
	}
	return exitFailed
}

// oneLine is err's message on one line, without the "todo: " prefixes the
// library's errors carry (report adds its own once): the lines of a joined
// error are separated by "; ".
func oneLine(err error) string {
	var parts []string
	for line := range strings.Lines(err.Error()) {
		if line = strings.TrimSpace(line); line != "" {
			parts = append(parts, line)
		}
	}
	s := strings.Join(parts, "; ")
	s = strings.ReplaceAll(s, ": todo: ", ": ")
	s = strings.ReplaceAll(s, "; todo: ", "; ")
	return strings.TrimPrefix(s, "todo: ")
}

// newFlagSet returns a flag set that prints nothing: run reports its
// errors once, through report, and prints help on stdout when asked.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("todo "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parseFlags parses args with fs, letting flags come before, between or
// after the positional arguments (`todo entries bob -json`), and returns
// the positional ones; "--" ends the flags. -h and -help return
// flag.ErrHelp; any other mistake is a usage error of the command.
func parseFlags(fs *flag.FlagSet, command string, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, &usageError{command: command, msg: err.Error()}
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(positional, rest...), nil
		}
		if len(rest) == 0 {
			return positional, nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// printHelp prints todo's help: the commands, the client's setting and
// the exit statuses.
func printHelp(w io.Writer) {
	fmt.Fprint(w, "todo: to-do lists over HTTP, the to-do system of Elixir in Action in Go.\n\nUsage:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-29s %s\n", strings.TrimSpace("todo "+c.name+" "+c.args), c.summary)
	}
	fmt.Fprint(w, `
"todo" alone, or "todo -flags", serves too. The client commands (lists, entries,
add, rm, stats) talk to a running server: -server URL, or TODO_URL, or
http://127.0.0.1:5454, with the token of TODO_TOKEN or -token-file if the
server wants one. DATE is 2013-12-19, 20131219 or today.

Exit status: 0 done; 1 failed (the server refused, or an I/O or network
error: one line on stderr); 2 a mistake in the command line.

Run 'todo help COMMAND' for a command's usage and flags.
`)
}

func runHelp(ctx context.Context, std *stdio, args []string) error {
	switch {
	case len(args) == 0:
		printHelp(std.stdout)
		return nil
	case len(args) > 1:
		return usagef("help", "help takes one command, got %d arguments", len(args))
	}
	c := lookup(args[0])
	if c == nil {
		return usagef("", "no help for %q: it is not a command", args[0])
	}
	c.help(std.stdout)
	return nil
}

// simpleHelp is the help of a command without flags.
func simpleHelp(name, args, text string) func(io.Writer) {
	return func(w io.Writer) {
		fmt.Fprintf(w, "Usage: %s\n\n%s\n", strings.TrimSpace("todo "+name+" "+args), text)
	}
}

func runVersion(ctx context.Context, std *stdio, args []string) error {
	fs := newFlagSet("version")
	args, err := parseFlags(fs, "version", args)
	if errors.Is(err, flag.ErrHelp) {
		lookup("version").help(std.stdout)
		return nil
	}
	if err != nil {
		return err
	}
	if len(args) > 0 {
		return usagef("version", "version takes no arguments, got %q", args)
	}
	printVersion(std.stdout)
	return nil
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
