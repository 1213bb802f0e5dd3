package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/gotodo/todo/todohttp"
)

// `todo token` keeps a tokens file (see todohttp.Token): add makes a new
// token and prints its secret once, rm revokes one, ls shows them. A
// server serving the file (-tokens) takes each change within a second,
// without a restart.

// secretBytes is how much randomness a secret holds.
const secretBytes = 32

func runToken(ctx context.Context, std *stdio, args []string) error {
	if len(args) == 0 {
		return usagef("token", "token wants add, rm or ls")
	}
	switch args[0] {
	case "add":
		return runTokenAdd(std, args[1:])
	case "rm":
		return runTokenRemove(std, args[1:])
	case "ls":
		return runTokenList(std, args[1:])
	case "help", "-h", "-help", "--help":
		tokenHelp(std.stdout)
		return nil
	}
	return usagef("token", "unknown token command %q: want add, rm or ls", args[0])
}

func tokenHelp(w io.Writer) {
	io.WriteString(w, `Usage: todo token add NAME -rights RIGHTS [-lists PATTERNS] [-tokens FILE]
       todo token rm NAME [-tokens FILE]
       todo token ls [-tokens FILE]

Keeps a tokens file, which todo serve -tokens FILE reads: one token a line,
its name, the SHA-256 of its secret (never the secret), its rights and the
lists it may touch. A server takes a change within a second, or at once on
SIGHUP: a token removed is refused from then on, without a restart.

  add  makes a token: a secret of 32 random bytes, printed once on stdout,
       which the file does not keep; creates FILE (mode 0600) if need be
  rm   removes the token NAME: its secret is refused from then on
  ls   prints each token's name, rights and lists, one a line, tab-separated

Flags:
  -tokens FILE     the tokens file [TODO_TOKENS]
  -rights RIGHTS   read, write, metrics, admin, comma-separated: write includes
                   read, admin every right (/debug/vars), metrics is /metrics
  -lists PATTERNS  the lists it may read or write, comma-separated: a name
                   (bob), a prefix and * (team-*), or * for every list; %XX
                   escapes a byte (%2A a * in a name, %20 a space, %2C a comma)

Exit status: 0 done; 1 failed (the file cannot be read or written, or is
refused, or has no such token); 2 a mistake in the command line.
`)
}

// tokenFlags parses the flags of a token command and returns the
// positional arguments, of which there must be want.
func tokenFlags(std *stdio, sub string, args []string, want int, fs *flag.FlagSet) (path string, rest []string, err error) {
	fs.StringVar(&path, "tokens", std.getenv("TODO_TOKENS"), "")
	rest, err = parseFlags(fs, "token", args)
	if err != nil {
		return "", nil, err
	}
	switch {
	case len(rest) != want && want == 0:
		return "", nil, usagef("token", "token %s takes no arguments, got %q", sub, rest)
	case len(rest) != want:
		return "", nil, usagef("token", "token %s wants a token's NAME, got %q", sub, rest)
	case path == "":
		return "", nil, usagef("token", "no tokens file: give -tokens FILE or set TODO_TOKENS")
	}
	return path, rest, nil
}

func runTokenAdd(std *stdio, args []string) error {
	fs := newFlagSet("token add")
	rightsFlag := fs.String("rights", "", "")
	listsFlag := fs.String("lists", "", "")
	path, rest, err := tokenFlags(std, "add", args, 1, fs)
	if errors.Is(err, flag.ErrHelp) {
		tokenHelp(std.stdout)
		return nil
	}
	if err != nil {
		return err
	}
	tok, err := newTokenOf(rest[0], *rightsFlag, *listsFlag)
	if err != nil {
		return err
	}
	secret, err := newTokenSecret()
	if err != nil {
		return err
	}
	tok.Hash = sha256.Sum256([]byte(secret))
	err = editTokens(path, func(data []byte, tokens []todohttp.Token) ([]byte, error) {
		for _, t := range tokens {
			if t.Name == tok.Name {
				return nil, fmt.Errorf("token %q is already in %s (line %d): remove it first with todo token rm %s", tok.Name, path, t.Line, tok.Name)
			}
		}
		if len(data) > 0 && data[len(data)-1] != '\n' {
			data = append(data, '\n')
		}
		return append(data, tok.String()+"\n"...), nil
	})
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintln(std.stdout, secret); err != nil {
		return err
	}
	fmt.Fprintf(std.stderr, "todo: token %s added to %s; its secret, printed above, is kept nowhere: store it now\n", tok.Name, path)
	return nil
}

