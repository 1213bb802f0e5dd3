package todohttp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"unicode/utf8"
)

// Request bodies, read in full (within HandlerOptions.MaxBody) and then
// decoded strictly. A body that cannot be read is the client's fault, as
// every failure to read from a connection is: it answers 4xx, never 500.

// readBody reads the body of r, at most h.maxBody bytes.
func (h *handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if r.ContentLength > h.maxBody {
		// Refused unread: waiting for a body that is too large anyway
		// would only hold the connection.
		return nil, bodyTooLarge(h.maxBody)
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBody))
	if err != nil {
		return nil, bodyReadError(err)
	}
	return data, nil
}

func bodyTooLarge(limit int64) error {
	return &httpError{http.StatusRequestEntityTooLarge, fmt.Sprintf("body over %d bytes", limit), "body"}
}

// bodyReadError is the answer to a body that could not be read: 413 past
// the cap, 408 when it did not come before the server's read timeout, 400
// when it ended early or its chunked framing is broken.
func bodyReadError(err error) error {
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return bodyTooLarge(tooBig.Limit)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return &httpError{http.StatusRequestTimeout, "body not received before the read timeout", "body"}
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return badRequest("body", "body ended early: shorter than its Content-Length, or its chunks")
	}
	return badRequest("body", "body cannot be read: %v", err)
}

// decodeObject decodes a JSON request body strictly, where encoding/json
// is lenient: it must be one object whose members are named in fields,
// in their exact case (encoding/json matches "TITLE" to "title"), each at
// most once (it keeps the last of two), with a string value or null (which
// counts as absent), no lone UTF-16 surrogate escape (it turns "\ud800"
// into U+FFFD), valid UTF-8, and nothing after the object but white
// space. It returns the members given, by name.
func decodeObject(data []byte, fields ...string) (map[string]string, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, badRequest("body", "empty body: want a JSON object")
	}
	if !utf8.Valid(data) {
		return nil, badRequest("body", "body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil {
		return nil, badJSON(err)
	} else if tok != json.Delim('{') {
		return nil, badRequest("body", "bad JSON body: want an object")
	}
	members := make(map[string]string, len(fields))
	seen := make(map[string]bool, len(fields))
	for dec.More() {
		start := dec.InputOffset()
		tok, err := dec.Token()
		if err != nil {
			return nil, badJSON(err)
		}
		name, _ := tok.(string) // a key is a string, or Token fails
		if loneSurrogate(data[start:dec.InputOffset()]) {
			return nil, badRequest("body", "bad JSON body: a member name holds a lone UTF-16 surrogate escape")
		}
		if !contains(fields, name) {
			for _, f := range fields {
				if strings.EqualFold(f, name) {
					return nil, badRequest("body", "unknown field %q: field names are case-sensitive, did you mean %q?", name, f)
				}
			}
			return nil, badRequest("body", "unknown field %q", name)
		}
		if seen[name] {
			return nil, badRequest(name, "field %q given twice", name)
		}
		seen[name] = true
		start = dec.InputOffset()
		if tok, err = dec.Token(); err != nil {
			return nil, badJSON(err)
		}
		switch v := tok.(type) {
		case nil:
		case string:
			if loneSurrogate(data[start:dec.InputOffset()]) {
				return nil, badRequest(name, "%q holds a lone UTF-16 surrogate escape", name)
			}
			members[name] = v
		default:
			return nil, badRequest(name, "%q must be a string", name)
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, badJSON(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, badRequest("body", "bad JSON body: data after the object")
	}
	return members, nil
}

func badJSON(err error) error {
	if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
		return badRequest("body", "bad JSON body: unexpected end")
	}
	return badRequest("body", "bad JSON body: %v", err)
}

// loneSurrogate reports whether raw, JSON text, holds a \u escape of a
// UTF-16 surrogate that is not one half of a pair: a high one
// (\ud800-\udbff) not followed at once by a low one (\udc00-\udfff), or a
// low one alone. A backslash outside a string is a syntax error the
// decoder reports, so every backslash here starts an escape.
func loneSurrogate(raw []byte) bool {
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		i++ // the escaped character, skipped by the loop unless it is a u
		c, ok := unicodeEscape(raw, i)
		if !ok {
			continue
		}
		i += 4
		switch {
		case 0xDC00 <= c && c <= 0xDFFF:
			return true
		case 0xD800 <= c && c <= 0xDBFF:
			if i+2 >= len(raw) || raw[i+1] != '\\' {
				return true
			}
			low, ok := unicodeEscape(raw, i+2)
			if !ok || low < 0xDC00 || low > 0xDFFF {
				return true
			}
			i += 6
		}
	}
	return false
}

// unicodeEscape reads the escape "uXXXX" at raw[i:] and returns its code.
func unicodeEscape(raw []byte, i int) (rune, bool) {
	if i+5 > len(raw) || raw[i] != 'u' {
		return 0, false
	}
	var c rune
	for _, b := range raw[i+1 : i+5] {
		switch {
		case '0' <= b && b <= '9':
			c = c<<4 | rune(b-'0')
		case 'a' <= b && b <= 'f':
			c = c<<4 | rune(b-'a'+10)
		case 'A' <= b && b <= 'F':
			c = c<<4 | rune(b-'A'+10)
		default:
			return 0, false
		}
	}
	return c, true
}
