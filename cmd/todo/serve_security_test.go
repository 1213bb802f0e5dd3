package main

import (
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// makeTokens makes a tokens file in dir with `todo token add`, one token
// per name (its rights and lists), and returns its path and the secrets.
func makeTokens(t *testing.T, dir string, tokens map[string][2]string) (string, map[string]string) {
	t.Helper()
	path := filepath.Join(dir, "tokens")
	secrets := make(map[string]string)
	for name, rl := range tokens {
		args := []string{"-rights", rl[0]}
		if rl[1] != "" {
			args = append(args, "-lists", rl[1])
		}
		secrets[name] = addToken(t, path, name, args...)
	}
	return path, secrets
}

// send makes a request to the server at base, as who (a secret, or ""),
// with the headers given as pairs, and returns its status, body and
// headers.
func send(t *testing.T, method, url, secret string, header ...string) (int, string, http.Header) {
	t.Helper()
	var body io.Reader
	if method == "POST" && strings.Contains(url, "/lists/") {
		body = strings.NewReader(`{"date":"2013-12-19","title":"x"}`)
	}
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// TestRun_RefusedPastLoopback: a server others can reach (an address
// that is not a loopback one, or a cluster node) does not start without
// -tokens or -insecure, and says, in one line and with exit status 2,
// what to add; a tokens file or a certificate that is refused stops the
// start with its reason (the line of a bad token, the mode of a file
// others may read), exit 1. None leaves a data directory behind.
func TestRun_RefusedPastLoopback(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good, _ := makeTokens(t, dir, map[string][2]string{"alice": {"write", "*"}})
	loose := filepath.Join(dir, "loose")
	bad := filepath.Join(dir, "bad")
	twice := filepath.Join(dir, "twice")
	data, _ := os.ReadFile(good)
	for path, contents := range map[string]string{loose: string(data), bad: "# tokens\n\nbob 1234 read *\n", twice: string(data) + string(data)} {
		if err := os.WriteFile(path, []byte(contents), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(loose, 0o644)
	const add = ": add -tokens FILE to require tokens (todo token add makes them), or -insecure to serve without authentication on purpose\n"
	const addSecret = ": add -cluster-secret-file FILE, the cluster's secret, the same on every node (todo cluster-secret FILE makes one), or -insecure to run the cluster without one on purpose\n"
	secret := clusterSecret(t, dir)
	looseSecret := filepath.Join(dir, "loose-secret")
	secretData, _ := os.ReadFile(secret)
	os.WriteFile(looseSecret, secretData, 0o644)
	os.Chmod(looseSecret, 0o644)
	ca := newTestCA(t)
	caFile, certFile, keyFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "node.pem"), filepath.Join(dir, "node.key")
	os.WriteFile(caFile, ca.pem, 0o600)
	ca.issueFiles(t, certFile, keyFile)
	for _, c := range []struct {
		name   string
		args   []string
		env    map[string]string
		code   int
		stderr string // the whole of it when code is exitUsage and the line is bare
	}{
		{"every interface", []string{"-addr", "0.0.0.0:0"}, nil, exitUsage, "todo: -addr 0.0.0.0:0 is not a loopback address" + add},
		{"every interface, no host", []string{"-addr", ":0"}, nil, exitUsage, "todo: -addr :0 is not a loopback address" + add},
		{"every IPv6 interface", []string{"-addr", "[::]:0"}, nil, exitUsage, "todo: -addr [::]:0 is not a loopback address" + add},
		{"a host name", []string{"-addr", "todo.example.com:0"}, nil, exitUsage, "todo: -addr todo.example.com:0 is not a loopback address" + add},
		{"from the environment", nil, map[string]string{"TODO_HTTP_PORT": "0.0.0.0:0"}, exitUsage, "todo: -addr 0.0.0.0:0 is not a loopback address" + add},
		{"a cluster node", []string{"-node", "n1", "-cluster", "127.0.0.1:0"}, nil, exitUsage, "todo: a cluster node is reached by other machines (-cluster, -join, -peers or -nats)" + add},
		{"a cluster node joining", []string{"-node", "n1", "-join", "127.0.0.1:1"}, nil, exitUsage, "todo: a cluster node is reached by other machines (-cluster, -join, -peers or -nats)" + add},
		{"-insecure=false", []string{"-addr", "0.0.0.0:0", "-insecure=false"}, nil, exitUsage, "todo: -addr 0.0.0.0:0 is not a loopback address" + add},
		{"TODO_INSECURE=0", []string{"-addr", "0.0.0.0:0"}, map[string]string{"TODO_INSECURE": "0"}, exitUsage, "todo: -addr 0.0.0.0:0 is not a loopback address" + add},
		{"both", []string{"-addr", "0.0.0.0:0", "-insecure", "-tokens", good}, nil, exitUsage, "-insecure and -tokens (TODO_INSECURE, TODO_TOKENS) contradict each other: give one"},
		{"a certificate without its key", []string{"-tls-cert", good}, nil, exitUsage, "-tls-cert and -tls-key (TODO_TLS_CERT, TODO_TLS_KEY) go together"},
		{"a bad TODO_INSECURE", nil, map[string]string{"TODO_INSECURE": "yes please"}, exitUsage, `TODO_INSECURE="yes please": want true or false (1 or 0)`},
		{"a tokens file others may read", []string{"-addr", "0.0.0.0:0", "-tokens", loose}, nil, exitFailed, "todo: tokens file " + loose + ": mode 0644 lets group or others read or write it, and its hashes are enough to guess secrets offline: chmod 600 " + loose + "\n"},
		{"a bad line", []string{"-tokens", bad}, nil, exitFailed, "todo: tokens file " + bad + ": line 3: the hash is 4 characters, want the 64 hex digits of a SHA-256\n"},
		{"a name twice", []string{"-tokens", twice}, nil, exitFailed, "todo: tokens file " + twice + `: line 2: token name "alice" is already on line 1` + "\n"},
		{"no tokens file", []string{"-tokens", filepath.Join(dir, "missing")}, nil, exitFailed, "no such file or directory"},
		{"no certificate", []string{"-tls-cert", filepath.Join(dir, "c.pem"), "-tls-key", filepath.Join(dir, "k.pem")}, nil, exitFailed, "no such file or directory"},
		{"a cluster elsewhere without its secret", []string{"-node", "n1", "-cluster", "0.0.0.0:0", "-tokens", good}, nil, exitUsage, "todo: -cluster 0.0.0.0:0 is not a loopback address" + addSecret},
		{"a cluster elsewhere without anything", []string{"-node", "n1", "-cluster", "0.0.0.0:0"}, nil, exitUsage,
			"todo: -cluster 0.0.0.0:0 is not a loopback address: add -tokens FILE to require tokens (todo token add makes them) and -cluster-secret-file FILE, the cluster's secret, the same on every node (todo cluster-secret FILE makes one), or -insecure to serve and run the cluster without authentication on purpose\n"},
		{"a cluster on every interface", []string{"-node", "n1", "-cluster", ":6222", "-tokens", good}, nil, exitUsage, "todo: -cluster :6222 is not a loopback address" + addSecret},
		{"a peer elsewhere", []string{"-node", "n1", "-join", "10.0.0.2:6222", "-tokens", good}, nil, exitUsage, "todo: the peer 10.0.0.2:6222 is not on a loopback address" + addSecret},
		{"a NATS port for all", []string{"-node", "n1", "-cluster", "127.0.0.1:0", "-nats-addr", "0.0.0.0:0", "-tokens", good}, nil, exitUsage, "todo: -nats-addr 0.0.0.0:0 is not a loopback address" + addSecret},
		{"a cluster secret from the environment, others may read", []string{"-node", "n1", "-cluster", "0.0.0.0:0", "-tokens", good}, map[string]string{"TODO_CLUSTER_SECRET_FILE": looseSecret, "TODO_HTTP_PORT": "127.0.0.1:0"}, exitFailed,
			"todo: -cluster-secret-file " + looseSecret + ": mode 0644 lets group or others read or write it, and whoever reads it joins the cluster: chmod 600 " + looseSecret + "\n"},
		{"no route certificate", []string{"-node", "n1", "-cluster", "0.0.0.0:0", "-tokens", good, "-cluster-secret-file", secret, "-cluster-ca", caFile, "-cluster-cert", filepath.Join(dir, "missing.pem"), "-cluster-key", keyFile}, nil, exitFailed,
			"todo: -cluster-cert " + filepath.Join(dir, "missing.pem") + " and -cluster-key " + keyFile + ": no such file or directory\n"},
		{"a CA file without a certificate", []string{"-node", "n1", "-cluster", "127.0.0.1:0", "-insecure", "-cluster-ca", good, "-cluster-cert", certFile, "-cluster-key", keyFile}, nil, exitFailed,
			"todo: -cluster-ca " + good + ": no PEM certificate in it\n"},
		{"half the route TLS", []string{"-node", "n1", "-cluster", "127.0.0.1:0", "-insecure", "-cluster-cert", certFile}, nil, exitUsage,
			"-cluster-ca, -cluster-cert and -cluster-key (TODO_CLUSTER_CA, TODO_CLUSTER_CERT, TODO_CLUSTER_KEY) go together: give all three files, or none"},
		{"a secret for an outside NATS", []string{"-node", "n1", "-nats", "nats://127.0.0.1:1", "-insecure", "-cluster-secret-file", secret}, nil, exitUsage,
			"-cluster-secret-file and -cluster-ca protect the embedded NATS server: with -nats there is none"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			data := filepath.Join(t.TempDir(), "data")
			args := append([]string{"-data", data}, c.args...)
			if c.env == nil {
				args = append([]string{"-addr", "127.0.0.1:0"}, args...)
			}
			code, stdout, stderr := runMain(t, c.env, args...)
			bare := strings.HasSuffix(c.stderr, "\n")
			if code != c.code || stdout != "" || bare && stderr != c.stderr || !bare && !strings.Contains(stderr, c.stderr) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d and %q", code, stdout, stderr, c.code, c.stderr)
			}
			if _, err := os.Stat(data); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a refused start left %s behind (stat: %v)", data, err)
			}
		})
	}
}

