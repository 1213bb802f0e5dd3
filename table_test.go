package todo_test

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gotodo/todo"
)

// tableOf returns a table holding kv.
func tableOf[K comparable, V any](tb testing.TB, kv map[K]V) *todo.Table[K, V] {
	tb.Helper()
	t := todo.NewTable[K, V]()
	for k, v := range kv {
		t.Insert(k, v)
	}
	if t.Len() != len(kv) {
		tb.Fatalf("Len() = %d after inserting %d keys", t.Len(), len(kv))
	}
	return t
}

// tableContents returns every key and value of t, read with All.
func tableContents[K comparable, V any](tb testing.TB, t *todo.Table[K, V]) map[K]V {
	tb.Helper()
	m := map[K]V{}
	for k, v := range t.All() {
		if _, dup := m[k]; dup {
			tb.Fatalf("All() yielded key %v twice", k)
		}
		m[k] = v
	}
	return m
}

// assertContents fails the test unless t holds exactly want, as seen by
// All, Lookup, Member and Len.
func assertContents[K comparable, V comparable](tb testing.TB, t *todo.Table[K, V], want map[K]V) {
	tb.Helper()
	if got := tableContents(tb, t); !maps.Equal(got, want) {
		tb.Fatalf("table holds %v, want %v", got, want)
	}
	for k, wantV := range want {
		if v, ok := t.Lookup(k); !ok || v != wantV {
			tb.Fatalf("Lookup(%v) = %v, %v; want %v, true", k, v, ok, wantV)
		}
		if !t.Member(k) {
			tb.Fatalf("Member(%v) = false for a present key", k)
		}
	}
	if t.Len() != len(want) {
		tb.Fatalf("Len() = %d, want %d", t.Len(), len(want))
	}
}

// assertAbsent fails the test if key is in t.
func assertAbsent[K comparable, V any](tb testing.TB, t *todo.Table[K, V], key K) {
	tb.Helper()
	if v, ok := t.Lookup(key); ok {
		tb.Fatalf("Lookup(%v) = %v, true; want absent", key, v)
	}
	if t.Member(key) {
		tb.Fatalf("Member(%v) = true; want absent", key)
	}
}

func TestTable_Insert(t *testing.T) {
	t.Parallel()
	tab := todo.NewTable[string, int]()
	assertContents(t, tab, map[string]int{})
	tab.Insert("a", 1)
	tab.Insert("b", 2)
	assertContents(t, tab, map[string]int{"a": 1, "b": 2})
	tab.Insert("a", 3) // replaces
	assertContents(t, tab, map[string]int{"a": 3, "b": 2})
}

func TestTable_InsertNew(t *testing.T) {
	t.Parallel()
	tab := tableOf(t, map[string]int{"a": 1})
	if !tab.InsertNew("b", 2) {
		t.Error(`InsertNew("b") of an absent key = false`)
	}
	if tab.InsertNew("a", 10) {
		t.Error(`InsertNew("a") of a present key = true`)
	}
	if tab.InsertNew("b", 20) {
		t.Error(`InsertNew("b") of a key it just inserted = true`)
	}
	assertContents(t, tab, map[string]int{"a": 1, "b": 2})
}

func TestTable_LookupOrInsert(t *testing.T) {
	t.Parallel()
	tab := tableOf(t, map[string]int{"a": 1})
	tests := []struct {
		key          string
		value        int
		want         int
		wantInserted bool
	}{
		{"a", 10, 1, false},
		{"b", 2, 2, true},
		{"b", 20, 2, false},
	}
	for _, tt := range tests {
		got, inserted := tab.LookupOrInsert(tt.key, tt.value)
		if got != tt.want || inserted != tt.wantInserted {
			t.Errorf("LookupOrInsert(%q, %d) = %d, %v; want %d, %v", tt.key, tt.value, got, inserted, tt.want, tt.wantInserted)
		}
	}
	assertContents(t, tab, map[string]int{"a": 1, "b": 2})
}

