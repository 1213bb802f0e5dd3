package todo_test

import (
	"context"
	"sync"
	"testing"

	"github.com/gotodo/todo"
)

// countingStore is a Store in memory that reports counters of its own
// through StatsReporter: how many changes it committed, as LogBytes.
type countingStore struct {
	mu      sync.Mutex
	lists   map[string]todo.ListState
	changes int64
}

func (s *countingStore) Load(_ context.Context, list string) (todo.ListState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lists[list], nil
}

func (s *countingStore) Commit(_ context.Context, batch []todo.Change, _ bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range batch {
		s.lists[batch[i].List] = batch[i].State
		s.changes++
	}
}

func (s *countingStore) Lists(context.Context) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	for n := range s.lists {
		names = append(names, n)
	}
	return names, nil
}

func (s *countingStore) Close() error { return nil }

func (s *countingStore) StoreStats() todo.StoreStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return todo.StoreStats{LogBytes: s.changes, Checkpoints: 7}
}

// storeStats returns the store's counters of sys.Stats().
func storeStats(sys *todo.System) todo.StoreStats {
	st := sys.Stats()
	return todo.StoreStats{FilesWritten: st.FilesWritten, Checkpoints: st.Checkpoints, LogSegments: st.LogSegments, LogBytes: st.LogBytes}
}

// TestStats_StoreStats checks that a Store's own counters reach
// System.Stats through StatsReporter, from a user's store and from the
// data directory's, and that a store without them reports zeros.
func TestStats_StoreStats(t *testing.T) {
	ctx := context.Background()
	st := &countingStore{lists: make(map[string]todo.ListState)}
	sys, err := todo.OpenStore(st, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := sys.AddEntry(ctx, "bob", todo.Entry{Date: persistDay, Title: "Dentist"}); err != nil {
			t.Fatal(err)
		}
	}
	if got := storeStats(sys); got != (todo.StoreStats{LogBytes: 3, Checkpoints: 7}) {
		t.Errorf("a user's store: Stats().StoreStats = %+v, want its own counters, 3 changes and 7", got)
	}
	persistClose(t, sys)

	sys, err = todo.OpenInMemory(nil) // a Store without StatsReporter
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sys.AddEntry(ctx, "bob", todo.Entry{Date: persistDay, Title: "Dentist"}); err != nil {
		t.Fatal(err)
	}
	if got := storeStats(sys); got != (todo.StoreStats{}) {
		t.Errorf("a store that reports nothing: %+v, want zeros", got)
	}
	persistClose(t, sys)

	sys = persistOpen(t, t.TempDir(), nil)
	persistAdd(t, sys, "bob", "Dentist")
	if got := storeStats(sys); got.LogSegments != 1 || got.LogBytes <= 16 || got.Checkpoints != 0 {
		t.Errorf("the data directory's store after an add: %+v, want 1 segment holding a record, no checkpoint", got)
	}
	if err := sys.Unload(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	todo.WaitCheckpoints(sys)
	if got := storeStats(sys); got.Checkpoints != 1 || got.FilesWritten != 1 {
		t.Errorf("after bob left memory: %+v, want its checkpoint and its file counted", got)
	}
}
