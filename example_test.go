package todo_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/gotodo/todo"
)

// ExampleTable counts page views in a Table shared by many goroutines,
// reserves a key, hands a job to exactly one taker, and saves the table to
// a file and loads it back.
func ExampleTable() {
	dir, err := os.MkdirTemp("", "todo-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	views := todo.NewTable[string, int]()
	for _, page := range []string{"/", "/lists", "/", "/lists/bob", "/"} {
		todo.UpdateCounter(views, page, 1)
	}
	n, _ := views.Lookup("/")
	fmt.Println("views of /:", n)

	// InsertNew is true for exactly one caller per absent key.
	fmt.Println("reserved /admin:", views.InsertNew("/admin", 0))
	fmt.Println("reserved /admin again:", views.InsertNew("/admin", 0))

	// Compute reads, changes and writes one key atomically; keep=false deletes it.
	views.Compute("/admin", func(old int, loaded bool) (int, bool) { return old, false })
	fmt.Println("/admin present:", views.Member("/admin"))

	// Select is an iterator; collect and sort, since a table has no order.
	var popular []string
	for page := range views.Select(func(_ string, n int) bool { return n > 1 }) {
		popular = append(popular, page)
	}
	slices.Sort(popular)
	fmt.Println("viewed more than once:", popular)

	jobs := todo.NewTable[int, string]()
	jobs.Insert(1, "send reminders")
	job, ok := jobs.Take(1)
	fmt.Printf("took %q: %v\n", job, ok)
	_, ok = jobs.Take(1)
	fmt.Println("took it twice:", ok)

	path := filepath.Join(dir, "views.tab")
	f, err := os.Create(path)
	if err != nil {
		log.Fatal(err)
	}
	if err := views.Save(f); err != nil {
		log.Fatal(err)
	}
	if err := f.Close(); err != nil {
		log.Fatal(err)
	}
	f, err = os.Open(path)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	loaded, err := todo.LoadTable[string, int](f)
	if err != nil {
		log.Fatal(err)
	}
	n, _ = loaded.Lookup("/lists/bob")
	fmt.Println("loaded", loaded.Len(), "pages; views of /lists/bob:", n)

	_, err = todo.LoadTable[string, int](strings.NewReader("not a table"))
	fmt.Println(err)
	// Output:
	// views of /: 3
	// reserved /admin: true
	// reserved /admin again: false
	// /admin present: false
	// viewed more than once: [/]
	// took "send reminders": true
	// took it twice: false
	// loaded 3 pages; views of /lists/bob: 1
	// todo: corrupt data: not a saved table (want header "todo.Table/1")
}

// ExampleList builds the book's to-do list: entries get ids in order, are
// read by date, updated and deleted, and ids are never reused.
func ExampleList() {
	d19, err := todo.ParseDate("20131219")
	if err != nil {
		log.Fatal(err)
	}
	d20, err := todo.ParseDate("2013-12-20")
	if err != nil {
		log.Fatal(err)
	}

	var l todo.List
	l.Add(todo.Entry{Date: d19, Title: "Dentist"})
	l.Add(todo.Entry{Date: d20, Title: "Shopping"})
	l.Add(todo.Entry{Date: d19, Title: "Movies"})
	fmt.Println(d19, l.Entries(d19))

	moved, err := l.Update(1, func(e todo.Entry) todo.Entry {
		e.Date = d20
		e.Title = "Dentist (moved)"
		return e
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("updated:", moved)
	fmt.Println(d20, l.Entries(d20))

	if err := l.Delete(3); err != nil {
		log.Fatal(err)
	}
	fmt.Println("after delete:", l.Add(todo.Entry{Date: d19, Title: "Gym"}))
	fmt.Println(l.Len(), "entries:", l.All())

	_, err = l.Update(3, func(e todo.Entry) todo.Entry { return e })
	fmt.Println(err)
	_, err = todo.ParseDate("20130230")
	fmt.Println(err)
	// Output:
	// 2013-12-19 [{1 2013-12-19 Dentist} {3 2013-12-19 Movies}]
	// updated: {1 2013-12-20 Dentist (moved)}
	// 2013-12-20 [{1 2013-12-20 Dentist (moved)} {2 2013-12-20 Shopping}]
	// after delete: {4 2013-12-19 Gym}
	// 3 entries: [{1 2013-12-20 Dentist (moved)} {2 2013-12-20 Shopping} {4 2013-12-19 Gym}]
	// todo: entry not found: id 3
	// todo: invalid date "20130230": no such day in the calendar
}

// ExampleOpen opens a System on a data directory, adds an entry, closes it
// (which writes everything), and opens the directory again: the entry is
// there, read back from its file.
func ExampleOpen() {
	dir, err := os.MkdirTemp("", "todo-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	dentist := todo.Entry{Date: todo.Date{Year: 2013, Month: time.December, Day: 19}, Title: "Dentist"}

	sys, err := todo.Open(dir, nil) // nil: the defaults (Fsync durability, 60s idle timeout)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := sys.ServerProcess("Bob's list").AddEntry(ctx, dentist); err != nil {
		log.Fatal(err)
	}
	if err := sys.Close(); err != nil {
		log.Fatal(err)
	}

	sys, err = todo.Open(dir, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer sys.Close()
	lists, err := sys.Lists(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(lists)
	entries, err := sys.ServerProcess("Bob's list").AllEntries(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(entries)
	// Output:
	// [Bob's list]
	// [{1 2013-12-19 Dentist}]
}

// ExampleServer_AddEntry is the book's session in Go:
//
//	bobs_list = Todo.Cache.server_process(cache, "Bob's list")
//	Todo.Server.add_entry(bobs_list, %{date: ~D[2013-12-19], title: "Dentist"})
//	Todo.Server.entries(bobs_list, ~D[2013-12-19])
func ExampleServer_AddEntry() {
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

	bobsList := sys.ServerProcess("Bob's list")
	e, err := bobsList.AddEntry(ctx, todo.Entry{
		Date:  todo.Date{Year: 2013, Month: time.December, Day: 19},
		Title: "Dentist",
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("added:", e.ID, e.Date, e.Title)

	entries, err := bobsList.Entries(ctx, todo.Date{Year: 2013, Month: time.December, Day: 19})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(entries)
	// Output:
	// added: 1 2013-12-19 Dentist
	// [{1 2013-12-19 Dentist}]
}

// ExampleServer_Entries reads a list day by day. Reads of a loaded list
// come from the System's table and never wait for the list's server.
func ExampleServer_Entries() {
	dir, err := os.MkdirTemp("", "todo-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sys, err := todo.Open(dir, &todo.Options{Durability: todo.Write})
	if err != nil {
		log.Fatal(err)
	}
	defer sys.Close()
	ctx := context.Background()

	alice := sys.ServerProcess("alice")
	for _, e := range []struct {
		date  string
		title string
	}{
		{"2013-12-19", "Dentist"},
		{"2013-12-20", "Shopping"},
		{"20131219", "Movies"},
	} {
		d, err := todo.ParseDate(e.date)
		if err != nil {
			log.Fatal(err)
		}
		if _, err := alice.AddEntry(ctx, todo.Entry{Date: d, Title: e.title}); err != nil {
			log.Fatal(err)
		}
	}
	for _, day := range []string{"2013-12-19", "2013-12-20", "2013-12-21"} {
		d, _ := todo.ParseDate(day)
		entries, err := alice.Entries(ctx, d)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(day, entries)
	}
	// Output:
	// 2013-12-19 [{1 2013-12-19 Dentist} {3 2013-12-19 Movies}]
	// 2013-12-20 [{2 2013-12-20 Shopping}]
	// 2013-12-21 []
}

// ExampleServer_Watch reads a list with its revision, then follows it
// from there: every change after the read, in order, none twice.
func ExampleServer_Watch() {
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
	day := todo.Date{Year: 2013, Month: time.December, Day: 19}

	bob := sys.ServerProcess("bob")
	dentist, err := bob.AddEntry(ctx, todo.Entry{Date: day, Title: "Dentist"})
	if err != nil {
		log.Fatal(err)
	}
	entries, rev, err := bob.EntriesRev(ctx, todo.Date{}) // every date
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("read", len(entries), "entries at revision", rev)

	// Someone else changes the list.
	go func() {
		bob.AddEntry(ctx, todo.Entry{Date: day, Title: "Shopping"})
		bob.DeleteEntry(ctx, dentist.ID)
	}()

	watch, err := bob.Watch(ctx, rev)
	if err != nil {
		log.Fatal(err) // ErrTooOld: read again, and watch from there
	}
	for ev, err := range watch {
		if err != nil {
			log.Fatal(err) // a *BehindError: watch again from its Revision
		}
		fmt.Println(ev.Revision, ev.Kind, ev.Entry.ID, ev.Entry.Title)
		if ev.Revision == rev+2 {
			break
		}
	}
	// Output:
	// read 1 entries at revision 2
	// 3 added 2 Shopping
	// 4 deleted 1 Dentist
}