func TestTable_Lookup(t *testing.T) {
	t.Parallel()
	tab := tableOf(t, map[string]int{"a": 1, "zero": 0})
	tests := []struct {
		key    string
		want   int
		wantOK bool
	}{
		{"a", 1, true},
		{"zero", 0, true}, // a stored zero value is present
		{"b", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		if got, ok := tab.Lookup(tt.key); got != tt.want || ok != tt.wantOK {
			t.Errorf("Lookup(%q) = %d, %v; want %d, %v", tt.key, got, ok, tt.want, tt.wantOK)
		}
		if got := tab.Member(tt.key); got != tt.wantOK {
			t.Errorf("Member(%q) = %v, want %v", tt.key, got, tt.wantOK)
		}
	}
}

func TestTable_Delete(t *testing.T) {
	t.Parallel()
	tab := tableOf(t, map[string]int{"a": 1, "b": 2})
	tab.Delete("a")
	tab.Delete("c") // absent: nothing happens
	assertContents(t, tab, map[string]int{"b": 2})
	tab.Delete("b")
	assertContents(t, tab, map[string]int{})
	tab.Insert("a", 3) // a deleted key can come back
	assertContents(t, tab, map[string]int{"a": 3})
}

func TestTable_Take(t *testing.T) {
	t.Parallel()
	tab := tableOf(t, map[string]int{"a": 1, "b": 2})
	if v, ok := tab.Take("a"); v != 1 || !ok {
		t.Errorf(`Take("a") = %d, %v; want 1, true`, v, ok)
	}
	if v, ok := tab.Take("a"); v != 0 || ok {
		t.Errorf(`second Take("a") = %d, %v; want 0, false`, v, ok)
	}
	if v, ok := tab.Take("c"); v != 0 || ok {
		t.Errorf(`Take("c") of an absent key = %d, %v; want 0, false`, v, ok)
	}
	assertContents(t, tab, map[string]int{"b": 2})
}

func TestTable_DeleteIf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		key         string
		pred        func(int) bool
		want        bool
		wantCalled  bool
		wantContent map[string]int
	}{
		{"absent", "c", func(int) bool { return true }, false, false, map[string]int{"a": 1, "b": 2}},
		{"pred false", "a", func(v int) bool { return v == 2 }, false, true, map[string]int{"a": 1, "b": 2}},
		{"pred true", "b", func(v int) bool { return v == 2 }, true, true, map[string]int{"a": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tab := tableOf(t, map[string]int{"a": 1, "b": 2})
			called := false
			got := tab.DeleteIf(tt.key, func(v int) bool {
				called = true
				return tt.pred(v)
			})
			if got != tt.want || called != tt.wantCalled {
				t.Errorf("DeleteIf(%q) = %v with pred called %v; want %v, called %v", tt.key, got, called, tt.want, tt.wantCalled)
			}
			assertContents(t, tab, tt.wantContent)
		})
	}
}

func TestTable_Update(t *testing.T) {
	t.Parallel()
	tab := tableOf(t, map[string]int{"a": 1})
	got, ok := tab.Update("a", func(v int) int { return v + 10 })
	if got != 11 || !ok {
		t.Errorf(`Update("a") = %d, %v; want 11, true`, got, ok)
	}
	called := false
	got, ok = tab.Update("b", func(v int) int { called = true; return 5 })
	if ok || called {
		t.Errorf(`Update("b") of an absent key = %d, %v with fn called %v; want not ok, not called`, got, ok, called)
	}
	assertContents(t, tab, map[string]int{"a": 11})
}

