package todo_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gotodo/todo"
)

// mustDate parses s with todo.ParseDate and fails the test if it is not a
// valid date.
func mustDate(tb testing.TB, s string) todo.Date {
	tb.Helper()
	d, err := todo.ParseDate(s)
	if err != nil {
		tb.Fatalf("ParseDate(%q): %v", s, err)
	}
	return d
}

// assertEntries fails the test if got and want differ, naming what was read.
func assertEntries(tb testing.TB, what string, got, want []todo.Entry) {
	tb.Helper()
	if !slices.Equal(got, want) {
		tb.Fatalf("%s = %v, want %v", what, got, want)
	}
}

// dentistList returns a list of the book's four entries over two dates,
// with ids 1 to 4.
func dentistList(tb testing.TB) *todo.List {
	tb.Helper()
	l := &todo.List{}
	l.Add(todo.Entry{Date: mustDate(tb, "20131219"), Title: "Dentist"})
	l.Add(todo.Entry{Date: mustDate(tb, "20131220"), Title: "Shopping"})
	l.Add(todo.Entry{Date: mustDate(tb, "20131219"), Title: "Movies"})
	l.Add(todo.Entry{Date: mustDate(tb, "20131220"), Title: "Gym"})
	return l
}

func TestList_Add(t *testing.T) {
	t.Parallel()
	d1 := mustDate(t, "20131219")
	d2 := mustDate(t, "20131220")
	tests := []struct {
		name string
		add  []todo.Entry
		want []todo.Entry
	}{
		{
			name: "empty list has no entries",
			add:  nil,
			want: nil,
		},
		{
			name: "ids 1 to 3 after three adds",
			add:  []todo.Entry{{Date: d1, Title: "Dentist"}, {Date: d2, Title: "Shopping"}, {Date: d1, Title: "Movies"}},
			want: []todo.Entry{{ID: 1, Date: d1, Title: "Dentist"}, {ID: 2, Date: d2, Title: "Shopping"}, {ID: 3, Date: d1, Title: "Movies"}},
		},
		{
			name: "an id on the input is ignored",
			add:  []todo.Entry{{ID: 42, Date: d1, Title: "Dentist"}, {ID: 1, Date: d1, Title: "Movies"}, {ID: -7, Date: d2, Title: "Gym"}},
			want: []todo.Entry{{ID: 1, Date: d1, Title: "Dentist"}, {ID: 2, Date: d1, Title: "Movies"}, {ID: 3, Date: d2, Title: "Gym"}},
		},
		{
			name: "same entry twice gets two ids",
			add:  []todo.Entry{{Date: d1, Title: "Dentist"}, {Date: d1, Title: "Dentist"}},
			want: []todo.Entry{{ID: 1, Date: d1, Title: "Dentist"}, {ID: 2, Date: d1, Title: "Dentist"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := &todo.List{}
			for i, e := range tt.add {
				if got := l.Add(e); got != tt.want[i] {
					t.Errorf("Add(%v) = %v, want %v", e, got, tt.want[i])
				}
			}
			assertEntries(t, "All()", l.All(), tt.want)
			if got := l.Len(); got != len(tt.want) {
				t.Errorf("Len() = %d, want %d", got, len(tt.want))
			}
		})
	}
}

func TestNewList(t *testing.T) {
	t.Parallel()
	d := mustDate(t, "20131219")
	l := todo.NewList(todo.Entry{ID: 9, Date: d, Title: "Dentist"}, todo.Entry{ID: 9, Date: d, Title: "Movies"})
	assertEntries(t, "All()", l.All(), []todo.Entry{{ID: 1, Date: d, Title: "Dentist"}, {ID: 2, Date: d, Title: "Movies"}})
	if got := l.Add(todo.Entry{Date: d, Title: "Gym"}); got.ID != 3 {
		t.Errorf("Add after NewList of two entries gave id %d, want 3", got.ID)
	}
}

func TestList_Entries(t *testing.T) {
	t.Parallel()
	l := dentistList(t)
	d19, d20 := mustDate(t, "20131219"), mustDate(t, "20131220")
	tests := []struct {
		date string
		want []todo.Entry
	}{
		{"20131219", []todo.Entry{{ID: 1, Date: d19, Title: "Dentist"}, {ID: 3, Date: d19, Title: "Movies"}}},
		{"20131220", []todo.Entry{{ID: 2, Date: d20, Title: "Shopping"}, {ID: 4, Date: d20, Title: "Gym"}}},
		{"20131221", nil},
		{"20121219", nil},
	}
	for _, tt := range tests {
		t.Run("date="+tt.date, func(t *testing.T) {
			t.Parallel()
			got := l.Entries(mustDate(t, tt.date))
			assertEntries(t, "Entries("+tt.date+")", got, tt.want)
		})
	}
	// The zero Date is "no date": it has no entries unless some were added
	// under it.
	if got := l.Entries(todo.Date{}); len(got) != 0 {
		t.Errorf("Entries(zero Date) = %v, want none", got)
	}
}

// TestList_Entries_Copy checks that Entries and All hand out copies: what a
// caller does to the returned slice never reaches the list.
func TestList_Entries_Copy(t *testing.T) {
	t.Parallel()
	l := dentistList(t)
	d := mustDate(t, "20131219")
	wantDate := l.Entries(d)
	wantAll := l.All()

	got := l.Entries(d)
	got[0].Title = "changed"
	got[1].ID = 99
	_ = append(got[:1], todo.Entry{ID: 100, Title: "appended"})
	assertEntries(t, "Entries after mutating a previous result", l.Entries(d), wantDate)

	all := l.All()
	all[0].Title = "changed"
	all[3] = todo.Entry{}
	_ = append(all[:2], todo.Entry{ID: 100, Title: "appended"})
	assertEntries(t, "All after mutating a previous result", l.All(), wantAll)
	assertEntries(t, "Entries after mutating a result of All", l.Entries(d), wantDate)
}

// TestList_Entries_InvalidDates checks that entries under dates that are
// not valid (the zero Date among them) are kept apart by their exact date,
// like those of valid dates.
func TestList_Entries_InvalidDates(t *testing.T) {
	t.Parallel()
	none := todo.Date{}
	feb30 := todo.Date{Year: 2013, Month: time.February, Day: 30}
	month13 := todo.Date{Year: 2013, Month: 13, Day: 1}
	valid := mustDate(t, "20131219")
	l := todo.NewList(
		todo.Entry{Date: none, Title: "someday"},
		todo.Entry{Date: feb30, Title: "never"},
		todo.Entry{Date: valid, Title: "Dentist"},
		todo.Entry{Date: month13, Title: "never either"},
		todo.Entry{Date: feb30, Title: "never again"},
	)
	assertEntries(t, "Entries(zero Date)", l.Entries(none), []todo.Entry{{ID: 1, Date: none, Title: "someday"}})
	assertEntries(t, "Entries(2013-02-30)", l.Entries(feb30), []todo.Entry{{ID: 2, Date: feb30, Title: "never"}, {ID: 5, Date: feb30, Title: "never again"}})
	assertEntries(t, "Entries(2013-13-01)", l.Entries(month13), []todo.Entry{{ID: 4, Date: month13, Title: "never either"}})
	assertEntries(t, "Entries(2013-12-19)", l.Entries(valid), []todo.Entry{{ID: 3, Date: valid, Title: "Dentist"}})

	// Move an entry from one invalid date to another, then to a valid one.
	if _, err := l.Update(2, func(e todo.Entry) todo.Entry { e.Date = month13; return e }); err != nil {
		t.Fatal(err)
	}
	assertEntries(t, "Entries(2013-02-30) after a move", l.Entries(feb30), []todo.Entry{{ID: 5, Date: feb30, Title: "never again"}})
	assertEntries(t, "Entries(2013-13-01) after a move", l.Entries(month13), []todo.Entry{{ID: 2, Date: month13, Title: "never"}, {ID: 4, Date: month13, Title: "never either"}})
	if _, err := l.Update(4, func(e todo.Entry) todo.Entry { e.Date = valid; return e }); err != nil {
		t.Fatal(err)
	}
	assertEntries(t, "Entries(2013-13-01) after a move", l.Entries(month13), []todo.Entry{{ID: 2, Date: month13, Title: "never"}})
	assertEntries(t, "Entries(2013-12-19) after a move", l.Entries(valid), []todo.Entry{{ID: 3, Date: valid, Title: "Dentist"}, {ID: 4, Date: valid, Title: "never either"}})
	if err := l.Delete(5); err != nil {
		t.Fatal(err)
	}
	assertEntries(t, "Entries(2013-02-30) after a delete", l.Entries(feb30), nil)
	assertEntries(t, "Entries(zero Date) after a delete", l.Entries(none), []todo.Entry{{ID: 1, Date: none, Title: "someday"}})
}

func TestList_All(t *testing.T) {
	t.Parallel()
	l := dentistList(t)
	d19, d20 := mustDate(t, "20131219"), mustDate(t, "20131220")
	// Move entry 1 to a later date and delete entry 2: All stays in id order
	// whatever the dates are.
	if _, err := l.Update(1, func(e todo.Entry) todo.Entry { e.Date = d20; return e }); err != nil {
		t.Fatal(err)
	}
	if err := l.Delete(2); err != nil {
		t.Fatal(err)
	}
	l.Add(todo.Entry{Date: d19, Title: "Lunch"})
	assertEntries(t, "All()", l.All(), []todo.Entry{
		{ID: 1, Date: d20, Title: "Dentist"},
		{ID: 3, Date: d19, Title: "Movies"},
		{ID: 4, Date: d20, Title: "Gym"},
		{ID: 5, Date: d19, Title: "Lunch"},
	})
}

func TestList_Update(t *testing.T) {
	t.Parallel()
	d19, d20, d21 := mustDate(t, "20131219"), mustDate(t, "20131220"), mustDate(t, "20131221")
	tests := []struct {
		name     string
		id       int
		fn       func(todo.Entry) todo.Entry
		want     todo.Entry // the entry Update returns; ignored when wantErr
		wantErr  error
		wantAll  []todo.Entry
		wantDate map[todo.Date][]todo.Entry // Entries of these dates afterwards
	}{
		{
			name:    "unknown id",
			id:      99,
			wantErr: todo.ErrEntryNotFound,
		},
		{
			name:    "id zero",
			id:      0,
			wantErr: todo.ErrEntryNotFound,
		},
		{
			name:    "negative id",
			id:      -1,
			wantErr: todo.ErrEntryNotFound,
		},
		{
			name: "title",
			id:   3,
			fn:   func(e todo.Entry) todo.Entry { e.Title = "Theatre"; return e },
			want: todo.Entry{ID: 3, Date: d19, Title: "Theatre"},
			wantAll: []todo.Entry{
				{ID: 1, Date: d19, Title: "Dentist"}, {ID: 2, Date: d20, Title: "Shopping"},
				{ID: 3, Date: d19, Title: "Theatre"}, {ID: 4, Date: d20, Title: "Gym"},
			},
			wantDate: map[todo.Date][]todo.Entry{
				d19: {{ID: 1, Date: d19, Title: "Dentist"}, {ID: 3, Date: d19, Title: "Theatre"}},
				d20: {{ID: 2, Date: d20, Title: "Shopping"}, {ID: 4, Date: d20, Title: "Gym"}},
			},
		},
		{
			name: "date to a date with entries keeps id order there",
			id:   3,
			fn:   func(e todo.Entry) todo.Entry { e.Date = d20; return e },
			want: todo.Entry{ID: 3, Date: d20, Title: "Movies"},
			wantAll: []todo.Entry{
				{ID: 1, Date: d19, Title: "Dentist"}, {ID: 2, Date: d20, Title: "Shopping"},
				{ID: 3, Date: d20, Title: "Movies"}, {ID: 4, Date: d20, Title: "Gym"},
			},
			wantDate: map[todo.Date][]todo.Entry{
				d19: {{ID: 1, Date: d19, Title: "Dentist"}},
				d20: {{ID: 2, Date: d20, Title: "Shopping"}, {ID: 3, Date: d20, Title: "Movies"}, {ID: 4, Date: d20, Title: "Gym"}},
			},
		},
		{
			name: "date and title to a new date",
			id:   1,
			fn:   func(e todo.Entry) todo.Entry { e.Date = d21; e.Title = "Dentist again"; return e },
			want: todo.Entry{ID: 1, Date: d21, Title: "Dentist again"},
			wantAll: []todo.Entry{
				{ID: 1, Date: d21, Title: "Dentist again"}, {ID: 2, Date: d20, Title: "Shopping"},
				{ID: 3, Date: d19, Title: "Movies"}, {ID: 4, Date: d20, Title: "Gym"},
			},
			wantDate: map[todo.Date][]todo.Entry{
				d19: {{ID: 3, Date: d19, Title: "Movies"}},
				d20: {{ID: 2, Date: d20, Title: "Shopping"}, {ID: 4, Date: d20, Title: "Gym"}},
				d21: {{ID: 1, Date: d21, Title: "Dentist again"}},
			},
		},
		{
			name: "the id cannot be changed",
			id:   2,
			fn:   func(e todo.Entry) todo.Entry { e.ID = 4; e.Title = "Groceries"; return e },
			want: todo.Entry{ID: 2, Date: d20, Title: "Groceries"},
			wantAll: []todo.Entry{
				{ID: 1, Date: d19, Title: "Dentist"}, {ID: 2, Date: d20, Title: "Groceries"},
				{ID: 3, Date: d19, Title: "Movies"}, {ID: 4, Date: d20, Title: "Gym"},
			},
			wantDate: map[todo.Date][]todo.Entry{
				d19: {{ID: 1, Date: d19, Title: "Dentist"}, {ID: 3, Date: d19, Title: "Movies"}},
				d20: {{ID: 2, Date: d20, Title: "Groceries"}, {ID: 4, Date: d20, Title: "Gym"}},
			},
		},
		{
			name: "the id cannot be changed to an unused one",
			id:   4,
			fn:   func(e todo.Entry) todo.Entry { e.ID = 100; return e },
			want: todo.Entry{ID: 4, Date: d20, Title: "Gym"},
			wantAll: []todo.Entry{
				{ID: 1, Date: d19, Title: "Dentist"}, {ID: 2, Date: d20, Title: "Shopping"},
				{ID: 3, Date: d19, Title: "Movies"}, {ID: 4, Date: d20, Title: "Gym"},
			},
		},
		{
			name: "entry moves to a date with no entries",
			id:   3,
			fn:   func(e todo.Entry) todo.Entry { e.Date = d21; return e },
			want: todo.Entry{ID: 3, Date: d21, Title: "Movies"},
			wantDate: map[todo.Date][]todo.Entry{
				d19: {{ID: 1, Date: d19, Title: "Dentist"}},
				d21: {{ID: 3, Date: d21, Title: "Movies"}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := dentistList(t)
			before := l.All()
			called := false
			fn := func(e todo.Entry) todo.Entry {
				called = true
				if tt.fn == nil {
					return e
				}
				return tt.fn(e)
			}
			got, err := l.Update(tt.id, fn)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Update(%d) error = %v, want %v", tt.id, err, tt.wantErr)
				}
				if called {
					t.Errorf("Update(%d) called the updater for an unknown id", tt.id)
				}
				assertEntries(t, "All() after a failed Update", l.All(), before)
				return
			}
			if err != nil {
				t.Fatalf("Update(%d): %v", tt.id, err)
			}
			if !called {
				t.Errorf("Update(%d) did not call the updater", tt.id)
			}
			if got != tt.want {
				t.Errorf("Update(%d) = %v, want %v", tt.id, got, tt.want)
			}
			if tt.wantAll != nil {
				assertEntries(t, "All()", l.All(), tt.wantAll)
			}
			for d, want := range tt.wantDate {
				assertEntries(t, "Entries("+d.String()+")", l.Entries(d), want)
			}
			if l.Len() != len(before) {
				t.Errorf("Len() = %d after Update, want %d", l.Len(), len(before))
			}
		})
	}
}

