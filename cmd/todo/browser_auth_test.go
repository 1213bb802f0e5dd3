package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/gotodo/todo/todohttp"
)

// entriesAs reads a day of a list from the server at base, over the JSON
// API, with a token.
func entriesAs(t *testing.T, base, secret, list, date string) []string {
	t.Helper()
	code, body, _ := send(t, "GET", base+listPath(list)+"?date="+date, secret)
	var page todohttp.EntriesPage
	if err := json.Unmarshal([]byte(body), &page); code != 200 || err != nil {
		t.Fatalf("GET %s entries: %d %v %s", list, code, err, body)
	}
	titles := []string{}
	for _, e := range page.Entries {
		titles = append(titles, e.Title)
	}
	return titles
}

// TestBrowser_SignIn drives the page of a server that needs tokens, in
// headless Chromium: it asks for a token, refuses a wrong one with the
// server's reason, signs in with a read token, shows the refusal of a
// write as a readable reason (and nothing is written), signs out (a
// reload asks again), and signs in with a write token that may add. The
// token is never where a script could read it.
func TestBrowser_SignIn(t *testing.T) {
	chromium := findChromium(t)
	bin := buildBinary(t)
	dir := t.TempDir()
	tokens, secrets := makeTokens(t, dir, map[string][2]string{"reader": {"read", "*"}, "writer": {"write", "shopping"}})
	srv := startChild(t, bin, filepath.Join(dir, "data"), "-tokens", tokens)
	base := "http://" + srv.addr
	browserCtx := startBrowser(t, chromium)
	consoleCtx, stopConsole := context.WithCancel(browserCtx)
	console := watchConsole(consoleCtx)
	t.Cleanup(func() { stopConsole(); <-console.done })
	b := &tab{t: t, ctx: browserCtx, name: "the tab"}
	const day = "2013-12-19"
	signInShown := `!document.querySelector("#sign-in").hidden && document.querySelector("#app").hidden && document.querySelector("#account").hidden`

	// A server that needs a token: the page asks for one, focused.
	b.open(base + "/#list=shopping&date=" + day)
	b.waitFor("the sign-in form", signInShown+` && document.activeElement.id === "token"`)
	if typ := b.evalString(`document.querySelector("#token").type`); typ != "password" {
		t.Errorf("the token field is of type %q", typ)
	}

	// A wrong token: the server's reason, next to the field.
	b.do(chromedp.SendKeys(chromedp.CSS("#token"), "not-a-token-of-this-server"+kb.Enter))
	b.waitFor("the refusal", `document.querySelector("#token-error").textContent === "token not recognized" && !document.querySelector("#token-error").hidden`)

	// The read token: signed in, the lists shown.
	b.eval(`document.querySelector("#token").value = ""; true`, new(bool))
	b.do(chromedp.SendKeys(chromedp.CSS("#token"), secrets["reader"]+kb.Enter))
	b.waitFor("signed in", `document.querySelector("#sign-in").hidden && !document.querySelector("#app").hidden && document.querySelector("#signed-in-as").textContent === "Signed in as reader"`)
	if v := b.evalString(`document.querySelector("#token").value`); v != "" {
		t.Error("the token stays in its field after the sign-in")
	}
	var stored struct{ Cookie, Local, Session string }
	b.eval(`({Cookie: document.cookie, Local: JSON.stringify(localStorage), Session: JSON.stringify(sessionStorage)})`, &stored)
	for _, s := range []string{stored.Cookie, stored.Local, stored.Session} {
		if strings.Contains(s, secrets["reader"]) {
			t.Errorf("a script can read the token: %+v", stored)
		}
	}

	// A write with the read token: refused, with the server's reason on
	// the page, and nothing written.
	b.do(chromedp.SendKeys(chromedp.CSS("#title"), "Milk"+kb.Enter))
	want := `"reader" may not write list "shopping": its rights are read`
	b.waitFor("the refusal on the page", fmt.Sprintf(`!document.querySelector("#error").hidden && document.querySelector("#error").textContent === %q`, want))
	b.wantTitles("after the refused add")
	if got := entriesAs(t, base, secrets["reader"], "shopping", day); len(got) != 0 {
		t.Errorf("the server has %q after a refused add", got)
	}

	// Sign out: the form again, and after a reload too (the cookie is
	// gone).
	b.do(chromedp.Click(chromedp.CSS("#sign-out")))
	b.waitFor("the sign-in form after signing out", signInShown+` && document.querySelector("#status").textContent === "Signed out."`)
	b.do(chromedp.Reload())
	b.waitFor("the page to load", `document.body.dataset.ready === "true"`)
	b.waitFor("the sign-in form after a reload", signInShown)

	// The write token may add to its list.
	b.do(chromedp.SendKeys(chromedp.CSS("#token"), secrets["writer"]+kb.Enter))
	b.waitFor("signed in", `document.querySelector("#signed-in-as").textContent === "Signed in as writer"`)
	b.do(chromedp.SendKeys(chromedp.CSS("#title"), "Milk"+kb.Enter))
	b.wantTitles("after an add", "Milk")
	if got := entriesAs(t, base, secrets["writer"], "shopping", day); !slices.Equal(got, []string{"Milk"}) {
		t.Errorf("the server has %q", got)
	}

	// Revoked while the page is open: its next request asks for a token
	// again.
	if code, _, stderr := runMain(t, nil, "token", "rm", "writer", "-tokens", tokens); code != exitOK {
		t.Fatal(stderr)
	}
	if code, _, _ := send(t, "GET", base+"/lists", secrets["writer"]); code != http.StatusUnauthorized {
		eventually(t, "the revoked token refused", func() bool { code, _, _ := send(t, "GET", base+"/lists", secrets["writer"]); return code == 401 })
	}
	b.do(chromedp.SendKeys(chromedp.CSS("#title"), "Eggs"+kb.Enter))
	b.waitFor("the sign-in form, with why", signInShown+` && document.querySelector("#token-error").textContent.includes("sign in again")`)

	b.do(chromedp.Reload())
	b.waitFor("the page to load", `document.body.dataset.ready === "true"`)
	if problems := console.list(); len(problems) > 0 {
		t.Errorf("the console reports:\n%s", strings.Join(problems, "\n"))
	}
}
