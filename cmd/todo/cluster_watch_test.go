package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gotodo/todo/todohttp"
)

// watchChild is `todo watch -json` run as a child process against one
// node: its stdout, an event a line, is collected as it comes.
type watchChild struct {
	cmd    *exec.Cmd
	stderr syncBuffer
	mu     sync.Mutex // guards events
	events []todohttp.Event
	bad    []string // lines that are not an event
	done   chan struct{}
}

func startWatchChild(t *testing.T, bin, addr, list string, from int64) *watchChild {
	t.Helper()
	w := &watchChild{done: make(chan struct{})}
	w.cmd = exec.Command(bin, "watch", "-json", "-from", strconv.FormatInt(from, 10), list)
	w.cmd.Env = []string{"TODO_URL=http://" + addr}
	w.cmd.Stderr = &w.stderr
	out, err := w.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(w.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var ev todohttp.Event
			err := json.Unmarshal(sc.Bytes(), &ev)
			w.mu.Lock()
			if err != nil {
				w.bad = append(w.bad, sc.Text())
			} else {
				w.events = append(w.events, ev)
			}
			w.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		w.cmd.Process.Kill()
		<-w.done
		w.cmd.Wait()
	})
	return w
}

// seen returns the events the watch printed so far.
func (w *watchChild) seen() ([]todohttp.Event, []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]todohttp.Event(nil), w.events...), append([]string(nil), w.bad...)
}

// checkWatched returns the first way events are not the list's changes
// after from up to until, each once, in order, with an add of each title
// acknowledged; or nil. (An add acknowledged on a retry with its
// Idempotency-Key says the list's revision then, which may be later than
// its own: titles, not revisions, say which adds were acknowledged.)
func checkWatched(events []todohttp.Event, from, until int64, acked map[string]bool) error {
	added := make(map[string]int)
	for i, ev := range events {
		if want := from + 1 + int64(i); ev.Revision != want {
			return fmt.Errorf("event %d has revision %d, want %d: a revision skipped or repeated", i, ev.Revision, want)
		}
		if ev.Kind == "added" {
			added[ev.Entry.Title]++
		}
	}
	if n := int64(len(events)); n != until-from {
		return fmt.Errorf("%d events after revision %d, want %d (to revision %d)", n, from, until-from, until)
	}
	for title := range acked {
		if added[title] != 1 {
			return fmt.Errorf("the acknowledged add of %q is in the watch %d times, want once", title, added[title])
		}
	}
	return nil
}

// TestCheckWatched_BrokenTwins: the check of the test below catches a
// watch that repeats a change, one that skips one, and one that misses an
// acknowledged add.
func TestCheckWatched_BrokenTwins(t *testing.T) {
	t.Parallel()
	ev := func(rev int64, title string) todohttp.Event {
		return todohttp.Event{Kind: "added", Revision: rev, Entry: todohttp.Entry{ID: int(rev), Title: title}}
	}
	good := []todohttp.Event{ev(3, "a"), ev(4, "b"), ev(5, "c")}
	acked := map[string]bool{"a": true, "c": true}
	if err := checkWatched(good, 2, 5, acked); err != nil {
		t.Fatalf("the check refuses a good watch: %v", err)
	}
	for name, events := range map[string][]todohttp.Event{
		"repeated":      {ev(3, "a"), ev(4, "b"), ev(4, "b"), ev(5, "c")},
		"skipped":       {ev(3, "a"), ev(5, "c")},
		"short":         {ev(3, "a"), ev(4, "b")},
		"missing c":     {ev(3, "a"), ev(4, "b"), ev(5, "x")},
		"a added twice": {ev(3, "a"), ev(4, "a"), ev(5, "c")},
	} {
		if err := checkWatched(events, 2, 5, acked); err == nil {
			t.Errorf("the check passes a watch %s", name)
		}
	}
}