// TestList_Update_Panic checks that an updater that panics leaves the list
// as it was: Update calls it before changing anything.
func TestList_Update_Panic(t *testing.T) {
	t.Parallel()
	l := dentistList(t)
	before := l.All()
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Errorf("recovered %v, want the updater's panic", r)
			}
		}()
		l.Update(1, func(todo.Entry) todo.Entry { panic("boom") })
	}()
	assertEntries(t, "All() after a panicking updater", l.All(), before)
}

func TestList_Delete(t *testing.T) {
	t.Parallel()
	d19, d20 := mustDate(t, "20131219"), mustDate(t, "20131220")
	tests := []struct {
		name     string
		ids      []int // deleted in order
		wantErr  []error
		wantAll  []todo.Entry
		wantDate map[todo.Date][]todo.Entry
	}{
		{
			name:    "one in the middle",
			ids:     []int{2},
			wantErr: []error{nil},
			wantAll: []todo.Entry{{ID: 1, Date: d19, Title: "Dentist"}, {ID: 3, Date: d19, Title: "Movies"}, {ID: 4, Date: d20, Title: "Gym"}},
			wantDate: map[todo.Date][]todo.Entry{
				d19: {{ID: 1, Date: d19, Title: "Dentist"}, {ID: 3, Date: d19, Title: "Movies"}},
				d20: {{ID: 4, Date: d20, Title: "Gym"}},
			},
		},
		{
			name:    "unknown id",
			ids:     []int{5},
			wantErr: []error{todo.ErrEntryNotFound},
			wantAll: []todo.Entry{
				{ID: 1, Date: d19, Title: "Dentist"}, {ID: 2, Date: d20, Title: "Shopping"},
				{ID: 3, Date: d19, Title: "Movies"}, {ID: 4, Date: d20, Title: "Gym"},
			},
		},
		{
			name:    "twice",
			ids:     []int{1, 1},
			wantErr: []error{nil, todo.ErrEntryNotFound},
			wantAll: []todo.Entry{{ID: 2, Date: d20, Title: "Shopping"}, {ID: 3, Date: d19, Title: "Movies"}, {ID: 4, Date: d20, Title: "Gym"}},
			wantDate: map[todo.Date][]todo.Entry{
				d19: {{ID: 3, Date: d19, Title: "Movies"}},
			},
		},
		{
			name:    "every entry of a date",
			ids:     []int{4, 2},
			wantErr: []error{nil, nil},
			wantAll: []todo.Entry{{ID: 1, Date: d19, Title: "Dentist"}, {ID: 3, Date: d19, Title: "Movies"}},
			wantDate: map[todo.Date][]todo.Entry{
				d20: nil,
			},
		},
		{
			name:     "everything",
			ids:      []int{3, 1, 4, 2},
			wantErr:  []error{nil, nil, nil, nil},
			wantAll:  nil,
			wantDate: map[todo.Date][]todo.Entry{d19: nil, d20: nil},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := dentistList(t)
			for i, id := range tt.ids {
				err := l.Delete(id)
				if tt.wantErr[i] == nil && err != nil {
					t.Fatalf("Delete(%d): %v", id, err)
				}
				if !errors.Is(err, tt.wantErr[i]) {
					t.Fatalf("Delete(%d) error = %v, want %v", id, err, tt.wantErr[i])
				}
			}
			assertEntries(t, "All()", l.All(), tt.wantAll)
			if l.Len() != len(tt.wantAll) {
				t.Errorf("Len() = %d, want %d", l.Len(), len(tt.wantAll))
			}
			for d, want := range tt.wantDate {
				assertEntries(t, "Entries("+d.String()+")", l.Entries(d), want)
			}
		})
	}
}

