package main

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gotodo/todo/todohttp"
)

// TestSession: the page's sign-in sets the token in a cookie no script
// can read and no other site's page sends, only for a token the tokens
// file holds; sign-out clears it; a sign-in from another origin is
// refused; no answer and no log line holds a token.
func TestSession(t *testing.T) {
	t.Parallel()
	secret, err := newTokenSecret()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "tokens")
	line := fmt.Sprintf("page %x write *\n", sha256.Sum256([]byte(secret)))
	if err := os.WriteFile(path, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	tf, err := todohttp.OpenTokenFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	s, err := newSessionHandler(tf.Authenticate, nil, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	do := func(method, body string, header http.Header, onTLS bool) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, "http://127.0.0.1:5454/session", strings.NewReader(body))
		for k, v := range header {
			r.Header[k] = v
		}
		if onTLS {
			r.TLS = &tls.ConnectionState{}
		}
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		if strings.Contains(w.Body.String(), secret) {
			t.Errorf("%s /session answered the token: %q", method, w.Body)
		}
		return w
	}
	signIn := `{"token":"` + secret + `"}`
	cookie := todohttp.SessionCookie + "=" + secret

	for _, onTLS := range []bool{false, true} {
		w := do("POST", signIn, http.Header{"Sec-Fetch-Site": {"same-origin"}}, onTLS)
		want := cookie + "; Path=/; Max-Age=2592000; HttpOnly; SameSite=Strict"
		if onTLS {
			want = cookie + "; Path=/; Max-Age=2592000; HttpOnly; Secure; SameSite=Strict"
		}
		if w.Code != 200 || w.Header().Get("Set-Cookie") != want || w.Body.String() != `{"name":"page","rights":"write"}`+"\n" {
			t.Errorf("sign-in (TLS %v): %d %q %q, want the cookie %q", onTLS, w.Code, w.Header().Get("Set-Cookie"), w.Body, want)
		}
	}
	for _, c := range []struct {
		method, body string
		header       http.Header
		status       int
		reason       string
	}{
		{"POST", `{"token":"` + secret + `x"}`, nil, 401, "token not recognized"},
		{"POST", `{"token":"two words"}`, nil, 401, "Authorization: want Bearer TOKEN"},
		{"POST", `{"token":""}`, nil, 400, "no token given"},
		{"POST", `{"secret":"x"}`, nil, 400, `want {"token":"..."}`},
		{"POST", signIn + `{}`, nil, 400, `want {"token":"..."}`},
		{"POST", strings.Repeat(" ", 5000) + signIn, nil, 413, "over 4 KiB"},
		{"POST", signIn, http.Header{"Sec-Fetch-Site": {"cross-site"}}, 403, "cross-origin POST refused"},
		{"POST", signIn, http.Header{"Origin": {"https://evil.example"}}, 403, "cross-origin POST refused"},
		{"DELETE", "", http.Header{"Sec-Fetch-Site": {"cross-site"}, "Cookie": {cookie}}, 403, "cross-origin DELETE refused"},
		{"GET", "", nil, 401, "no token: sign in"},
		{"GET", "", http.Header{"Cookie": {todohttp.SessionCookie + "=revoked"}}, 401, "token not recognized"},
		{"PUT", "", nil, 405, "method PUT not allowed"},
	} {
		w := do(c.method, c.body, c.header, false)
		var got todohttp.ErrorBody
		if err := jsonUnmarshal(w.Body.String(), &got); err != nil || w.Code != c.status || !strings.Contains(got.Error, c.reason) || w.Header().Get("Set-Cookie") != "" {
			t.Errorf("%s %.40q %v: %d %q Set-Cookie %q; want %d %q and no cookie", c.method, c.body, c.header, w.Code, w.Body, w.Header().Get("Set-Cookie"), c.status, c.reason)
		}
	}
	if w := do("GET", "", http.Header{"Cookie": {cookie}}, false); w.Code != 200 || !strings.Contains(w.Body.String(), `"name":"page"`) {
		t.Errorf("GET /session with the cookie: %d %q", w.Code, w.Body)
	}
	w := do("DELETE", "", http.Header{"Cookie": {cookie}, "Sec-Fetch-Site": {"same-origin"}}, false)
	if w.Code != 204 || w.Header().Get("Set-Cookie") != todohttp.SessionCookie+"=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict" {
		t.Errorf("sign-out: %d %q", w.Code, w.Header().Get("Set-Cookie"))
	}
	if strings.Contains(logs.String(), secret) {
		t.Errorf("the log holds the token:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "signed in") || !strings.Contains(logs.String(), "sign-in refused") {
		t.Errorf("sign-ins not logged:\n%s", logs.String())
	}
}

// jsonUnmarshal decodes s, strictly, into v.
func jsonUnmarshal(s string, v any) error {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}
