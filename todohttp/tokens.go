package todohttp

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ErrTokenFile is wrapped by the errors of a tokens file that is refused:
// one that cannot be read, is readable or writable by group or others, or
// has a line that is not a token (see [TokenFileError]).
var ErrTokenFile = errors.New("todo: bad tokens file")

// TokenFileError is a tokens file refused: its path ("" for bytes given
// to [ParseTokens]), the line at fault (0 when it is the whole file), and
// why. It wraps [ErrTokenFile].
type TokenFileError struct {
	Path   string
	Line   int
	Reason string
}

func (e *TokenFileError) Error() string {
	var b strings.Builder
	b.WriteString("todo: tokens file")
	if e.Path != "" {
		b.WriteString(" " + e.Path)
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, ": line %d", e.Line)
	}
	b.WriteString(": " + e.Reason)
	return b.String()
}

func (e *TokenFileError) Unwrap() error { return ErrTokenFile }

// Token is one line of a tokens file: a name, the SHA-256 of its secret
// (never the secret), its rights, and the lists they apply to.
//
// A tokens file holds one token a line, four fields separated by spaces
// or tabs:
//
//   - NAME is 1 to 64 letters, digits and ._@- characters, the first a
//     letter or a digit, and names the token in logs and in `todo token`;
//     no two lines have the same.
//   - SHA256-HEX is the SHA-256 of the secret exactly as it is sent, in
//     hex (either case): `printf %s "$SECRET" | sha256sum`. No two lines
//     have the same.
//   - RIGHTS are read, write, metrics and admin, comma-separated (see
//     [Rights]; write includes read, admin every right).
//   - LISTS are list-name patterns, comma-separated (see [ListPattern]:
//     "bob", "team-*", "*", with %XX escapes), or "-" for none, as a
//     scraper's token has.
//
// For example:
//
//	# NAME   SHA256-HEX                                                        RIGHTS         LISTS
//	alice    2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824  write          alice,team-*
//	grafana  486ea46224d1bb4fb680f34f7c9ad96a8f24ec88be73ea8e5a6c65260e9cb8a7  metrics        -
//	ops      fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9  admin,metrics  *
//
// A line whose first character other than a space or a tab is "#" is a
// comment; blank lines are allowed; a line may end in CRLF. Nothing else
// is: a line that is not a token refuses the whole file, with its number.
type Token struct {
	Name   string
	Hash   [sha256.Size]byte
	Rights Rights
	Lists  []ListPattern
	Line   int // the line it was read from; 0 for a token not read from a file
}

// String writes t as a line of a tokens file, without a newline.
func (t *Token) String() string {
	lists := "-"
	if len(t.Lists) > 0 {
		s := make([]string, len(t.Lists))
		for i, p := range t.Lists {
			if s[i] = p.String(); s[i] == "-" {
				s[i] = "%2D" // "-" alone means no list
			}
		}
		lists = strings.Join(s, ",")
	}
	return fmt.Sprintf("%s %x %s %s", t.Name, t.Hash, t.Rights, lists)
}

// ValidTokenName returns nil if name may name a token: 1 to 64 letters,
// digits and ._@- characters, the first a letter or a digit.
func ValidTokenName(name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("token name %q: want 1 to 64 characters", name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != '@' && c != '-') {
			return fmt.Errorf("token name %q: want letters, digits and ._@- characters, the first a letter or a digit", name)
		}
	}
	return nil
}

// maxTokenFile bounds the size of a tokens file: 1 MiB is some 8,000
// tokens.
const maxTokenFile = 1 << 20

// ParseTokens reads the tokens of a tokens file's contents (see [Token]).
// Its error is a [*TokenFileError] naming the first line at fault: one
// that is not a token, or whose name or secret's hash another line has.
func ParseTokens(data []byte) ([]Token, error) {
	data = bytes.TrimPrefix(data, []byte("\ufeff")) // a byte-order mark some editors write
	var tokens []Token
	names := make(map[string]int)             // name -> line
	hashes := make(map[[sha256.Size]byte]int) // hash -> line
	n := 0
	for line := range strings.Lines(string(data)) {
		n++
		line = strings.TrimRight(line, "\n")
		line = strings.TrimRight(line, "\r")
		trimmed := strings.Trim(line, " \t")
		if trimmed == "" || trimmed[0] == '#' {
			continue
		}
		t, err := parseTokenLine(trimmed)
		if err != nil {
			return nil, &TokenFileError{Line: n, Reason: err.Error()}
		}
		t.Line = n
		if prev, ok := names[t.Name]; ok {
			return nil, &TokenFileError{Line: n, Reason: fmt.Sprintf("token name %q is already on line %d", t.Name, prev)}
		}
		if prev, ok := hashes[t.Hash]; ok {
			return nil, &TokenFileError{Line: n, Reason: fmt.Sprintf("the same secret's hash as line %d", prev)}
		}
		names[t.Name], hashes[t.Hash] = n, n
		tokens = append(tokens, t)
	}
	return tokens, nil
}

