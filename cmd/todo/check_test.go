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

// TestRun_Check runs `todo check` on a clean directory, on one with a
// damaged list file, and with -repair: it prints a line per problem and a
// summary, fails while damage remains (exit status 1), and repairs it.
func TestRun_Check(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	sys, err := todo.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{"bob", "alice"} {
		if _, err := sys.ServerProcess(l).AddEntry(ctx, todo.Entry{Date: todo.Date{Year: 2013, Month: 12, Day: 19}, Title: "Dentist"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := sys.Close(); err != nil {
		t.Fatal(err)
	}
	check := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(ctx, append([]string{"check", "-data", dir}, args...), envOf(nil), &out, &bytes.Buffer{})
		return out.String(), err
	}
	if out, err := check(); err != nil || !strings.Contains(out, "2 list files and 0 log segments checked, 0 problems") {
		t.Fatalf("check of a clean directory: %v\n%s", err, out)
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
	out, err := check()
	if err == nil || report(err, &bytes.Buffer{}) != exitFailed || !strings.Contains(out, `(list "bob")`) || !strings.Contains(out, "-repair") {
		t.Errorf("check of a damaged file: %v (status %d)\n%s", err, report(err, &bytes.Buffer{}), out)
	}
	out, err = check("-repair")
	if err != nil || !strings.Contains(out, "moved to quarantine/") {
		t.Errorf("check -repair: %v\n%s", err, out)
	}
	if out, err := check(); err != nil || !strings.Contains(out, "1 list files and 0 log segments checked, 0 problems") {
		t.Errorf("check after the repair: %v\n%s", err, out)
	}
	if err := run(ctx, []string{"check", "-data", dir, "extra"}, envOf(nil), &bytes.Buffer{}, &bytes.Buffer{}); report(err, &bytes.Buffer{}) != exitUsage {
		t.Errorf("check with an extra argument: %v, want a usage error", err)
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
	var stderr bytes.Buffer
	err = run(ctx, []string{"serve", "-data", dir, "-addr", "127.0.0.1:0"}, envOf(nil), &bytes.Buffer{}, &stderr)
	if code := report(err, &stderr); code != exitFailed || !errors.Is(err, todo.ErrCorrupt) ||
		!strings.Contains(stderr.String(), "todo check -data "+dir+" -repair") {
		t.Errorf("serve on a damaged log: status %d, %v; want 1 and the repair command:\n%s", code, err, stderr.String())
	}
}
