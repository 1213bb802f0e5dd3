package todo_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gotodo/todo"
)

// keyed returns ctx with an idempotency key.
func keyed(key string) context.Context {
	return todo.WithIdempotencyKey(context.Background(), key)
}

// TestIdempotencyKey_Retries checks that a change retried with its key is
// answered as the first time and changes nothing, for adds, updates and
// deletes; that other keys make other changes; that a key of a put used
// for a delete, and a malformed key, are refused.
func TestIdempotencyKey_Retries(t *testing.T) {
	sys := openMemSystem(t, nil)
	s := sys.ServerProcess("bob")
	first, err := s.AddEntry(keyed("add-1"), todo.Entry{Date: day19, Title: "Dentist"})
	if err != nil {
		t.Fatal(err)
	}
	again, err := s.AddEntry(keyed("add-1"), todo.Entry{Date: day20, Title: "Dentist, again"})
	if err != nil || again != first {
		t.Errorf("retried add: %v, %v; want the first answer %v", again, err, first)
	}
	other, err := s.AddEntry(keyed("add-2"), todo.Entry{Date: day19, Title: "Shopping"})
	if err != nil || other.ID != first.ID+1 {
		t.Errorf("add with another key: %v, %v; want id %d", other, err, first.ID+1)
	}
	if got := mustAllEntries(t, s); !slices.Equal(got, []todo.Entry{first, other}) {
		t.Errorf("after a retried add: %v, want %v and %v", got, first, other)
	}

	upd := func(title string) func(todo.Entry) todo.Entry {
		return func(e todo.Entry) todo.Entry { e.Title = title; return e }
	}
	updated, err := s.UpdateEntry(keyed("upd-1"), first.ID, upd("Dentist at 10"))
	if err != nil || updated.Title != "Dentist at 10" {
		t.Fatalf("update: %v, %v", updated, err)
	}
	if _, err := s.UpdateEntry(context.Background(), first.ID, upd("Dentist at 11")); err != nil {
		t.Fatal(err)
	}
	again, err = s.UpdateEntry(keyed("upd-1"), first.ID, upd("Dentist at 12"))
	if err != nil || again != updated {
		t.Errorf("retried update: %v, %v; want the first answer %v", again, err, updated)
	}
	if got := mustAllEntries(t, s); got[0].Title != "Dentist at 11" {
		t.Errorf("a retried update changed the entry: %v", got[0])
	}

	if err := s.DeleteEntry(keyed("del-1"), other.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteEntry(keyed("del-1"), other.ID); err != nil {
		t.Errorf("retried delete: %v, want nil as the first time", err)
	}
	if err := s.DeleteEntry(context.Background(), other.ID); !errors.Is(err, todo.ErrEntryNotFound) {
		t.Errorf("delete without a key of a deleted entry: %v, want ErrEntryNotFound", err)
	}
	if err := s.DeleteEntry(keyed("add-1"), first.ID); !errors.Is(err, todo.ErrKeyReused) {
		t.Errorf("the key of an add used for a delete: %v, want ErrKeyReused", err)
	}
	for _, key := range []string{"", "has space", "tab\t", "é", string(make([]byte, 256))} {
		if _, err := s.AddEntry(keyed(key), todo.Entry{Date: day19, Title: "x"}); !errors.Is(err, todo.ErrInvalidKey) {
			t.Errorf("AddEntry with key %q: %v, want ErrInvalidKey", key, err)
		}
	}
	if got := mustAllEntries(t, s); len(got) != 1 {
		t.Errorf("after refused keys: %v, want only the first entry", got)
	}
}

// TestIdempotencyKey_KindReused checks that a key that made a change of
// one kind (an add, an update or a delete) is refused for a request of
// any other kind with ErrKeyReused, which says what the key made, and
// that the refusal changes nothing; retries of the same kind are answered
// as the first time.
func TestIdempotencyKey_KindReused(t *testing.T) {
	sys := openMemSystem(t, nil)
	s := sys.ServerProcess("bob")
	added, err := s.AddEntry(keyed("add-1"), todo.Entry{Date: day19, Title: "Dentist"})
	if err != nil {
		t.Fatal(err)
	}
	doomed := mustAddEntry(t, s, day19, "to delete")
	updated, err := s.UpdateEntry(keyed("upd-1"), added.ID, func(e todo.Entry) todo.Entry { e.Title = "Dentist at 10"; return e })
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteEntry(keyed("del-1"), doomed.ID); err != nil {
		t.Fatal(err)
	}
	want := mustAllEntries(t, s)

	rename := func(e todo.Entry) todo.Entry { e.Title = "renamed"; return e }
	for _, c := range []struct {
		name, key, made string
		call            func(ctx context.Context) error
	}{
		{"an add's key for an update", "add-1", "an add", func(ctx context.Context) error {
			_, err := s.UpdateEntry(ctx, added.ID, rename)
			return err
		}},
		{"an add's key for a delete", "add-1", "an add", func(ctx context.Context) error { return s.DeleteEntry(ctx, added.ID) }},
		{"an update's key for an add", "upd-1", "an update", func(ctx context.Context) error {
			_, err := s.AddEntry(ctx, todo.Entry{Date: day20, Title: "new"})
			return err
		}},
		{"an update's key for a delete", "upd-1", "an update", func(ctx context.Context) error { return s.DeleteEntry(ctx, added.ID) }},
		{"a delete's key for an add", "del-1", "a delete", func(ctx context.Context) error {
			_, err := s.AddEntry(ctx, todo.Entry{Date: day20, Title: "new"})
			return err
		}},
		{"a delete's key for an update", "del-1", "a delete", func(ctx context.Context) error {
			_, err := s.UpdateEntry(ctx, added.ID, rename)
			return err
		}},
	} {
		err := c.call(keyed(c.key))
		if !errors.Is(err, todo.ErrKeyReused) || !strings.Contains(err.Error(), "made "+c.made) {
			t.Errorf("%s: %v, want ErrKeyReused saying the key made %s", c.name, err, c.made)
		}
	}
	if got := mustAllEntries(t, s); !slices.Equal(got, want) {
		t.Errorf("after the refused keys: %v, want %v unchanged", got, want)
	}
	if again, err := s.AddEntry(keyed("add-1"), todo.Entry{Date: day20, Title: "other"}); err != nil || again != added {
		t.Errorf("retried add: %v, %v; want %v", again, err, added)
	}
	if again, err := s.UpdateEntry(keyed("upd-1"), added.ID, rename); err != nil || again != updated {
		t.Errorf("retried update: %v, %v; want %v", again, err, updated)
	}
}

// TestIdempotencyKey_Bound checks that a list remembers the last MaxKeys
// keys, and forgets older ones: a retry after MaxKeys other keyed changes
// makes a new change, as documented.
func TestIdempotencyKey_Bound(t *testing.T) {
	sys := openMemSystem(t, nil)
	s := sys.ServerProcess("bob")
	add := func(key string) todo.Entry {
		t.Helper()
		e, err := s.AddEntry(keyed(key), todo.Entry{Date: day19, Title: key})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	first := add("k0")
	for i := 1; i < todo.MaxKeys; i++ {
		add(fmt.Sprint("k", i))
	}
	if e := add("k0"); e != first {
		t.Errorf("retry of the oldest of %d keys: %v, want %v", todo.MaxKeys, e, first)
	}
	add(fmt.Sprint("k", todo.MaxKeys)) // one more: k0 is forgotten
	if e := add("k0"); e.ID == first.ID {
		t.Errorf("retry of a key %d keyed changes ago still answered as the first time", todo.MaxKeys)
	}
}

// TestIdempotencyKey_Durable checks that keys survive what their changes
// survive: a Close and reopen (the key in the list file), and a crash
// with Fsync durability (the key in the log), for adds, updates and
// deletes, each with the kind of request that made it.
func TestIdempotencyKey_Durable(t *testing.T) {
	var added, updated todo.Entry
	retry := func(t *testing.T, sys *todo.System) {
		s := sys.ServerProcess("bob")
		again, err := s.AddEntry(keyed("add-1"), todo.Entry{Date: day20, Title: "other"})
		if err != nil || again != added {
			t.Errorf("retried add: %v, %v; want the first answer %v", again, err, added)
		}
		again, err = s.UpdateEntry(keyed("upd-1"), added.ID, func(e todo.Entry) todo.Entry { e.Title = "other"; return e })
		if err != nil || again != updated {
			t.Errorf("retried update: %v, %v; want the first answer %v", again, err, updated)
		}
		if _, err := s.AddEntry(keyed("upd-1"), todo.Entry{Date: day20, Title: "other"}); !errors.Is(err, todo.ErrKeyReused) {
			t.Errorf("the key of an update used for an add: %v, want ErrKeyReused", err)
		}
		if err := s.DeleteEntry(keyed("del-1"), 2); err != nil {
			t.Errorf("retried delete: %v, want nil", err)
		}
		if got := mustAllEntries(t, s); !slices.Equal(got, []todo.Entry{updated}) {
			t.Errorf("after the retries: %v, want only %v", got, updated)
		}
	}
	change := func(t *testing.T, sys *todo.System) {
		s := sys.ServerProcess("bob")
		var err error
		if added, err = s.AddEntry(keyed("add-1"), todo.Entry{Date: day19, Title: "Dentist"}); err != nil {
			t.Fatal(err)
		}
		second := mustAddEntry(t, s, day19, "to delete")
		if updated, err = s.UpdateEntry(keyed("upd-1"), added.ID, func(e todo.Entry) todo.Entry { e.Title = "Dentist at 10"; return e }); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteEntry(keyed("del-1"), second.ID); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("close", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "data")
		sys := persistOpen(t, dir, nil)
		change(t, sys)
		persistClose(t, sys)
		retry(t, persistOpen(t, dir, nil))
	})
	t.Run("crash", func(t *testing.T) {
		image := crashImage(t, change)
		retry(t, persistOpen(t, image, nil))
	})
}

// TestIdempotencyKey_FailedWrite checks that a change whose write failed
// does not keep its key: its retry makes the change.
func TestIdempotencyKey_FailedWrite(t *testing.T) {
	fail := true
	sys, err := todo.OpenHooked(t.TempDir(), nil, func(list string, lastID, entries int, save func() error) error {
		if fail {
			return errors.New("disk says no")
		}
		return save()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sys.Close() })
	s := sys.ServerProcess("bob")
	if _, err := s.AddEntry(keyed("k"), todo.Entry{Date: day19, Title: "Dentist"}); err == nil {
		t.Fatal("AddEntry succeeded though its write failed")
	}
	fail = false
	e, err := s.AddEntry(keyed("k"), todo.Entry{Date: day19, Title: "Dentist"})
	if err != nil {
		t.Fatalf("retry after the failed write: %v", err)
	}
	if got := mustAllEntries(t, s); !slices.Equal(got, []todo.Entry{e}) {
		t.Errorf("after the retry: %v, want %v", got, e)
	}
}

// TestIdempotencyKey_FilesBeforeKinds opens data directories written
// before a list remembered which kind of request made each key (by the
// code of commit a3a563a; testdata/keys-before-kinds/README has the
// steps): one closed, its keys in the list file, one crashed, its keys in
// the log only. Both load whole; their keyed puts read as adds', so a
// retried add, and a retried delete, are answered as the first time, and
// the key of an update made then answers an add as that update was
// answered, and refuses an update (ErrKeyReused). Nothing is changed by
// the retries.
func TestIdempotencyKey_FilesBeforeKinds(t *testing.T) {
	for _, image := range []string{"closed", "crashed"} {
		t.Run(image, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			if err := os.CopyFS(dir, os.DirFS(filepath.Join("testdata", "keys-before-kinds", image))); err != nil {
				t.Fatal(err)
			}
			sys := persistOpen(t, dir, nil)
			s := sys.ServerProcess("bob")
			want := []todo.Entry{{ID: 1, Date: day19, Title: "Dentist at 10"}}
			if got := mustAllEntries(t, s); !slices.Equal(got, want) {
				t.Fatalf("entries %v, want %v", got, want)
			}
			if e, err := s.AddEntry(keyed("add-1"), todo.Entry{Date: day20, Title: "other"}); err != nil || e != (todo.Entry{ID: 1, Date: day19, Title: "Dentist"}) {
				t.Errorf("retried add: %v, %v; want the first answer", e, err)
			}
			if e, err := s.AddEntry(keyed("upd-1"), todo.Entry{Date: day20, Title: "other"}); err != nil || e != want[0] {
				t.Errorf("an add with the key of an old update: %v, %v; want the update's answer", e, err)
			}
			rename := func(e todo.Entry) todo.Entry { e.Title = "renamed"; return e }
			if _, err := s.UpdateEntry(keyed("upd-1"), 1, rename); !errors.Is(err, todo.ErrKeyReused) {
				t.Errorf("an update with the key of an old update: %v, want ErrKeyReused (old keys read as adds')", err)
			}
			if err := s.DeleteEntry(keyed("del-1"), 2); err != nil {
				t.Errorf("retried delete: %v", err)
			}
			if got := mustAllEntries(t, s); !slices.Equal(got, want) {
				t.Errorf("after the retries: %v, want %v", got, want)
			}
			// A new keyed update is stored in the new form beside the old.
			if _, err := s.UpdateEntry(keyed("upd-2"), 1, rename); err != nil {
				t.Fatal(err)
			}
			persistClose(t, sys)
			sys = persistOpen(t, dir, nil)
			s = sys.ServerProcess("bob")
			if _, err := s.AddEntry(keyed("upd-2"), todo.Entry{Date: day20, Title: "x"}); !errors.Is(err, todo.ErrKeyReused) {
				t.Errorf("after a reopen, an add with the key of a new update: %v, want ErrKeyReused", err)
			}
			if e, err := s.AddEntry(keyed("add-1"), todo.Entry{Date: day20, Title: "x"}); err != nil || e.Title != "Dentist" {
				t.Errorf("after a reopen, a retried old add: %v, %v", e, err)
			}
		})
	}
}
