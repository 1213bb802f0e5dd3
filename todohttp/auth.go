package todohttp

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/gotodo/todo"
)

// Authentication says who sends a request (a Principal, named by
// HandlerOptions.Authenticate), and authorization what that principal may
// touch: its Rights, over the lists its ListPatterns match.

// ErrUnauthenticated is returned by an Authenticate function (see
// [HandlerOptions.Authenticate]) when a request carries no credentials,
// or ones it does not accept. The handler answers it 401 with
// WWW-Authenticate: Bearer realm="todo", and the error's message, without
// its "todo: " prefix, as the reason.
var ErrUnauthenticated = errors.New("todo: unauthenticated")

// Errors of BearerSecret, each wrapping ErrUnauthenticated.
var (
	errNoToken   = fmt.Errorf("%w: no token: send Authorization: Bearer TOKEN", ErrUnauthenticated)
	errBadHeader = fmt.Errorf("%w: Authorization: want Bearer TOKEN", ErrUnauthenticated)
	errTwoTokens = fmt.Errorf("%w: Authorization given more than once", ErrUnauthenticated)
	errBadCookie = fmt.Errorf("%w: the session cookie holds no token: sign in again", ErrUnauthenticated)
)

// Rights are what a [Principal] may do: a set of the bits below. A right
// may include others: [Rights.Has] counts them.
type Rights uint8

const (
	// RightRead lets a principal read the lists its patterns match:
	// GET /entries, GET /lists/{list}/entries, and GET /lists, which
	// shows those lists only.
	RightRead Rights = 1 << iota
	// RightWrite lets it change them too: add, update and delete
	// entries. It includes RightRead.
	RightWrite
	// RightMetrics lets it read a server's metrics (the todo command's
	// GET /metrics), which name no list: a scraper's token.
	RightMetrics
	// RightAdmin lets it read a server's counters and settings (the todo
	// command's GET /debug/vars), and includes every other right. The
	// lists it may read and write are still those its patterns match.
	RightAdmin
)

// rightNames are the rights as tokens files and flags write them, in the
// order Rights.String writes them.
var rightNames = []struct {
	right Rights
	name  string
}{{RightRead, "read"}, {RightWrite, "write"}, {RightMetrics, "metrics"}, {RightAdmin, "admin"}}

// Has reports whether r includes every right of need, directly or
// through a right that includes it.
func (r Rights) Has(need Rights) bool { return r.implied()&need == need }

// implied is r with the rights its rights include.
func (r Rights) implied() Rights {
	if r&RightAdmin != 0 {
		r |= RightRead | RightWrite | RightMetrics
	}
	if r&RightWrite != 0 {
		r |= RightRead
	}
	return r
}

// String writes r as [ParseRights] reads it: the names of its rights,
// comma-separated ("read,metrics"), or "none".
func (r Rights) String() string {
	var names []string
	for _, n := range rightNames {
		if r&n.right != 0 {
			names = append(names, n.name)
		}
	}
	if r&^(RightRead|RightWrite|RightMetrics|RightAdmin) != 0 {
		names = append(names, fmt.Sprintf("0x%x", uint8(r&^(RightRead|RightWrite|RightMetrics|RightAdmin))))
	}
	if names == nil {
		return "none"
	}
	return strings.Join(names, ",")
}

// ParseRights reads rights written as a comma-separated list of read,
// write, metrics and admin, each at most once ("write,metrics").
func ParseRights(s string) (Rights, error) {
	if s == "" {
		return 0, errors.New("no rights: want read, write, metrics or admin, comma-separated")
	}
	var r Rights
next:
	for name := range strings.SplitSeq(s, ",") {
		for _, n := range rightNames {
			if name == n.name {
				if r&n.right != 0 {
					return 0, fmt.Errorf("right %q given twice", name)
				}
				r |= n.right
				continue next
			}
		}
		return 0, fmt.Errorf("right %q: want read, write, metrics or admin", name)
	}
	return r, nil
}

// ListPattern is a set of list names: one name, or, when Prefix is set,
// every name that starts with Name (every name at all when Name is "").
//
// As text (in a tokens file, on the command line) a pattern is the name
// as it is, but for a final "*", which makes it a prefix, and escapes:
// "bob" is the list bob, "team-*" every list whose name starts with
// "team-", "*" every list. A "*" anywhere else is refused, so that no
// pattern looks like a glob it is not. A byte written %XX (two hex digits)
// stands for itself: "%2A" is a "*" in the name, "%20" a space, "%2C" a
// comma, "%25" a percent sign; they must be written so, as must a control
// character (and a list named "-", "%2D", which a tokens file reads as no
// list). Other characters, non-ASCII ones included, may be written as they
// are. So every list name, whatever it holds, has one pattern that is
// exactly it, and no pattern means two things.
type ListPattern struct {
	Name   string // the list's name, or the prefix of the names
	Prefix bool   // Name is a prefix, written with a final "*"
}

