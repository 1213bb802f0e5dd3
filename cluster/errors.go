package cluster

import (
	"errors"
	"fmt"

	"github.com/gotodo/todo"
)

// Sentinel errors. Match them with [errors.Is]. Both wrap
// [todo.ErrUnavailable], so a handler answers them 503 with Retry-After:
// nothing was changed, and the call may be retried.
var (
	// ErrNotOwner is returned when a node found that it no longer owns a
	// list it was serving: another node wrote it (the write fence failed),
	// or this node's lease on its lists lapsed. The node has stopped
	// serving the list; the next call finds its owner. It is
	// todo.ErrListMoved, which the store sets on the changes it refuses
	// for that reason: the node's System does not take them for a store
	// that fails (with Async durability, that would refuse every write
	// of every list), and does not retry them.
	ErrNotOwner = todo.ErrListMoved

	// ErrNotReady is returned when the node cannot serve yet: its
	// JetStream has no quorum (it waits for its peers), or it is leaving.
	ErrNotReady = fmt.Errorf("%w: the cluster has no quorum", todo.ErrUnavailable)
)

// errInvalidOptions wraps todo.ErrInvalidOptions for Start's refusals.
func errInvalidOptions(format string, args ...any) error {
	return fmt.Errorf("%w: cluster: %s", todo.ErrInvalidOptions, fmt.Sprintf(format, args...))
}

var errClosed = todo.ErrClosed

// isRetryable reports whether err says that a call changed nothing and
// may be sent again, to the same or another node.
func isRetryable(err error) bool {
	return errors.Is(err, todo.ErrUnavailable)
}
