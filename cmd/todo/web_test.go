package main

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// TestPage_Served checks the answers that carry the page: its files, their
// types, the Content-Security-Policy and the other headers, revalidation,
// and that nothing else is served under /web/.
func TestPage_Served(t *testing.T) {
	t.Parallel()
	r := startRun(t)
	base := "http://" + r.addr
	client := &http.Client{}
	do := func(method, path string, header ...string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(method, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	for _, c := range []struct{ path, contentType, contains string }{
		{"/", "text/html; charset=utf-8", `<script type="module" src="/web/app.js"></script>`},
		{"/web/app.js", "text/javascript; charset=utf-8", "Idempotency-Key"},
		{"/web/style.css", "text/css; charset=utf-8", "@media"},
		{"/web/favicon.svg", "image/svg+xml", "<svg"},
	} {
		resp := do("GET", c.path)
		body, _ := io.ReadAll(resp.Body)
		h := resp.Header
		if resp.StatusCode != 200 || h.Get("Content-Type") != c.contentType || !strings.Contains(string(body), c.contains) {
			t.Errorf("GET %s: %d %q, body has %q: %v", c.path, resp.StatusCode, h.Get("Content-Type"), c.contains, strings.Contains(string(body), c.contains))
		}
		for k, v := range map[string]string{
			"Content-Security-Policy": contentSecurityPolicy,
			"X-Content-Type-Options":  "nosniff",
			"Referrer-Policy":         "no-referrer",
			"X-Frame-Options":         "DENY",
			"Cache-Control":           "no-cache",
		} {
			if h.Get(k) != v {
				t.Errorf("GET %s: %s %q, want %q", c.path, k, h.Get(k), v)
			}
		}
		etag := h.Get("ETag")
		if etag == "" {
			t.Errorf("GET %s: no ETag", c.path)
			continue
		}
		if resp := do("GET", c.path, "If-None-Match", etag); resp.StatusCode != http.StatusNotModified {
			t.Errorf("GET %s If-None-Match its ETag: %d, want 304", c.path, resp.StatusCode)
		}
	}
	for _, c := range []struct {
		method, path string
		status       int
	}{
		{"HEAD", "/", 200},
		{"GET", "/web/index.html", 404},
		{"GET", "/web/nothing.js", 404},
		{"GET", "/web/", 404},
		{"POST", "/", 405},
		{"DELETE", "/web/app.js", 405},
		{"POST", "/metrics", 405},
		{"GET", "/index.html", 404}, // the library's 404: the page is only at /
	} {
		if resp := do(c.method, c.path); resp.StatusCode != c.status {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, resp.StatusCode, c.status)
		}
	}
	// The policy forbids what an injected title could use.
	for _, want := range []string{"default-src 'self'", "script-src 'self';", "style-src 'self';", "frame-ancestors 'none'", "object-src 'none'"} {
		if !strings.Contains(contentSecurityPolicy, want) {
			t.Errorf("the policy has no %q", want)
		}
	}
	if strings.Contains(contentSecurityPolicy, "unsafe") {
		t.Errorf("the policy allows something unsafe: %s", contentSecurityPolicy)
	}
}

// TestPage_Files reads the embedded files for what the policy would block
// (and the browser test would then catch as a broken page) and for what
// would let a title become markup.
func TestPage_Files(t *testing.T) {
	t.Parallel()
	assets := webAssets()
	index := string(assets["index.html"].body)
	scripts := regexp.MustCompile(`<script[^>]*>`).FindAllString(index, -1)
	if len(scripts) == 0 {
		t.Error("index.html loads no script")
	}
	for _, s := range scripts {
		if !strings.Contains(s, ` src="/web/`) {
			t.Errorf("index.html has an inline script: %s", s)
		}
	}
	for _, re := range []string{`<style`, `\sstyle=`, `\son[a-z]+=`, `javascript:`, `https?://`} {
		if m := regexp.MustCompile(re).FindString(index); m != "" {
			t.Errorf("index.html has %q, which the policy blocks or which leaves the server", m)
		}
	}
	for _, ref := range regexp.MustCompile(`"/web/([^"]+)"`).FindAllStringSubmatch(index, -1) {
		if assets[ref[1]] == nil {
			t.Errorf("index.html refers to /web/%s, which is not embedded", ref[1])
		}
	}
	// Every input has a label; the status is announced.
	for _, id := range regexp.MustCompile(`<input id="([^"]+)"`).FindAllStringSubmatch(index, -1) {
		if !strings.Contains(index, `<label for="`+id[1]+`"`) {
			t.Errorf("input %s has no label", id[1])
		}
	}
	if !strings.Contains(index, `role="status" aria-live="polite"`) || !strings.Contains(index, `role="alert"`) {
		t.Error("index.html has no live region for status and errors")
	}
	js := string(assets["app.js"].body)
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"} {
		if strings.Contains(js, bad) {
			t.Errorf("app.js uses %s: text from the server must be written with textContent", bad)
		}
	}
}