// TestList_Delete_IDsNotReused checks that ids keep increasing after the
// entry with the highest id is deleted, even when the list became empty.
func TestList_Delete_IDsNotReused(t *testing.T) {
	t.Parallel()
	d := mustDate(t, "20131219")
	l := &todo.List{}
	for range 3 {
		l.Add(todo.Entry{Date: d, Title: "x"})
	}
	if err := l.Delete(3); err != nil {
		t.Fatal(err)
	}
	if got := l.Add(todo.Entry{Date: d, Title: "y"}); got.ID != 4 {
		t.Errorf("Add after deleting the highest id 3 gave id %d, want 4", got.ID)
	}
	for _, id := range []int{1, 2, 4} {
		if err := l.Delete(id); err != nil {
			t.Fatal(err)
		}
	}
	if l.Len() != 0 {
		t.Fatalf("Len() = %d after deleting everything", l.Len())
	}
	if got := l.Add(todo.Entry{Date: d, Title: "z"}); got.ID != 5 {
		t.Errorf("Add to a list emptied by deletes gave id %d, want 5", got.ID)
	}
	// A deleted id stays unknown even though a later one exists.
	if _, err := l.Update(3, func(e todo.Entry) todo.Entry { return e }); !errors.Is(err, todo.ErrEntryNotFound) {
		t.Errorf("Update(3) of a deleted id: error = %v, want ErrEntryNotFound", err)
	}
}