// loopbackOf is addr (as a server listening on every interface logs it)
// with its host made 127.0.0.1.
func loopbackOf(t *testing.T, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", port)
}

// TestRun_Insecure: -insecure serves past loopback without a token, on
// purpose: it says so once at start, at warn level, and in /healthz, one
// node's and a cluster node's.
func TestRun_Insecure(t *testing.T) {
	t.Parallel()
	r := startRun(t, "-addr", "0.0.0.0:0", "-insecure")
	base := "http://" + loopbackOf(t, r.addr)
	if code, body, _ := send(t, "POST", base+"/add_entry?list=bob&date=20131219&title=Dentist", ""); code != 200 || body != "OK" {
		t.Errorf("an add without a token: %d %q", code, body)
	}
	if code, body, _ := send(t, "GET", base+"/healthz", ""); code != 200 || body != "ok\ninsecure: serving without authentication" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if n := strings.Count(r.logs.String(), "serving without authentication (-insecure)"); n != 1 || !strings.Contains(r.logs.String(), `"level":"WARN","msg":"serving without authentication (-insecure): anyone who reaches this server reads and writes every list"`) {
		t.Errorf("want one warning:\n%s", r.logs.String())
	}
	if !strings.Contains(r.logs.String(), `"auth":"insecure"`) {
		t.Errorf("listening does not say auth=insecure:\n%s", r.logs.String())
	}

	node := startRun(t, "-node", "i1", "-cluster", "127.0.0.1:0", "-insecure")
	_, body, _ := send(t, "GET", "http://"+node.addr+"/healthz", "")
	var h map[string]any
	if err := json.Unmarshal([]byte(body), &h); err != nil || h["insecure"] != true || h["node"] != "i1" {
		t.Errorf("a cluster node's /healthz: %q %v", body, err)
	}

	// On loopback without flags, nothing changes: no warning, no line.
	plain := startRun(t)
	if _, body, _ := send(t, "GET", "http://"+plain.addr+"/healthz", ""); body != "ok" {
		t.Errorf("/healthz on loopback: %q", body)
	}
	if strings.Contains(plain.logs.String(), `"level":"WARN"`) || !strings.Contains(plain.logs.String(), `"auth":"none"`) {
		t.Errorf("on loopback without flags:\n%s", plain.logs.String())
	}
}

