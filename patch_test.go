package todo_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/gotodo/todo"
)

// TestSystem_UpdateEntry_Patch applies patches through the Service
// method of a System over a data directory: the date alone (the entry
// moves to its new day), the title alone, both; refuses a patch of
// nothing, an unknown id, an invalid date or title, and a bad list name,
// each leaving the list as it was; and finds every applied patch again
// after a reopen.
func TestSystem_UpdateEntry_Patch(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	sys := persistOpen(t, dir, nil)
	ctx := context.Background()
	dentist, err := sys.AddEntry(ctx, "bob", todo.Entry{Date: day19, Title: "Dentist"})
	if err != nil {
		t.Fatal(err)
	}
	movies, err := sys.AddEntry(ctx, "bob", todo.Entry{Date: day19, Title: "Movies"})
	if err != nil {
		t.Fatal(err)
	}
	day21 := todo.Date{Year: 2013, Month: 12, Day: 21}
	for _, c := range []struct {
		name  string
		id    int
		patch todo.Patch
		want  todo.Entry
	}{
		{"date only", dentist.ID, todo.Patch{Date: day20}, todo.Entry{ID: dentist.ID, Date: day20, Title: "Dentist"}},
		{"title only", dentist.ID, todo.Patch{Title: "Dentist at 10"}, todo.Entry{ID: dentist.ID, Date: day20, Title: "Dentist at 10"}},
		{"both", movies.ID, todo.Patch{Date: day21, Title: "Movies\tlate"}, todo.Entry{ID: movies.ID, Date: day21, Title: "Movies\tlate"}},
		{"both, as they are", movies.ID, todo.Patch{Date: day21, Title: "Movies\tlate"}, todo.Entry{ID: movies.ID, Date: day21, Title: "Movies\tlate"}},
	} {
		got, err := sys.UpdateEntry(ctx, "bob", c.id, c.patch)
		if err != nil || got != c.want {
			t.Errorf("%s: %v, %v; want %v", c.name, got, err, c.want)
		}
	}
	want := []todo.Entry{{ID: dentist.ID, Date: day20, Title: "Dentist at 10"}, {ID: movies.ID, Date: day21, Title: "Movies\tlate"}}
	s := sys.ServerProcess("bob")
	if got := mustAllEntries(t, s); !slices.Equal(got, want) {
		t.Fatalf("after the patches: %v, want %v", got, want)
	}
	for d, w := range map[todo.Date][]todo.Entry{day19: nil, day20: want[:1], day21: want[1:]} {
		if got, err := s.Entries(ctx, d); err != nil || !slices.Equal(got, w) {
			t.Errorf("Entries(%v): %v, %v; want %v", d, got, err, w)
		}
	}

	for _, c := range []struct {
		name  string
		list  string
		id    int
		patch todo.Patch
		err   error
	}{
		{"nothing", "bob", dentist.ID, todo.Patch{}, todo.ErrEmptyPatch},
		{"an unknown id", "bob", 99, todo.Patch{Title: "x"}, todo.ErrEntryNotFound},
		{"a date that is not one", "bob", dentist.ID, todo.Patch{Date: todo.Date{Year: 2013, Month: 2, Day: 30}}, todo.ErrInvalidDate},
		{"a date without a year", "bob", dentist.ID, todo.Patch{Date: todo.Date{Month: 1, Day: 1}, Title: "x"}, todo.ErrInvalidDate},
		{"a title of two lines", "bob", dentist.ID, todo.Patch{Title: "two\nlines"}, todo.ErrInvalidTitle},
		{"a title not UTF-8", "bob", dentist.ID, todo.Patch{Date: day19, Title: "\xff"}, todo.ErrInvalidTitle},
		{"a bad list name", "", dentist.ID, todo.Patch{Title: "x"}, todo.ErrInvalidName},
	} {
		if got, err := sys.UpdateEntry(ctx, c.list, c.id, c.patch); !errors.Is(err, c.err) || got != (todo.Entry{}) {
			t.Errorf("%s: %v, %v; want %v", c.name, got, err, c.err)
		}
	}
	if got := mustAllEntries(t, s); !slices.Equal(got, want) {
		t.Fatalf("after the refused patches: %v, want %v unchanged", got, want)
	}

	persistClose(t, sys)
	if _, err := sys.UpdateEntry(ctx, "bob", dentist.ID, todo.Patch{Title: "x"}); !errors.Is(err, todo.ErrClosed) {
		t.Errorf("after Close: %v, want ErrClosed", err)
	}
	sys = persistOpen(t, dir, nil)
	if got := mustAllEntries(t, sys.ServerProcess("bob")); !slices.Equal(got, want) {
		t.Fatalf("after a reopen: %v, want %v", got, want)
	}
}

// TestSystem_UpdateEntry_PatchKeyed retries a keyed patch: it is answered
// as the first time and changes nothing, even with another patch, while
// the key of an add is refused for a patch (ErrKeyReused).
func TestSystem_UpdateEntry_PatchKeyed(t *testing.T) {
	sys := openMemSystem(t, nil)
	ctx := context.Background()
	e, err := sys.AddEntry(keyed("add-1"), "bob", todo.Entry{Date: day19, Title: "Dentist"})
	if err != nil {
		t.Fatal(err)
	}
	first, err := sys.UpdateEntry(keyed("upd-1"), "bob", e.ID, todo.Patch{Title: "Dentist at 10"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sys.UpdateEntry(ctx, "bob", e.ID, todo.Patch{Date: day20}); err != nil {
		t.Fatal(err)
	}
	again, err := sys.UpdateEntry(keyed("upd-1"), "bob", e.ID, todo.Patch{Title: "Dentist at 11"})
	if err != nil || again != first {
		t.Errorf("a retried patch: %v, %v; want the first answer %v", again, err, first)
	}
	if _, err := sys.UpdateEntry(keyed("add-1"), "bob", e.ID, todo.Patch{Title: "x"}); !errors.Is(err, todo.ErrKeyReused) {
		t.Errorf("a patch with the key of an add: %v, want ErrKeyReused", err)
	}
	want := []todo.Entry{{ID: e.ID, Date: day20, Title: "Dentist at 10"}}
	if got := mustAllEntries(t, sys.ServerProcess("bob")); !slices.Equal(got, want) {
		t.Errorf("entries %v, want %v", got, want)
	}
}

// ExampleSystem_UpdateEntry changes an entry with a Patch: the title
// alone, then the date alone; what a patch leaves zero stays as it was.
func ExampleSystem_UpdateEntry() {
	dir, err := os.MkdirTemp("", "todo-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sys, err := todo.Open(dir, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer sys.Close()

	ctx := context.Background()
	e, err := sys.AddEntry(ctx, "bob", todo.Entry{Date: todo.Date{Year: 2013, Month: 12, Day: 19}, Title: "Dentist"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(sys.UpdateEntry(ctx, "bob", e.ID, todo.Patch{Title: "Dentist at 10"}))
	fmt.Println(sys.UpdateEntry(ctx, "bob", e.ID, todo.Patch{Date: todo.Date{Year: 2013, Month: 12, Day: 20}}))
	_, err = sys.UpdateEntry(ctx, "bob", e.ID, todo.Patch{})
	fmt.Println(errors.Is(err, todo.ErrEmptyPatch))
	// Output:
	// {1 2013-12-19 Dentist at 10} <nil>
	// {1 2013-12-20 Dentist at 10} <nil>
	// true
}
