package todo_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gotodo/todo"
)

// crashImage opens a System on a fresh directory, adds to it what add
// adds, and copies the directory while the System is still open and idle,
// as a crash would leave it: the lists' changes in the log, not in their
// files. It returns the copy.
func crashImage(t *testing.T, add func(t *testing.T, sys *todo.System)) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "live")
	sys := persistOpen(t, dir, nil)
	add(t, sys)
	image := filepath.Join(t.TempDir(), "image")
	if out, err := exec.Command("cp", "-a", dir, image).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v: %s", err, out)
	}
	persistClose(t, sys)
	return image
}

// onlySegment returns the path of the one log segment in dir.
func onlySegment(t *testing.T, dir string) string {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dir, "log", "*.seg"))
	if err != nil || len(segs) != 1 {
		t.Fatalf("log segments %v, %v; want one", segs, err)
	}
	return segs[0]
}

// flip changes the byte at off in the file at p.
func flip(t *testing.T, p string, off int) {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	data[off] ^= 0x40
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// recordOf returns the offset in a segment of the first record of the
// list called name (a name under 32 bytes): the 12-byte header before its
// body, which starts [name, ...].
func recordOf(t *testing.T, seg, name string) int {
	t.Helper()
	data, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(data, append([]byte{0x93, 0xa0 | byte(len(name))}, name...))
	if i < 12 {
		t.Fatalf("no record of %q in %s", name, seg)
	}
	return i - 12
}

// addThree adds 3 entries to each of alpha, bravo and charlie, in turn.
func addThree(t *testing.T, sys *todo.System) {
	for i := range 3 {
		for _, l := range []string{"alpha", "bravo", "charlie"} {
			persistAdd(t, sys, l, fmt.Sprintf("%s %d", l, i))
		}
	}
}

func mustCheck(t *testing.T, dir string, repair bool) []todo.Problem {
	t.Helper()
	problems, _, _, err := todo.Check(dir, repair)
	if err != nil {
		t.Fatalf("Check(repair=%v): %v", repair, err)
	}
	return problems
}

func TestCheck_Clean(t *testing.T) {
	dir := t.TempDir()
	sys := persistOpen(t, dir, nil)
	addThree(t, sys)
	persistClose(t, sys)
	problems, files, segments, err := todo.Check(dir, false)
	if err != nil || len(problems) != 0 || files != 3 || segments != 0 {
		t.Errorf("Check of a closed directory: %v, %d files, %d segments, %v; want none, 3, 0, nil", problems, files, segments, err)
	}
	image := crashImage(t, addThree)
	problems, files, segments, err = todo.Check(image, false)
	if err != nil || len(problems) != 0 || files != 0 || segments != 1 {
		t.Errorf("Check of a crashed directory: %v, %d files, %d segments, %v; want none, 0, 1, nil", problems, files, segments, err)
	}
}

func TestCheck_Locked(t *testing.T) {
	dir := t.TempDir()
	persistOpen(t, dir, nil)
	if _, _, _, err := todo.Check(dir, false); !errors.Is(err, todo.ErrLocked) || !strings.Contains(err.Error(), dir) {
		t.Errorf("Check of a directory a System has open: %v, want ErrLocked naming it", err)
	}
	if _, _, _, err := todo.Check(filepath.Join(dir, "missing"), false); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "no data directory at "+filepath.Join(dir, "missing")) {
		t.Errorf("Check of a directory that does not exist: %v, want fs.ErrNotExist saying so", err)
	} else if _, serr := os.Stat(filepath.Join(dir, "missing")); serr == nil {
		t.Error("Check created the directory it was asked to check")
	}
}

func TestCheck_DamagedListFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	sys := persistOpen(t, dir, nil)
	addThree(t, sys)
	persistClose(t, sys)
	file := persistPath(dir, "bravo")
	flip(t, file, 20)

	problems := mustCheck(t, dir, false)
	rel, _ := filepath.Rel(dir, file)
	if len(problems) != 1 || problems[0].Path != rel || problems[0].List != "bravo" || problems[0].Harmless || problems[0].Action != "" {
		t.Fatalf("Check: %v; want one problem with %s, list bravo, not repaired", problems, rel)
	}
	sys = persistOpen(t, dir, nil)
	if _, err := sys.ServerProcess("bravo").AllEntries(ctx); !errors.Is(err, todo.ErrCorrupt) {
		t.Fatalf("reading the damaged list: %v, want ErrCorrupt", err)
	}
	persistClose(t, sys)

	problems = mustCheck(t, dir, true)
	if len(problems) != 1 || !strings.Contains(problems[0].Action, "moved to quarantine/") {
		t.Fatalf("Check -repair: %v; want the file moved to quarantine/", problems)
	}
	if _, err := os.Stat(filepath.Join(dir, "quarantine", rel)); err != nil {
		t.Errorf("the damaged file is not in quarantine: %v", err)
	}
	if problems := mustCheck(t, dir, false); len(problems) != 0 {
		t.Errorf("Check after the repair: %v, want none", problems)
	}
	sys = persistOpen(t, dir, nil)
	if es := persistAll(t, sys, "bravo"); len(es) != 0 {
		t.Errorf("bravo after its file was set aside: %v, want empty", es)
	}
	for _, l := range []string{"alpha", "charlie"} {
		if es := persistAll(t, sys, l); len(es) != 3 {
			t.Errorf("%s after the repair: %v, want its 3 entries", l, es)
		}
	}
}

