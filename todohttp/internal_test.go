package todohttp_test

// This file tests two internals of the handler, exposed by export_test.go,
// against the standard library functions they stand for:
// requestContext against context.WithTimeout, and scanQuery against
// url.ParseQuery. Every time.Sleep in it runs inside a synctest bubble: it
// moves the fake clock, instantly.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gotodo/todo/todohttp"
)

// ctxState is what can be observed of a context at one moment.
type ctxState struct {
	deadline time.Time
	ok       bool
	done     bool
	err      error
	cause    error
	value    any
}

type ctxKey struct{}

func observe(ctx context.Context) ctxState {
	s := ctxState{err: ctx.Err(), cause: context.Cause(ctx), value: ctx.Value(ctxKey{})}
	s.deadline, s.ok = ctx.Deadline()
	select {
	case <-ctx.Done():
		s.done = true
	default:
	}
	return s
}

// TestRequestContext runs the same steps on a requestContext and on the
// context.WithTimeout it stands for, side by side on the fake clock, and
// checks that they look the same whenever they are looked at ("observe",
// which asks for Done, Err and Value, and so makes the real context):
// before and after the deadline, after the request ends, when the client
// goes away, under a parent with an earlier or a later deadline, whether
// the context was looked at before or not. Deadline, which makes nothing,
// is compared after every step.
//
// One case differs by design: a context first looked at after the
// request ended and after its deadline passed reports the deadline
// rather than the end ("observe ended" checks only that it has ended).
// Nothing looks at a request's context once the request is answered.
func TestRequestContext(t *testing.T) {
	const timeout = 5 * time.Second
	sys := memorySystem(t, nil) // served by no request: the handler needs one
	for _, c := range []struct {
		name           string
		parentDeadline time.Duration // 0: none
		steps          []string
	}{
		{"untouched, ended", 0, []string{"end", "observe"}},
		{"touched, ended", 0, []string{"observe", "end", "observe"}},
		{"touched, timed out", 0, []string{"observe", "wait 1s", "observe", "wait timeout", "observe", "end", "observe"}},
		{"untouched, timed out", 0, []string{"wait timeout", "observe", "end", "observe"}},
		{"untouched, timed out, ended", 0, []string{"wait timeout", "end", "observe"}},
		{"touched, client gone", 0, []string{"observe", "client gone", "observe", "end", "observe"}},
		{"untouched, client gone", 0, []string{"client gone", "observe", "end", "observe"}},
		{"untouched, client gone, ended", 0, []string{"client gone", "end", "observe"}},
		{"ended, then client gone", 0, []string{"end", "client gone", "wait timeout", "observe"}},
		{"ended, then timed out", 0, []string{"end", "wait timeout", "observe ended"}},
		{"earlier parent deadline", time.Second, []string{"observe", "wait 1s", "observe", "end", "observe"}},
		{"earlier parent deadline, untouched", time.Second, []string{"wait 1s", "observe", "end", "observe"}},
		{"later parent deadline", time.Hour, []string{"wait timeout", "observe", "end", "observe"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHandler(t, sys, &todohttp.HandlerOptions{Timeout: timeout})
				parent := context.WithValue(context.Background(), ctxKey{}, "v")
				var stop context.CancelFunc
				if c.parentDeadline > 0 {
					parent, stop = context.WithTimeout(parent, c.parentDeadline)
				} else {
					parent, stop = context.WithCancel(parent)
				}
				defer stop()
				lazy := todohttp.NewRequestContext(h, parent)
				ref, refCancel := context.WithTimeout(parent, timeout)
				defer refCancel()
				defer lazy.End()
				for _, step := range append([]string{"start"}, c.steps...) {
					switch step {
					case "observe":
						if got, want := observe(lazy), observe(ref); got != want {
							t.Fatalf("%v: %+v, want %+v", c.steps, got, want)
						}
					case "observe ended":
						if s := observe(lazy); !s.done || s.err == nil || s.value != "v" {
							t.Fatalf("%v: %+v, want an ended context", c.steps, s)
						}
					case "wait 1s":
						time.Sleep(time.Second)
					case "wait timeout":
						time.Sleep(timeout)
					case "end":
						lazy.End()
						refCancel()
					case "client gone":
						stop()
					}
					synctest.Wait()
					gotD, gotOK := lazy.Deadline()
					wantD, wantOK := ref.Deadline()
					if gotD != wantD || gotOK != wantOK {
						t.Fatalf("after %q: deadline %v %v, want %v %v", step, gotD, gotOK, wantD, wantOK)
					}
				}
			})
		})
	}
}

// TestRequestContext_Derived checks what is built on a requestContext:
// a child context and an AfterFunc end at its deadline.
func TestRequestContext_Derived(t *testing.T) {
	sys := memorySystem(t, nil)
	synctest.Test(t, func(t *testing.T) {
		h := newHandler(t, sys, &todohttp.HandlerOptions{Timeout: time.Second})
		ctx := todohttp.NewRequestContext(h, context.Background())
		defer ctx.End()
		child, cancel := context.WithCancel(ctx)
		defer cancel()
		ran := make(chan struct{})
		context.AfterFunc(ctx, func() { close(ran) })
		time.Sleep(time.Second)
		synctest.Wait()
		<-ran
		if !errors.Is(child.Err(), context.DeadlineExceeded) {
			t.Errorf("child: %v", child.Err())
		}
	})
}

