package todo_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/gotodo/todo"
)

// badTitles are titles every face refuses, by the library's rule (issue
// 18: the library stored the empty one and one of 8 MiB, which the HTTP
// API, the command and the page refuse).
var badTitles = map[string]string{
	"empty":                "",
	"8 MiB":                strings.Repeat("x", 8<<20),
	"one byte over":        strings.Repeat("x", todo.MaxTitle+1),
	"spaces":               "   ",
	"a tab":                "\t",
	"an ideographic space": "\u3000",
	"zero-width spaces":    "\u200b\u200b",
	"a zero-width joiner":  " \u200d ",
	"a byte-order mark":    "\ufeff",
	"a Hangul filler":      "\u3164",
	"a variation selector": "\ufe0f",
	"a blank Braille cell": "\u2800",
	"two lines":            "one\ntwo",
	"not UTF-8":            "\xff",
}

// goodTitles are titles at the edges of the rule that every face takes.
var goodTitles = map[string]string{
	"one letter":               "x",
	"MaxTitle bytes":           strings.Repeat("x", todo.MaxTitle),
	"MaxTitle bytes in runes":  strings.Repeat("é", todo.MaxTitle/2),
	"spaces around":            "  Dentist  ",
	"an emoji with a selector": "\u2764\ufe0f",
	"a zero-width joiner seen": "a\u200db",
	"a tab inside":             "Dentist\tat 10",
}

func TestValidTitle(t *testing.T) {
	for name, title := range badTitles {
		if err := todo.ValidTitle(title); !errors.Is(err, todo.ErrInvalidTitle) {
			t.Errorf("%s: ValidTitle = %v, want ErrInvalidTitle", name, err)
		}
	}
	for name, title := range goodTitles {
		if err := todo.ValidTitle(title); err != nil {
			t.Errorf("%s: ValidTitle = %v, want nil", name, err)
		}
	}
	if err := todo.ValidTitle(strings.Repeat("x", 8<<20)); err == nil || !strings.Contains(err.Error(), "8388608 bytes, more than 1024") {
		t.Errorf("ValidTitle of 8 MiB: %v, want it to say how long, and the limit", err)
	}
}

// The library refuses, with ErrInvalidTitle and nothing changed, every
// title its HTTP face refuses: in AddEntry, in a Patch, and as an
// updater's result; and takes the good ones.
func TestSystem_TitleRule(t *testing.T) {
	ctx := context.Background()
	sys := persistOpen(t, t.TempDir(), nil)
	defer persistClose(t, sys)
	s := sys.ServerProcess("bob")
	e := persistAdd(t, sys, "bob", "Dentist")
	for name, title := range badTitles {
		if _, err := s.AddEntry(ctx, todo.Entry{Date: persistDay, Title: title}); !errors.Is(err, todo.ErrInvalidTitle) {
			t.Errorf("%s: AddEntry = %v, want ErrInvalidTitle", name, err)
		}
		if _, err := sys.AddEntry(ctx, "bob", todo.Entry{Date: persistDay, Title: title}); !errors.Is(err, todo.ErrInvalidTitle) {
			t.Errorf("%s: System.AddEntry = %v, want ErrInvalidTitle", name, err)
		}
		if title != "" { // an empty Patch title keeps the entry's
			if _, err := sys.UpdateEntry(ctx, "bob", e.ID, todo.Patch{Title: title}); !errors.Is(err, todo.ErrInvalidTitle) {
				t.Errorf("%s: UpdateEntry with a Patch = %v, want ErrInvalidTitle", name, err)
			}
		}
		if _, err := s.UpdateEntry(ctx, e.ID, func(e todo.Entry) todo.Entry { e.Title = title; return e }); !errors.Is(err, todo.ErrInvalidTitle) {
			t.Errorf("%s: UpdateEntry's updater returning it = %v, want ErrInvalidTitle", name, err)
		}
	}
	if got := persistAll(t, sys, "bob"); len(got) != 1 || got[0] != e {
		t.Fatalf("after the refused titles bob holds %v, want only %v", got, e)
	}
	for name, title := range goodTitles {
		if _, err := s.AddEntry(ctx, todo.Entry{Date: persistDay, Title: title}); err != nil {
			t.Errorf("%s: AddEntry = %v", name, err)
		}
	}
}

// Titles stored before the rule (an empty one, one over MaxTitle) are
// still read, and such an entry can still be updated without changing
// its title; giving it a bad new title is refused.
func TestSystem_TitlesStoredBeforeTheRule(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	long := strings.Repeat("x", 4*todo.MaxTitle)
	old := []todo.Entry{{ID: 1, Date: persistDay, Title: ""}, {ID: 2, Date: persistDay, Title: long}}
	sys := persistOpen(t, dir, nil)
	if errs := todo.SaveBatch(sys, []string{"old"}, [][]todo.Entry{old}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	persistClose(t, sys)

	sys = persistOpen(t, dir, nil)
	defer persistClose(t, sys)
	if got := persistAll(t, sys, "old"); len(got) != 2 || got[0] != old[0] || got[1] != old[1] {
		t.Fatalf("a list with titles stored before the rule reads %d entries, want both", len(got))
	}
	later := persistDay
	later.Day++
	for _, e := range old {
		got, err := sys.UpdateEntry(ctx, "old", e.ID, todo.Patch{Date: later})
		if err != nil || got.Title != e.Title {
			t.Errorf("moving entry %d, whose title was stored before the rule: %v, %v", e.ID, got.ID, err)
		}
		if _, err := sys.UpdateEntry(ctx, "old", e.ID, todo.Patch{Title: " "}); !errors.Is(err, todo.ErrInvalidTitle) {
			t.Errorf("a blank new title for entry %d: %v, want ErrInvalidTitle", e.ID, err)
		}
	}
}