// TestRun_Tokens serves with a tokens file made by `todo token add`: the
// lists need a token with their rights, /metrics a scraper's, /debug/vars
// (and `todo stats`) an admin's; /healthz and the page stay open; the
// page's sign-in sets a cookie the lists take, which a write from another
// origin cannot use; a token removed with `todo token rm` is refused with
// no restart.
func TestRun_Tokens(t *testing.T) {
	t.Parallel()
	path, secrets := makeTokens(t, t.TempDir(), map[string][2]string{
		"writer":  {"write", "team-*"},
		"reader":  {"read", "*"},
		"scraper": {"metrics", ""},
		"ops":     {"admin", "*"},
	})
	r := startRun(t, "-tokens", path)
	base := "http://" + r.addr
	for _, c := range []struct {
		method, path, who string
		status            int
		contains          string
	}{
		{"POST", "/add_entry?list=team-a&date=20131219&title=Dentist", "", 401, "no token"},
		{"POST", "/add_entry?list=team-a&date=20131219&title=Dentist", "writer", 200, "OK"},
		{"POST", "/add_entry?list=bob&date=20131219&title=Dentist", "writer", 403, `"writer" may not write list "bob": not one of its lists`},
		{"GET", "/entries?list=team-a&date=20131219", "reader", 200, "2013-12-19    Dentist\n"},
		{"POST", "/lists/team-a/entries", "reader", 403, `"reader" may not write list "team-a": its rights are read`},
		{"GET", "/lists", "", 401, "no token"},
		{"GET", "/lists", "scraper", 403, `"scraper" may not read lists`},
		{"GET", "/lists", "reader", 200, `{"lists":["team-a"]}`},
		{"GET", "/metrics", "", 401, "no token"},
		{"GET", "/metrics", "reader", 403, `"reader" may not do this: it needs the metrics right`},
		{"GET", "/metrics", "scraper", 200, "todo_http_requests_total"},
		{"GET", "/metrics", "ops", 200, "todo_list_servers"},
		{"GET", "/debug/vars", "scraper", 403, "it needs the admin right"},
		{"GET", "/debug/vars", "", 401, "no token"},
		{"GET", "/debug/vars", "ops", 200, `"todo"`},
		{"GET", "/healthz", "", 200, "ok"},
		{"GET", "/", "", 200, "<!doctype html>"},
		{"GET", "/web/app.js", "", 200, "/session"},
		{"GET", "/session", "", 401, "no token: sign in"},
		{"GET", "/session", "reader", 200, `{"name":"reader","rights":"read"}`},
		{"GET", "/nowhere", "", 401, "no token"},
	} {
		code, body, h := send(t, c.method, base+c.path, secrets[c.who])
		var e struct{ Error string }
		if code >= 400 && json.Unmarshal([]byte(body), &e) == nil {
			body = e.Error // a JSON error's reason
		}
		if code != c.status || !strings.Contains(body, c.contains) {
			t.Errorf("%s %s as %q: %d %q, want %d with %q", c.method, c.path, c.who, code, body, c.status, c.contains)
		}
		if code == 401 && c.path != "/session" && !strings.HasPrefix(h.Get("WWW-Authenticate"), `Bearer realm="todo"`) {
			t.Errorf("%s %s: a 401 without its challenge: %q", c.method, c.path, h.Get("WWW-Authenticate"))
		}
	}
	if code, stdout, stderr := runMain(t, map[string]string{"TODO_URL": base, "TODO_TOKEN": secrets["ops"]}, "stats"); code != exitOK || !strings.Contains(stdout, "ServersStarted") {
		t.Errorf("todo stats with the admin's token: %d %q %q", code, stdout, stderr)
	}

	// The page's sign-in: a cookie the handler takes as the token.
	code, _, h := send(t, "POST", base+"/session", "", "Content-Type", "application/json", "Sec-Fetch-Site", "same-origin")
	if code != 400 {
		t.Errorf("POST /session without a body: %d", code)
	}
	req, _ := http.NewRequest("POST", base+"/session", strings.NewReader(`{"token":"`+secrets["writer"]+`"}`))
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	h = resp.Header
	cookie := h.Get("Set-Cookie")
	if resp.StatusCode != 200 || !strings.Contains(cookie, "HttpOnly") || !strings.Contains(cookie, "SameSite=Strict") || strings.Contains(cookie, "Secure") {
		t.Fatalf("sign-in: %d %q", resp.StatusCode, cookie)
	}
	cookie, _, _ = strings.Cut(cookie, ";")
	if code, body, _ := send(t, "POST", base+"/lists/team-b/entries", "", "Cookie", cookie, "Sec-Fetch-Site", "same-origin"); code != 201 {
		t.Errorf("an add with the cookie: %d %q", code, body)
	}
	if code, body, _ := send(t, "POST", base+"/lists/team-b/entries", "", "Cookie", cookie, "Sec-Fetch-Site", "cross-site"); code != 403 || !strings.Contains(body, "cross-origin") {
		t.Errorf("a cross-origin add with the cookie: %d %q", code, body)
	}
	if code, body, _ := send(t, "GET", base+"/entries?list=team-b&date=20131219", secrets["reader"]); code != 200 || body != "2013-12-19    x\n" {
		t.Errorf("after one add with the cookie and a cross-origin one: %d %q", code, body)
	}

	// Revoked with no restart: the server looks at the file within a
	// second of a request.
	if code, stdout, stderr := runMain(t, nil, "token", "rm", "reader", "-tokens", path); code != exitOK {
		t.Fatalf("token rm: %d %q %q", code, stdout, stderr)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, _, _ := send(t, "GET", base+"/lists", secrets["reader"])
		if code == 401 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the revoked token is still taken after 5s: %d", code)
		}
		time.Sleep(50 * time.Millisecond) // polling the server: nothing to synchronise on
	}
	if code, _, _ := send(t, "GET", base+"/lists", secrets["ops"]); code != 200 {
		t.Errorf("the other tokens after a revocation: %d", code)
	}
	for _, s := range secrets {
		if strings.Contains(r.logs.String(), s) {
			t.Error("a secret is in the server's log")
		}
	}
	if !strings.Contains(r.logs.String(), `"auth":"tokens"`) || strings.Contains(r.logs.String(), `"level":"WARN"`) {
		t.Errorf("listening with tokens on loopback:\n%s", r.logs.String())
	}
}

// TestRun_TokensInClear: tokens over plain HTTP past loopback travel in
// clear, and the server says so at start.
func TestRun_TokensInClear(t *testing.T) {
	t.Parallel()
	path, secrets := makeTokens(t, t.TempDir(), map[string][2]string{"reader": {"read", "*"}})
	r := startRun(t, "-addr", "0.0.0.0:0", "-tokens", path)
	if n := strings.Count(r.logs.String(), "tokens travel in clear"); n != 1 {
		t.Errorf("want one warning that tokens travel in clear:\n%s", r.logs.String())
	}
	if code, _, _ := send(t, "GET", "http://"+loopbackOf(t, r.addr)+"/lists", secrets["reader"]); code != 200 {
		t.Errorf("GET /lists with a token: %d", code)
	}
}