// Match reports whether list is in the set.
func (p ListPattern) Match(list string) bool {
	if p.Prefix {
		return strings.HasPrefix(list, p.Name)
	}
	return list == p.Name
}

// ParseListPattern reads a pattern written as [ListPattern] says. The
// name, once unescaped, must be valid UTF-8 without a NUL byte and at most
// [todo.MaxNameLen] bytes; only a prefix may be empty.
func ParseListPattern(s string) (ListPattern, error) {
	var p ListPattern
	raw := s
	if strings.HasSuffix(raw, "*") {
		p.Prefix, raw = true, raw[:len(raw)-1]
	}
	var b strings.Builder
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == '*':
			return p, fmt.Errorf("pattern %q: a * stands only at the end (write %%2A for a * in a name)", s)
		case c == ',':
			return p, fmt.Errorf("pattern %q: write %%2C for a comma in a name", s)
		case c < 0x20 || c == ' ' || c == 0x7f:
			return p, fmt.Errorf("pattern %q: write a space or control character as %%XX", s)
		case c == '%':
			if i+2 >= len(raw) || unhex(raw[i+1]) < 0 || unhex(raw[i+2]) < 0 {
				return p, fmt.Errorf("pattern %q: %% must be followed by two hex digits (%%25 for a %%)", s)
			}
			b.WriteByte(byte(unhex(raw[i+1])<<4 | unhex(raw[i+2])))
			i += 2
		default:
			b.WriteByte(c)
		}
	}
	p.Name = b.String()
	if p.Prefix && p.Name == "" {
		return p, nil
	}
	if err := todo.ValidName(p.Name); err != nil {
		why := strings.TrimLeft(strings.TrimPrefix(err.Error(), todo.ErrInvalidName.Error()), " :")
		return p, fmt.Errorf("pattern %q: not a list name: %s", s, why)
	}
	return p, nil
}

// unhex is the value of a hex digit, or -1.
func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}

// String writes p as ParseListPattern reads it: the name, with a "*"
// after a prefix, and %XX for every byte that must be escaped and for any
// character that is not printable or is a space of some kind.
func (p ListPattern) String() string {
	var b strings.Builder
	for i, r := range p.Name {
		switch {
		case r == '%' || r == '*' || r == ',' || r == utf8.RuneError ||
			r < 0x80 && (r <= ' ' || r == 0x7f) || !unicode.IsPrint(r) || unicode.IsSpace(r):
			n := utf8.RuneLen(r)
			if r == utf8.RuneError {
				n = 1 // an invalid byte: the name is not valid, but write what it holds
			}
			for _, c := range []byte(p.Name[i : i+n]) {
				fmt.Fprintf(&b, "%%%02X", c)
			}
		default:
			b.WriteRune(r)
		}
	}
	if p.Prefix {
		b.WriteByte('*')
	}
	return b.String()
}

// Principal is who sends a request, as an Authenticate function names it
// (see [HandlerOptions.Authenticate]): a name for the logs, its rights,
// and the lists they apply to. The handler reads a Principal from many
// goroutines: once returned, it must not be modified.
type Principal struct {
	Name   string
	Rights Rights
	Lists  []ListPattern // the lists it may read or write, as its rights say
}

// Allows reports whether p has the rights need over list: whether need is
// among its rights, and list matches one of its patterns.
func (p *Principal) Allows(need Rights, list string) bool {
	return p.Rights.Has(need) && p.mayTouch(list)
}

// mayTouch reports whether list matches one of p's patterns.
func (p *Principal) mayTouch(list string) bool {
	for _, lp := range p.Lists {
		if lp.Match(list) {
			return true
		}
	}
	return false
}

// SessionCookie is the name of the cookie a web page signed in with a
// token sends it in (the todo command sets it, HttpOnly, when its page
// signs in); [BearerSecret] reads it when there is no Authorization
// header.
const SessionCookie = "todo_session"

// maxSecret bounds the length of a token accepted: longer is no secret
// any tokens file or `todo token add` makes, and would only cost a hash.
const maxSecret = 512

// BearerSecret returns the token r carries: the secret of its
// Authorization header, which must be of the Bearer scheme (RFC 6750:
// "Bearer", one or more spaces, then the token), or, when it has none,
// the value of its [SessionCookie]. A token is 1 to 512 of the characters
// RFC 6750 allows (letters, digits, and -._~+/, then = signs only at its
// end). The errors wrap [ErrUnauthenticated]. It is for Authenticate
// functions: [TokenFile.Authenticate] uses it.
func BearerSecret(r *http.Request) (string, error) {
	switch hs := r.Header["Authorization"]; len(hs) {
	case 0:
	case 1:
		return parseBearer(hs[0])
	default:
		return "", errTwoTokens
	}
	if !hasCookie(r) {
		return "", errNoToken
	}
	c, err := r.Cookie(SessionCookie)
	if err != nil {
		return "", errNoToken
	}
	if !token68(c.Value) {
		return "", errBadCookie
	}
	return c.Value, nil
}

