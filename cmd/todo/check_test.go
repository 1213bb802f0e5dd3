package main

import (
	"bytes"
	"context"
	"os"
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