func TestList_Len(t *testing.T) {
	t.Parallel()
	var l todo.List // the zero List is an empty list
	if l.Len() != 0 {
		t.Fatalf("zero List Len() = %d", l.Len())
	}
	d := mustDate(t, "20131219")
	steps := []struct {
		name string
		do   func() error
		want int
	}{
		{"add", func() error { l.Add(todo.Entry{Date: d}); return nil }, 1},
		{"add", func() error { l.Add(todo.Entry{Date: d}); return nil }, 2},
		{"update", func() error {
			_, err := l.Update(1, func(e todo.Entry) todo.Entry { e.Date = todo.Date{}; return e })
			return err
		}, 2},
		{"delete unknown", func() error { l.Delete(9); return nil }, 2},
		{"delete", func() error { return l.Delete(1) }, 1},
		{"delete", func() error { return l.Delete(2) }, 0},
	}
	for i, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("step %d (%s): %v", i, s.name, err)
		}
		if got := l.Len(); got != s.want {
			t.Fatalf("step %d (%s): Len() = %d, want %d", i, s.name, got, s.want)
		}
	}
}

func TestParseDate(t *testing.T) {
	t.Parallel()
	good := []struct {
		in   string
		want todo.Date
	}{
		{"20131219", todo.Date{Year: 2013, Month: time.December, Day: 19}},
		{"2013-12-19", todo.Date{Year: 2013, Month: time.December, Day: 19}},
		{"20000229", todo.Date{Year: 2000, Month: time.February, Day: 29}},
		{"2024-02-29", todo.Date{Year: 2024, Month: time.February, Day: 29}},
		{"00010101", todo.Date{Year: 1, Month: time.January, Day: 1}},
		{"9999-12-31", todo.Date{Year: 9999, Month: time.December, Day: 31}},
		{"20130430", todo.Date{Year: 2013, Month: time.April, Day: 30}},
	}
	for _, tt := range good {
		t.Run("good="+tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := todo.ParseDate(tt.in)
			if err != nil {
				t.Fatalf("ParseDate(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("ParseDate(%q) = %#v, want %#v", tt.in, got, tt.want)
			}
			if !got.Valid() {
				t.Errorf("ParseDate(%q) = %v, which is not Valid", tt.in, got)
			}
		})
	}
	bad := []string{
		"20131301",    // month 13
		"20130230",    // February 30th
		"19000229",    // 1900 is not a leap year
		"2013-2-3",    // unpadded
		"",            // empty
		"201312190",   // nine digits
		"2013121a",    // not a digit
		"2013/12/19",  // wrong separator
		" 20131219",   // leading space
		"00001219",    // year 0
		"20131200",    // day 0
		"20130001",    // month 0
		"20130431",    // April 31st
		"2013-12-1x",  // not a digit in the dashed form
		"2013-12_19",  // one wrong separator
		"2013121",     // seven digits
		"20131219\n",  // trailing newline
		"+013-12-19",  // sign
		"2013-12-19 ", // trailing space
		"２０１３１２１９",    // full-width digits
	}
	for _, in := range bad {
		t.Run("bad="+strconv.Quote(in), func(t *testing.T) {
			t.Parallel()
			got, err := todo.ParseDate(in)
			if !errors.Is(err, todo.ErrInvalidDate) {
				t.Fatalf("ParseDate(%q) = %v, %v; want an error wrapping ErrInvalidDate", in, got, err)
			}
			if got != (todo.Date{}) {
				t.Errorf("ParseDate(%q) returned %#v with its error, want the zero Date", in, got)
			}
			if q := strconv.Quote(in); !strings.Contains(err.Error(), q) {
				t.Errorf("ParseDate(%q) error %q does not quote the input as %s", in, err, q)
			}
		})
	}
}

