package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The tests of this file run the built binary as a child process, on
// 127.0.0.1, and stop it by its PID.

var (
	buildOnce sync.Once
	binDir    string // removed by TestMain
	binPath   string
	buildErr  error
)

// buildBinary builds the command once per test process, as a user would.
func buildBinary(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool to build the binary with:", err)
	}
	buildOnce.Do(func() {
		if binDir, buildErr = os.MkdirTemp("", "todo-bin-"); buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "todo")
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, goTool, "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// child is the binary running as a child process.
type child struct {
	cmd    *exec.Cmd
	addr   string
	exited chan struct{}
	err    error // cmd.Wait's result, set before exited is closed
	logs   syncBuffer
}

// startChild starts the binary serving dir on an OS-chosen port of
// 127.0.0.1, with the flags in extra, and waits until it listens. It is
// killed when the test ends if it is still running.
func startChild(t *testing.T, bin, dir string, extra ...string) *child {
	t.Helper()
	c := &child{exited: make(chan struct{})}
	c.cmd = exec.Command(bin, append([]string{"-addr", "127.0.0.1:0", "-data", dir, "-log-format", "json"}, extra...)...)
	c.cmd.Env = []string{"PATH=" + os.Getenv("PATH")} // no TODO_* from the test's environment
	stderr, err := c.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	listening := make(chan string, 1)
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			c.logs.Write(append(sc.Bytes(), '\n'))
			var l struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "listening" {
				listening <- l.Addr
			}
		}
	}()
	go func() {
		<-drained // Wait closes the pipe: read it all first
		c.err = c.cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-c.exited:
		default:
			c.cmd.Process.Kill()
			<-c.exited
		}
	})
	select {
	case c.addr = <-listening:
	case <-c.exited:
		t.Fatalf("the child exited before listening: %v\n%s", c.err, c.logs.String())
	case <-time.After(10 * time.Second):
		t.Fatalf("the child is not listening:\n%s", c.logs.String())
	}
	return c
}

// stop sends SIGTERM and waits for the child to exit 0.
func (c *child) stop(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	c.waitExit(t)
}

// waitExit waits for the child to exit, which it must do with status 0.
func (c *child) waitExit(t *testing.T) {
	t.Helper()
	select {
	case <-c.exited:
	case <-time.After(20 * time.Second):
		t.Fatalf("the child did not exit:\n%s", c.logs.String())
	}
	if c.err != nil {
		t.Fatalf("the child exited with %v:\n%s", c.err, c.logs.String())
	}
}

func TestBinary_Version(t *testing.T) {
	t.Parallel()
	out, err := exec.Command(buildBinary(t), "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	// Built here with -buildvcs=false (GOFLAGS), or outside a repository:
	// the revision is then unknown, and says so.
	if !strings.HasPrefix(string(out), "todo ") || !strings.Contains(string(out), " revision ") {
		t.Errorf("version: %q", out)
	}
}

// TestBinary_SIGTERM_KeepsAcknowledgedEntries: 32 clients send 1,000 adds
// to the binary, which gets SIGTERM after 300 acknowledgements and must
// exit 0; a new process on the same directory then serves every add that
// was answered OK.
func TestBinary_SIGTERM_KeepsAcknowledgedEntries(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	dir := filepath.Join(t.TempDir(), "data")
	first := startChild(t, bin, dir)

	const clients, adds, lists, termAfter = 32, 1000, 10, 300
	tr := &http.Transport{MaxIdleConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	jobs := make(chan int, adds)
	for i := range adds {
		jobs <- i
	}
	close(jobs)
	var (
		acked    [adds]atomic.Bool
		nAcked   atomic.Int64
		nFailed  atomic.Int64
		termOnce sync.Once
		wg       sync.WaitGroup
	)
	for range clients {
		wg.Go(func() {
			for i := range jobs {
				url := fmt.Sprintf("http://%s/add_entry?list=list_%d&date=20131219&title=entry_%d", first.addr, i%lists, i)
				resp, err := client.Post(url, "", nil)
				if err != nil {
					nFailed.Add(1) // refused or reset once stopping: not acknowledged
					continue
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 || string(body) != "OK" {
					nFailed.Add(1)
					continue
				}
				acked[i].Store(true)
				if nAcked.Add(1) == termAfter {
					termOnce.Do(func() {
						if err := first.cmd.Process.Signal(syscall.SIGTERM); err != nil {
							t.Error(err)
						}
					})
				}
			}
		})
	}
	wg.Wait()
	first.waitExit(t)
	t.Logf("%d adds acknowledged, %d refused after SIGTERM", nAcked.Load(), nFailed.Load())
	if nAcked.Load() < termAfter {
		t.Fatalf("only %d adds acknowledged:\n%s", nAcked.Load(), first.logs.String())
	}
	if !strings.Contains(first.logs.String(), "terminated") {
		t.Errorf("the stop was not caused by SIGTERM:\n%s", first.logs.String())
	}

	second := startChild(t, bin, dir)
	found := make(map[string]bool)
	for l := range lists {
		resp, err := client.Get(fmt.Sprintf("http://%s/entries?list=list_%d&date=20131219", second.addr, l))
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET list_%d: %d %v", l, resp.StatusCode, err)
		}
		for line := range strings.Lines(string(body)) {
			title, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "2013-12-19    ")
			if !ok {
				t.Fatalf("list_%d: bad line %q", l, line)
			}
			found[title] = true
		}
	}
	lost := 0
	for i := range adds {
		if acked[i].Load() && !found[fmt.Sprintf("entry_%d", i)] {
			lost++
		}
	}
	if lost > 0 {
		t.Errorf("%d acknowledged entries lost across SIGTERM", lost)
	}
	second.stop(t)
}
