package todo

import (
	"context"
	"sort"
)

// memStore keeps lists in memory, so that benchmarks and tests of the
// servers and the cache measure those layers alone.
type memStore struct {
	lists *Table[string, snapshot]
}

func (m *memStore) load(name string) (*List, error) {
	s, _ := m.lists.Lookup(name)
	return listFromSnapshot(s), nil
}

func (m *memStore) save(name string, s snapshot) error {
	m.lists.Insert(name, s)
	return nil
}

func (m *memStore) names() ([]string, error) {
	var names []string
	for n := range m.lists.All() {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

func (m *memStore) close() error { return nil }

// OpenInMemory opens a System whose lists are kept in memory instead of
// files; everything else (servers, cache, table, pool) is the real thing.
func OpenInMemory(opts *Options) (*System, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	return newSystem(&memStore{lists: NewTable[string, snapshot]()}, o), nil
}

// FileName exposes the encoding of list names into file paths.
func FileName(name string) string { return fileName(name) }

// NameFromFile exposes the inverse of FileName.
func NameFromFile(rel string) (string, bool) { return nameFromFile(rel) }

// EntriesViaServer reads the entries of a date by a request and reply
// through the list's server goroutine, bypassing the table: the baseline
// the table read path is measured against.
func EntriesViaServer(ctx context.Context, s *Server, d Date) ([]Entry, error) {
	c := s.newCall(ctx, opEntries)
	c.entry.Date = d
	if err := s.send(c); err != nil {
		return nil, err
	}
	entries, err := c.entries, c.err
	s.sys.freeCall(c)
	return entries, err
}
