package todo

import (
	"bytes"
	"fmt"
	"io"
	"iter"

	"github.com/puzpuzpuz/xsync/v3"
	"github.com/vmihailenco/msgpack/v5"
)

// Table is a concurrent key-value table with the semantics of an ETS set:
// one value per key, every single-key operation atomic, reads that never
// take a lock. It is the store the System publishes its lists into, and it
// is meant for users' own shared state too. Create it with [NewTable].
//
// A Table is safe for concurrent use by multiple goroutines without
// additional locking. Lookup and Member are lock-free; writers lock one
// hash bucket for the duration of the write.
//
// # Scans
//
// All, Range, Select and SelectDelete do not take a snapshot, like ETS
// scans of a table that is being written: no key is seen twice; a key that
// is present and unchanged for the whole scan is seen; a key inserted,
// changed or deleted during the scan may be seen with any value it had
// during the scan, or not at all. Writing to the table from inside a scan
// is allowed.
//
// # Callbacks
//
// Update, Compute and SelectDelete run their callback while the key's
// bucket is locked, so a callback must be short and must not touch the same
// table. A callback that panics leaves the key as it was and the table fully
// usable; the panic is then re-raised in the caller. A callback must not
// call runtime.Goexit (t.Fatal does): that is not a panic, and would leave
// the bucket locked for ever.
type Table[K comparable, V any] struct {
	m *xsync.MapOf[K, V]
}

// NewTable returns an empty table.
func NewTable[K comparable, V any]() *Table[K, V] {
	return &Table[K, V]{m: xsync.NewMapOf[K, V]()}
}

// newTableWithHasher returns an empty table that hashes keys with hash,
// for key types the generic hasher is slow on (structs).
func newTableWithHasher[K comparable, V any](hash func(K, uint64) uint64) *Table[K, V] {
	return &Table[K, V]{m: xsync.NewMapOfWithHasher[K, V](hash)}
}

// Insert stores value under key, replacing any value it had (ets:insert).
func (t *Table[K, V]) Insert(key K, value V) { t.m.Store(key, value) }

// InsertNew stores value under key only if key is absent, and reports
// whether it did (ets:insert_new). Of any number of concurrent callers for
// one absent key, exactly one gets true.
func (t *Table[K, V]) InsertNew(key K, value V) bool {
	_, loaded := t.m.LoadOrStore(key, value)
	return !loaded
}

// LookupOrInsert returns the value stored under key if there is one;
// otherwise it stores value and returns it. inserted reports which
// happened. It is InsertNew that also hands the loser the winner's value.
func (t *Table[K, V]) LookupOrInsert(key K, value V) (actual V, inserted bool) {
	actual, loaded := t.m.LoadOrStore(key, value)
	return actual, !loaded
}

// Lookup returns the value stored under key (ets:lookup). It never blocks.
func (t *Table[K, V]) Lookup(key K) (value V, ok bool) { return t.m.Load(key) }

// Member reports whether key is present (ets:member). It never blocks.
func (t *Table[K, V]) Member(key K) bool {
	_, ok := t.m.Load(key)
	return ok
}

// Delete removes key, if present (ets:delete/2).
func (t *Table[K, V]) Delete(key K) { t.m.Delete(key) }

// Take removes key and returns the value it had (ets:take). Of concurrent
// callers for one key, only one gets the value.
func (t *Table[K, V]) Take(key K) (value V, ok bool) { return t.m.LoadAndDelete(key) }

// DeleteIf removes key if it is present and pred reports true for its
// value, atomically, and reports whether it removed it. It is the form of
// ets:delete_object for values that are not comparable.
func (t *Table[K, V]) DeleteIf(key K, pred func(V) bool) bool {
	deleted := false
	t.Compute(key, func(old V, loaded bool) (V, bool) {
		deleted = loaded && pred(old)
		return old, loaded && !deleted
	})
	return deleted
}

// Update replaces the value under key with fn(old value), atomically, if
// key is present, and returns the new value; ok is false and fn is not
// called when key is absent (ets:update_element).
func (t *Table[K, V]) Update(key K, fn func(V) V) (value V, ok bool) {
	return t.Compute(key, func(old V, loaded bool) (V, bool) {
		if !loaded {
			return old, false
		}
		return fn(old), true
	})
}

// Compute atomically reads, changes and writes one key. fn gets the current
// value and whether key is present; it returns the new value and whether
// the key should be kept (false deletes it, or leaves it absent). Compute
// returns the value stored after the call and whether key is present.
func (t *Table[K, V]) Compute(key K, fn func(old V, loaded bool) (value V, keep bool)) (value V, ok bool) {
	var (
		panicked bool
		reason   any
	)
	value, ok = t.m.Compute(key, func(old V, loaded bool) (nv V, del bool) {
		// xsync v3.5.1 does not unlock the bucket when the callback panics:
		// catch the panic here, leave the key as it was, and re-raise it
		// once the bucket is unlocked.
		defer func() {
			if r := recover(); r != nil {
				panicked, reason = true, r
				nv, del = old, !loaded
			}
		}()
		nv, keep := fn(old, loaded)
		return nv, !keep
	})
	if panicked {
		panic(reason)
	}
	return value, ok
}