// parseTokenLine reads one token's line, without its newline and the
// spaces around it.
func parseTokenLine(line string) (Token, error) {
	var t Token
	fields := strings.FieldsFunc(line, func(r rune) bool { return r == ' ' || r == '\t' })
	if len(fields) != 4 {
		return t, fmt.Errorf("%d fields, want 4: NAME SHA256-HEX RIGHTS LISTS", len(fields))
	}
	if err := ValidTokenName(fields[0]); err != nil {
		return t, err
	}
	t.Name = fields[0]
	if len(fields[1]) != hex.EncodedLen(sha256.Size) {
		return t, fmt.Errorf("the hash is %d characters, want the 64 hex digits of a SHA-256", len(fields[1]))
	}
	if _, err := hex.Decode(t.Hash[:], []byte(fields[1])); err != nil {
		return t, errors.New("the hash is not hex: want the 64 hex digits of a SHA-256")
	}
	var err error
	if t.Rights, err = ParseRights(fields[2]); err != nil {
		return t, err
	}
	if fields[3] == "-" {
		return t, nil
	}
	for s := range strings.SplitSeq(fields[3], ",") {
		p, err := ParseListPattern(s)
		if err != nil {
			return t, err
		}
		t.Lists = append(t.Lists, p)
	}
	return t, nil
}

// ReadTokenFile reads the tokens file at path (see [Token]). It refuses,
// with a [*TokenFileError], a file that is not a regular file, is over
// 1 MiB, is readable or writable by group or others (a secret's hash is
// enough to try secrets offline: chmod 600 it), or has a line that is not
// a token.
func ReadTokenFile(path string) ([]Token, error) {
	tokens, _, err := readTokenFile(path)
	return tokens, err
}

// readTokenFile is ReadTokenFile, which also returns the file's
// information as it was when read.
func readTokenFile(path string) ([]Token, os.FileInfo, error) {
	refuse := func(format string, args ...any) error {
		return &TokenFileError{Path: path, Reason: fmt.Sprintf(format, args...)}
	}
	f, err := os.Open(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is in the message already
		}
		return nil, nil, refuse("%v", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, refuse("%v", err)
	}
	switch {
	case !fi.Mode().IsRegular():
		return nil, nil, refuse("not a regular file (%s)", fi.Mode().Type())
	case fi.Size() > maxTokenFile:
		return nil, nil, refuse("%d bytes, more than %d", fi.Size(), maxTokenFile)
	case fi.Mode().Perm()&0o077 != 0 && runtime.GOOS != "windows":
		return nil, nil, refuse("mode %04o lets group or others read or write it, and its hashes are enough to guess secrets offline: chmod 600 %s", fi.Mode().Perm(), path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxTokenFile+1))
	if err != nil {
		return nil, nil, refuse("%v", err)
	}
	if len(data) > maxTokenFile {
		return nil, nil, refuse("more than %d bytes", maxTokenFile)
	}
	tokens, err := ParseTokens(data)
	if err != nil {
		err.(*TokenFileError).Path = path
		return nil, nil, err
	}
	return tokens, fi, nil
}

// TokenFileOptions configure a [TokenFile]. The zero value, like a nil
// *TokenFileOptions, gives the defaults written on each field.
type TokenFileOptions struct {
	// CheckEvery is how often the file is looked at for a change: a
	// request that finds the last look older than this looks again (its
	// size, modification time, mode and identity: a stat), and reads the
	// file again if it changed. Zero means 1s; a negative value means on
	// every request.
	CheckEvery time.Duration

	// Logger receives a line for each reload: at info level when the
	// tokens changed, at error level, once per version of the file, when
	// it was refused and the tokens in force were kept. Nil discards them.
	Logger *slog.Logger
}

// TokenFile is a tokens file (see [Token]) as an authenticator: its
// Authenticate method is a [HandlerOptions.Authenticate]. It reads the
// file again when the file changes, within [TokenFileOptions.CheckEvery],
// and when Reload is called (the todo command calls it on SIGHUP), so
// that a token is added or revoked without a restart. A file refused on
// reload leaves the tokens in force as they were.
//
// Only the hash of each secret is held. Per request, the secret sent is
// hashed once (SHA-256), looked up by its hash in a map, and the hash
// stored compared with it in constant time: nothing else is computed, so
// a tokens file of any size costs each request the same.
//
// A TokenFile owns no goroutine: the request that finds the last look at
// the file old does the next. It is safe for concurrent use by multiple
// goroutines.
type TokenFile struct {
	path  string
	every time.Duration // CheckEvery, with its default
	log   *slog.Logger

	tokens    atomic.Pointer[tokenSet]
	nextCheck atomic.Int64 // when the file is looked at next, in Unix nanoseconds

	mu     sync.Mutex  // serializes looks at the file; guards the fields below
	loaded os.FileInfo // the file as the tokens in force were read from it
	failed os.FileInfo // the last version of the file refused, nil if none: logged once
	gone   bool        // the file could not be looked at, and that was logged
}

