// Package todo is the to-do system of Saša Jurić's Elixir in Action
// (Todo.System, Todo.Cache, Todo.Server, Todo.Database, Todo.Web) as an
// embeddable Go library. A [System] opened on a data directory holds many
// independent to-do lists. [System.ServerProcess] finds a list's server by
// name in a registry [Table] (starting it on first use, like
// Todo.Cache.server_process); each list has one server goroutine that alone
// changes it (like a Todo.Server process); the server loads its [List] on
// its first request, applies changes in batches, and hands each batch to a
// bounded pool of persistence workers (like Todo.Database) that commit
// them to the [Store]: by default an append-only log in the data directory,
// written once and fdatasynced once for every change waiting (group
// commit), checkpointed in the background into one msgpack file per list.
// A server whose mailbox stays empty for [Options.HibernateAfter]
// hibernates, like a BEAM process with hibernate_after: its goroutine ends
// while its list stays loaded and readable, and the next change wakes it.
// Servers idle for [Options.IdleTimeout] stop and leave memory, and at most
// [Options.MaxLoaded] lists stay loaded. Package todohttp's NewHandler
// (import path github.com/gotodo/todo/todohttp) serves the original HTTP
// protocol and a JSON API over a System, or over any [Service].
//
// # Reads and writes
//
// Writes of a list are serialized through its server goroutine: AddEntry,
// UpdateEntry and DeleteEntry put a request in the server's bounded mailbox
// and wait for the answer. Reads of a loaded list (Entries, AllEntries)
// never wait for that goroutine: the server publishes each list's entries,
// date by date, into a shared [Table] after every stored batch, and readers
// take them from there without locks. A reader sees every change that was
// acknowledged before its read began, and never a change that was not
// stored (a batch is published only once it is as durable as asked).
//
// # Watches
//
// Every change of a list raises its revision by one (see [Event]); the
// writes and reads of [System] (AddEntryRev, EntriesPageRev, ...) and
// [Server.EntriesRev] return it. [Server.Watch] yields a list's changes
// after a revision, in order, each once, as they are stored: read a list
// at revision R, watch from R, and nothing is missed or seen twice. A
// list keeps its latest [Options.WatchHistory] changes for its watches;
// a watch from further back is refused with [ErrTooOld], and the client
// reads again, as with etcd's compacted revisions. A watch never slows
// the list's writer: one that falls more than [Options.WatchBuffer]
// changes behind is ended with a [*BehindError] that says where to
// resume. Watching keeps no server awake and loads no list.
// docs/watch.md has the details, and the HTTP form of it.
//
// # Concurrency
//
// [System], [Server] and [Table] are safe for concurrent use by multiple
// goroutines. [List] is a plain value and is not. At most one server runs
// per list name in a System. Every call that can block takes a
// [context.Context] and honours its deadline and cancellation. A panic in a
// request ([Server.UpdateEntry] runs the caller's updater in the list's
// server) fails that request with [ErrCrashed]; the list keeps the state it
// had before, and other lists never notice.
//
// # Durability
//
// A change is acknowledged when it is as durable as [Options.Durability]
// asks: [Fsync] (the default) once its record in the log is fdatasynced,
// [Write] once it is written to the operating system, [Async] as soon as
// it is applied in memory (its record follows within [Options.AsyncDelay]).
// An id is never handed out twice, in any mode, across any crash. A list
// file is always either its old or its new version, never a mix: it is
// written beside, fsynced, renamed over, and the directory fsynced. A
// missing file is an empty list; a damaged file or log record is an error
// wrapping [ErrCorrupt] that says where, never an empty list. A failed
// write (a full disk, say) fails every call waiting on it and is rolled
// back in memory; acknowledged Async changes are retried until they are
// stored, and no Async change is acknowledged until the store works again
// ([ErrStoreFailing]); [System.Health] reports the failure, and comes back
// by itself, without a client's write, when the store can store again
// (see [Prober]). Failures are logged once per fault, not per call
// ([Options.Logger]). A retried change with an idempotency key
// ([WithIdempotencyKey]) is answered as the first time and changes
// nothing. [System.Close] answers every queued request, writes everything
// pending, and stops every goroutine; after it every call returns
// [ErrClosed]. [System.Shutdown] does the same within a deadline, the way
// net/http's Server.Shutdown does: it retries acknowledged changes that
// fail until its ctx ends, where Close gives them up after two attempts,
// and says which lists lost changes.
//
// # Files
//
// Each list lives in one file under the data directory, named by a
// reversible encoding of the list's name and fanned out over 256
// subdirectories, and its changes since its last checkpoint in the log
// (dir/log). All file access goes through an [os.Root]: no list name
// reaches outside the data directory. An exclusive lock on dir/LOCK keeps
// a second process off it ([ErrLocked]). [Check] verifies a directory
// offline and sets damage aside. docs/storage.md has the details.
package todo
