package faults_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gotodo/todo/internal/faults"
)

// records is a slog.Handler that keeps what it is given.
type records struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *records) Enabled(context.Context, slog.Level) bool { return true }
func (h *records) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.recs = append(h.recs, r)
	h.mu.Unlock()
	return nil
}
func (h *records) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *records) WithGroup(string) slog.Handler      { return h }

// lines returns each record as "LEVEL msg".
func (h *records) lines() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, r := range h.recs {
		out = append(out, r.Level.String()+" "+r.Message)
	}
	return out
}

var errFull = errors.New("no space left on device")

// failFor notes a failure of kind every interval for d, on the bubble's
// clock, and returns how many it noted.
func failFor(l *faults.Log, kind string, d, interval time.Duration) int64 {
	var n int64
	for start := time.Now(); time.Since(start) < d; time.Sleep(interval) {
		l.Error(kind, "todo: cannot store", errFull, "list", fmt.Sprint("list ", n))
		n++
	}
	return n
}

// A fault of 25 s at 200 failures a second (5,000) logs its first failure,
// one summary per Period with the count, and one recovery line: four
// lines. Failures counts all 5,000.
func TestLog_OncePerFault(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &records{}
		l := faults.New(slog.New(h), faults.Period)
		n := failFor(l, "store", 25*time.Second, 5*time.Millisecond)
		l.Recovered("store", "todo: storing again")
		want := []string{
			"ERROR todo: cannot store",
			"ERROR todo: cannot store (and 1,999 more in the last 10 s)",
			"ERROR todo: cannot store (and 1,999 more in the last 10 s)",
			"INFO todo: storing again (after 25 s and 5,000 failures)",
		}
		if got := h.lines(); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%d failures in 25 s logged:\n%s\nwant:\n%s", n, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if got := l.Failures(); got != n || n != 5000 {
			t.Errorf("Failures() = %d after %d failures, want 5,000", got, n)
		}
		// The first line has the cause and the failure's own attributes.
		first := h.recs[0]
		attrs := map[string]string{}
		first.Attrs(func(a slog.Attr) bool { attrs[a.Key] = a.Value.String(); return true })
		if attrs["err"] != errFull.Error() || attrs["list"] != "list 0" {
			t.Errorf("the first line's attributes are %v, want its list and err", attrs)
		}
	})
}

// Kinds are counted apart: a second kind failing meanwhile logs its own
// first failure at once.
func TestLog_KindsApart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &records{}
		l := faults.New(slog.New(h), faults.Period)
		l.Error("store", "todo: cannot store", errFull)
		l.Error("store", "todo: cannot store", errFull)
		l.Warn("timeout", "todo: request timed out", nil)
		l.Warn("timeout", "todo: request timed out", nil)
		want := "ERROR todo: cannot store\nWARN todo: request timed out"
		if got := strings.Join(h.lines(), "\n"); got != want {
			t.Errorf("logged:\n%s\nwant:\n%s", got, want)
		}
	})
}

// A fault that flaps, failing and recovering many times a second, still
// writes at most one failure line and one recovery line per Period: the
// recovery of a fault whose failures were only counted is quiet, and
// those failures are counted in the next line.
func TestLog_FlappingIsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &records{}
		l := faults.New(slog.New(h), faults.Period)
		for range 1000 { // 1,000 flaps in 10 s
			l.Error("store", "todo: cannot store", errFull)
			time.Sleep(5 * time.Millisecond)
			l.Recovered("store", "todo: storing again")
			time.Sleep(5 * time.Millisecond)
		}
		l.Error("store", "todo: cannot store", errFull)
		want := []string{
			"ERROR todo: cannot store",
			"INFO todo: storing again (after 0.0 s and 1 failure)",
			"ERROR todo: cannot store (and 999 more in the last 10 s)",
		}
		if got := h.lines(); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("1,000 flaps in 10 s logged:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
}

// Recovered with no fault under way logs nothing.
func TestLog_RecoveredWithoutFault(t *testing.T) {
	h := &records{}
	l := faults.New(slog.New(h), faults.Period)
	l.Recovered("store", "todo: storing again")
	l.Error("other", "todo: cannot", errFull)
	l.Recovered("store", "todo: storing again")
	if got := h.lines(); len(got) != 1 {
		t.Errorf("logged %q, want the one failure", got)
	}
}

// TestLog_BrokenTwin is TestLog_OncePerFault's fault with a period of 0,
// the way the handler logged before: a line per failure, which the
// bound above would catch.
func TestLog_BrokenTwin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &records{}
		l := faults.New(slog.New(h), 0)
		n := failFor(l, "store", 25*time.Second, 5*time.Millisecond)
		if got := len(h.lines()); got <= 4 {
			t.Errorf("a period of 0 logged %d lines for %d failures: the bound of 4 cannot fail", got, n)
		}
	})
}

func TestCount(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 7: "7", 999: "999", 1000: "1,000", 5351: "5,351",
		1234567: "1,234,567", -1234: "-1,234", 100000: "100,000"} {
		if got := faults.Count(n); got != want {
			t.Errorf("Count(%d) = %q, want %q", n, got, want)
		}
	}
}