func TestTable_Compute(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		key         string
		value       int  // what fn returns
		keep        bool // what fn returns
		wantOld     int
		wantLoaded  bool
		wantOK      bool
		wantContent map[string]int
	}{
		{"insert absent", "b", 2, true, 0, false, true, map[string]int{"a": 1, "b": 2}},
		{"absent stays absent", "b", 2, false, 0, false, false, map[string]int{"a": 1}},
		{"change present", "a", 5, true, 1, true, true, map[string]int{"a": 5}},
		{"delete present", "a", 5, false, 1, true, false, map[string]int{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tab := tableOf(t, map[string]int{"a": 1})
			calls := 0
			got, ok := tab.Compute(tt.key, func(old int, loaded bool) (int, bool) {
				calls++
				if old != tt.wantOld || loaded != tt.wantLoaded {
					t.Errorf("fn got %d, %v; want %d, %v", old, loaded, tt.wantOld, tt.wantLoaded)
				}
				return tt.value, tt.keep
			})
			if calls != 1 {
				t.Errorf("Compute called fn %d times, want once", calls)
			}
			if ok != tt.wantOK {
				t.Errorf("Compute(%q) ok = %v, want %v", tt.key, ok, tt.wantOK)
			}
			// The value is only meaningful when the key is present after
			// the call.
			if ok && got != tt.value {
				t.Errorf("Compute(%q) = %d, want %d", tt.key, got, tt.value)
			}
			assertContents(t, tab, tt.wantContent)
		})
	}
}

func TestUpdateCounter(t *testing.T) {
	t.Parallel()
	tab := tableOf(t, map[string]int{"a": 10})
	steps := []struct {
		key  string
		incr int
		want int
	}{
		{"a", 1, 11},
		{"a", -20, -9},
		{"b", 5, 5}, // an absent key counts as zero
		{"b", 0, 5},
		{"c", 0, 0}, // adding zero to an absent key stores zero
	}
	for _, s := range steps {
		if got := todo.UpdateCounter(tab, s.key, s.incr); got != s.want {
			t.Errorf("UpdateCounter(%q, %d) = %d, want %d", s.key, s.incr, got, s.want)
		}
	}
	assertContents(t, tab, map[string]int{"a": -9, "b": 5, "c": 0})

	// Unsigned and small counters wrap like the Go types they are.
	u8 := todo.NewTable[int, uint8]()
	todo.UpdateCounter(u8, 1, 200)
	if got := todo.UpdateCounter(u8, 1, 100); got != 44 {
		t.Errorf("uint8 counter 200+100 = %d, want 44", got)
	}
}

func TestTable_Range(t *testing.T) {
	t.Parallel()
	want := map[int]string{1: "a", 2: "b", 3: "c", 4: "d"}
	tab := tableOf(t, want)
	got := map[int]string{}
	tab.Range(func(k int, v string) bool {
		if _, dup := got[k]; dup {
			t.Errorf("Range called fn with key %d twice", k)
		}
		got[k] = v
		return true
	})
	if !maps.Equal(got, want) {
		t.Errorf("Range saw %v, want %v", got, want)
	}

	calls := 0
	tab.Range(func(int, string) bool {
		calls++
		return false
	})
	if calls != 1 {
		t.Errorf("Range went on for %d calls after fn returned false, want 1", calls)
	}
}

// TestTable_Range_Writes checks that writing to the table from inside a
// scan is allowed, and that keys present and unchanged for the whole scan
// are seen.
func TestTable_Range_Writes(t *testing.T) {
	t.Parallel()
	const n = 1000
	tab := todo.NewTable[int, int]()
	for i := range n {
		tab.Insert(i, i)
	}
	seen := map[int]bool{}
	tab.Range(func(k, v int) bool {
		seen[k] = true
		if k < n && k%2 == 0 {
			tab.Delete(k + 1)    // may or may not be seen later
			tab.Insert(k+n, k)   // may or may not be seen
			tab.Update(k, twice) // may or may not be seen
			todo.UpdateCounter(tab, -1, 1)
		}
		return true
	})
	for i := 0; i < n; i += 2 {
		if !seen[i] {
			t.Fatalf("Range did not see key %d, present for the whole scan", i)
		}
	}
	if got := tab.Len(); got != n+1 {
		t.Errorf("Len() = %d after the scan, want %d", got, n+1)
	}
	if got, _ := tab.Lookup(-1); got != n/2 {
		t.Errorf("counter updated from the scan = %d, want %d", got, n/2)
	}
}

