package todohttp_test

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"

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
