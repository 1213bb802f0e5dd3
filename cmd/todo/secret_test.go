package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRun_ClusterSecret: `todo cluster-secret FILE` makes a secret only
// its owner may read, which a node takes, and never overwrites one;
// -nats-password prints the password docs/security.md derives from it.
func TestRun_ClusterSecret(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := clusterSecret(t, dir)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	secret := strings.TrimSuffix(string(data), "\n")
	if fi.Mode().Perm() != 0o600 || len(secret) != 43 || strings.ContainsAny(secret, " \n+/=") {
		t.Errorf("the secret file: mode %04o, %q: want 0600 and 43 characters of base64url and a newline", fi.Mode().Perm(), data)
	}
	if other := clusterSecret(t, t.TempDir()); mustRead(t, other) == string(data) {
		t.Error("two secrets made are the same")
	}

	code, stdout, stderr := runMain(t, nil, "cluster-secret", path)
	if code != exitFailed || stdout != "" || !strings.Contains(stderr, path+" exists: a cluster's secret is made once and copied to every node") {
		t.Errorf("over an existing file: exit %d, %q, %q", code, stdout, stderr)
	}
	if mustRead(t, path) != string(data) {
		t.Error("the existing secret was overwritten")
	}

	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("todo nats client v1"))
	code, stdout, stderr = runMain(t, nil, "cluster-secret", "-nats-password", path)
	if want := hex.EncodeToString(m.Sum(nil)) + "\n"; code != exitOK || stdout != want || stderr != "" {
		t.Errorf("-nats-password: exit %d, %q, %q; want %q", code, stdout, stderr, want)
	}
	os.Chmod(path, 0o644)
	code, _, stderr = runMain(t, nil, "cluster-secret", "-nats-password", path)
	if want := "todo: -cluster-secret-file " + path + ": mode 0644 lets group or others read or write it, and whoever reads it joins the cluster: chmod 600 " + path + "\n"; code != exitFailed || stderr != want {
		t.Errorf("-nats-password of a file others may read: exit %d, %q; want %q", code, stderr, want)
	}

	for _, args := range [][]string{{"cluster-secret"}, {"cluster-secret", "a", "b"}, {"cluster-secret", "-bogus", filepath.Join(dir, "x")}} {
		if code, _, stderr := runMain(t, nil, args...); code != exitUsage || !strings.Contains(stderr, "Run 'todo help cluster-secret' for usage.") {
			t.Errorf("%q: exit %d, %q", args, code, stderr)
		}
	}
	if code, stdout, _ := runMain(t, nil, "help", "cluster-secret"); code != exitOK || !strings.Contains(stdout, "Usage: todo cluster-secret FILE") {
		t.Errorf("help cluster-secret: %d %q", code, stdout)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