// twice returns 2v.
func twice(v int) int { return 2 * v }

func TestTable_All(t *testing.T) {
	t.Parallel()
	want := map[int]string{1: "a", 2: "b", 3: "c", 4: "d"}
	tab := tableOf(t, want)
	if got := tableContents(t, tab); !maps.Equal(got, want) {
		t.Errorf("All() yielded %v, want %v", got, want)
	}
	n := 0
	for range tab.All() {
		n++
		if n == 2 {
			break
		}
	}
	if n != 2 {
		t.Errorf("All() loop ran %d times before its break, want 2", n)
	}
	if got := tableContents(t, todo.NewTable[int, string]()); len(got) != 0 {
		t.Errorf("All() of an empty table yielded %v", got)
	}
}

func TestTable_Select(t *testing.T) {
	t.Parallel()
	tab := todo.NewTable[int, int]()
	for i := range 100 {
		tab.Insert(i, i*i)
	}
	tests := []struct {
		name string
		pred func(k, v int) bool
		want []int // keys, sorted
	}{
		{"by key", func(k, _ int) bool { return k%25 == 0 }, []int{0, 25, 50, 75}},
		{"by value", func(_, v int) bool { return v > 9000 }, []int{95, 96, 97, 98, 99}},
		{"none", func(int, int) bool { return false }, nil},
	}
	for _, tt := range tests {
		var keys []int
		for k, v := range tab.Select(tt.pred) {
			if v != k*k {
				t.Errorf("%s: Select yielded %d: %d, want %d", tt.name, k, v, k*k)
			}
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if !slices.Equal(keys, tt.want) {
			t.Errorf("%s: Select yielded keys %v, want %v", tt.name, keys, tt.want)
		}
	}
	n := 0
	for range tab.Select(func(int, int) bool { return true }) {
		n++
		break
	}
	if n != 1 {
		t.Errorf("Select loop ran %d times before its break, want 1", n)
	}
}

func TestTable_SelectDelete(t *testing.T) {
	t.Parallel()
	tab := todo.NewTable[int, int]()
	want := map[int]int{}
	for i := range 100 {
		tab.Insert(i, i)
		if i%3 != 0 {
			want[i] = i
		}
	}
	if n := tab.SelectDelete(func(k, v int) bool { return v%3 == 0 }); n != 34 {
		t.Errorf("SelectDelete removed %d keys, want 34", n)
	}
	assertContents(t, tab, want)
	if n := tab.SelectDelete(func(k, v int) bool { return v%3 == 0 }); n != 0 {
		t.Errorf("second SelectDelete removed %d keys, want 0", n)
	}
}

// TestTable_SelectDelete_Rechecks checks that SelectDelete judges a value
// again under its lock: a key whose value changed after the scan saw it is
// kept when the new value does not match.
func TestTable_SelectDelete_Rechecks(t *testing.T) {
	t.Parallel()
	tab := tableOf(t, map[string]int{"a": 1})
	calls := 0
	n := tab.SelectDelete(func(k string, v int) bool {
		calls++
		if calls == 1 {
			// Between the scan's test and the locked one, the value changes.
			tab.Insert(k, 2)
		}
		return v == 1
	})
	if n != 0 {
		t.Errorf("SelectDelete removed %d keys whose value no longer matched", n)
	}
	assertContents(t, tab, map[string]int{"a": 2})
}

func TestTable_Clear(t *testing.T) {
	t.Parallel()
	tab := todo.NewTable[int, int]()
	for i := range 1000 {
		tab.Insert(i, i)
	}
	tab.Clear()
	assertContents(t, tab, map[int]int{})
	tab.Insert(1, 1) // still usable
	assertContents(t, tab, map[int]int{1: 1})
}

func TestTable_SaveLoad(t *testing.T) {
	t.Parallel()
	t.Run("entries", func(t *testing.T) {
		t.Parallel()
		want := map[string]todo.Entry{}
		for i := range 500 {
			want[fmt.Sprint("list", i)] = todo.Entry{ID: i, Date: todo.Date{Year: 2013, Month: 12, Day: 1 + i%31}, Title: fmt.Sprint("Dentist ", i)}
		}
		want[""] = todo.Entry{}
		tab := tableOf(t, want)
		var buf bytes.Buffer
		if err := tab.Save(&buf); err != nil {
			t.Fatal(err)
		}
		loaded, err := todo.LoadTable[string, todo.Entry](&buf)
		if err != nil {
			t.Fatal(err)
		}
		assertContents(t, loaded, want)
	})
	t.Run("ints", func(t *testing.T) {
		t.Parallel()
		want := map[int64]uint8{-1 << 40: 1, 0: 0, 1: 255, 1 << 62: 7}
		var buf bytes.Buffer
		if err := tableOf(t, want).Save(&buf); err != nil {
			t.Fatal(err)
		}
		loaded, err := todo.LoadTable[int64, uint8](&buf)
		if err != nil {
			t.Fatal(err)
		}
		assertContents(t, loaded, want)
	})
	t.Run("empty", func(t *testing.T) {
		t.Parallel()
		var buf bytes.Buffer
		if err := todo.NewTable[string, int]().Save(&buf); err != nil {
			t.Fatal(err)
		}
		loaded, err := todo.LoadTable[string, int](&buf)
		if err != nil {
			t.Fatal(err)
		}
		assertContents(t, loaded, map[string]int{})
	})
}

// failingWriter fails every write after the first n bytes.
type failingWriter struct{ n int }

var errDiskFull = errors.New("disk full")

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		k := w.n
		w.n = 0
		return k, errDiskFull
	}
	w.n -= len(p)
	return len(p), nil
}