func TestDate_String(t *testing.T) {
	t.Parallel()
	tests := []struct {
		date todo.Date
		want string
	}{
		{todo.Date{Year: 2013, Month: time.December, Day: 19}, "2013-12-19"},
		{todo.Date{Year: 2000, Month: time.February, Day: 29}, "2000-02-29"},
		{todo.Date{Year: 1, Month: time.January, Day: 1}, "0001-01-01"},
		{todo.Date{Year: 9999, Month: time.December, Day: 31}, "9999-12-31"},
	}
	for _, tt := range tests {
		if got := tt.date.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.date, got, tt.want)
		}
		if got := fmt.Sprint(tt.date); got != tt.want {
			t.Errorf("fmt.Sprint(%#v) = %q, want %q", tt.date, got, tt.want)
		}
	}
}

func TestDate_Valid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		date todo.Date
		want bool
	}{
		{todo.Date{}, false},
		{todo.Date{Year: 2013, Month: time.December, Day: 19}, true},
		{todo.Date{Year: 2013, Month: 13, Day: 1}, false},
		{todo.Date{Year: 2013, Month: time.February, Day: 29}, false},
		{todo.Date{Year: 2012, Month: time.February, Day: 29}, true},
		{todo.Date{Year: 1900, Month: time.February, Day: 29}, false},
		{todo.Date{Year: 2000, Month: time.February, Day: 29}, true},
		{todo.Date{Year: 0, Month: time.January, Day: 1}, false},
		{todo.Date{Year: 10000, Month: time.January, Day: 1}, false},
		{todo.Date{Year: -1, Month: time.January, Day: 1}, false},
		{todo.Date{Year: 2013, Month: time.June, Day: 31}, false},
		{todo.Date{Year: 2013, Month: time.July, Day: 31}, true},
		{todo.Date{Year: 2013, Month: time.July, Day: 0}, false},
	}
	for _, tt := range tests {
		if got := tt.date.Valid(); got != tt.want {
			t.Errorf("%#v.Valid() = %v, want %v", tt.date, got, tt.want)
		}
	}
}

