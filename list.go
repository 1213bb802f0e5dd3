package todo

import (
	"fmt"
	"slices"
	"time"
	"unicode"
	"unicode/utf8"
)

// Date is a civil date: a year, a month and a day, with no time of day and
// no time zone. Dates are comparable with == and usable as map keys. The zero
// Date is not a valid date; it stands for "no date".
type Date struct {
	Year  int
	Month time.Month
	Day   int
}

// ParseDate parses a date written as 20131219 or 2013-12-19. Anything that
// is not a real calendar date in one of those two forms (20131301,
// 20130230, 2013-2-3, the empty string) gives an error wrapping
// [ErrInvalidDate] that quotes the input.
func ParseDate(s string) (Date, error) {
	var y, m, d int
	var ok bool
	switch len(s) {
	case 8:
		y, ok = digits(s[0:4])
		if ok {
			m, ok = digits(s[4:6])
		}
		if ok {
			d, ok = digits(s[6:8])
		}
	case 10:
		ok = s[4] == '-' && s[7] == '-'
		if ok {
			y, ok = digits(s[0:4])
		}
		if ok {
			m, ok = digits(s[5:7])
		}
		if ok {
			d, ok = digits(s[8:10])
		}
	}
	if !ok {
		return Date{}, fmt.Errorf("%w %q: want YYYYMMDD or YYYY-MM-DD", ErrInvalidDate, s)
	}
	date := Date{Year: y, Month: time.Month(m), Day: d}
	if !date.Valid() {
		return Date{}, fmt.Errorf("%w %q: no such day in the calendar", ErrInvalidDate, s)
	}
	return date, nil
}