// TestRequestContext_Concurrent asks Err and Done from many goroutines
// while the request ends, as a list's server may ask a queued request's
// Err; the race detector watches.
func TestRequestContext_Concurrent(t *testing.T) {
	h := newHandler(t, memorySystem(t, nil), nil)
	for range 100 {
		ctx := todohttp.NewRequestContext(h, context.Background())
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				if ctx.Err() == nil {
					select {
					case <-ctx.Done():
					default:
					}
				}
			})
		}
		wg.Go(ctx.End)
		wg.Wait()
		if !errors.Is(ctx.Err(), context.Canceled) {
			t.Fatalf("after end: %v", ctx.Err())
		}
		<-ctx.Done()
	}
}

// FuzzScanQuery checks scanQuery against url.ParseQuery: whenever it
// reads a query itself, url.ParseQuery accepts that query and finds the
// same first value and the same count of list, date and title; and it
// reads every query url.ParseQuery accepts with few pairs, so that the
// handler's fast path is the usual one.
func FuzzScanQuery(f *testing.F) {
	for _, q := range []string{
		"list=bob&date=20131219&title=Dentist",
		"",
		"&&list=bob&&date=20131219&",
		"list=bob;x&date=20131219",
		"list=%zz&date=20131219",
		"title=%&list=a",
		"list=a&list=b&date=1&date=&title",
		"l%69st=bob&date=2013%2D12%2D19&title=a+b%2Bc",
		"=x&=&list==&date===",
		"x=%zz&list=bob",
		"x;y=1&list=bob",
		"list=é&date=20131219&title=x y",
		strings.Repeat("&", todohttp.MaxScanPairs-1) + "list=bob",
		strings.Repeat("&", todohttp.MaxScanPairs) + "list=bob",
	} {
		f.Add(q)
	}
	h := newHandler(f, memorySystem(f, nil), nil)
	f.Fuzz(func(t *testing.T, raw string) {
		got, ok := todohttp.ScanQuery(h, raw)
		vs, err := url.ParseQuery(raw)
		if !ok {
			if err == nil && strings.Count(raw, "&") < todohttp.MaxScanPairs {
				t.Fatalf("scanQuery left %q to url.ParseQuery, which accepts it", raw)
			}
			return
		}
		if err != nil {
			t.Fatalf("scanQuery read %q, which url.ParseQuery refuses: %v", raw, err)
		}
		var want todohttp.OriginalQuery
		want.List, want.NList = firstValue(vs["list"])
		want.Date, want.NDate = firstValue(vs["date"])
		want.Title, want.NTitle = firstValue(vs["title"])
		if got != want {
			t.Fatalf("scanQuery(%q) = %+v, url.ParseQuery gives %+v", raw, got, want)
		}
	})
}

// firstValue returns the first of vs and how many there are.
func firstValue(vs []string) (string, int) {
	if len(vs) == 0 {
		return "", 0
	}
	return vs[0], len(vs)
}

// TestLoneSurrogate checks the escapes loneSurrogate finds, and those it
// must leave alone, in every case of hex digits.
func TestLoneSurrogate(t *testing.T) {
	for _, c := range []struct {
		raw  string
		want bool
	}{
		{`"abc"`, false},
		{`"\ud83d\ude00"`, false}, // a pair: U+1F600
		{`"\uD83D\uDE00"`, false},
		{`"\udbff\udfff"`, false}, // the last pair
		{`"\u00e9\u20ac\uffff"`, false},
		{`"\\ud800"`, false}, // an escaped backslash, then text
		{`"\\\ud83d\ude00"`, false},
		{`"\"\ud800"`, true},
		{`"\ud800"`, true},
		{`"\uD800"`, true},
		{`"\udfff"`, true},
		{`"\udc00\ud800"`, true},
		{`"\ud800\ud800"`, true},
		{`"\ud800\u0041"`, true},
		{`"\ud800\n"`, true},
		{`"\ud800x"`, true},
		{`"x\ud83d\ude00\udc00"`, true},
		{`: "\ud800`, true},
		{`\u12`, false}, // cut short: the decoder's to refuse
	} {
		if got := todohttp.LoneSurrogate([]byte(c.raw)); got != c.want {
			t.Errorf("%s: %v, want %v", c.raw, got, c.want)
		}
	}
}

// FuzzDecodeObject checks the strict body reader against encoding/json:
// every body it accepts, encoding/json accepts too (with unknown fields
// disallowed) and reads the same way, and none holds a lone surrogate.
func FuzzDecodeObject(f *testing.F) {
	for _, s := range []string{
		`{"date":"2013-12-19","title":"Dentist"}`,
		`{"title":null}`,
		` {} `,
		`{"TITLE":"x"}`,
		`{"title":"a","title":"b"}`,
		`{"title":"\ud800"}`,
		`{"title":"\ud83d\ude00"}`,
		`{"title":"x"} {}`,
		`[]`,
		`{"date":5}`,
		`{"title":"\u00e9\\"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := todohttp.DecodeObject(data, "date", "title")
		if err != nil {
			return
		}
		var ref struct {
			Date  *string `json:"date"`
			Title *string `json:"title"`
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&ref); err != nil {
			t.Fatalf("%q accepted, but encoding/json refuses it: %v", data, err)
		}
		for name, p := range map[string]*string{"date": ref.Date, "title": ref.Title} {
			v, ok := got[name]
			if ok != (p != nil) || ok && v != *p {
				t.Fatalf("%q: %s is %q (%v), encoding/json reads %v", data, name, v, ok, p)
			}
		}
		if todohttp.LoneSurrogate(data) {
			t.Fatalf("%q accepted with a lone surrogate", data)
		}
	})
}