// TestDate_MapKey checks that a Date is comparable by value: the same day
// parsed from both forms is one map key.
func TestDate_MapKey(t *testing.T) {
	t.Parallel()
	m := map[todo.Date]string{}
	m[mustDate(t, "20131219")] = "compact"
	m[mustDate(t, "2013-12-19")] = "dashed"
	m[todo.Date{Year: 2013, Month: time.December, Day: 20}] = "literal"
	if len(m) != 2 {
		t.Fatalf("map has %d keys, want 2: %v", len(m), m)
	}
	if got := m[todo.Date{Year: 2013, Month: time.December, Day: 19}]; got != "dashed" {
		t.Errorf("m[2013-12-19] = %q, want %q", got, "dashed")
	}
	if mustDate(t, "20131219") != mustDate(t, "2013-12-19") {
		t.Error("the two forms of one day parse to different Dates")
	}
}

func FuzzParseDate(f *testing.F) {
	for _, s := range []string{
		"20131219", "2013-12-19", "20000229", "2024-02-29", "19000229",
		"20131301", "2013-2-3", "", "201312190", "0000-01-01", "9999-12-31",
		"2013-12-1\x00", "----------", "00000000",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := todo.ParseDate(s)
		if err != nil {
			if !errors.Is(err, todo.ErrInvalidDate) {
				t.Fatalf("ParseDate(%q) error %v does not wrap ErrInvalidDate", s, err)
			}
			if d != (todo.Date{}) {
				t.Fatalf("ParseDate(%q) returned %#v with its error", s, d)
			}
			return
		}
		if !d.Valid() {
			t.Fatalf("ParseDate(%q) = %#v, which is not Valid", s, d)
		}
		iso := d.String()
		back, err := todo.ParseDate(iso)
		if err != nil || back != d {
			t.Fatalf("ParseDate(%q) = %v; ParseDate(%q) = %v, %v", s, d, iso, back, err)
		}
		compact := fmt.Sprintf("%04d%02d%02d", d.Year, int(d.Month), d.Day)
		switch len(s) {
		case 8:
			if compact != s {
				t.Fatalf("ParseDate(%q) = %v, whose compact form is %q", s, d, compact)
			}
			back, err := todo.ParseDate(compact)
			if err != nil || back != d {
				t.Fatalf("ParseDate(%q) = %v; ParseDate(%q) = %v, %v", s, d, compact, back, err)
			}
		case 10:
			if iso != s {
				t.Fatalf("ParseDate(%q) = %v, whose String is %q", s, d, iso)
			}
		default:
			t.Fatalf("ParseDate accepted %q, of length %d", s, len(s))
		}
	})
}

// listModel is the reference a List is checked against: the entries by id
// and the last id given.
type listModel struct {
	lastID  int
	entries map[int]todo.Entry
}

func (m *listModel) all() []todo.Entry {
	var all []todo.Entry
	for _, e := range m.entries {
		all = append(all, e)
	}
	slices.SortFunc(all, func(a, b todo.Entry) int { return a.ID - b.ID })
	return all
}

func (m *listModel) onDate(d todo.Date) []todo.Entry {
	var es []todo.Entry
	for _, e := range m.all() {
		if e.Date == d {
			es = append(es, e)
		}
	}
	return es
}

