package cluster_test

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/gotodo/todo"
	"github.com/gotodo/todo/cluster"
)

func TestCodec_RoundTrip(t *testing.T) {
	// The keyed operations of each kind of request: an add, an update, a
	// delete (see todo.ErrKeyReused).
	keyed := []todo.Op{
		{Entry: todo.Entry{ID: 1, Date: day, Title: "Dentist"}, Key: "add-1"},
		{Entry: todo.Entry{ID: 1, Date: day, Title: "Dentist at 10"}, Update: true, Key: "upd-1"},
		{Entry: todo.Entry{ID: 2}, Delete: true, Key: "del-1"},
	}
	st := todo.ListState{LastID: 9, Revision: 14, Entries: []todo.Entry{
		{ID: 1, Date: day, Title: "Dentist"},
		{ID: 7, Date: todo.Date{Year: 9999, Month: 12, Day: 31}, Title: strings.Repeat("ü", 300)},
	}, Keys: keyed}
	events := []todo.Event{
		{Kind: todo.Added, Entry: todo.Entry{ID: 7, Date: day, Title: "x"}, Revision: 12},
		{Kind: todo.Updated, Entry: todo.Entry{ID: 7, Date: todo.Date{Year: 9999, Month: 12, Day: 31}, Title: strings.Repeat("ü", 300)}, Revision: 13},
		{Kind: todo.Deleted, Entry: todo.Entry{ID: 2, Date: day, Title: "was"}, Revision: 14},
	}
	got, gotEvents, err := cluster.DecodeSnapshot(cluster.EncodeSnapshot(st, events))
	if err != nil || !reflect.DeepEqual(got, st) || !reflect.DeepEqual(gotEvents, events) {
		t.Fatalf("snapshot: %+v, %+v, %v", got, gotEvents, err)
	}
	ops := append([]todo.Op{{Entry: todo.Entry{ID: 3, Date: day, Title: "x"}}, {Entry: todo.Entry{ID: 1}, Delete: true}}, keyed...)
	want := cluster.Delta{Ops: ops, LastID: 12, Rev: 14, Events: events}
	if got, err := cluster.DecodeDelta(cluster.EncodeDelta(want)); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("delta: %+v %v", got, err)
	}
	if got, events, err := cluster.DecodeSnapshot(cluster.EncodeSnapshot(todo.ListState{}, nil)); err != nil || got.LastID != 0 || len(got.Entries) != 0 || events != nil {
		t.Fatalf("empty: %+v %v %v", got, events, err)
	}
}

// TestCodec_Version2: records written before revisions and events are
// read, at revision 0 and with no events.
func TestCodec_Version2(t *testing.T) {
	// A snapshot [2, lastID 3, 1 entry {1, 2013-12-19, "a"}, no keys] and a
	// delta [2, lastID 4, 1 op: put {4, 2013-12-19, "b"}].
	snap := []byte{2, 3, 1, 1, 0xdd, 0x0f, 12, 19, 1, 'a', 0}
	st, events, err := cluster.DecodeSnapshot(snap)
	if err != nil || st.LastID != 3 || st.Revision != 0 || len(st.Entries) != 1 || events != nil {
		t.Fatalf("a snapshot of version 2: %+v %v %v", st, events, err)
	}
	dl, err := cluster.DecodeDelta([]byte{2, 4, 1, 0, 4, 0xdd, 0x0f, 12, 19, 1, 'b'})
	if err != nil || dl.LastID != 4 || dl.Rev != 0 || len(dl.Ops) != 1 || dl.Events != nil {
		t.Fatalf("a delta of version 2: %+v %v", dl, err)
	}
}