// hasCookie reports whether r has a Cookie header that may hold the
// session cookie: a cheap test that spares requests without it the
// parsing of r.Cookie.
func hasCookie(r *http.Request) bool {
	for _, h := range r.Header["Cookie"] {
		if strings.Contains(h, SessionCookie) {
			return true
		}
	}
	return false
}

// parseBearer returns the token of an Authorization header of the Bearer
// scheme, whose name is matched whatever its case.
func parseBearer(h string) (string, error) {
	const scheme = "Bearer"
	if len(h) <= len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) || h[len(scheme)] != ' ' {
		return "", errBadHeader
	}
	secret := strings.TrimLeft(h[len(scheme):], " ")
	if !token68(secret) {
		return "", errBadHeader
	}
	return secret, nil
}

// token68 reports whether s is 1 to maxSecret bytes of RFC 7235's token68:
// letters, digits and -._~+/, then "=" signs only at the end.
func token68(s string) bool {
	if s == "" || len(s) > maxSecret {
		return false
	}
	i := 0
	for ; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/') {
			break
		}
	}
	if i == 0 {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] != '=' {
			return false
		}
	}
	return true
}

// presented reports whether r carries credentials at all: an
// Authorization header or a session cookie. The 401 of a request that did
// says error="invalid_token".
func presented(r *http.Request) bool {
	return len(r.Header["Authorization"]) > 0 || hasCookie(r)
}

// RequireRights returns h behind auth: a request is answered 401 (with
// WWW-Authenticate) unless auth names a principal, and 403 unless that
// principal has the rights need, both in plain text; only then is h
// called. A nil auth lets every request through: it is h. It is for the
// routes a program mounts beside the handler, which name no list (the
// todo command's /metrics needs RightMetrics, its /debug/vars RightAdmin).
func RequireRights(auth func(*http.Request) (*Principal, error), need Rights, h http.Handler) http.Handler {
	if auth == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := authenticate(auth, r)
		if err == nil && !p.Rights.Has(need) {
			err = &httpError{status: http.StatusForbidden,
				reason: fmt.Sprintf("%q may not do this: it needs the %s right", p.Name, need)}
		}
		if err != nil {
			e := authAnswer(err)
			setChallenge(w, r, e)
			renderText(w, e)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// authenticate calls auth, and returns its principal or the error that
// answers the request: a 401 for one wrapping ErrUnauthenticated, and
// for a principal that is nil; an error of any other kind as it is (the
// handler answers it 500 and logs it).
func authenticate(auth func(*http.Request) (*Principal, error), r *http.Request) (*Principal, error) {
	p, err := auth(r)
	switch {
	case errors.Is(err, ErrUnauthenticated):
		reason := strings.TrimPrefix(strings.TrimPrefix(err.Error(), ErrUnauthenticated.Error()), ": ")
		if reason == "" {
			reason = "unauthenticated"
		}
		return nil, &httpError{status: http.StatusUnauthorized, reason: oneLine(reason)}
	case err != nil:
		return nil, fmt.Errorf("authenticating: %w", err)
	case p == nil:
		return nil, &httpError{status: http.StatusUnauthorized, reason: "not signed in"}
	}
	return p, nil
}

// authAnswer is the answer of an error of authenticate: the 401 or 403
// it carries, or a 500 for any other.
func authAnswer(err error) *httpError {
	var e *httpError
	if errors.As(err, &e) {
		return e
	}
	return &httpError{status: http.StatusInternalServerError, reason: "authentication failed: internal error"}
}

// setChallenge adds the WWW-Authenticate header of a 401: Bearer
// realm="todo", with error="invalid_token" when the request carried
// credentials that were not accepted.
func setChallenge(w http.ResponseWriter, r *http.Request, e *httpError) {
	if e.status != http.StatusUnauthorized {
		return
	}
	v := `Bearer realm="todo"`
	if presented(r) {
		v += `, error="invalid_token"`
	}
	w.Header().Set("WWW-Authenticate", v)
}

// allow returns nil if who may touch list with the rights need, or the
// 403 that answers the request. A nil who may do everything: the handler
// authenticates no one.
func allow(who *Principal, need Rights, list string) error {
	if who == nil || who.Allows(need, list) {
		return nil
	}
	return forbidden(who, need, list)
}

// forbidden is the 403 of who, which may not touch list ("" for the
// listing of lists) with the rights need: its reason says which of the
// two it lacks.
func forbidden(who *Principal, need Rights, list string) error {
	verb := "read"
	if need.Has(RightWrite) {
		verb = "write"
	}
	what := "lists"
	if list != "" {
		what = fmt.Sprintf("list %q", list)
	}
	var why string
	if !who.Rights.Has(need) {
		why = "its rights are " + who.Rights.String()
	} else {
		why = "not one of its lists"
	}
	return &httpError{status: http.StatusForbidden,
		reason: oneLine(fmt.Sprintf("%q may not %s %s: %s", who.Name, verb, what, why))}
}