func TestCheck_DamagedRecord(t *testing.T) {
	ctx := context.Background()
	image := crashImage(t, addThree)
	seg := onlySegment(t, image)
	at := recordOf(t, seg, "bravo")
	flip(t, seg, at+20) // in the body, past the name

	problems := mustCheck(t, image, false)
	rel, _ := filepath.Rel(image, seg)
	if len(problems) != 1 || problems[0].Path != rel || problems[0].Offset != int64(at) || problems[0].List != "bravo" {
		t.Fatalf("Check: %v; want one problem at %s offset %d, list bravo", problems, rel, at)
	}
	sys := persistOpen(t, image, nil)
	_, err := sys.ServerProcess("bravo").AllEntries(ctx)
	if !errors.Is(err, todo.ErrCorrupt) || !strings.Contains(err.Error(), seg) || !strings.Contains(err.Error(), fmt.Sprint("offset ", at)) {
		t.Errorf("reading bravo: %v, want ErrCorrupt naming %s and offset %d", err, seg, at)
	}
	for _, l := range []string{"alpha", "charlie"} {
		if es := persistAll(t, sys, l); len(es) != 3 {
			t.Errorf("%s beside the damaged record: %v, want its 3 entries", l, es)
		}
	}
	persistClose(t, sys)

	// Close could not checkpoint bravo, so its records, the damaged one
	// among them, are still in the log.
	problems = mustCheck(t, image, true)
	if len(problems) != 1 || !strings.Contains(problems[0].Action, "rewritten without its damaged records") {
		t.Fatalf("Check -repair: %v", problems)
	}
	if problems := mustCheck(t, image, false); len(problems) != 0 {
		t.Errorf("Check after the repair: %v, want none", problems)
	}
	sys = persistOpen(t, image, nil)
	es := persistAll(t, sys, "bravo")
	if len(es) != 2 || es[0].Title != "bravo 1" || es[1].Title != "bravo 2" {
		t.Errorf("bravo after the repair: %v, want the entries of its two good records", es)
	}
}

func TestCheck_DamagedHeader(t *testing.T) {
	image := crashImage(t, addThree)
	seg := onlySegment(t, image)
	at := recordOf(t, seg, "bravo")
	flip(t, seg, at+1) // the body's length: whose record it is cannot be known

	problems := mustCheck(t, image, false)
	if len(problems) != 1 || problems[0].Offset != int64(at) || problems[0].List != "" || !strings.Contains(problems[0].Reason, "cannot be known") {
		t.Fatalf("Check: %v; want one problem at offset %d of an unknown list", problems, at)
	}
	if sys, err := todo.Open(image, nil); !errors.Is(err, todo.ErrCorrupt) || !strings.Contains(err.Error(), seg) || !strings.Contains(err.Error(), fmt.Sprint("offset ", at)) {
		t.Errorf("Open: %v, want ErrCorrupt naming %s and offset %d", err, seg, at)
		if err == nil {
			sys.Close()
		}
	}
	mustCheck(t, image, true)
	sys := persistOpen(t, image, nil)
	got := map[string]int{}
	for _, l := range []string{"alpha", "bravo", "charlie"} {
		got[l] = len(persistAll(t, sys, l))
	}
	if got["alpha"] != 3 || got["charlie"] != 3 || got["bravo"] != 2 {
		t.Errorf("after the repair the lists hold %v entries, want alpha 3, bravo 2, charlie 3", got)
	}
}

func TestCheck_TornTail(t *testing.T) {
	image := crashImage(t, addThree)
	seg := onlySegment(t, image)
	data, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	last := bytes.LastIndex(data, []byte{0x93, 0xa0 | 7, 'c', 'h', 'a', 'r', 'l', 'i', 'e'}) - 12
	if err := os.Truncate(seg, int64(last+20)); err != nil {
		t.Fatal(err)
	}
	problems := mustCheck(t, image, false)
	if len(problems) != 1 || !problems[0].Harmless || problems[0].Offset != int64(last) {
		t.Fatalf("Check: %v; want one harmless problem, the torn record at %d", problems, last)
	}
	// What is true of a torn record in every durability mode: it was
	// never fdatasynced, so never acknowledged with Fsync; with Write (a
	// power cut) or Async (acknowledged before the write) it may have
	// been.
	if r := problems[0].Reason; !strings.Contains(r, "never acknowledged with Fsync durability") || !strings.Contains(r, "with Write or Async it may have been") {
		t.Errorf("the torn record's reason: %q; want what is true in every mode", r)
	}
	sys := persistOpen(t, image, nil)
	if es := persistAll(t, sys, "charlie"); len(es) != 2 {
		t.Errorf("charlie after the torn record was cut: %v, want 2 entries", es)
	}
	if es := persistAll(t, sys, "alpha"); !slices.EqualFunc(es, []string{"alpha 0", "alpha 1", "alpha 2"}, func(e todo.Entry, s string) bool { return e.Title == s }) {
		t.Errorf("alpha: %v", es)
	}
}