// digits parses s as an unsigned decimal number made of ASCII digits only.
func digits(s string) (int, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// Valid reports whether d is a real day of the Gregorian calendar with a
// year between 1 and 9999.
func (d Date) Valid() bool {
	if d.Year < 1 || d.Year > 9999 || d.Month < time.January || d.Month > time.December || d.Day < 1 {
		return false
	}
	return d.Day <= daysIn(d.Month, d.Year)
}

func daysIn(m time.Month, year int) int {
	switch m {
	case time.February:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case time.April, time.June, time.September, time.November:
		return 30
	}
	return 31
}

// String returns the date in ISO 8601 form, 2013-12-19.
func (d Date) String() string {
	var b [10]byte
	return string(d.appendISO(b[:0]))
}

func (d Date) appendISO(b []byte) []byte {
	b = appendPadded(b, d.Year, 4)
	b = append(b, '-')
	b = appendPadded(b, int(d.Month), 2)
	b = append(b, '-')
	return appendPadded(b, d.Day, 2)
}

func appendPadded(b []byte, n, width int) []byte {
	if n < 0 {
		b = append(b, '-')
		n = -n
	}
	var tmp [20]byte
	i := len(tmp)
	for n > 0 || i == len(tmp) {
		i--
		tmp[i] = byte('0' + n%10)
		n /= 10
	}
	for pad := width - (len(tmp) - i); pad > 0; pad-- {
		b = append(b, '0')
	}
	return append(b, tmp[i:]...)
}

// MaxTitle is the longest title an entry may be given, in bytes: 1 KiB,
// the HTTP handler's default cap (todohttp.HandlerOptions.MaxTitle), which
// may be lower but never higher. Titles stored before this rule are read
// whatever their length.
const MaxTitle = 1 << 10

// ValidTitle returns nil if t may be an entry's title, or else an error
// wrapping [ErrInvalidTitle] that says why: a title is one line of text
// that a person can see, of at most MaxTitle bytes. Every face of a
// System (the library, the HTTP API, the command and its page) refuses
// what it refuses; a Service that forwards a title may check it first.
func ValidTitle(t string) error { return validTitle(t) }

// validTitle is ValidTitle. A title of printable ASCII and tabs, the
// usual one, is checked a byte at a time; anything else is left to
// validText.
func validTitle(t string) error {
	if t == "" || len(t) > MaxTitle {
		return validText(t)
	}
	blank := true
	for i := 0; i < len(t); i++ {
		c := t[i]
		if c < ' ' && c != '\t' || c >= 0x7f {
			return validText(t)
		}
		// The only ASCII a person cannot see, past the controls.
		blank = blank && (c == ' ' || c == '\t')
	}
	if blank {
		return validText(t)
	}
	return nil
}

// validText is validTitle for any text: it decodes the runes.
func validText(t string) error {
	switch {
	case t == "":
		return fmt.Errorf("%w: empty", ErrInvalidTitle)
	case len(t) > MaxTitle:
		return fmt.Errorf("%w: %d bytes, more than %d", ErrInvalidTitle, len(t), MaxTitle)
	case !utf8.ValidString(t):
		return fmt.Errorf("%w: not valid UTF-8", ErrInvalidTitle)
	}
	blank := true
	for _, c := range t {
		if unicode.IsControl(c) && c != '\t' {
			return fmt.Errorf("%w: contains the control character %U", ErrInvalidTitle, c)
		}
		blank = blank && invisible(c)
	}
	if blank {
		return fmt.Errorf("%w: nothing but spaces or invisible characters", ErrInvalidTitle)
	}
	return nil
}

// invisible reports whether c shows nothing by itself: a space of any
// width, a format character (the zero-width space, joiners, marks of
// direction, the byte-order mark), a variation selector, or another
// character Unicode says to ignore when it cannot be shown (the Hangul
// fillers), or the blank Braille pattern.
func invisible(c rune) bool {
	return unicode.IsSpace(c) || c == '\u2800' ||
		unicode.In(c, unicode.Cf, unicode.Variation_Selector, unicode.Other_Default_Ignorable_Code_Point)
}

// MaxID is the largest id a list gives out: 2^53-1, the largest integer
// every JSON client reads exactly.
const MaxID = 1<<53 - 1

// Entry is one to-do item. ID is assigned by the list when the entry is added.
type Entry struct {
	ID    int
	Date  Date
	Title string
}

// List is a to-do list: a plain value with no locks and no goroutines, like
// the book's Todo.List. It is not safe for concurrent use; in a System each
// list is owned by its server goroutine. The zero List is an empty list.
//
// Ids start at 1, increase by one with every Add, and are never reused, not
// even after the entry holding the highest id was deleted. The list's
// revision counts its changes: every Add, Update and Delete raises it by
// one (see [List.Revision]).
//
// A List never writes to a slice element it has stored: Add appends, and
// Update and Delete build new slices. That lets its owner hand the slices to
// concurrent readers and writers of files without copying them.
//
// The entries of a date are, where they can be, a slice of the slice of
// all entries rather than a copy (see dateWith): a list holds each entry
// once when its entries come date by date.
type List struct {
	lastID int
	rev    int64                // the changes made: the revision is one more (see Revision)
	size   int                  // the bytes its entries take encoded (see encodedSize)
	all    []Entry              // every entry, in id order
	keys   []Op                 // the latest keyed operations, oldest first (see noteKey)
	byDate map[dayKey]*dateSlot // the entries of each date; empty slots only inside a batch
	undo   *undoLog             // non-nil while a change may still be rolled back
	batch  uint64               // numbers the batches begun, for the undo log
}

// dateSlot holds the entries of one date, in id order.
type dateSlot struct {
	entries []Entry
	batch   uint64 // the last batch that recorded this slot in the undo log
}

// undoLog records what a batch of changes replaced, so that the batch can be
// rolled back when it could not be stored.
type undoLog struct {
	lastID int
	rev    int64
	size   int
	all    []Entry
	keys   []Op
	dates  []undoDate // each date the batch touched, once, with what it had
}

type undoDate struct {
	key     dayKey
	entries []Entry   // nil if the date had none
	slot    *dateSlot // the date's slot in this batch, nil if it has none; saves map lookups
}

// NewList returns a list holding entries, added in order (their ids are
// ignored and assigned anew).
func NewList(entries ...Entry) *List {
	l := &List{}
	for _, e := range entries {
		l.Add(e)
	}
	return l
}

// Add adds e to the list with the next id, ignoring e.ID, and returns the
// entry as stored. It panics if the list has given out MaxID already.
func (l *List) Add(e Entry) Entry {
	if l.lastID >= MaxID {
		panic("todo: List.Add: every id up to MaxID is used")
	}
	l.lastID++
	l.rev++
	e.ID = l.lastID
	old := l.all
	l.all = append(l.all, e)
	l.size += encodedSize(e)
	k := e.Date.key()
	slot := l.byDate[k]
	var cur []Entry
	if slot != nil {
		cur = slot.entries
	}
	l.setSlot(k, slot, dateWith(cur, old, l.all))
	return e
}

// dateWith returns the entries of a date, date, with the entry that was
// just appended to all added; old is all before. When date holds the
// entries at the end of old, as it does when a list gets its entries
// date by date (or all on one date), the result is a slice of all, not
// a copy: the list then holds each entry once. Its capacity ends where
// its entries do, so that an append to it, anywhere, copies it and never
// writes into all's array.
func dateWith(date, old, all []Entry) []Entry {
	n := len(old)
	if len(date) == 0 {
		return all[n : n+1 : n+1]
	}
	if start := n - len(date); start >= 0 && &old[start] == &date[0] {
		return all[start : n+1 : n+1]
	}
	return append(date, all[n])
}

// Entries returns the entries of date d in id order. It costs time in
// proportion to the entries of that date, not to the size of the list.
func (l *List) Entries(d Date) []Entry {
	k := d.key()
	if k == invalidDay {
		var found []Entry
		for _, e := range l.entriesOf(k) {
			if e.Date == d {
				found = append(found, e)
			}
		}
		return found
	}
	return slices.Clone(l.entriesOf(k))
}

func (l *List) entriesOf(k dayKey) []Entry {
	if slot := l.byDate[k]; slot != nil {
		return slot.entries
	}
	return nil
}

// Update replaces the entry with the given id by what fn returns; fn may
// change the date and the title but not the id. An unknown id gives an error
// wrapping [ErrEntryNotFound] and fn is not called.
func (l *List) Update(id int, fn func(Entry) Entry) (Entry, error) {
	i, ok := l.find(id)
	if !ok {
		return Entry{}, fmt.Errorf("%w: id %d", ErrEntryNotFound, id)
	}
	old := l.all[i]
	e := fn(old)
	e.ID = id
	l.rev++
	l.replaceAll(slices.Concat(l.all[:i], []Entry{e}, l.all[i+1:]))
	l.size += encodedSize(e) - encodedSize(old)
	if e.Date == old.Date {
		s := slices.Clone(l.entriesOf(old.Date.key()))
		j, _ := findID(s, id)
		s[j] = e
		l.setDate(old.Date, s)
		return e, nil
	}
	l.removeFromDate(old.Date, id)
	s := l.entriesOf(e.Date.key())
	j, _ := findID(s, id)
	l.setDate(e.Date, slices.Concat(s[:j], []Entry{e}, s[j:]))
	return e, nil
}

// Delete removes the entry with the given id. An unknown id gives an error
// wrapping [ErrEntryNotFound].
func (l *List) Delete(id int) error {
	i, ok := l.find(id)
	if !ok {
		return fmt.Errorf("%w: id %d", ErrEntryNotFound, id)
	}
	d := l.all[i].Date
	l.rev++
	l.size -= encodedSize(l.all[i])
	l.replaceAll(slices.Concat(l.all[:i], l.all[i+1:]))
	l.removeFromDate(d, id)
	return nil
}

// All returns every entry in id order.
func (l *List) All() []Entry { return slices.Clone(l.all) }

// Len returns the number of entries.
func (l *List) Len() int { return len(l.all) }

func (l *List) find(id int) (int, bool) { return findID(l.all, id) }

// findID finds id in s, which is sorted by id, or the index where it would go.
func findID(s []Entry, id int) (int, bool) {
	return slices.BinarySearchFunc(s, id, func(e Entry, id int) int { return e.ID - id })
}

func (l *List) removeFromDate(d Date, id int) {
	s := l.entriesOf(d.key())
	j, _ := findID(s, id)
	l.setDate(d, slices.Concat(s[:j], s[j+1:]))
}

// replaceAll installs a new slice of all entries (never a write into the old one).
func (l *List) replaceAll(all []Entry) {
	if len(all) == 0 {
		all = nil
	}
	l.all = all
}

// setDate installs the entries of date d, recording the old value for a
// rollback the first time d is touched in a batch.
func (l *List) setDate(d Date, s []Entry) {
	k := d.key()
	l.setSlot(k, l.byDate[k], s)
}

// setSlot is setDate for a caller that has looked the slot up already.
func (l *List) setSlot(k dayKey, slot *dateSlot, s []Entry) {
	record := l.undo != nil && (slot == nil || slot.batch != l.batch)
	var old []Entry
	if record && slot != nil {
		old = slot.entries
		slot.batch = l.batch
	}
	switch {
	case len(s) > 0:
		if slot == nil {
			if l.byDate == nil {
				l.byDate = make(map[dayKey]*dateSlot)
			}
			slot = &dateSlot{batch: l.batch}
			l.byDate[k] = slot
		}
		slot.entries = s
	case l.undo != nil && slot != nil:
		// Keep the emptied slot, and with it the mark that this batch
		// recorded the date, until commit: a later touch in the batch
		// must not record the date a second time.
		slot.entries = nil
	default:
		delete(l.byDate, k)
		slot = nil
	}
	if record {
		l.undo.dates = append(l.undo.dates, undoDate{k, old, slot})
	}
}

// dayKey is a valid Date packed into 32 bits, a cheaper map key than
// Date. Every invalid date maps to invalidDay, whose entries Entries
// filters by their exact date.
type dayKey uint32

const invalidDay dayKey = 0 // no valid date has day 0

func (d Date) key() dayKey {
	if !d.Valid() {
		return invalidDay
	}
	return dayKey(uint32(d.Year)<<9 | uint32(d.Month)<<5 | uint32(d.Day))
}

func (k dayKey) date() Date {
	return Date{Year: int(k >> 9), Month: time.Month(k >> 5 & 0xf), Day: int(k & 0x1f)}
}

// begin starts a batch of changes that can be rolled back until commit.
// The undo log is reused from batch to batch.
func (l *List) begin(u *undoLog) {
	clear(u.dates) // let go of the last batch's slices
	u.dates = u.dates[:0]
	u.lastID, u.rev, u.size, u.all, u.keys = l.lastID, l.rev, l.size, l.all, l.keys
	l.batch++
	l.undo = u
}

// touched calls fn with every date the current batch changed and its
// entries, shared, nil when the date has none left.
func (l *List) touched(fn func(dayKey, []Entry)) {
	for _, u := range l.undo.dates {
		var es []Entry
		if u.slot != nil {
			es = u.slot.entries
		}
		fn(u.key, es)
	}
}

// commit ends the batch, keeping its changes.
func (l *List) commit() {
	for _, d := range l.undo.dates {
		if d.slot != nil && len(d.slot.entries) == 0 {
			delete(l.byDate, d.key)
		}
	}
	l.undo = nil
}

// rollback ends the batch, restoring the list to what it was at begin.
func (l *List) rollback() {
	u := l.undo
	l.undo = nil
	l.lastID, l.rev, l.size, l.all, l.keys = u.lastID, u.rev, u.size, u.all, u.keys
	for _, d := range u.dates {
		l.setSlot(d.key, l.byDate[d.key], d.entries)
	}
}

// LastID returns the highest id the list has given out.
func (l *List) LastID() int { return l.lastID }

// Revision returns the list's revision: 1 for a new list, and one more
// for every change (add, update or delete) made to it since, or, for a
// list rebuilt from a stored state, the revision that state was stored at
// plus the changes since. It only grows. NewList(e1, e2) is at revision
// 3. A revision is never 0, which [Server.Watch] takes for "now", as
// etcd's are not.
func (l *List) Revision() int64 { return l.rev + 1 }

// get returns the entry with the given id.
func (l *List) get(id int) (Entry, bool) {
	i, ok := l.find(id)
	if !ok {
		return Entry{}, false
	}
	return l.all[i], true
}

// entries returns every entry in id order, shared: the caller must not
// write to it (see List's doc).
func (l *List) entries() []Entry { return l.all }

// dates calls fn with each date that has entries, and them, shared.
func (l *List) dates(fn func(dayKey, []Entry)) {
	for k, slot := range l.byDate {
		fn(k, slot.entries)
	}
}

// state returns what is stored of the list, sharing its entries (see
// List's doc: they are never written to again).
func (l *List) state() ListState {
	return ListState{LastID: l.lastID, Revision: l.Revision(), Entries: l.all, Keys: l.keys}
}

// listFromState rebuilds a list from what was stored. The list shares
// s.Entries, which it never writes to.
func listFromState(s ListState) *List {
	l := &List{lastID: s.LastID, rev: s.revision() - 1, all: s.Entries, keys: s.Keys}
	for i, e := range s.Entries {
		l.size += encodedSize(e)
		if l.byDate == nil {
			l.byDate = make(map[dayKey]*dateSlot)
		}
		k := e.Date.key()
		slot := l.byDate[k]
		if slot == nil {
			slot = &dateSlot{}
			l.byDate[k] = slot
		}
		slot.entries = dateWith(slot.entries, s.Entries[:i], s.Entries[:i+1])
	}
	return l
}

// applyOp replays a stored operation: it puts op.Entry in its place by id,
// replacing the entry of that id if there is one, or removes the entry of
// op.Entry.ID. Replaying an operation twice changes nothing the second
// time, which is what lets a store replay a log over a file that may hold
// some of it already.
func (l *List) applyOp(op Op) {
	if op.Key != "" {
		if _, ok := l.keyed(op.Key); !ok {
			l.noteKey(op)
		}
	}
	id := op.Entry.ID
	if op.Delete {
		if _, ok := l.find(id); ok {
			l.Delete(id)
		}
		return
	}
	if _, ok := l.find(id); ok {
		l.Update(id, func(Entry) Entry { return op.Entry })
		return
	}
	l.size += encodedSize(op.Entry)
	l.lastID = max(l.lastID, id)
	k := op.Entry.Date.key()
	i, _ := l.find(id)
	if i == len(l.all) {
		// The usual case, an entry added: appended, as Add does.
		old := l.all
		l.all = append(l.all, op.Entry)
		l.setSlot(k, l.byDate[k], dateWith(l.entriesOf(k), old, l.all))
		return
	}
	l.replaceAll(slices.Concat(l.all[:i], []Entry{op.Entry}, l.all[i:]))
	s := l.entriesOf(k)
	j, _ := findID(s, id)
	l.setDate(op.Entry.Date, slices.Concat(s[:j], []Entry{op.Entry}, s[j:]))
}

// replay applies a stored record to the list: its operations (see
// applyOp), and the last id and the revision it holds, which it sets.
func (l *List) replay(ops []Op, lastID int, rev int64) {
	for _, op := range ops {
		l.applyOp(op)
	}
	l.lastID, l.rev = lastID, rev-1
}

// encodedSize returns the bytes the list takes in a list file's body,
// near enough: its entries and keys as encoded, and a few bytes of
// header.
func (l *List) encodedSize() int {
	n := l.size + 16
	for _, op := range l.keys {
		n += encodedSize(op.Entry) + len(op.Key) + 4 // the key's header, the array's, a kind
	}
	return n
}

// MaxKeys is how many idempotency keys a list remembers: a request retried
// with its key is answered as the first time as long as fewer than MaxKeys
// other keyed requests changed the list since (see [WithIdempotencyKey]).
const MaxKeys = 128

// keyed returns the operation a request with the idempotency key made, if
// the list remembers it.
func (l *List) keyed(key string) (Op, bool) {
	for i := len(l.keys) - 1; i >= 0; i-- {
		if l.keys[i].Key == key {
			return l.keys[i], true
		}
	}
	return Op{}, false
}

// noteKey remembers the operation of a keyed request, forgetting the
// oldest past MaxKeys. It never writes into l.keys, which may be shared
// (see List's doc): it makes a new slice.
func (l *List) noteKey(op Op) {
	keys := l.keys
	if len(keys) >= MaxKeys {
		keys = keys[len(keys)-MaxKeys+1:]
	}
	l.keys = append(keys[:len(keys):len(keys)], op)
}

// encodedSize returns the bytes appendEntry takes for e.
func encodedSize(e Entry) int {
	n := 1 + uintSize(uint64(e.ID)) + uintSize(uint64(e.Date.Year*10000+int(e.Date.Month)*100+e.Date.Day)) + len(e.Title)
	switch t := len(e.Title); {
	case t < 32:
		return n + 1
	case t <= 0xff:
		return n + 2
	case t <= 0xffff:
		return n + 3
	}
	return n + 5
}

func uintSize(n uint64) int {
	switch {
	case n < 0x80:
		return 1
	case n <= 0xff:
		return 2
	case n <= 0xffff:
		return 3
	case n <= 0xffffffff:
		return 5
	}
	return 9
}
