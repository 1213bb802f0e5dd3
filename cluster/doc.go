// Package cluster runs the to-do lists of package todo on several nodes
// as one system, on embedded NATS JetStream: the book's cluster of nodes
// (Node.connect, :global, :rpc.multicall), on a production-grade
// distributed engine. The root package todo never imports it, nor NATS.
//
// Each [Node] embeds a NATS server routed to its peers (or connects to an
// existing NATS cluster), runs a local todo.System over a replicated
// store, and implements todo.Service (a todo.Watcher): a request for a list goes to the
// node that owns the list, locally or forwarded over NATS request/reply.
// A list nobody owns is claimed by the node that rendezvous hashing over
// the live nodes prefers; when a node joins or leaves, the lists whose
// preferred node changed are handed off. docs/cluster.md is the user's
// guide: running three nodes, the flags, what happens when a node dies.
//
// # Durability
//
// A change is acknowledged once a quorum of the 3 servers storing its
// list has fsynced it (JetStream with SyncAlways). A list is a log of
// deltas on one subject of the TODO_LISTS stream, compacted by snapshots;
// every write is fenced by the list's expected last sequence, so a node
// that lost a list cannot overwrite its successor's writes. A Commit that
// reports an error has not stored the change, and never will: a write
// whose acknowledgement was lost is settled before its caller is
// answered (see the package's settle.go).
//
// # Watches
//
// A Node is a todo.Watcher: its writes and reads say the list's revision,
// and [Node.Watch] follows a list from the list's log in the stream, where
// each commit is stored with its events, whichever node serves the list:
// a watch on any node goes on, with no revision skipped or repeated,
// across a hand-off and the death of the serving node (see watch.go).
//
// # Ownership
//
// A node owns lists through records {node, epoch} in a key-value bucket;
// its epoch lives while it renews one liveness record (one replicated
// write per node per LeaseTTL/4, however many lists). A node serves its
// lists only while its lease holds; the others take them over only after
// the lease has run out, plus the clock skew allowed, and after declaring
// the owner dead (deleting its liveness record by compare-and-set). A
// node whose lease lapsed keeps its lists until a renewal, by
// compare-and-set on the same record, tells it whether it was declared
// dead: only then does it let go of them.
//
// # Who may join
//
// Nodes with the same secret (Options.SecretFile, the Erlang cookie's
// role) route to each other; a server without it gets no route. Routes
// authenticate with a password derived from the secret, through
// nats-server's own route authorization, and with Options.TLSCAFile,
// TLSCertFile and TLSKeyFile they are TLS, certificates verified both
// ways against the cluster's CA. The embedded server's client port takes
// only the node's in-process connection, or, at Options.ClientAddr, the
// user "todo" with the password [ClientPassword] derives. Start refuses a
// node whose ports others may reach without a secret, unless
// Options.Insecure. docs/security.md has the details.
//
// # Concurrency
//
// A Node is safe for concurrent use by multiple goroutines. Close joins
// every goroutine the node started, its embedded server's included.
package cluster
