//go:build ignore

// gen writes the fixture of TestStore_FormatV1Fixture: a data directory as
// a SIGKILL leaves it (list files from an earlier life, records in a log
// of several segments, ids reserved ahead with Write durability,
// idempotency keys, updates and deletes, names that need encoding, one
// long enough to be split into nested directories), and want.json, what
// the code that wrote it reads from it. It was run once, at commit
// a3a563a, from the repository's root:
//
//	go run testdata/datadir-v1/gen.go
//
// Running it again with later code would prove nothing: the point of the
// fixture is that it was written by that code.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/gotodo/todo"
)

const out = "testdata/datadir-v1"

// want is what want.json holds.
type want struct {
	Lists    map[string][]todo.Entry // every list and its entries
	NextID   map[string]int          // the id of the next entry added to each
	Keyed    map[string]keyed        // what a retry of each keyed add is answered with
	Files    int                     // list files todo.Check reads
	Segments int                     // log segments todo.Check reads
	Problems []string                // what it finds
}

// keyed is the list of a keyed add, and the id of the entry it added.
type keyed struct {
	List string
	ID   int
}

var (
	ctx  = context.Background()
	long = strings.Repeat("é", 100) // 200 bytes, 600 encoded: nested directories
)

func main() {
	dir := filepath.Join(out, "dir")
	live := filepath.Join(os.TempDir(), "todo-fixture-live")
	for _, p := range []string{dir, live} {
		must(os.RemoveAll(p))
	}
	day := func(d int) todo.Date { return todo.Date{Year: 2013, Month: 12, Day: d} }

	// An earlier life, closed: its lists are in their files.
	sys, err := todo.Open(live, nil)
	must(err)
	for i := range 5 {
		for _, l := range []string{"bob", "Bob's list", long, "alice"} {
			add(sys, l, todo.Entry{Date: day(19 + i%3), Title: fmt.Sprintf("%s before %d", l, i)})
		}
	}
	_, err = sys.UpdateEntry(ctx, "bob", 2, func(e todo.Entry) todo.Entry { e.Title = "bob renamed"; return e })
	must(err)
	must(sys.DeleteEntry(ctx, "alice", 3))
	must(sys.Close())

	// The life a SIGKILL ends: Write durability (ids reserved ahead), a
	// log of 16 KiB segments, its records not yet in the files.
	sys, err = todo.Open(live, &todo.Options{Durability: todo.Write, LogSize: 64 << 10})
	must(err)
	keys := map[string]string{}
	for i := range 100 {
		l := []string{"bob", "Bob's list", "carol", long, "alice", "dave"}[i%6]
		e := todo.Entry{Date: day(1 + i%28), Title: fmt.Sprintf("%s in the log %d %s", l, i, strings.Repeat("x", 400))}
		if i%7 == 0 {
			key := fmt.Sprintf("key-%d", i)
			keys[key] = l
			e, err = sys.AddEntry(todo.WithIdempotencyKey(ctx, key), l, e)
			must(err)
			continue
		}
		add(sys, l, e)
	}
	_, err = sys.UpdateEntry(ctx, "Bob's list", 1, func(e todo.Entry) todo.Entry { e.Date = day(31); return e })
	must(err)
	must(sys.DeleteEntry(ctx, "bob", 1))
	must(sys.DeleteEntry(ctx, "carol", 3))
	must(sys.DeleteEntry(todo.WithIdempotencyKey(ctx, "key-delete"), "dave", 2))
	if st := sys.Stats(); st.LogSegments < 3 || st.Checkpoints != 0 {
		log.Fatalf("%d segments, %d checkpoints: want at least 3, none", st.LogSegments, st.Checkpoints)
	}
	cp(live, dir)
	must(sys.Close())
	must(os.RemoveAll(live))

	// What this code reads from it.
	w := want{Lists: map[string][]todo.Entry{}, NextID: map[string]int{}, Keyed: map[string]keyed{}}
	img := filepath.Join(os.TempDir(), "todo-fixture-image")
	must(os.RemoveAll(img))
	cp(dir, img)
	problems, files, segments, err := todo.Check(img, false)
	must(err)
	w.Files, w.Segments = files, segments
	for _, p := range problems {
		w.Problems = append(w.Problems, p.String())
	}
	sys, err = todo.Open(img, nil)
	must(err)
	names, err := sys.Lists(ctx)
	must(err)
	slices.Sort(names)
	for _, l := range names {
		es, err := sys.AllEntries(ctx, l)
		must(err)
		w.Lists[l] = es
	}
	for key, l := range keys {
		e, err := sys.AddEntry(todo.WithIdempotencyKey(ctx, key), l, todo.Entry{Date: day(1), Title: "a retry"})
		must(err)
		w.Keyed[key] = keyed{l, e.ID}
	}
	for _, l := range names {
		w.NextID[l] = add(sys, l, todo.Entry{Date: day(2), Title: "next"}).ID
	}
	must(sys.Close())
	must(os.RemoveAll(img))
	data, err := json.MarshalIndent(w, "", "\t")
	must(err)
	must(os.WriteFile(filepath.Join(out, "want.json"), append(data, '\n'), 0o644))
}

func add(sys *todo.System, list string, e todo.Entry) todo.Entry {
	e, err := sys.AddEntry(ctx, list, e)
	must(err)
	return e
}

func cp(from, to string) {
	if out, err := exec.Command("cp", "-a", from, to).CombinedOutput(); err != nil {
		log.Fatalf("cp -a: %v: %s", err, out)
	}
}

func must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
