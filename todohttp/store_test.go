package todohttp_test

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/gotodo/todo"
)

// memStore is a todo.Store that keeps lists in memory, so that tests and
// benchmarks of the handler run over a real System (servers, cache,
// table, pool) without the cost of files.
type memStore struct {
	mu    sync.Mutex // guards lists
	lists map[string]todo.ListState
}

func (m *memStore) Load(_ context.Context, name string) (todo.ListState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lists[name], nil // a ListState is never written to: sharing it is safe
}

func (m *memStore) Commit(_ context.Context, batch []todo.Change, _ bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range batch {
		m.lists[batch[i].List] = batch[i].State
	}
}

func (m *memStore) Lists(context.Context) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	names := make([]string, 0, len(m.lists))
	for name := range m.lists {
		names = append(names, name)
	}
	slices.Sort(names)
	return names, nil
}

func (m *memStore) Close() error { return nil }

// memorySystem opens a System over a memStore, closed when the test ends.
// opts may be nil.
func memorySystem(tb testing.TB, opts *todo.Options) *todo.System {
	tb.Helper()
	sys, err := todo.OpenStore(&memStore{lists: make(map[string]todo.ListState)}, opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := sys.Close(); err != nil {
			tb.Error(err)
		}
	})
	return sys
}
