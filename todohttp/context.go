package todohttp

import (
	"context"
	"sync"
	"time"
)

// requestContext is the ctx of one request: what context.WithTimeout
// returns, made when it is first needed. The timer and the link to the
// parent that WithTimeout makes cost about five allocations, while most
// requests never look at their ctx: a read of a loaded list does not; only
// a change, or a read of a list that must load, waits, and so asks for
// Done or Err. Deadline is known from the start; Done, Err and Value make
// the real context, once, and use it. It is safe for concurrent use, as a
// context must be: a list's server asks a queued request's Err.
type requestContext struct {
	parent   context.Context
	deadline time.Time

	mu     sync.Mutex // guards the fields below
	ctx    context.Context
	cancel context.CancelFunc
	ended  bool // end was called
}

// newContext returns the context of a request under parent, ending at the
// handler's timeout or at parent's deadline, whichever comes first.
func (h *handler) newContext(parent context.Context) *requestContext {
	d := time.Now().Add(h.timeout)
	if pd, ok := parent.Deadline(); ok && pd.Before(d) {
		d = pd // as WithDeadline does, the earlier deadline holds
	}
	return &requestContext{parent: parent, deadline: d}
}

// real returns the real context, made on the first call. One made after
// end (nothing should ask, the request being over) is canceled at once.
func (c *requestContext) real() context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctx == nil {
		c.ctx, c.cancel = context.WithDeadline(c.parent, c.deadline)
		if c.ended {
			c.cancel()
		}
	}
	return c.ctx
}

// end is the cancel of WithTimeout, called when the request is answered.
func (c *requestContext) end() {
	c.mu.Lock()
	c.ended = true
	cancel := c.cancel
	c.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

func (c *requestContext) Deadline() (time.Time, bool) { return c.deadline, true }
func (c *requestContext) Done() <-chan struct{}       { return c.real().Done() }
func (c *requestContext) Err() error                  { return c.real().Err() }
func (c *requestContext) Value(key any) any           { return c.real().Value(key) }