// tokenSet is the tokens of one version of the file, by their secrets'
// hashes. It is never modified once made: a reload makes another.
type tokenSet struct {
	byHash map[[sha256.Size]byte]setToken
	count  int
}

// setToken is a token of a tokenSet: its hash, and the principal it
// names, made once for every request that sends it.
type setToken struct {
	hash      [sha256.Size]byte
	principal *Principal
}

func newTokenSet(tokens []Token) *tokenSet {
	s := &tokenSet{byHash: make(map[[sha256.Size]byte]setToken, len(tokens)), count: len(tokens)}
	for _, t := range tokens {
		s.byHash[t.Hash] = setToken{t.Hash, &Principal{Name: t.Name, Rights: t.Rights, Lists: t.Lists}}
	}
	return s
}

// OpenTokenFile reads the tokens file at path (see [ReadTokenFile] for
// what it refuses) and returns it as an authenticator. opts may be nil.
func OpenTokenFile(path string, opts *TokenFileOptions) (*TokenFile, error) {
	var o TokenFileOptions
	if opts != nil {
		o = *opts
	}
	if o.CheckEvery == 0 {
		o.CheckEvery = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	tokens, fi, err := readTokenFile(path)
	if err != nil {
		return nil, err
	}
	f := &TokenFile{path: path, every: o.CheckEvery, log: o.Logger, loaded: fi}
	f.tokens.Store(newTokenSet(tokens))
	f.nextCheck.Store(time.Now().Add(f.every).UnixNano())
	return f, nil
}

// Path returns the file's path.
func (f *TokenFile) Path() string { return f.path }

// Len returns how many tokens are in force.
func (f *TokenFile) Len() int { return f.tokens.Load().count }

// Authenticate returns the principal of the token r carries (see
// [BearerSecret]: a bearer token, or the session cookie), or an error
// wrapping [ErrUnauthenticated] when it carries none or one that is not
// in the file.
func (f *TokenFile) Authenticate(r *http.Request) (*Principal, error) {
	f.maybeCheck()
	secret, err := BearerSecret(r)
	if err != nil {
		return nil, err
	}
	if p := f.lookup(secret); p != nil {
		return p, nil
	}
	return nil, errUnknownToken
}

var errUnknownToken = fmt.Errorf("%w: token not recognized", ErrUnauthenticated)

// lookup returns the principal of secret, or nil.
func (f *TokenFile) lookup(secret string) *Principal {
	// Hashed from a copy on the stack: []byte(secret) would allocate.
	var buf [maxSecret]byte
	sum := sha256.Sum256(buf[:copy(buf[:], secret)])
	t, ok := f.tokens.Load().byHash[sum]
	// The map found the hash; compare it anyway, in constant time, so
	// that no path from a secret to a principal depends on a comparison
	// that stops at the first byte that differs.
	if !ok || subtle.ConstantTimeCompare(t.hash[:], sum[:]) != 1 {
		return nil
	}
	return t.principal
}

// maybeCheck looks at the file if the last look is older than
// CheckEvery. Only one request looks at a time; the others go on with
// the tokens in force.
func (f *TokenFile) maybeCheck() {
	if f.every > 0 {
		now := time.Now().UnixNano()
		if now < f.nextCheck.Load() || !f.mu.TryLock() {
			return
		}
		f.nextCheck.Store(now + int64(f.every))
	} else {
		f.mu.Lock()
	}
	defer f.mu.Unlock()
	f.checkLocked(false)
}

// Reload reads the file again now, whether or not it looks changed, and
// returns why it was refused, if it was: then the tokens in force stay,
// and the refusal is logged at error level.
func (f *TokenFile) Reload() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.checkLocked(true)
}

// checkLocked reads the file again if it changed since it was last read
// or refused, or if force is set. f.mu is held.
func (f *TokenFile) checkLocked(force bool) error {
	fi, statErr := os.Stat(f.path)
	if !force {
		if statErr == nil && (sameVersion(fi, f.loaded) || sameVersion(fi, f.failed)) {
			return nil
		}
		if statErr != nil && f.gone {
			return nil // its absence is logged already
		}
	}
	tokens, read, err := readTokenFile(f.path)
	if err != nil {
		f.failed, f.gone = fi, statErr != nil
		f.log.Error("todo: tokens file refused: the tokens in force are kept", "err", err, "tokens", f.tokens.Load().count)
		return err
	}
	f.tokens.Store(newTokenSet(tokens))
	f.loaded, f.failed, f.gone = read, nil, false
	f.log.Info("todo: tokens file read again", "path", f.path, "tokens", len(tokens))
	return nil
}

// sameVersion reports whether a and b are the same version of one file:
// the same file (device and inode), size, modification time and mode.
func sameVersion(a, b os.FileInfo) bool {
	return a != nil && b != nil && os.SameFile(a, b) &&
		a.Size() == b.Size() && a.ModTime().Equal(b.ModTime()) && a.Mode() == b.Mode()
}