// TestList_Model runs random sequences of Add, Update (often moving the
// entry to another date) and Delete against a List and a map by id, and
// checks All, Entries of every date, and Len after every step.
func TestList_Model(t *testing.T) {
	t.Parallel()
	dates := []todo.Date{
		{Year: 2013, Month: time.December, Day: 19},
		{Year: 2013, Month: time.December, Day: 20},
		{Year: 2013, Month: time.December, Day: 21},
		{Year: 2014, Month: time.January, Day: 1},
		// A List takes any Date; these are not valid ones, and must still
		// be told apart by Entries.
		{},
		{Year: 2013, Month: time.February, Day: 30},
		{Year: 2013, Month: 13, Day: 1},
	}
	for seed := range uint64(20) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(seed, 0x70d0))
			l := &todo.List{}
			m := &listModel{entries: map[int]todo.Entry{}}
			// ops records the changes as a store's log does, and
			// checkpoints the list's entries every 50 steps with how many
			// ops they hold: the log's replay is checked against them at
			// the end.
			var ops []todo.Op
			type checkpoint struct {
				entries []todo.Entry
				ops     int
			}
			var checkpoints []checkpoint
			// randomID picks an existing id most of the time, otherwise one
			// that is unknown (never given, deleted, or not positive).
			randomID := func() int {
				if len(m.entries) > 0 && rng.IntN(5) > 0 {
					ids := make([]int, 0, len(m.entries))
					for id := range m.entries {
						ids = append(ids, id)
					}
					slices.Sort(ids)
					return ids[rng.IntN(len(ids))]
				}
				return rng.IntN(m.lastID+3) - 1
			}
			for step := range 400 {
				var op string
				switch r := rng.IntN(10); {
				case r < 4:
					e := todo.Entry{ID: rng.IntN(10), Date: dates[rng.IntN(len(dates))], Title: fmt.Sprint("t", step)}
					op = fmt.Sprintf("Add(%v)", e)
					got := l.Add(e)
					ops = append(ops, todo.Op{Entry: got})
					m.lastID++
					e.ID = m.lastID
					m.entries[e.ID] = e
					if got != e {
						t.Fatalf("step %d: %s = %v, want %v", step, op, got, e)
					}
				case r < 7:
					id := randomID()
					newDate := dates[rng.IntN(len(dates))]
					newTitle := fmt.Sprint("u", step)
					op = fmt.Sprintf("Update(%d, date %v, title %q)", id, newDate, newTitle)
					called := false
					got, err := l.Update(id, func(e todo.Entry) todo.Entry {
						called = true
						if e != m.entries[id] {
							t.Fatalf("step %d: %s: updater got %v, want %v", step, op, e, m.entries[id])
						}
						e.ID = rng.IntN(100) // must be ignored
						e.Date, e.Title = newDate, newTitle
						return e
					})
					old, ok := m.entries[id]
					if !ok {
						if !errors.Is(err, todo.ErrEntryNotFound) || called {
							t.Fatalf("step %d: %s of unknown id: error %v, updater called %v", step, op, err, called)
						}
						break
					}
					want := todo.Entry{ID: old.ID, Date: newDate, Title: newTitle}
					m.entries[id] = want
					ops = append(ops, todo.Op{Entry: want})
					if err != nil || got != want {
						t.Fatalf("step %d: %s = %v, %v; want %v", step, op, got, err, want)
					}
				default:
					id := randomID()
					op = fmt.Sprintf("Delete(%d)", id)
					err := l.Delete(id)
					if _, ok := m.entries[id]; ok {
						delete(m.entries, id)
						ops = append(ops, todo.Op{Entry: todo.Entry{ID: id}, Delete: true})
						if err != nil {
							t.Fatalf("step %d: %s: %v", step, op, err)
						}
					} else if !errors.Is(err, todo.ErrEntryNotFound) {
						t.Fatalf("step %d: %s of unknown id: error %v", step, op, err)
					}
				}
				if got, want := l.All(), m.all(); !slices.Equal(got, want) {
					t.Fatalf("step %d: after %s: All() = %v, want %v", step, op, got, want)
				}
				for _, d := range dates {
					if got, want := l.Entries(d), m.onDate(d); !slices.Equal(got, want) {
						t.Fatalf("step %d: after %s: Entries(%v) = %v, want %v", step, op, d, got, want)
					}
				}
				if got, want := l.Len(), len(m.entries); got != want {
					t.Fatalf("step %d: after %s: Len() = %d, want %d", step, op, got, want)
				}
				if tracked, actual := todo.ListSizes(l); tracked != actual {
					t.Fatalf("step %d: after %s: the list tracks %d encoded bytes, its entries take %d", step, op, tracked, actual)
				}
				if step%50 == 0 {
					checkpoints = append(checkpoints, checkpoint{l.All(), len(ops)})
				}
			}
			// Replaying the log from any point at or before a checkpoint
			// over it gives the list: the replay of ops a file holds
			// already changes nothing.
			for _, c := range checkpoints {
				from := rng.IntN(c.ops + 1)
				r := &todo.List{}
				for _, e := range c.entries {
					todo.ApplyOps(r, []todo.Op{{Entry: e}})
				}
				todo.ApplyOps(r, ops[from:])
				if got, want := r.All(), l.All(); !slices.Equal(got, want) {
					t.Fatalf("replaying ops %d.. over the checkpoint of %d ops: %v, want %v", from, c.ops, got, want)
				}
				for _, d := range dates {
					if got, want := r.Entries(d), l.Entries(d); !slices.Equal(got, want) {
						t.Fatalf("replaying ops %d.. over the checkpoint of %d ops: Entries(%v) = %v, want %v", from, c.ops, d, got, want)
					}
				}
				if tracked, actual := todo.ListSizes(r); tracked != actual {
					t.Fatalf("replayed list tracks %d encoded bytes, its entries take %d", tracked, actual)
				}
			}
		})
	}
}