// A 3-node cluster of processes on 127.0.0.1: `todo watch` on the two
// nodes that do not serve a list follows it while adds go on through
// them, and the node serving it is killed with SIGKILL. Each watch prints
// every revision of the list from the one it started after to the last,
// once each, in order, and each acknowledged add once: none skipped, none
// repeated.
func TestCluster_WatchAcrossOwnerKill(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the multi-process cluster test")
	}
	bin := buildBinary(t)
	nodes := loopbackCluster(t, bin, "w", 3, "-timeout", "3s")
	tr := &http.Transport{MaxIdleConnsPerHost: 4}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	const list = "watched"

	// add adds an entry through c, sending it again with the same
	// Idempotency-Key until it is acknowledged, for up to 60 s: the
	// revision it answers is then the add's, once.
	add := func(c *clusterChild, title string) (int64, error) {
		key := newKey()
		body, _ := json.Marshal(todohttp.AddBody{Date: "2013-12-19", Title: title})
		var last string
		for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); {
			req, _ := http.NewRequest("POST", "http://"+c.addr+"/lists/"+list+"/entries", bytes.NewReader(body))
			req.Header.Set("Idempotency-Key", key)
			resp, err := client.Do(req)
			if err != nil {
				last = err.Error()
				continue
			}
			data, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusCreated {
				return strconv.ParseInt(resp.Header.Get(todohttp.RevisionHeader), 10, 64)
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, data)
			time.Sleep(100 * time.Millisecond) // a pause before sending it again, as a client would
		}
		return 0, fmt.Errorf("add %q through %s: %s", title, c.name, last)
	}
	if _, err := add(nodes[0], "first"); err != nil {
		t.Fatal(err)
	}
	ownerName := owners(t, inspect(t, nodes[0]))[list]
	var owner *clusterChild
	var others []*clusterChild
	for _, c := range nodes {
		if c.name == ownerName {
			owner = c
		} else {
			others = append(others, c)
		}
	}
	if owner == nil {
		t.Fatalf("the owners bucket names %q for %s, none of the nodes", ownerName, list)
	}
	resp, err := client.Get("http://" + others[0].addr + "/lists/" + list + "/entries")
	if err != nil {
		t.Fatal(err)
	}
	var page todohttp.EntriesPage
	json.NewDecoder(resp.Body).Decode(&page)
	resp.Body.Close()
	from := page.Revision
	if from < 2 {
		t.Fatalf("the list's revision: %d", from)
	}
	watches := make([]*watchChild, len(others))
	for i, c := range others {
		watches[i] = startWatchChild(t, bin, c.addr, list, from)
	}

	var (
		mu     sync.Mutex
		acked  = make(map[string]bool) // titles
		thirty = make(chan struct{})   // closed at the 30th add acknowledged
		killed = make(chan struct{})
		wg     sync.WaitGroup
		errs   = make(chan error, len(others))
	)
	for _, c := range others {
		wg.Go(func() {
			after := 0 // adds acknowledged since the kill
			for j := 0; after < 30; j++ {
				title := fmt.Sprintf("%s-%d", c.name, j)
				if _, err := add(c, title); err != nil {
					errs <- err
					return
				}
				mu.Lock()
				acked[title] = true
				if len(acked) == 30 {
					close(thirty)
				}
				mu.Unlock()
				select {
				case <-killed:
					after++
				default:
				}
			}
		})
	}
	select {
	case <-thirty:
		owner.kill(t)
		t.Logf("killed %s, which served %s, after 30 adds", owner.name, list)
		close(killed)
	case err := <-errs:
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	resp, err = client.Get("http://" + others[0].addr + "/lists/" + list + "/entries")
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&page)
	resp.Body.Close()
	final := page.Revision
	t.Logf("%d adds acknowledged; the list went from revision %d to %d", len(acked), from, final)

	for i, w := range watches {
		ok := until(60*time.Second, func() bool {
			events, _ := w.seen()
			return len(events) > 0 && events[len(events)-1].Revision >= final
		})
		events, bad := w.seen()
		if len(bad) > 0 {
			t.Errorf("the watch on %s printed lines that are no event: %q", others[i].name, bad)
		}
		if s := w.stderr.String(); s != "" {
			t.Logf("the watch on %s said:\n%s", others[i].name, s) // its reconnections, if any
		}
		if err := checkWatched(events, from, final, acked); err != nil || !ok {
			t.Errorf("the watch on %s: %v (all there: %v)\nits stderr:\n%s", others[i].name, err, ok, w.stderr.String())
		}
	}
	if t.Failed() {
		for _, c := range nodes {
			fmt.Fprintf(os.Stderr, "--- %s:\n%s", c.name, c.logs.String())
		}
	}
}