func TestTable_Save_WriteError(t *testing.T) {
	t.Parallel()
	tab := tableOf(t, map[string]int{"a": 1, "b": 2})
	var buf bytes.Buffer
	if err := tab.Save(&buf); err != nil {
		t.Fatal(err)
	}
	for n := range buf.Len() {
		if err := tab.Save(&failingWriter{n: n}); !errors.Is(err, errDiskFull) {
			t.Fatalf("Save to a writer failing after %d bytes: error = %v, want one wrapping the write error", n, err)
		}
	}
}

func TestLoadTable_Corrupt(t *testing.T) {
	t.Parallel()
	var valid bytes.Buffer
	if err := tableOf(t, map[string]int{"a": 1, "bb": 300, "ccc": -70000}).Save(&valid); err != nil {
		t.Fatal(err)
	}
	var strs bytes.Buffer
	if err := tableOf(t, map[string]string{"a": "x"}).Save(&strs); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"garbage", []byte("this is not a table at all")},
		{"zero bytes", make([]byte, 64)},
		{"wrong header", append([]byte{0xac}, "todo.Table/2"...)},
		{"nil length", append(slices.Clone(valid.Bytes()[:13]), 0xc0)},
		{"trailing byte", append(slices.Clone(valid.Bytes()), 0x00)},
		{"trailing table", append(slices.Clone(valid.Bytes()), valid.Bytes()...)},
		{"values of another type", strs.Bytes()},
	}
	// Every proper prefix of a valid table is truncated.
	for n := range valid.Len() {
		tests = append(tests, struct {
			name string
			in   []byte
		}{fmt.Sprint("truncated to ", n), valid.Bytes()[:n]})
	}
	for _, tt := range tests {
		tab, err := todo.LoadTable[string, int](bytes.NewReader(tt.in))
		if !errors.Is(err, todo.ErrCorrupt) {
			t.Errorf("%s: LoadTable(%q) = %v, %v; want an error wrapping ErrCorrupt", tt.name, tt.in, tab, err)
		}
		if tab != nil {
			t.Errorf("%s: LoadTable returned a table with its error", tt.name)
		}
	}
}

