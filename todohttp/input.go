package todohttp

import (
	"net/http"
	"net/url"
	"strconv"

	"github.com/gotodo/todo"
)

// The inputs both APIs share, each read strictly: a query that does not
// parse, a parameter given twice or empty is refused, never dropped or
// guessed at. Each error names the input it concerns.

// parseQuery parses a raw query strictly: unlike r.URL.Query, it reports
// a ';', a bad escape or too many parameters instead of dropping them.
func parseQuery(raw string) (url.Values, error) {
	q, err := url.ParseQuery(raw)
	if err != nil {
		return nil, badRequest("", "bad query: %v", err)
	}
	return q, nil
}

// jsonQuery parses the query of a JSON API request, which may hold only
// the parameters allowed, each once.
func jsonQuery(r *http.Request, allowed ...string) (url.Values, error) {
	q, err := parseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, err
	}
	for k, vs := range q {
		if !contains(allowed, k) {
			return nil, badRequest(k, "unknown query parameter %q", k)
		}
		if len(vs) > 1 {
			return nil, badRequest(k, "query parameter %q given %d times", k, len(vs))
		}
	}
	return q, nil
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func first(vs []string) (string, int) {
	if len(vs) == 0 {
		return "", 0
	}
	return vs[0], len(vs)
}

// param returns the one non-empty value of key in q.
func param(q url.Values, key string) (string, error) {
	v, n := first(q[key])
	return checkParam(key, v, n)
}

// checkParam returns v, the first of the n values given for key, if it
// is the only one and not empty.
func checkParam(key, v string, n int) (string, error) {
	switch {
	case n == 0:
		return "", badRequest(key, "missing query parameter %q", key)
	case n > 1:
		return "", badRequest(key, "query parameter %q given %d times", key, n)
	case v == "":
		return "", badRequest(key, "empty query parameter %q", key)
	}
	return v, nil
}

// decimal parses s as an integer in lo..hi written as strconv.Itoa writes
// it (no sign, no leading zero, no space), or returns a 400 about field.
func decimal(field, s string, lo, hi int) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || strconv.Itoa(n) != s {
		return 0, badRequest(field, "%s %q is not a decimal integer", field, s)
	}
	if n < lo || n > hi {
		return 0, badRequest(field, "%s %d is not in %d..%d", field, n, lo, hi)
	}
	return n, nil
}

// checkTitle checks a title as the Service will, by the library's own
// rule (todo.ValidTitle), so that the handler refuses exactly what the
// library refuses, and before anything is sent; and, when
// HandlerOptions.MaxTitle is below todo.MaxTitle, against that cap too.
func (h *handler) checkTitle(t string) error {
	if err := todo.ValidTitle(t); err != nil {
		return err
	}
	if len(t) > h.maxTitle {
		return badRequest("title", "title is %d bytes, more than %d", len(t), h.maxTitle)
	}
	return nil
}
