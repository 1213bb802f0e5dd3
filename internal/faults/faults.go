// Package faults logs failures once per fault, not once per failure: the
// one mechanism the System, its data directory's store and the HTTP
// handler share, so that a full disk, which fails every write of every
// client, does not also fill the log, often on the same disk.
//
// A fault is a kind of failure, named by its caller ("store",
// "checkpoint", "not stored"). The first failure of a kind is logged at
// once, with its cause. Failures of the kind within Period of the last
// line logged for it are counted, not logged; the first one after that
// is logged with the count: "todo: cannot store (and 5,351 more in the
// last 10 s)". When the caller sees the kind work again it says so with
// Recovered, which logs one line at info level if the fault was
// announced. A kind therefore writes at most one failure line and one
// recovery line per Period, whatever the rate of failures. Every failure
// is counted in Failures, logged or not, for a metric.
package faults

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Period is how long after a line about a kind of failure the next ones
// of the kind are only counted.
const Period = 10 * time.Second

// Log logs failures through a slog.Logger, once per fault (see the
// package doc). A Log is safe for concurrent use by multiple goroutines.
type Log struct {
	log    *slog.Logger
	period time.Duration

	failures atomic.Int64 // every failure noted
	active   atomic.Int32 // kinds failing now: Recovered costs a load when none is

	mu    sync.Mutex // guards kinds and what they point to
	kinds map[string]*fault
}

// fault is the state of one kind of failure.
type fault struct {
	since     time.Time // the first failure of the fault under way; zero when none is
	failures  int64     // failures since then
	lastLine  time.Time // when a failure of the kind was last logged
	quiet     int64     // failures since lastLine that were not logged
	announced bool      // the fault under way has been logged
}

// New returns a Log writing to l, which may not be nil, that counts
// rather than logs the failures of a kind within period of its last line:
// Period in production; 0 logs every failure (a broken twin's choice).
func New(l *slog.Logger, period time.Duration) *Log {
	return &Log{log: l, period: period, kinds: make(map[string]*fault)}
}

// Error notes a failure of kind, logged at error level as msg with err
// and attrs (slog's key-value pairs) unless the kind logged a line less
// than the period ago.
func (l *Log) Error(kind, msg string, err error, attrs ...any) {
	l.failed(slog.LevelError, kind, msg, err, attrs)
}

// Warn is Error at warn level, for failures that are the load's, not a
// fault of the server's (a request that timed out, say).
func (l *Log) Warn(kind, msg string, err error, attrs ...any) {
	l.failed(slog.LevelWarn, kind, msg, err, attrs)
}

func (l *Log) failed(level slog.Level, kind, msg string, err error, attrs []any) {
	l.failures.Add(1)
	now := time.Now()
	l.mu.Lock()
	f := l.kinds[kind]
	if f == nil {
		f = &fault{}
		l.kinds[kind] = f
	}
	if f.since.IsZero() {
		f.since = now
		l.active.Add(1)
	}
	f.failures++
	if !f.lastLine.IsZero() && now.Sub(f.lastLine) < l.period {
		f.quiet++
		l.mu.Unlock()
		return
	}
	more, last := f.quiet, f.lastLine
	f.lastLine, f.quiet, f.announced = now, 0, true
	l.mu.Unlock()
	if err != nil {
		attrs = append(attrs, "err", err)
	}
	if more > 0 {
		msg = fmt.Sprintf("%s (and %s more in the last %s)", msg, Count(more), seconds(now.Sub(last)))
		attrs = append(attrs, "more", more)
	}
	l.log.Log(context.Background(), level, msg, attrs...)
}

// Recovered notes that kind works again: the fault under way, if any,
// ends, with one line at info level, msg with attrs, how long it lasted
// and how many failures it had, if its failures were logged. A fault that
// began less than the period after the kind's last line, and was not
// logged, ends quietly: its failures are counted in the next line.
func (l *Log) Recovered(kind, msg string, attrs ...any) {
	if l.active.Load() == 0 {
		return
	}
	now := time.Now()
	l.mu.Lock()
	f := l.kinds[kind]
	if f == nil || f.since.IsZero() {
		l.mu.Unlock()
		return
	}
	lasted, failures, announced := now.Sub(f.since), f.failures, f.announced
	f.since, f.failures, f.announced = time.Time{}, 0, false
	if announced {
		f.quiet = 0 // the recovery line counts them
	}
	l.active.Add(-1)
	l.mu.Unlock()
	if !announced {
		return
	}
	noun := "failures"
	if failures == 1 {
		noun = "failure"
	}
	msg = fmt.Sprintf("%s (after %s and %s %s)", msg, seconds(lasted), Count(failures), noun)
	l.log.Info(msg, append(attrs, "failures", failures, "lasted", lasted.Round(time.Millisecond))...)
}

// Failures returns how many failures were noted, logged or not.
func (l *Log) Failures() int64 { return l.failures.Load() }

// Count writes n with a comma between each group of three digits, as a
// person reads it: 5,351.
func Count(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := n < 0
	if neg {
		s = s[1:]
	}
	b := make([]byte, 0, len(s)+len(s)/3+1)
	if neg {
		b = append(b, '-')
	}
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			b = append(b, ',')
		}
		b = append(b, s[i])
	}
	return string(b)
}

// seconds writes d in whole seconds, "10 s", or "0.3 s" under one.
func seconds(d time.Duration) string {
	if d < time.Second {
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + " s"
	}
	return strconv.FormatInt(int64(d.Round(time.Second)/time.Second), 10) + " s"
}