// newTokenOf is the token NAME -rights -lists ask for, without its hash:
// a token of read, write or admin rights must name its lists.
func newTokenOf(name, rights, lists string) (todohttp.Token, error) {
	var tok todohttp.Token
	if err := todohttp.ValidTokenName(name); err != nil {
		return tok, usagef("token", "%v", err)
	}
	tok.Name = name
	if rights == "" {
		return tok, usagef("token", "-rights: give read, write, metrics or admin, comma-separated")
	}
	var err error
	if tok.Rights, err = todohttp.ParseRights(rights); err != nil {
		return tok, usagef("token", "-rights %q: %v", rights, err)
	}
	if lists != "" {
		for s := range strings.SplitSeq(lists, ",") {
			p, err := todohttp.ParseListPattern(s)
			if err != nil {
				return tok, usagef("token", "-lists: %v", err)
			}
			tok.Lists = append(tok.Lists, p)
		}
	}
	if tok.Lists == nil && tok.Rights&(todohttp.RightRead|todohttp.RightWrite) != 0 {
		return tok, usagef("token", "-lists: a token with the %s right needs the lists it may touch (* for every list)", tok.Rights)
	}
	return tok, nil
}

// newTokenSecret returns a new secret: 32 bytes from crypto/rand, in
// unpadded base64url (43 characters, all of them a bearer token's).
func newTokenSecret() (string, error) {
	b := make([]byte, secretBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("no randomness for a secret: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func runTokenRemove(std *stdio, args []string) error {
	fs := newFlagSet("token rm")
	path, rest, err := tokenFlags(std, "rm", args, 1, fs)
	if errors.Is(err, flag.ErrHelp) {
		tokenHelp(std.stdout)
		return nil
	}
	if err != nil {
		return err
	}
	name := rest[0]
	return editTokens(path, func(data []byte, tokens []todohttp.Token) ([]byte, error) {
		for _, t := range tokens {
			if t.Name == name {
				return removeLine(data, t.Line), nil
			}
		}
		return nil, fmt.Errorf("no token %q in %s", name, path)
	})
}

// removeLine returns data without its line n (counted from 1).
func removeLine(data []byte, n int) []byte {
	var out []byte
	i := 0
	for line := range strings.Lines(string(data)) {
		if i++; i != n {
			out = append(out, line...)
		}
	}
	return out
}

func runTokenList(std *stdio, args []string) error {
	fs := newFlagSet("token ls")
	path, _, err := tokenFlags(std, "ls", args, 0, fs)
	if errors.Is(err, flag.ErrHelp) {
		tokenHelp(std.stdout)
		return nil
	}
	if err != nil {
		return err
	}
	tokens, err := todohttp.ReadTokenFile(path)
	if err != nil {
		return err
	}
	var b strings.Builder
	for _, t := range tokens {
		line := t.String() // NAME HASH RIGHTS LISTS: the hash is not shown
		f := strings.Fields(line)
		fmt.Fprintf(&b, "%s\t%s\t%s\n", f[0], f[2], f[3])
	}
	_, err = io.WriteString(std.stdout, b.String())
	return err
}

// editTokens changes the tokens file at path with edit, which is given
// its contents and tokens (none for a file that does not exist yet) and
// returns the new contents. The file is read and replaced under a lock on
// its directory, so that two edits at once do not lose one, and replaced
// whole (a new file, synced, renamed over it), so that a server reading it
// meanwhile sees the old file or the new one, never half of one. A new
// file is made with mode 0600; a file a server would refuse is refused.
func editTokens(path string, edit func(data []byte, tokens []todohttp.Token) ([]byte, error)) error {
	dir := filepath.Dir(path)
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("tokens file %s: %w", path, err)
	}
	defer d.Close()
	if err := syscall.Flock(int(d.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("tokens file %s: locking its directory: %w", path, err)
	}
	defer syscall.Flock(int(d.Fd()), syscall.LOCK_UN)

	var data []byte
	var tokens []todohttp.Token
	if _, err := os.Lstat(path); err == nil {
		if tokens, err = todohttp.ReadTokenFile(path); err != nil {
			return err
		}
		if data, err = os.ReadFile(path); err != nil {
			return err
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("tokens file %s: %w", path, err)
	}
	out, err := edit(data, tokens)
	if err != nil {
		return err
	}
	if _, err := todohttp.ParseTokens(out); err != nil {
		return fmt.Errorf("the edit would make a tokens file a server refuses: %w", err)
	}
	return replaceTokens(path, d, out)
}

// replaceTokens writes data to a new file beside path, mode 0600, syncs
// it, renames it over path and syncs the directory d.
func replaceTokens(path string, d *os.File, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	err = f.Chmod(0o600)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("tokens file %s: %w", path, err)
	}
	if err := d.Sync(); err != nil {
		return fmt.Errorf("tokens file %s: syncing its directory: %w", path, err)
	}
	return nil
}
