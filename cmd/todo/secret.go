package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/gotodo/todo/cluster"
)

// `todo cluster-secret FILE` makes a cluster's secret (serve
// -cluster-secret-file): 32 random bytes, in a new file only its owner may
// read. With -nats-password it prints instead the password a NATS client
// gives, as the user "todo", at a node's -nats-addr.

func runClusterSecret(ctx context.Context, std *stdio, args []string) error {
	fs := newFlagSet("cluster-secret")
	natsPassword := fs.Bool("nats-password", false, "")
	rest, err := parseFlags(fs, "cluster-secret", args)
	if errors.Is(err, flag.ErrHelp) {
		clusterSecretHelp(std.stdout)
		return nil
	}
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return usagef("cluster-secret", "cluster-secret wants one FILE, got %q", rest)
	}
	path := rest[0]
	if *natsPassword {
		p, err := cluster.ClientPassword(path)
		if err != nil {
			return flagNamed(err)
		}
		fmt.Fprintln(std.stdout, p)
		return nil
	}
	return writeClusterSecret(path)
}

// writeClusterSecret writes a new secret to path, which must not exist:
// a cluster has one secret, copied to every node, and overwriting it
// would lock out the node it belongs to.
func writeClusterSecret(path string) error {
	secret, err := newTokenSecret()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s exists: a cluster's secret is made once and copied to every node; remove the file to make a new one (docs/security.md says how to change a cluster's secret)", path)
	}
	if err != nil {
		return err
	}
	_, err = io.WriteString(f, secret+"\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("write the cluster secret: %w", err)
	}
	return nil
}

func clusterSecretHelp(w io.Writer) {
	io.WriteString(w, `Usage: todo cluster-secret FILE
       todo cluster-secret -nats-password FILE

Makes a cluster's secret, for todo serve -cluster-secret-file FILE: 32 random
bytes, in base64url, in a new FILE of mode 0600 (it refuses a FILE that
exists). Copy the file to every node of the cluster, kept mode 0600: only
nodes with the same secret join each other.

With -nats-password, prints instead the password of the user "todo" on the
NATS client port of a node started with this secret and -nats-addr, for the
nats command: nats --user todo --password "$(todo cluster-secret
-nats-password FILE)" ... Whoever holds it reads and writes every list.

Exit status: 0 done; 1 failed (FILE exists, or cannot be written or read, or
is refused); 2 a mistake in the command line.
`)
}