// within runs fn in a goroutine and fails the test if it has not returned
// within a few seconds: it turns a deadlock into a failure instead of a
// hang. The timeout is only a guard; fn normally returns at once.
func within(tb testing.TB, what string, fn func()) {
	tb.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		tb.Fatalf("%s did not complete: the table is deadlocked", what)
	}
}

// callPanicking calls fn, which must panic, and returns what it panicked
// with.
func callPanicking(tb testing.TB, fn func()) (reason any) {
	tb.Helper()
	panicked := true
	func() {
		defer func() { reason = recover() }()
		fn()
		panicked = false
	}()
	if !panicked {
		tb.Fatal("the callback's panic did not reach the caller")
	}
	return reason
}

// TestTable_CallbackPanic checks every method that runs a caller's callback
// under a bucket lock (Compute, Update, DeleteIf, SelectDelete): a callback
// that panics must leave the key as it was, the panic must reach the caller,
// and the table must stay fully usable.
//
// That is not what xsync does on its own. In xsync v3.5.1,
// MapOf.doCompute locks the key's root bucket with rootb.mu.Lock(), calls
// valueFn, and only then calls rootb.mu.Unlock(), with no defer; a panic in
// valueFn unwinds past the unlock and leaves the bucket locked forever.
// Every later write to any key of that bucket, and every Range (which locks
// each bucket in turn), then blocks. Table.Compute recovers the panic inside
// the callback, lets xsync store the old value (or nothing), and re-raises
// the panic once the bucket is unlocked; the "afterwards" half of each case
// below would deadlock, and fail by timeout, without that.
func TestTable_CallbackPanic(t *testing.T) {
	t.Parallel()
	type table = todo.Table[string, int]
	tests := []struct {
		name    string
		present bool // whether "k" holds 1 before the call
		call    func(tab *table)
	}{
		{"Compute present", true, func(tab *table) {
			tab.Compute("k", func(int, bool) (int, bool) { panic("boom") })
		}},
		{"Compute absent", false, func(tab *table) {
			tab.Compute("k", func(int, bool) (int, bool) { panic("boom") })
		}},
		{"Compute present after a partial change", true, func(tab *table) {
			tab.Compute("k", func(old int, _ bool) (int, bool) {
				old++ // a change the callback never returns
				panic(fmt.Errorf("boom at %d", old))
			})
		}},
		{"Update", true, func(tab *table) {
			tab.Update("k", func(int) int { panic("boom") })
		}},
		{"DeleteIf", true, func(tab *table) {
			tab.DeleteIf("k", func(int) bool { panic("boom") })
		}},
		{"SelectDelete in the scan", true, func(tab *table) {
			tab.SelectDelete(func(k string, _ int) bool {
				if k == "k" {
					panic("boom")
				}
				return false
			})
		}},
		{"SelectDelete under the lock", true, func(tab *table) {
			calls := 0
			tab.SelectDelete(func(k string, _ int) bool {
				if k != "k" {
					return false
				}
				calls++
				if calls == 2 { // the second test of "k" is the locked one
					panic("boom")
				}
				return true
			})
		}},
		{"Compute panic(nil)", true, func(tab *table) {
			tab.Compute("k", func(int, bool) (int, bool) { panic(nil) })
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tab := todo.NewTable[string, int]()
			want := map[string]int{}
			// Neighbours of "k"; in a table this small many share its bucket.
			for i := range 20 {
				want[fmt.Sprint("other", i)] = i
			}
			if tt.present {
				want["k"] = 1
			}
			for k, v := range want {
				tab.Insert(k, v)
			}

			reason := callPanicking(t, func() { tt.call(tab) })
			if reason == nil {
				t.Error("recovered nil, want the callback's panic value")
			}
			if s, ok := reason.(string); ok && s != "boom" {
				t.Errorf("recovered %q, want the callback's panic value", s)
			}

			// Range locks every bucket in turn, so it finds a bucket left
			// locked wherever it is.
			within(t, "a scan after the panic", func() {
				tab.Range(func(string, int) bool { return true })
			})
			assertContents(t, tab, want)

			// The goroutines below report with Errorf only: FailNow must
			// not be called off the test's goroutine.
			within(t, "writing the same key after the panic", func() {
				tab.Insert("k", 2)
				if v, ok := tab.Compute("k", func(old int, _ bool) (int, bool) { return old + 1, true }); v != 3 || !ok {
					t.Errorf(`Compute("k") after the panic = %d, %v; want 3, true`, v, ok)
				}
				if v, ok := tab.Update("k", twice); v != 6 || !ok {
					t.Errorf(`Update("k") after the panic = %d, %v; want 6, true`, v, ok)
				}
				if v, ok := tab.Take("k"); v != 6 || !ok {
					t.Errorf(`Take("k") after the panic = %d, %v; want 6, true`, v, ok)
				}
				if !tab.InsertNew("k", 7) {
					t.Error(`InsertNew("k") after Take = false`)
				}
				if !tab.DeleteIf("k", func(v int) bool { return v == 7 }) {
					t.Error(`DeleteIf("k") after InsertNew = false`)
				}
				tab.Insert("k", 8)
				tab.Delete("k")
			})
			assertAbsent(t, tab, "k")
			within(t, "writing other keys after the panic", func() {
				for k, v := range want {
					if k == "k" {
						continue
					}
					if got := todo.UpdateCounter(tab, k, 100); got != v+100 {
						t.Errorf("UpdateCounter(%q) = %d, want %d", k, got, v+100)
					}
					tab.Delete(k)
				}
				for i := range 1000 { // enough to grow the table
					tab.Insert(fmt.Sprint("new", i), i)
				}
				if n := tab.SelectDelete(func(string, int) bool { return true }); n != 1000 {
					t.Errorf("SelectDelete removed %d keys, want 1000", n)
				}
			})
			assertContents(t, tab, map[string]int{})
		})
	}
}