// Every truncation and every garbage byte is refused with an error, never
// a panic or a huge allocation.
func TestCodec_RefusesBadRecords(t *testing.T) {
	good := cluster.EncodeSnapshot(todo.ListState{LastID: 2, Revision: 3, Entries: []todo.Entry{{ID: 1, Date: day, Title: "a"}, {ID: 2, Date: day, Title: "b"}}},
		[]todo.Event{{Kind: todo.Added, Entry: todo.Entry{ID: 2, Date: day, Title: "b"}, Revision: 3}})
	for i := range len(good) {
		if _, _, err := cluster.DecodeSnapshot(good[:i]); err == nil {
			t.Errorf("truncated at %d: no error", i)
		}
	}
	bad := map[string][]byte{
		"trailing":       append(slices.Clone(good), 0),
		"version":        append([]byte{9}, good[1:]...),
		"huge count":     {1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"ids not rising": cluster.EncodeSnapshot(todo.ListState{Entries: []todo.Entry{{ID: 2}, {ID: 1}}}, nil),
		"event kind 0":   cluster.EncodeSnapshot(todo.ListState{Revision: 2}, []todo.Event{{Revision: 2}}),
		"events not in order": cluster.EncodeSnapshot(todo.ListState{Revision: 4},
			[]todo.Event{{Kind: todo.Added, Revision: 2}, {Kind: todo.Added, Revision: 4}}),
		"an event after the revision": cluster.EncodeSnapshot(todo.ListState{Revision: 2}, []todo.Event{{Kind: todo.Added, Revision: 3}}),
	}
	for name, b := range bad {
		if _, _, err := cluster.DecodeSnapshot(b); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := cluster.DecodeDelta([]byte{1, 0, 1, 7}); err == nil {
		t.Error("delta with an unknown operation: no error")
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		b := make([]byte, r.IntN(40))
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		cluster.DecodeSnapshot(b)
		cluster.DecodeDelta(b)
		cluster.DecodeRPC(b)
	}
}

// Replay gives what applying the operations one by one to a List gives.
func TestReplay_MatchesList(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for round := range 200 {
		var entries []todo.Entry
		for id := 1; id <= r.IntN(30); id++ {
			if r.IntN(3) > 0 {
				entries = append(entries, todo.Entry{ID: id, Date: day, Title: fmt.Sprint("s", id)})
			}
		}
		want := make(map[int]todo.Entry)
		for _, e := range entries {
			want[e.ID] = e
		}
		var ops []todo.Op
		for range r.IntN(40) {
			id := 1 + r.IntN(45)
			if r.IntN(3) == 0 {
				ops = append(ops, todo.Op{Entry: todo.Entry{ID: id}, Delete: true})
				delete(want, id)
				continue
			}
			e := todo.Entry{ID: id, Date: day, Title: fmt.Sprint("o", round, "-", id, "-", r.IntN(9))}
			ops = append(ops, todo.Op{Entry: e})
			want[id] = e
		}
		got := cluster.Replay(slices.Clone(entries), ops)
		var wantList []todo.Entry
		for _, e := range want {
			wantList = append(wantList, e)
		}
		slices.SortFunc(wantList, func(a, b todo.Entry) int { return a.ID - b.ID })
		if !reflect.DeepEqual(got, wantList) && !(len(got) == 0 && len(wantList) == 0) {
			t.Fatalf("round %d: replay gave %v, want %v", round, got, wantList)
		}
	}
}

func TestNames_RoundTrip(t *testing.T) {
	for _, name := range []string{"Bob's list", "..", "x*", "a b", ">", "ü", strings.Repeat("z", 255)} {
		tok := cluster.EncodeName(name)
		if strings.ContainsAny(tok, ".*> \t") {
			t.Errorf("%q encodes to %q, not a subject token", name, tok)
		}
		if back, err := cluster.DecodeName(tok); err != nil || back != name {
			t.Errorf("%q: back %q, %v", name, back, err)
		}
	}
	if _, err := cluster.DecodeName("a.b"); err == nil {
		t.Error("a bad token decodes")
	}
}

// Rendezvous hashing: a 4th node takes about a quarter of the lists, all
// from the others, and removing it puts them back where they were.
func TestPreferred_MovesAQuarter(t *testing.T) {
	three, four := []string{"n1", "n2", "n3"}, []string{"n1", "n2", "n3", "n4"}
	moved := 0
	for i := range 10000 {
		l := fmt.Sprint("list-", i)
		a, b := cluster.Preferred(l, three), cluster.Preferred(l, four)
		if a != b {
			moved++
			if b != "n4" {
				t.Fatalf("%s moved from %s to %s, not to the new node", l, a, b)
			}
		}
	}
	if moved < 2250 || moved > 2750 {
		t.Fatalf("%d of 10000 lists moved, want about 2500", moved)
	}
}
