package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gotodo/todo"
)

// checkRun runs `todo check` with args and returns what it printed on
// stdout and, through report, on stderr, and its exit status.
func checkRun(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errs bytes.Buffer
	err := run(context.Background(), append([]string{"check"}, args...), envOf(nil), &out, &errs)
	code = report(err, &errs)
	if n := strings.Count(out.String()+errs.String(), " checked: "); n > 1 {
		t.Errorf("check %q printed %d summaries:\n%s%s", args, n, out.String(), errs.String())
	}
	return out.String(), errs.String(), code
}

// damage flips the last byte of the file of list in dir.
func damage(t *testing.T, dir, list string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*", list+".todo"))
	if err != nil || len(files) != 1 {
		t.Fatalf("%s's file: %v, %v", list, files, err)
	}
	data, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-1] ^= 1
	if err := os.WriteFile(files[0], data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestRun_Check runs `todo check` on a clean directory, on one with one
// damaged list file, then two and a harmless leftover, with -repair, and
// after: it prints a line per problem and one summary that counts them
// (the singular for one), on stdout when nothing is left to repair, or as
// the error it fails with (exit status 1), with the repair command.
func TestRun_Check(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	sys, err := todo.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{"bob", "alice"} {
		if _, err := sys.AddEntry(ctx, l, todo.Entry{Date: checkDay, Title: "Dentist"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := sys.Close(); err != nil {
		t.Fatal(err)
	}
	summary := dir + ": 2 list files and 0 log segments checked: "
	if out, errs, code := checkRun(t, "-data", dir); code != exitOK || out != summary+"no problems\n" || errs != "" {
		t.Fatalf("check of a clean directory: status %d\n%s%s", code, out, errs)
	}

	damage(t, dir, "bob")
	out, errs, code := checkRun(t, "-data", dir)
	want := "todo: " + summary + "1 problem; run 'todo check -data " + dir + " -repair' to set the damage aside\n"
	if code != exitFailed || strings.Count(out, "\n") != 1 || !strings.Contains(out, `(list "bob")`) || errs != want {
		t.Errorf("check of a damaged file: status %d\nstdout:\n%s\nstderr:\n%s\nwant on stderr:\n%s", code, out, errs, want)
	}

	damage(t, dir, "alice")
	if err := os.WriteFile(filepath.Join(dir, "d4", ".7.tmp"), []byte("half"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errs, code = checkRun(t, "-data", dir)
	want = "todo: " + summary + "2 problems (and 1 harmless finding, nothing to repair); run 'todo check -data " + dir + " -repair' to set the damage aside\n"
	if code != exitFailed || strings.Count(out, "\n") != 3 || errs != want {
		t.Errorf("check of two damaged files and a temp file: status %d\nstdout:\n%s\nstderr:\n%s\nwant on stderr:\n%s", code, out, errs, want)
	}

	out, errs, code = checkRun(t, "-data", dir, "-repair")
	if code != exitOK || strings.Count(out, "moved to quarantine/") != 2 || errs != "" ||
		!strings.HasSuffix(out, summary+"2 problems, all set aside (and 1 harmless finding, nothing to repair)\n") {
		t.Errorf("check -repair: status %d\n%s%s", code, out, errs)
	}
	out, errs, code = checkRun(t, "-data", dir)
	if want := dir + ": 0 list files and 0 log segments checked: no problems (and 1 harmless finding, nothing to repair)\n"; code != exitOK || !strings.HasSuffix(out, want) || errs != "" {
		t.Errorf("check after the repair: status %d\n%s%s\nwant the summary %s", code, out, errs, want)
	}
	if err := run(ctx, []string{"check", "-data", dir, "extra"}, envOf(nil), &bytes.Buffer{}, &bytes.Buffer{}); report(err, &bytes.Buffer{}) != exitUsage {
		t.Errorf("check with an extra argument: %v, want a usage error", err)
	}
}

// TestRun_CheckRepairFails has -repair fail to set a damaged file aside
// (quarantine/ is a file): the summary says so, and check fails.
func TestRun_CheckRepairFails(t *testing.T) {
	dir := t.TempDir()
	sys, err := todo.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sys.AddEntry(context.Background(), "bob", todo.Entry{Date: checkDay, Title: "Dentist"}); err != nil {
		t.Fatal(err)
	}
	sys.Close()
	damage(t, dir, "bob")
	if err := os.WriteFile(filepath.Join(dir, "quarantine"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	out, errs, code := checkRun(t, "-data", dir, "-repair")
	want := "todo: " + dir + ": 1 list file and 0 log segments checked: 1 problem, 0 set aside, 1 could not be (see above)\n"
	if code != exitFailed || !strings.Contains(out, "could not set it aside") || errs != want {
		t.Errorf("check -repair that cannot repair: status %d\nstdout:\n%s\nstderr:\n%s\nwant on stderr:\n%s", code, out, errs, want)
	}
}

// TestRun_CheckNoDataDirectory runs `todo check` where there is no data
// directory, by default (./persist) and named: it says so and how to name
// the server's, creates nothing, and fails.
func TestRun_CheckNoDataDirectory(t *testing.T) {
	t.Chdir(t.TempDir())
	for _, args := range [][]string{nil, {"-data", "elsewhere"}} {
		dir := "./persist"
		if args != nil {
			dir = "elsewhere"
		}
		out, errs, code := checkRun(t, args...)
		want := "todo: no data directory at " + dir + ": give the server's with -data DIR (or TODO_DB_FOLDER)\n"
		if code != exitFailed || out != "" || errs != want {
			t.Errorf("check %q: status %d\nstdout:\n%s\nstderr:\n%s\nwant on stderr:\n%s", args, code, out, errs, want)
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("check %q created %s (%v)", args, dir, err)
		}
	}
}

// checkDay is the date of the entries the check tests add.
var checkDay = todo.Date{Year: 2013, Month: 12, Day: 19}

// TestRun_RepairHintInLog reads a list whose file is damaged through a
// System logging with the command's logger, in both formats: its ERROR
// line names the command that sets the damage aside (the library's own
// line does not: the command is not the library's to know), and a line
// about anything else does not.
func TestRun_RepairHintInLog(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	sys, err := todo.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sys.AddEntry(ctx, "bob", todo.Entry{Date: checkDay, Title: "Dentist"}); err != nil {
		t.Fatal(err)
	}
	if err := sys.Close(); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*", "bob.todo"))
	if err != nil || len(files) != 1 {
		t.Fatalf("bob's file: %v, %v", files, err)
	}
	file := files[0]
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-1] ^= 1
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	hint := "todo check -data " + dir + " -repair"
	for _, format := range []string{"text", "json", "library"} {
		var out bytes.Buffer
		cfg := defaultConfig()
		cfg.data, cfg.logFormat = dir, format
		log := newLogger(cfg, &out)
		if format == "library" {
			log = slog.New(slog.NewTextHandler(&out, nil))
		}
		sys, err := todo.Open(dir, &todo.Options{Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sys.AllEntries(ctx, "bob"); !errors.Is(err, todo.ErrCorrupt) {
			t.Fatalf("%s: reading the damaged list: %v", format, err)
		}
		log.Error("something else", "err", errors.New("not damage"))
		sys.Close()
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		var damaged, other string
		for _, l := range lines {
			switch {
			case strings.Contains(l, "cannot load list"):
				damaged = l
			case strings.Contains(l, "something else"):
				other = l
			}
		}
		if got := strings.Contains(damaged, hint); got != (format != "library") || damaged == "" {
			t.Errorf("%s: the line of the damaged list names %q: %v, want %v:\n%s", format, hint, got, format != "library", damaged)
		}
		if strings.Contains(other, "repair") || other == "" {
			t.Errorf("%s: the line of another error: %q, want no repair hint", format, other)
		}
	}
}

// TestRun_RepairHintOnServe starts the server on a data directory whose
// log has a record with a damaged header (no list can be blamed, so Open
// refuses the directory): the error it exits with names the command that
// sets the segment aside.
func TestRun_RepairHintOnServe(t *testing.T) {
	ctx := context.Background()
	live := filepath.Join(t.TempDir(), "live")
	sys, err := todo.Open(live, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	for _, title := range []string{"one", "two"} {
		if _, err := sys.AddEntry(ctx, "bob", todo.Entry{Date: checkDay, Title: title}); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(t.TempDir(), "image") // as a crash leaves it: the records in the log
	if out, err := exec.Command("cp", "-a", live, dir).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v: %s", err, out)
	}
	segs, err := filepath.Glob(filepath.Join(dir, "log", "*.seg"))
	if err != nil || len(segs) != 1 {
		t.Fatalf("segments %v, %v", segs, err)
	}
	data, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	data[16+3] ^= 0x40 // the first record's length
	if err := os.WriteFile(segs[0], data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errs, code := checkRun(t, "-data", dir); code != exitFailed ||
		!strings.Contains(errs, ": 0 list files and 1 log segment checked: 1 problem; run 'todo check -data "+dir+" -repair'") {
		t.Errorf("check of the damaged log: status %d, %s", code, errs)
	}
	var stderr bytes.Buffer
	err = run(ctx, []string{"serve", "-data", dir, "-addr", "127.0.0.1:0"}, envOf(nil), &bytes.Buffer{}, &stderr)
	if code := report(err, &stderr); code != exitFailed || !errors.Is(err, todo.ErrCorrupt) ||
		!strings.Contains(stderr.String(), "todo check -data "+dir+" -repair") {
		t.Errorf("serve on a damaged log: status %d, %v; want 1 and the repair command:\n%s", code, err, stderr.String())
	}
}
