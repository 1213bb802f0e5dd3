package todo_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestLayers_RootStaysLight checks what the root package compiles with:
// not net/http (the HTTP face is package todohttp, over the exported
// API), and none of the dependencies of the cluster and the command
// (NATS, Prometheus, chromedp). It asks the go command, as a person
// would: go list -deps. The same question about todohttp must find
// net/http, or the check could not fail.
func TestLayers_RootStaysLight(t *testing.T) {
	gocmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH: run go list -deps github.com/gotodo/todo by hand")
	}
	deps := func(pkg string) []string {
		t.Helper()
		out, err := exec.Command(gocmd, "list", "-deps", pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		deps := strings.Fields(string(out))
		if len(deps) == 0 || deps[len(deps)-1] != pkg {
			t.Fatalf("go list -deps %s printed %q, not its dependencies", pkg, out)
		}
		return deps
	}
	if !slices.Contains(deps("github.com/gotodo/todo/todohttp"), "net/http") {
		t.Fatal("go list -deps finds no net/http under todohttp: this check cannot see it")
	}
	for _, dep := range deps("github.com/gotodo/todo") {
		switch {
		case dep == "net/http",
			strings.HasPrefix(dep, "github.com/nats-io/"),
			strings.HasPrefix(dep, "github.com/prometheus/"),
			strings.HasPrefix(dep, "github.com/chromedp/"):
			t.Errorf("the root package depends on %s", dep)
		}
	}
}