// TestCheck_UnbornSegment leaves what a crash while the log started a
// segment leaves, an empty newest segment: Check reports it as harmless,
// as Open removes it, and -repair sets nothing aside.
func TestCheck_UnbornSegment(t *testing.T) {
	image := crashImage(t, addThree)
	seg := onlySegment(t, image)
	next := filepath.Join(filepath.Dir(seg), fmt.Sprintf("%016x.seg", 2))
	if err := os.WriteFile(next, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, repair := range []bool{false, true} {
		problems := mustCheck(t, image, repair)
		if rel, _ := filepath.Rel(image, next); len(problems) != 1 || problems[0].Path != rel || !problems[0].Harmless || problems[0].Action != "" {
			t.Fatalf("Check(repair=%v): %v; want one harmless problem, %s, left alone", repair, problems, rel)
		}
	}
	sys := persistOpen(t, image, nil)
	for _, l := range []string{"alpha", "bravo", "charlie"} {
		if es := persistAll(t, sys, l); len(es) != 3 {
			t.Errorf("%s: %v, want its 3 entries", l, es)
		}
	}
}

// TestCheck_DirectoryForListFile replaces a list's file by a directory
// (the old file inside it): the list is reported like any damaged one, by
// Check and by the System, whose Lists still names it and whose loads of
// it fail with ErrCorrupt naming the path; -repair sets the directory
// aside (beside what an earlier repair set aside there), and the list is
// then served as empty.
func TestCheck_DirectoryForListFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	sys := persistOpen(t, dir, nil)
	addThree(t, sys)
	persistClose(t, sys)
	file := persistPath(dir, "bravo")
	rel, _ := filepath.Rel(dir, file)
	if err := os.MkdirAll(filepath.Join(dir, "quarantine", filepath.Dir(rel)), 0o755); err != nil {
		t.Fatal(err)
	}
	earlier := filepath.Join(dir, "quarantine", rel)
	if err := os.WriteFile(earlier, []byte("set aside before"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(file, file+".old"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(file, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(file+".old", filepath.Join(file, "inside")); err != nil {
		t.Fatal(err)
	}

	problems, files, _, err := todo.Check(dir, false)
	if err != nil || files != 3 || len(problems) != 1 || problems[0].Path != rel || problems[0].List != "bravo" || problems[0].Harmless ||
		!strings.Contains(problems[0].Reason, "a directory") {
		t.Fatalf("Check: %v, %d files, %v; want one problem with %s, list bravo, a directory", problems, files, err, rel)
	}
	sys = persistOpen(t, dir, nil)
	names, err := sys.Lists(ctx)
	slices.Sort(names)
	if err != nil || !slices.Equal(names, []string{"alpha", "bravo", "charlie"}) {
		t.Errorf("Lists: %q, %v; want bravo among them", names, err)
	}
	if _, err := sys.AllEntries(ctx, "bravo"); !errors.Is(err, todo.ErrCorrupt) || !strings.Contains(err.Error(), file) {
		t.Errorf("AllEntries(bravo): %v, want ErrCorrupt naming %s", err, file)
	}
	if _, err := sys.AddEntry(ctx, "bravo", todo.Entry{Date: persistDay, Title: "must not land"}); !errors.Is(err, todo.ErrCorrupt) {
		t.Errorf("AddEntry(bravo): %v, want ErrCorrupt", err)
	}
	persistClose(t, sys)

	problems = mustCheck(t, dir, true)
	if len(problems) != 1 || !problems[0].Repaired || !strings.Contains(problems[0].Action, "moved to quarantine/"+rel+".1") {
		t.Fatalf("Check -repair: %v; want the directory moved beside what was set aside before", problems)
	}
	if data, err := os.ReadFile(earlier); err != nil || string(data) != "set aside before" {
		t.Errorf("what an earlier repair set aside: %q, %v", data, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "quarantine", rel+".1", "inside")); err != nil {
		t.Errorf("the directory is not in quarantine: %v", err)
	}
	if problems := mustCheck(t, dir, false); len(problems) != 0 {
		t.Errorf("Check after the repair: %v, want none", problems)
	}
	sys = persistOpen(t, dir, nil)
	if es := persistAll(t, sys, "bravo"); len(es) != 0 {
		t.Errorf("bravo after the repair: %v, want empty", es)
	}
}