// Integer is the set of types UpdateCounter counts with.
type Integer interface {
	~int | ~int8 | ~int16 | ~int32 | ~int64 | ~uint | ~uint8 | ~uint16 | ~uint32 | ~uint64 | ~uintptr
}

// UpdateCounter atomically adds incr to the integer stored under key (an
// absent key counts as zero) and returns the new value
// (ets:update_counter with a default).
func UpdateCounter[K comparable, V Integer](t *Table[K, V], key K, incr V) V {
	v, _ := t.m.Compute(key, func(old V, _ bool) (V, bool) { return old + incr, false })
	return v
}

// Range calls fn for each key and value until fn returns false. See the
// type's doc for what a scan sees under concurrent writes.
func (t *Table[K, V]) Range(fn func(K, V) bool) { t.m.Range(fn) }

// All returns an iterator over every key and value (ets:tab2list, lazily).
// See the type's doc for what a scan sees under concurrent writes.
func (t *Table[K, V]) All() iter.Seq2[K, V] { return t.m.Range }

// Select returns an iterator over the keys and values for which pred
// reports true (ets:select with the match spec written in Go).
func (t *Table[K, V]) Select(pred func(K, V) bool) iter.Seq2[K, V] {
	return func(yield func(K, V) bool) {
		t.m.Range(func(k K, v V) bool {
			return !pred(k, v) || yield(k, v)
		})
	}
}

// SelectDelete removes every key whose value pred reports true for and
// returns how many it removed (ets:select_delete). Each key is tested again
// under its lock, so a value changed since the scan saw it is judged anew.
func (t *Table[K, V]) SelectDelete(pred func(K, V) bool) int {
	n := 0
	t.m.Range(func(k K, v V) bool {
		if pred(k, v) && t.DeleteIf(k, func(cur V) bool { return pred(k, cur) }) {
			n++
		}
		return true
	})
	return n
}

// Len returns the number of keys (ets:info(T, size)). Under concurrent
// writes it is approximate: it sums striped counters one after another,
// so an insert and a delete under way may each count or not, and it can
// be more, or less, than the size was at any moment of the call.
func (t *Table[K, V]) Len() int { return t.m.Size() }

// Clear removes every key (ets:delete_all_objects).
func (t *Table[K, V]) Clear() { t.m.Clear() }

const tableMagic = "todo.Table/1"

// Save writes every key and value to w in msgpack, the Go form of
// ets:tab2file. It sees the table as a scan does (see the type's doc). K and
// V must be types msgpack can encode.
func (t *Table[K, V]) Save(w io.Writer) error {
	enc := msgpack.NewEncoder(w)
	type pair struct {
		k K
		v V
	}
	var pairs []pair
	t.m.Range(func(k K, v V) bool {
		pairs = append(pairs, pair{k, v})
		return true
	})
	if err := enc.EncodeString(tableMagic); err != nil {
		return fmt.Errorf("todo: save table: %w", err)
	}
	if err := enc.EncodeArrayLen(len(pairs)); err != nil {
		return fmt.Errorf("todo: save table: %w", err)
	}
	for _, p := range pairs {
		if err := enc.Encode(p.k); err != nil {
			return fmt.Errorf("todo: save table: key %v: %w", p.k, err)
		}
		if err := enc.Encode(p.v); err != nil {
			return fmt.Errorf("todo: save table: value of %v: %w", p.k, err)
		}
	}
	return nil
}

// LoadTable reads a table written by Save, the Go form of ets:file2tab.
// Input that is not such a table gives an error wrapping [ErrCorrupt];
// hostile input is refused before it is decoded, so what LoadTable
// allocates stays in proportion to the input's size.
func LoadTable[K comparable, V any](r io.Reader) (*Table[K, V], error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("todo: load table: %w", err)
	}
	if err := checkMsgpack(data); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	dec := msgpack.NewDecoder(bytes.NewReader(data))
	magic, err := dec.DecodeString()
	if err != nil || magic != tableMagic {
		return nil, fmt.Errorf("%w: not a saved table (want header %q)", ErrCorrupt, tableMagic)
	}
	n, err := dec.DecodeArrayLen()
	if err != nil || n < 0 {
		return nil, fmt.Errorf("%w: table length: %v", ErrCorrupt, err)
	}
	t := NewTable[K, V]()
	// n comes from the input: it bounds the loop, never an allocation.
	for i := 0; i < n; i++ {
		var k K
		var v V
		if err := dec.Decode(&k); err != nil {
			return nil, fmt.Errorf("%w: pair %d of %d: %v", ErrCorrupt, i, n, err)
		}
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("%w: pair %d of %d: %v", ErrCorrupt, i, n, err)
		}
		t.m.Store(k, v)
	}
	if _, err := dec.PeekCode(); err != io.EOF {
		return nil, fmt.Errorf("%w: trailing bytes after %d pairs", ErrCorrupt, n)
	}
	return t, nil
}
