package todohttp_test

import (
	"crypto/sha256"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/gotodo/todo"
	"github.com/gotodo/todo/todohttp"
)

// ExampleNewHandler serves the original HTTP protocol, on a mux of the
// caller's own, and plays the book's curl session against it.
func ExampleNewHandler() {
	dir, err := os.MkdirTemp("", "todo-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sys, err := todo.Open(dir, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer sys.Close()

	h, err := todohttp.NewHandler(sys, nil)
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/", h)
	srv := httptest.NewServer(mux) // a real server on 127.0.0.1
	defer srv.Close()

	for _, req := range []struct{ method, path string }{
		{"GET", "/entries?list=bob&date=20131219"},
		{"POST", "/add_entry?list=bob&date=20131219&title=Dentist"},
		{"GET", "/entries?list=bob&date=20131219"},
		{"GET", "/nowhere"},
	} {
		r, err := http.NewRequest(req.method, srv.URL+req.path, nil)
		if err != nil {
			log.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			log.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s %s: %d %q\n", req.method, req.path, resp.StatusCode, body)
	}
	// Output:
	// GET /entries?list=bob&date=20131219: 200 ""
	// POST /add_entry?list=bob&date=20131219&title=Dentist: 200 "OK"
	// GET /entries?list=bob&date=20131219: 200 "2013-12-19    Dentist\n"
	// GET /nowhere: 404 "not found"
}

// ExampleOpenTokenFile serves a System to the holders of tokens in a
// tokens file: one that may read and write bob's list, one that may only
// read it. The secrets are fixed here for the example's sake; `todo token
// add` makes random ones.
func ExampleOpenTokenFile() {
	dir, err := os.MkdirTemp("", "todo-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sys, err := todo.Open(filepath.Join(dir, "data"), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer sys.Close()

	// One token a line: its name, the SHA-256 of its secret, its rights,
	// the lists it may touch. Group and others may not read the file.
	line := func(name, secret, rights, lists string) string {
		return fmt.Sprintf("%s %x %s %s\n", name, sha256.Sum256([]byte(secret)), rights, lists)
	}
	path := filepath.Join(dir, "tokens")
	err = os.WriteFile(path, []byte(line("bob", "bobs-secret", "write", "bob")+line("auditor", "auditors-secret", "read", "*")), 0o600)
	if err != nil {
		log.Fatal(err)
	}
	tokens, err := todohttp.OpenTokenFile(path, nil)
	if err != nil {
		log.Fatal(err)
	}
	h, err := todohttp.NewHandler(sys, &todohttp.HandlerOptions{Authenticate: tokens.Authenticate})
	if err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	for _, req := range []struct{ method, path, secret string }{
		{"POST", "/add_entry?list=bob&date=20131219&title=Dentist", ""},
		{"POST", "/add_entry?list=bob&date=20131219&title=Dentist", "bobs-secret"},
		{"POST", "/add_entry?list=bob&date=20131219&title=Movies", "auditors-secret"},
		{"GET", "/entries?list=bob&date=20131219", "auditors-secret"},
		{"GET", "/entries?list=alice&date=20131219", "bobs-secret"},
	} {
		r, err := http.NewRequest(req.method, srv.URL+req.path, nil)
		if err != nil {
			log.Fatal(err)
		}
		if req.secret != "" {
			r.Header.Set("Authorization", "Bearer "+req.secret)
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			log.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s %d %q\n", req.method, resp.StatusCode, body)
	}
	// Output:
	// POST 401 "no token: send Authorization: Bearer TOKEN"
	// POST 200 "OK"
	// POST 403 "\"auditor\" may not write list \"bob\": its rights are read"
	// GET 200 "2013-12-19    Dentist\n"
	// GET 403 "\"bob\" may not read list \"alice\": not one of its lists"
}
