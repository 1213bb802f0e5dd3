package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"

	"github.com/gotodo/todo"
)

// runCheck is `todo check`: it verifies a data directory offline with
// todo.Check, prints a line per problem and a summary, and with -repair
// sets aside what stops a list from being served.
func runCheck(ctx context.Context, std *stdio, args []string) error {
	flags := newFlagSet("check")
	data := flags.String("data", "", "")
	repair := flags.Bool("repair", false, "")
	if v := std.getenv("TODO_DB_FOLDER"); v != "" {
		*data = v
	}
	rest, err := parseFlags(flags, "check", args)
	if errors.Is(err, flag.ErrHelp) {
		checkHelp(std.stdout)
		return nil
	}
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("check", "unexpected arguments %q", rest)
	}
	if *data == "" {
		*data = defaultConfig().data
	}
	if _, err := os.Stat(*data); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("no data directory at %s: give the server's with -data DIR (or TODO_DB_FOLDER)", *data)
	}
	problems, files, segments, err := todo.Check(*data, *repair)
	for _, p := range problems {
		fmt.Fprintln(std.stdout, p)
	}
	if err != nil {
		return err
	}
	return checkSummary(std.stdout, *data, problems, files, segments, *repair)
}

// checkSummary says in one line what check found and did: on stdout when
// no damage is left, or as the error check fails with (report prints it)
// when some is.
func checkSummary(stdout io.Writer, dir string, problems []todo.Problem, files, segments int, repair bool) error {
	var damaged, harmless, repaired int
	for _, p := range problems {
		switch {
		case p.Harmless:
			harmless++
		case p.Repaired:
			damaged++
			repaired++
		default:
			damaged++
		}
	}
	line := fmt.Sprintf("%s: %s and %s checked: ", dir, count(files, "list file"), count(segments, "log segment"))
	switch {
	case damaged == 0:
		line += "no problems"
	case !repair:
		line += count(damaged, "problem")
	case repaired == damaged:
		line += count(damaged, "problem") + ", all set aside"
	default:
		line += fmt.Sprintf("%s, %d set aside, %d could not be (see above)", count(damaged, "problem"), repaired, damaged-repaired)
	}
	if harmless > 0 {
		line += fmt.Sprintf(" (and %s, nothing to repair)", count(harmless, "harmless finding"))
	}
	switch {
	case damaged > repaired && !repair:
		return fmt.Errorf("%s; run 'todo check -data %s -repair' to set the damage aside", line, dir)
	case damaged > repaired:
		return errors.New(line)
	}
	fmt.Fprintln(stdout, line)
	return nil
}

// count says n things: "1 problem", "2 problems".
func count(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}

func checkHelp(w io.Writer) {
	fmt.Fprint(w, `Usage: todo check [-data DIR] [-repair]

Verifies a data directory while no server has it open: every list file
(frame, checksum, body) and every record of the log. It prints one line
per problem and a summary.

With -repair it sets aside, never deleting, what stops a list from being
served: a damaged list file is moved to DIR/quarantine/ (the list is then
served from its records in the log, or as empty); a log segment with
damaged records is copied to DIR/quarantine/log/ and rewritten without
them (the changes in those records are lost); a segment that cannot be
read at all is moved there. A torn record at the end of the log, left by
a crash in the middle of a write, is no damage: the next start cuts it
off (with -durability fsync it was never acknowledged; with write or
async it may have been, and is lost, as those modes allow).

Flags:
  -data DIR   the data directory [TODO_DB_FOLDER] (default ./persist)
  -repair     set the damage aside

It ends with one line that counts what it found: on stdout when nothing is
left to repair, or as its error when damage remains.

Exit status: 0 nothing wrong (or everything repaired); 1 problems remain,
or the directory is missing, in use or unreadable; 2 a mistake in the
command line.
`)
}

// repairHint is the command that sets aside the damage in the data
// directory dir. The library says what is damaged (an error wrapping
// todo.ErrCorrupt that names the file); what to run is the command's to
// say, where it turns errors and log records into text: withRepairHint
// for the errors serve returns, repairHints for its log.
func repairHint(dir string) string { return "todo check -data " + dir + " -repair" }

// withRepairHint adds to err, when it wraps todo.ErrCorrupt, the command
// that sets the damage aside.
func withRepairHint(err error, dir string) error {
	if errors.Is(err, todo.ErrCorrupt) {
		return fmt.Errorf("%w; run '%s' to set the damage aside", err, repairHint(dir))
	}
	return err
}

// repairHints is a slog.Handler that adds a "repair" attribute, the
// command that sets the damage aside, to every record with an error that
// wraps todo.ErrCorrupt (a list that cannot be loaded, say).
type repairHints struct {
	slog.Handler
	hint string
}

func (h repairHints) Handle(ctx context.Context, r slog.Record) error {
	damaged := false
	r.Attrs(func(a slog.Attr) bool {
		if a.Value.Kind() == slog.KindAny {
			err, ok := a.Value.Any().(error)
			damaged = ok && errors.Is(err, todo.ErrCorrupt)
		}
		return !damaged
	})
	if damaged {
		r = r.Clone()
		r.AddAttrs(slog.String("repair", h.hint))
	}
	return h.Handler.Handle(ctx, r)
}

func (h repairHints) WithAttrs(attrs []slog.Attr) slog.Handler {
	return repairHints{h.Handler.WithAttrs(attrs), h.hint}
}

func (h repairHints) WithGroup(name string) slog.Handler {
	return repairHints{h.Handler.WithGroup(name), h.hint}
}