// TestList_BatchRollback checks the undo log a list server uses when a
// batch could not be stored: a batch that empties a date and then fills it
// again must roll back to exactly the state before it, and report the date
// as touched once.
func TestList_BatchRollback(t *testing.T) {
	t.Parallel()
	d := todo.Date{Year: 2013, Month: time.December, Day: 19}
	other := todo.Date{Year: 2013, Month: time.December, Day: 20}
	for _, tc := range []struct {
		name   string
		change func(l *todo.List)
	}{
		{"delete then add", func(l *todo.List) {
			if err := l.Delete(1); err != nil {
				t.Fatal(err)
			}
			l.Add(todo.Entry{Date: d, Title: "B"})
		}},
		{"move away and back", func(l *todo.List) {
			for _, to := range []todo.Date{other, d} {
				if _, err := l.Update(1, func(e todo.Entry) todo.Entry { e.Date = to; return e }); err != nil {
					t.Fatal(err)
				}
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := todo.NewList(todo.Entry{Date: d, Title: "A"})
			before, beforeDay := l.All(), l.Entries(d)
			touched := todo.Batch(l, tc.change, true)
			seen := map[todo.Date]int{}
			for _, td := range touched {
				seen[td]++
				if seen[td] > 1 {
					t.Errorf("date %v reported touched %d times", td, seen[td])
				}
			}
			if got := l.All(); !slices.Equal(got, before) {
				t.Errorf("All after rollback = %v, want %v", got, before)
			}
			if got := l.Entries(d); !slices.Equal(got, beforeDay) {
				t.Errorf("Entries(%v) after rollback = %v, want %v", d, got, beforeDay)
			}
			if got := l.Entries(other); len(got) != 0 {
				t.Errorf("Entries(%v) after rollback = %v, want none", other, got)
			}
			if err := l.Delete(1); err != nil {
				t.Errorf("Delete(1) after rollback: %v", err)
			}
		})
	}
	// A committed batch that adds to a date and empties it leaves nothing behind.
	l := todo.NewList()
	todo.Batch(l, func(l *todo.List) {
		e := l.Add(todo.Entry{Date: d, Title: "gone"})
		if err := l.Delete(e.ID); err != nil {
			t.Fatal(err)
		}
	}, false)
	if l.Len() != 0 || len(l.Entries(d)) != 0 {
		t.Errorf("after commit: Len %d, Entries %v", l.Len(), l.Entries(d))
	}
}

// A list holds each entry once when its entries come date by date: the
// entries of a date are a slice of the list's slice of all entries. That
// sharing never lets a change show through a slice handed out before it.
func TestList_DatesShareEntries(t *testing.T) {
	t.Parallel()
	d19 := todo.Date{Year: 2013, Month: time.December, Day: 19}
	d20 := todo.Date{Year: 2013, Month: time.December, Day: 20}
	l := &todo.List{}
	for i := range 10 {
		l.Add(todo.Entry{Date: d19, Title: fmt.Sprint("a", i)})
	}
	held, shared := todo.DateView(l, d19)
	if !shared {
		t.Errorf("10 entries on one date: the date holds a copy of them")
	}
	heldCopy := slices.Clone(held)
	for i := range 3 {
		l.Add(todo.Entry{Date: d20, Title: fmt.Sprint("b", i)})
	}
	if _, shared := todo.DateView(l, d20); !shared {
		t.Errorf("entries added date by date: the second date holds a copy")
	}
	// Interleaved: the first date's entries are no longer together.
	l.Add(todo.Entry{Date: d19, Title: "late"})
	if got := l.Entries(d19); len(got) != 11 || got[10].Title != "late" {
		t.Errorf("Entries(d19) = %v", got)
	}
	if _, err := l.Update(2, func(e todo.Entry) todo.Entry { e.Title = "changed"; return e }); err != nil {
		t.Fatal(err)
	}
	if err := l.Delete(3); err != nil {
		t.Fatal(err)
	}
	l.Add(todo.Entry{Date: d20, Title: "b3"})
	if !slices.Equal(held, heldCopy) {
		t.Errorf("a date's entries handed out before later changes changed:\n got %v\nwant %v", held, heldCopy)
	}
	checkDates := func(l *todo.List) {
		t.Helper()
		for _, d := range []todo.Date{d19, d20} {
			var want []todo.Entry
			for _, e := range l.All() {
				if e.Date == d {
					want = append(want, e)
				}
			}
			if got := l.Entries(d); !slices.Equal(got, want) {
				t.Errorf("Entries(%v) = %v, want %v", d, got, want)
			}
		}
	}
	checkDates(l)
	// Loaded from stored entries, as a server loads a list.
	loaded := todo.ListFromEntries(l.All())
	checkDates(loaded)
	one := todo.ListFromEntries(heldCopy)
	if _, shared := todo.DateView(one, d19); !shared {
		t.Errorf("a loaded list of one date holds a copy of its entries")
	}
}

// TestList_Revision: a list's revision starts at 1 and grows by one with
// every change made, and not with a change refused; a batch rolled back
// takes its changes' revisions back with it.
func TestList_Revision(t *testing.T) {
	t.Parallel()
	var zero todo.List
	if r := zero.Revision(); r != 1 {
		t.Fatalf("the zero List is at revision %d, want 1", r)
	}
	l := todo.NewList(todo.Entry{Date: day19, Title: "a"}, todo.Entry{Date: day19, Title: "b"})
	steps := []struct {
		name   string
		change func(*todo.List)
		want   int64
	}{
		{"NewList of two", func(*todo.List) {}, 3},
		{"Add", func(l *todo.List) { l.Add(todo.Entry{Date: day20, Title: "c"}) }, 4},
		{"Update", func(l *todo.List) {
			l.Update(1, func(e todo.Entry) todo.Entry { e.Title = "A"; return e })
		}, 5},
		{"Update of no entry", func(l *todo.List) {
			l.Update(99, func(e todo.Entry) todo.Entry { return e })
		}, 5},
		{"Delete", func(l *todo.List) { l.Delete(2) }, 6},
		{"Delete of no entry", func(l *todo.List) { l.Delete(2) }, 6},
	}
	for _, s := range steps {
		s.change(l)
		if r := l.Revision(); r != s.want {
			t.Fatalf("after %s: revision %d, want %d", s.name, r, s.want)
		}
	}
	todo.Batch(l, func(l *todo.List) {
		l.Add(todo.Entry{Date: day19, Title: "rolled back"})
		l.Delete(1)
	}, true)
	if r := l.Revision(); r != 6 {
		t.Fatalf("after a batch rolled back: revision %d, want 6", r)
	}
}