// TestTable_InsertNew_Concurrent starts 1000 goroutines that all InsertNew
// one key at once: exactly one of them wins, and its value is the one
// stored.
func TestTable_InsertNew_Concurrent(t *testing.T) {
	t.Parallel()
	const goroutines = 1000
	tab := todo.NewTable[string, int]()
	start := make(chan struct{})
	var wins, winner atomic.Int64
	var wg sync.WaitGroup
	for i := range goroutines {
		wg.Go(func() {
			<-start
			if tab.InsertNew("key", i) {
				wins.Add(1)
				winner.Store(int64(i))
			}
		})
	}
	close(start)
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d of %d concurrent InsertNew calls returned true, want exactly 1", wins.Load(), goroutines)
	}
	if v, _ := tab.Lookup("key"); int64(v) != winner.Load() {
		t.Errorf("stored value %d, but the winner inserted %d", v, winner.Load())
	}
}

// TestTable_LookupOrInsert_Concurrent checks that concurrent callers for one
// absent key all get the single winner's value.
func TestTable_LookupOrInsert_Concurrent(t *testing.T) {
	t.Parallel()
	const goroutines = 200
	tab := todo.NewTable[string, int]()
	start := make(chan struct{})
	actuals := make([]int, goroutines)
	var inserts atomic.Int64
	var wg sync.WaitGroup
	for i := range goroutines {
		wg.Go(func() {
			<-start
			v, inserted := tab.LookupOrInsert("key", i)
			if inserted {
				inserts.Add(1)
			}
			actuals[i] = v
		})
	}
	close(start)
	wg.Wait()
	if inserts.Load() != 1 {
		t.Fatalf("%d callers inserted, want 1", inserts.Load())
	}
	stored, _ := tab.Lookup("key")
	for i, v := range actuals {
		if v != stored {
			t.Fatalf("caller %d got %d, but %d is stored", i, v, stored)
		}
	}
}

