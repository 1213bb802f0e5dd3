package main

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gotodo/todo/todohttp"
)

// The page signs in with a token once: it posts the token to
// POST /session, which checks it and answers with a cookie holding it
// (todohttp.SessionCookie: HttpOnly, so no script reads it; SameSite=Strict,
// so no other site's page sends it; Secure on TLS), which the library's
// handler then takes as it takes a bearer token. DELETE /session signs
// out. The token is never in the page's storage or a cookie a script can
// read.

// sessionMaxAge is how long a browser keeps the session cookie: the page
// asks for the token again after that, or when the token is revoked.
const sessionMaxAge = 30 * 24 * time.Hour

// maxSessionBody bounds the body of POST /session.
const maxSessionBody = 4 << 10

// sessionHandler serves /session. It is safe for concurrent use.
type sessionHandler struct {
	auth    func(*http.Request) (*todohttp.Principal, error)
	origins *http.CrossOriginProtection // the page's writes come from its own origin
	log     *slog.Logger
}

// newSessionHandler returns the handler of /session for auth; trusted
// are the origins besides the server's own whose pages may sign in.
func newSessionHandler(auth func(*http.Request) (*todohttp.Principal, error), trusted []string, log *slog.Logger) (*sessionHandler, error) {
	origins := http.NewCrossOriginProtection()
	for _, o := range trusted {
		if err := origins.AddTrustedOrigin(o); err != nil {
			return nil, err
		}
	}
	return &sessionHandler{auth: auth, origins: origins, log: log}, nil
}

// sessionBody is what GET and POST /session answer: who is signed in.
type sessionBody struct {
	Name   string `json:"name"`
	Rights string `json:"rights"`
}

func (s *sessionHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if err := s.origins.Check(r); err != nil {
		writeSessionError(w, http.StatusForbidden, "cross-origin "+r.Method+" refused: "+err.Error())
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		s.whoAmI(w, r)
	case http.MethodPost:
		s.signIn(w, r)
	case http.MethodDelete:
		s.signOut(w, r)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST, DELETE")
		writeSessionError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed: use GET, POST or DELETE")
	}
}

// whoAmI answers who the request's token (its cookie, or a bearer
// header) names, or 401.
func (s *sessionHandler) whoAmI(w http.ResponseWriter, r *http.Request) {
	p, err := s.auth(r)
	if err != nil || p == nil {
		writeSessionError(w, http.StatusUnauthorized, unauthenticatedReason(err))
		return
	}
	writeSessionJSON(w, http.StatusOK, sessionBody{Name: p.Name, Rights: p.Rights.String()})
}

// signIn checks the token posted, {"token":"..."}, and sets the cookie
// that holds it.
func (s *sessionHandler) signIn(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Token string `json:"token"`
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxSessionBody))
	if err != nil {
		writeSessionError(w, http.StatusRequestEntityTooLarge, "the body is over 4 KiB")
		return
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil || dec.More() {
		writeSessionError(w, http.StatusBadRequest, `want {"token":"..."}`)
		return
	}
	token := strings.TrimSpace(body.Token)
	if token == "" {
		writeSessionError(w, http.StatusBadRequest, "no token given")
		return
	}
	// The token is checked as the handler will check it: as a bearer
	// header of a request like this one.
	check := r.Clone(r.Context())
	check.Header = http.Header{"Authorization": {"Bearer " + token}}
	p, err := s.auth(check)
	if err != nil || p == nil {
		s.log.Info("todo: sign-in refused", "remote", r.RemoteAddr, "reason", unauthenticatedReason(err))
		writeSessionError(w, http.StatusUnauthorized, unauthenticatedReason(err))
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name:     todohttp.SessionCookie,
		Value:    token,
		Path:     "/",
		MaxAge:   int(sessionMaxAge / time.Second),
		HttpOnly: true,
		Secure:   r.TLS != nil,
		SameSite: http.SameSiteStrictMode,
	})
	s.log.Info("todo: signed in", "name", p.Name, "remote", r.RemoteAddr)
	writeSessionJSON(w, http.StatusOK, sessionBody{Name: p.Name, Rights: p.Rights.String()})
}

// signOut clears the cookie.
func (s *sessionHandler) signOut(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{
		Name:     todohttp.SessionCookie,
		Value:    "",
		Path:     "/",
		MaxAge:   -1,
		HttpOnly: true,
		Secure:   r.TLS != nil,
		SameSite: http.SameSiteStrictMode,
	})
	w.WriteHeader(http.StatusNoContent)
}

// unauthenticatedReason is the reason of an Authenticate's refusal, as a
// 401 says it: never the token, which no error of the library's holds.
func unauthenticatedReason(err error) string {
	if err == nil {
		return "not signed in"
	}
	if errors.Is(err, todohttp.ErrUnauthenticated) {
		if r := strings.TrimPrefix(strings.TrimPrefix(err.Error(), todohttp.ErrUnauthenticated.Error()), ": "); r != "" {
			return strings.Replace(r, "send Authorization: Bearer TOKEN", "sign in", 1)
		}
		return "not signed in"
	}
	return "authentication failed"
}

func writeSessionError(w http.ResponseWriter, status int, reason string) {
	writeSessionJSON(w, status, todohttp.ErrorBody{Error: reason})
}

func writeSessionJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v) // the types written here always marshal
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
