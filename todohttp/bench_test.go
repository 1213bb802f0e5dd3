package todohttp_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gotodo/todo"
	"github.com/gotodo/todo/todohttp"
)

// discardWriter is the cheapest http.ResponseWriter: it keeps the status
// and counts the body, so that BenchmarkHandler measures the handler, not
// a recorder. Its header map is cleared, not reallocated, between requests.
type discardWriter struct {
	header http.Header
	status int
	n      int
}

func (w *discardWriter) Header() http.Header { return w.header }

func (w *discardWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *discardWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.n += len(p)
	return len(p), nil
}

func (w *discardWriter) WriteString(s string) (int, error) {
	return w.Write([]byte(s)) // does not allocate: w.Write keeps nothing
}

func (w *discardWriter) reset() {
	clear(w.header)
	w.status, w.n = 0, 0
}

// BenchmarkHandler measures NewHandler's original routes, called directly
// (no connection), over a System whose lists are kept in memory: the
// HTTP layer's own cost per request. Each request carries a cancelable
// context holding the connection's local address, and a Host, as a
// request read by http.Server does. route=mix is the shape
// of scripts/load.lua: 1000 lists, a random day of December 2013, 80% GET
// /entries, 20% POST /add_entry, every list loaded first. auth=none
// serves without authentication; auth=token authenticates every request
// with a bearer token from a tokens file of 100 tokens, whose patterns the
// lists match (list_*), as a server past loopback does.
func BenchmarkHandler(b *testing.B) {
	// What http.Server puts in a request's context, for a server on
	// 127.0.0.1:5454: the handler checks the Host of such requests.
	local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5454}
	ctx := context.WithValue(context.Background(), http.LocalAddrContextKey, local)
	ctx, cancel := context.WithCancel(ctx)
	b.Cleanup(cancel)
	newRequest := func(method, target string) *http.Request {
		return httptest.NewRequest(method, "http://localhost:5454"+target, nil).WithContext(ctx)
	}
	// preload adds n entries on 2013-12-19 to each of lists list_1...
	preload := func(b *testing.B, sys *todo.System, lists, n int) {
		for i := range lists {
			s := sys.ServerProcess(fmt.Sprintf("list_%d", i+1))
			for range n {
				if _, err := s.AddEntry(ctx, todo.Entry{Date: todo.Date{Year: 2013, Month: time.December, Day: 19}, Title: "Dentist"}); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	cases := []struct {
		name  string
		setup func(b *testing.B, sys *todo.System) []*http.Request
	}{
		{"route=entries/entries=0", func(b *testing.B, sys *todo.System) []*http.Request {
			preload(b, sys, 1, 1) // loads list_1; the day read is another
			return []*http.Request{newRequest("GET", "/entries?list=list_1&date=20131218")}
		}},
		{"route=entries/entries=3", func(b *testing.B, sys *todo.System) []*http.Request {
			preload(b, sys, 1, 3)
			return []*http.Request{newRequest("GET", "/entries?list=list_1&date=20131219")}
		}},
		{"route=add_entry", func(b *testing.B, sys *todo.System) []*http.Request {
			return []*http.Request{newRequest("POST", "/add_entry?list=list_1&date=20131219&title=Dentist")}
		}},
		{"route=mix", func(b *testing.B, sys *todo.System) []*http.Request {
			// Every list loaded, as in a run of scripts/load.sh after its
			// first second: its adds reach every list by then.
			preload(b, sys, 1000, 1)
			rnd := rand.New(rand.NewPCG(1, 2))
			reqs := make([]*http.Request, 4096)
			for i := range reqs {
				q := fmt.Sprintf("list=list_%d&date=201312%02d", rnd.IntN(1000)+1, rnd.IntN(31)+1)
				if rnd.IntN(10) < 8 {
					reqs[i] = newRequest("GET", "/entries?"+q)
				} else {
					reqs[i] = newRequest("POST", "/add_entry?"+q+"&title=Dentist")
				}
			}
			return reqs
		}},
	}
	// A tokens file of 100 tokens, the last the one the requests send.
	tokens := filepath.Join(b.TempDir(), "tokens")
	var file strings.Builder
	var secret string
	for i := range 100 {
		secret = newSecret()
		file.WriteString(tokenLine(fmt.Sprintf("client%d", i), secret, "write", "team-*,list_*"))
	}
	replaceFile(b, tokens, file.String(), 0o600)
	tf, err := todohttp.OpenTokenFile(tokens, nil)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range cases {
		for _, auth := range []string{"none", "token"} {
			b.Run(c.name+"/auth="+auth, func(b *testing.B) {
				sys := memorySystem(b, &todo.Options{Durability: todo.Async})
				reqs := c.setup(b, sys)
				var opts *todohttp.HandlerOptions
				if auth == "token" {
					opts = &todohttp.HandlerOptions{Authenticate: tf.Authenticate}
					for _, r := range reqs {
						r.Header.Set("Authorization", "Bearer "+secret)
					}
				}
				runHandlerBenchmark(b, newHandler(b, sys, opts), reqs)
			})
		}
	}
}

// runHandlerBenchmark serves reqs with h, round-robin, once each to warm
// up, then as many as the benchmark asks; every answer must be 200.
func runHandlerBenchmark(b *testing.B, h http.Handler, reqs []*http.Request) {
	w := &discardWriter{header: http.Header{}}
	// Warm up: load the lists read and fill any pools.
	for _, r := range reqs {
		w.reset()
		h.ServeHTTP(w, r)
		if w.status != http.StatusOK {
			b.Fatalf("%s %s: %d", r.Method, r.URL, w.status)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		w.reset()
		h.ServeHTTP(w, reqs[i%len(reqs)])
		i++
	}
	b.StopTimer()
	if w.status != http.StatusOK {
		b.Fatalf("status %d", w.status)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}