// TestUpdateCounter_Concurrent adds 1 from 100 goroutines 1000 times each,
// over one hot key and a few more: no increment is lost.
func TestUpdateCounter_Concurrent(t *testing.T) {
	t.Parallel()
	const (
		goroutines = 100
		increments = 1000
		keys       = 4
	)
	tab := todo.NewTable[int, int64]()
	start := make(chan struct{})
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			<-start
			for i := range increments {
				todo.UpdateCounter(tab, -1, 1) // the hot key every goroutine hits
				todo.UpdateCounter(tab, (g+i)%keys, 2)
			}
		})
	}
	close(start)
	wg.Wait()
	if got, _ := tab.Lookup(-1); got != goroutines*increments {
		t.Errorf("hot counter = %d, want %d", got, goroutines*increments)
	}
	var sum int64
	for k := range keys {
		v, _ := tab.Lookup(k)
		sum += v
	}
	if sum != 2*goroutines*increments {
		t.Errorf("spread counters sum to %d, want %d", sum, 2*goroutines*increments)
	}
}

// TestTable_Take_Concurrent inserts n values and lets many goroutines Take
// every key at once: each value goes to exactly one caller.
func TestTable_Take_Concurrent(t *testing.T) {
	t.Parallel()
	const (
		n          = 10_000
		goroutines = 16
	)
	tab := todo.NewTable[int, int]()
	for i := range n {
		tab.Insert(i, i*7)
	}
	start := make(chan struct{})
	taken := make([][]int, goroutines) // the values each goroutine got
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			<-start
			// Each goroutine walks the keys from its own offset so that they
			// collide all along the way.
			for i := range n {
				k := (i + g*n/goroutines) % n
				if v, ok := tab.Take(k); ok {
					taken[g] = append(taken[g], v)
				}
				if i%64 == 0 {
					runtime.Gosched()
				}
			}
		})
	}
	close(start)
	wg.Wait()
	owners := make(map[int]int, n)
	for g, vs := range taken {
		for _, v := range vs {
			if prev, dup := owners[v]; dup {
				t.Fatalf("value %d was taken by goroutines %d and %d", v, prev, g)
			}
			owners[v] = g
		}
	}
	if len(owners) != n {
		t.Fatalf("%d values were taken, want %d", len(owners), n)
	}
	for i := range n {
		if _, ok := owners[i*7]; !ok {
			t.Fatalf("value %d was never taken", i*7)
		}
	}
	if tab.Len() != 0 {
		t.Errorf("Len() = %d after every key was taken", tab.Len())
	}
}

// TestTable_Concurrent_Mixed runs every kind of call at once on a few keys,
// for the race detector, and checks the counters that no other call writes.
func TestTable_Concurrent_Mixed(t *testing.T) {
	t.Parallel()
	const goroutines = 8
	tab := todo.NewTable[int, int]()
	var wg sync.WaitGroup
	start := make(chan struct{})
	for g := range goroutines {
		wg.Go(func() {
			<-start
			for i := range 2000 {
				k := i % 16
				switch (g + i) % 8 {
				case 0:
					tab.Insert(k, i)
				case 1:
					tab.Lookup(k)
				case 2:
					tab.Update(k, twice)
				case 3:
					tab.DeleteIf(k, func(v int) bool { return v%2 == 1 })
				case 4:
					tab.Take(k)
				case 5:
					for range tab.Select(func(k, v int) bool { return k < 8 }) {
					}
				case 6:
					tab.Compute(k, func(old int, loaded bool) (int, bool) { return old + 1, !loaded })
				case 7:
					todo.UpdateCounter(tab, 100+g, 1)
				}
			}
		})
	}
	close(start)
	wg.Wait()
	for g := range goroutines {
		if got, _ := tab.Lookup(100 + g); got != 250 {
			t.Errorf("counter %d = %d, want 250", 100+g, got)
		}
	}
}
