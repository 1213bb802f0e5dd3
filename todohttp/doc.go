// Package todohttp is the HTTP face of a to-do [todo.Service] (a
// [*todo.System], or a node of a cluster), the Go form of the book's
// Todo.Web. [NewHandler] returns a [net/http.Handler] to mount on any
// mux; it serves two APIs side by side:
//
//   - the original protocol, byte for byte: POST /add_entry and
//     GET /entries, in plain text;
//   - a JSON API of lists and their entries as resources: GET /lists,
//     GET and POST /lists/{list}/entries, PATCH and DELETE
//     /lists/{list}/entries/{id}, in pages, with Idempotency-Key on every
//     change, and GET /lists/{list}/events, a list's changes as they
//     come, as server-sent events that a browser's EventSource reads,
//     resumed from Last-Event-ID.
//
// In front of both, guards refuse what a web page the user visits could
// send to a server on their own machine: a Host that is not one of the
// server's names (DNS rebinding) and a write from another origin
// (cross-site request forgery). Behind them, an optional Authenticate
// function ([HandlerOptions.Authenticate]) names who sends each request,
// a [Principal] with [Rights] over the lists its [ListPattern]s match; a
// [TokenFile], bearer tokens listed by the SHA-256 of their secrets in a
// file re-read when it changes, is one. Bad input is answered 400 with a
// one-line reason and changes nothing. NewHandler's documentation has
// every route and status, and docs/http.md the protocol in full.
//
// The JSON bodies the API reads and writes are exported as types
// ([Entry], [ListsPage], [EntriesPage], [Event], [ErrorBody], [AddBody],
// [PatchBody]) for Go clients; the todo command's client uses them.
//
// The package uses only the exported API of package todo, which compiles
// without net/http: an embedded System that serves no HTTP pays nothing
// for it. Until this package existed NewHandler and HandlerOptions were
// in package todo; only their import path changed.
//
// The handler is safe for concurrent use by multiple goroutines and owns
// no goroutines but one per open event stream, which ends with it.
package todohttp
