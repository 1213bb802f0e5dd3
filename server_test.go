package todo_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gotodo/todo"
)

// neverIdle keeps servers from expiring. Tests in a synctest bubble that
// are not about expiry use it: with no idle timer to advance the fake
// clock, a call that hangs is reported at once as a deadlock of the bubble.
func neverIdle() *todo.Options { return &todo.Options{IdleTimeout: -1} }

// blockServer runs UpdateEntry(id) on s with an updater that stops until
// release is closed, and returns once the updater is running: from then on
// the list's server goroutine is busy. The update's result arrives on done.
func blockServer(t testing.TB, s *todo.Server, id int, update func(todo.Entry) todo.Entry) (release chan<- struct{}, done <-chan error) {
	t.Helper()
	entered, rel, res := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		_, err := s.UpdateEntry(context.Background(), id, func(e todo.Entry) todo.Entry {
			close(entered)
			<-rel
			return update(e)
		})
		res <- err
	}()
	select {
	case <-entered:
	case err := <-res:
		t.Fatalf("UpdateEntry(%d) returned %v before running its updater", id, err)
	}
	return rel, res
}

func TestServer_Entries_ReadsDoNotWaitForServer(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		sys := openMemSystem(t, neverIdle())
		s := sys.ServerProcess("busy")
		a := mustAddEntry(t, s, day19, "a")
		b := mustAddEntry(t, s, day19, "b")
		before := sys.Stats()

		release, done := blockServer(t, s, a.ID, func(e todo.Entry) todo.Entry {
			e.Date, e.Title = day20, "a, moved"
			return e
		})
		// Were a read to go through the blocked server, it would fail with
		// DeadlineExceeded once the fake clock reaches the deadline.
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		defer cancel()
		for range 3 {
			got, err := s.Entries(ctx, day19)
			if err != nil || !slices.Equal(got, []todo.Entry{a, b}) {
				t.Fatalf("Entries(day19) while the server is busy = %v, %v; want %v (the published state)", got, err, []todo.Entry{a, b})
			}
			got, err = s.Entries(ctx, day20)
			if err != nil || len(got) != 0 {
				t.Fatalf("Entries(day20) while the server is busy = %v, %v; want none (the change is in flight)", got, err)
			}
			got, err = sys.ServerProcess("busy").AllEntries(ctx)
			if err != nil || !slices.Equal(got, []todo.Entry{a, b}) {
				t.Fatalf("AllEntries while the server is busy = %v, %v; want %v", got, err, []todo.Entry{a, b})
			}
		}
		if st := sys.Stats(); st.TableReads != before.TableReads+9 {
			t.Errorf("TableReads = %d, want %d", st.TableReads, before.TableReads+9)
		}
		// What a caller does with a returned slice does not reach the table.
		got, _ := s.Entries(ctx, day19)
		got[0].Title = "scribbled"
		if again := mustEntriesOf(t, s, day19); again[0].Title != "a" {
			t.Errorf("writing into a returned slice changed the list: %v", again)
		}

		close(release)
		if err := <-done; err != nil {
			t.Fatalf("UpdateEntry: %v", err)
		}
		moved := todo.Entry{ID: a.ID, Date: day20, Title: "a, moved"}
		if got := mustEntriesOf(t, s, day19); !slices.Equal(got, []todo.Entry{b}) {
			t.Errorf("Entries(day19) after the update = %v, want %v", got, []todo.Entry{b})
		}
		if got := mustEntriesOf(t, s, day20); !slices.Equal(got, []todo.Entry{moved}) {
			t.Errorf("Entries(day20) after the update = %v, want %v", got, []todo.Entry{moved})
		}
		if got := mustAllEntries(t, s); !slices.Equal(got, []todo.Entry{moved, b}) {
			t.Errorf("AllEntries after the update = %v, want %v", got, []todo.Entry{moved, b})
		}
	})
}

func TestServer_Entries_LoadsStoredListOnFirstUse(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	old := openDirSystem(t, dir, nil)
	bob := old.ServerProcess("bob")
	stored := []todo.Entry{
		mustAddEntry(t, bob, day19, "Dentist"),
		mustAddEntry(t, bob, day20, "Shopping"),
		mustAddEntry(t, bob, day19, "Movies"),
	}
	if err := bob.DeleteEntry(context.Background(), stored[1].ID); err != nil {
		t.Fatal(err)
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	sys := openDirSystem(t, dir, nil)
	if st := sys.Stats(); st != (todo.Stats{}) {
		t.Errorf("Stats of a fresh System = %+v, want zero", st)
	}
	s := sys.ServerProcess("bob")
	want19 := []todo.Entry{stored[0], stored[2]}
	if got := mustEntriesOf(t, s, day19); !slices.Equal(got, want19) {
		t.Errorf("first Entries = %v, want %v", got, want19)
	}
	st := sys.Stats()
	if st.ServersStarted != 1 || st.RequestsServed != 1 || st.TableReads != 0 {
		t.Errorf("the first read should load through the server: %+v", st)
	}
	if got := mustAllEntries(t, s); !slices.Equal(got, want19) {
		t.Errorf("AllEntries = %v, want %v", got, want19)
	}
	if got := mustEntriesOf(t, s, day20); len(got) != 0 {
		t.Errorf("Entries(day20) = %v, want none (deleted)", got)
	}
	st = sys.Stats()
	if st.ServersStarted != 1 || st.RequestsServed != 1 || st.TableReads != 2 {
		t.Errorf("later reads should come from the table: %+v", st)
	}
	// Ids continue after the stored list's last id, even a deleted one.
	if e := mustAddEntry(t, s, day20, "new"); e.ID != 4 {
		t.Errorf("AddEntry after reload gave id %d, want 4", e.ID)
	}
	// A list that was never stored loads as empty.
	if got := mustAllEntries(t, sys.ServerProcess("nobody")); len(got) != 0 {
		t.Errorf("AllEntries of a list never stored = %v, want none", got)
	}
}

func TestServer_AddEntry_MailboxFull(t *testing.T) {
	t.Parallel()
	cases := map[string]func() (context.Context, func(), error){
		"ctx=canceled": func() (context.Context, func(), error) {
			ctx, cancel := context.WithCancel(context.Background())
			return ctx, cancel, context.Canceled
		},
		"ctx=deadline": func() (context.Context, func(), error) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			return ctx, cancel, context.DeadlineExceeded
		},
	}
	for name, newCtx := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				sys := openMemSystem(t, &todo.Options{MailboxSize: 1, IdleTimeout: -1})
				s := sys.ServerProcess("full")
				first := mustAddEntry(t, s, day19, "first")
				release, done := blockServer(t, s, first.ID, func(e todo.Entry) todo.Entry { return e })

				// One request fills the mailbox, three more wait for room.
				type result struct {
					e   todo.Entry
					err error
				}
				queued := make(chan result, 4)
				for i := range cap(queued) {
					go func() {
						e, err := s.AddEntry(ctx, todo.Entry{Date: day19, Title: fmt.Sprint("queued ", i)})
						queued <- result{e, err}
					}()
					synctest.Wait()
				}
				if st := sys.Stats(); st.MailboxWaits != 3 {
					t.Errorf("MailboxWaits = %d, want 3", st.MailboxWaits)
				}

				waitCtx, cancel, wantErr := newCtx()
				defer cancel()
				failed := make(chan error, 1)
				go func() {
					_, err := s.AddEntry(waitCtx, todo.Entry{Date: day19, Title: "gave up"})
					failed <- err
				}()
				synctest.Wait()
				select {
				case err := <-failed:
					t.Fatalf("AddEntry returned %v while the mailbox was full and its ctx alive", err)
				default:
				}
				if errors.Is(wantErr, context.Canceled) {
					cancel()
				} // else: the fake clock reaches the deadline once all are blocked
				if err := <-failed; !errors.Is(err, wantErr) {
					t.Fatalf("AddEntry into a full mailbox: %v, want %v", err, wantErr)
				}
				if st := sys.Stats(); st.MailboxWaits != 4 {
					t.Errorf("MailboxWaits = %d, want 4", st.MailboxWaits)
				}

				close(release)
				if err := <-done; err != nil {
					t.Fatalf("UpdateEntry: %v", err)
				}
				var ids []int
				for range cap(queued) {
					r := <-queued
					if r.err != nil {
						t.Errorf("queued AddEntry: %v", r.err)
						continue
					}
					ids = append(ids, r.e.ID)
				}
				checkIDRange(t, ids, 2, 5)
				all := mustAllEntries(t, s)
				checkInIDOrder(t, all, 1, 5)
				for _, e := range all {
					if e.Title == "gave up" {
						t.Errorf("the call that failed with %v was applied: %v", wantErr, e)
					}
				}
			})
		})
	}
}

func TestServer_UpdateEntry_Panic(t *testing.T) {
	t.Parallel()
	var logs lockedBuffer
	sys := openMemSystem(t, &todo.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	s, other := sys.ServerProcess("crashy"), sys.ServerProcess("bystander")
	mustAddEntry(t, s, day19, "one")
	mustAddEntry(t, s, day20, "two")
	mustAddEntry(t, other, day19, "other")
	before, before19 := mustAllEntries(t, s), mustEntriesOf(t, s, day19)

	_, err := s.UpdateEntry(context.Background(), 1, func(e todo.Entry) todo.Entry {
		e.Title = "half done" // changes to the copy must not leak
		panic("boom-4242")
	})
	if !errors.Is(err, todo.ErrCrashed) {
		t.Fatalf("UpdateEntry with a panicking updater: %v, want ErrCrashed", err)
	}
	if !strings.Contains(err.Error(), "boom-4242") {
		t.Errorf("error %q does not carry the panic value", err)
	}
	if got := mustAllEntries(t, s); !slices.Equal(got, before) {
		t.Errorf("after the panic AllEntries = %v, want %v", got, before)
	}
	if got := mustEntriesOf(t, s, day19); !slices.Equal(got, before19) {
		t.Errorf("after the panic Entries = %v, want %v", got, before19)
	}

	// The server goes on serving, with the ids it had.
	if e := mustAddEntry(t, s, day19, "three"); e.ID != 3 {
		t.Errorf("AddEntry after the panic gave id %d, want 3", e.ID)
	}
	if e, err := s.UpdateEntry(context.Background(), 1, func(e todo.Entry) todo.Entry { e.Title = "one!"; return e }); err != nil || e.Title != "one!" {
		t.Errorf("UpdateEntry after the panic = %v, %v", e, err)
	}
	if e := mustAddEntry(t, other, day19, "other 2"); e.ID != 2 {
		t.Errorf("the other list gave id %d, want 2", e.ID)
	}
	// Panicking with an error or with nil is no different.
	if _, err := s.UpdateEntry(context.Background(), 2, func(todo.Entry) todo.Entry { panic(errors.New("an error value")) }); !errors.Is(err, todo.ErrCrashed) || !strings.Contains(err.Error(), "an error value") {
		t.Errorf("UpdateEntry panicking with an error: %v", err)
	}
	if _, err := s.UpdateEntry(context.Background(), 2, func(todo.Entry) todo.Entry { panic(nil) }); !errors.Is(err, todo.ErrCrashed) {
		t.Errorf("UpdateEntry panicking with nil: %v, want ErrCrashed", err)
	}

	st := sys.Stats()
	if st.PanicsRecovered != 3 || st.ServersStarted != 2 || st.ServersRunning != 2 {
		t.Errorf("PanicsRecovered = %d, ServersStarted = %d, ServersRunning = %d; want 3, 2, 2", st.PanicsRecovered, st.ServersStarted, st.ServersRunning)
	}
	log := logs.String()
	for _, want := range []string{"boom-4242", "crashy", "panic(", "server_test.go"} {
		if !strings.Contains(log, want) {
			t.Errorf("the log does not contain %q (the panic with its stack):\n%s", want, log)
		}
	}
}

// A panic fails its own request only, even among others served in the
// same batch.
func TestServer_UpdateEntry_PanicFailsOnlyItsRequest(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		sys := openMemSystem(t, neverIdle())
		s := sys.ServerProcess("batch")
		first := mustAddEntry(t, s, day19, "first")
		release, done := blockServer(t, s, first.ID, func(e todo.Entry) todo.Entry {
			e.Title = "first, updated"
			return e
		})

		errs := make([]chan error, 4)
		for i := range errs {
			errs[i] = make(chan error, 1)
		}
		send := func(i int, f func() error) {
			go func() { errs[i] <- f() }()
			synctest.Wait() // queue the requests in this order
		}
		send(0, func() error {
			_, err := s.AddEntry(ctx, todo.Entry{Date: day19, Title: "before the panic"})
			return err
		})
		send(1, func() error {
			_, err := s.UpdateEntry(ctx, first.ID, func(todo.Entry) todo.Entry { panic("in a batch") })
			return err
		})
		send(2, func() error {
			_, err := s.AddEntry(ctx, todo.Entry{Date: day20, Title: "after the panic"})
			return err
		})
		send(3, func() error {
			_, err := s.UpdateEntry(ctx, 2, func(e todo.Entry) todo.Entry { e.Title += "!"; return e })
			return err
		})
		close(release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		for i, c := range errs {
			err := <-c
			if i == 1 {
				if !errors.Is(err, todo.ErrCrashed) {
					t.Errorf("the panicking request: %v, want ErrCrashed", err)
				}
			} else if err != nil {
				t.Errorf("request %d of the batch: %v", i, err)
			}
		}
		want := []todo.Entry{
			{ID: 1, Date: day19, Title: "first, updated"},
			{ID: 2, Date: day19, Title: "before the panic!"},
			{ID: 3, Date: day20, Title: "after the panic"},
		}
		if got := mustAllEntries(t, s); !slices.Equal(got, want) {
			t.Errorf("AllEntries = %v, want %v", got, want)
		}
		if st := sys.Stats(); st.PanicsRecovered != 1 {
			t.Errorf("PanicsRecovered = %d, want 1", st.PanicsRecovered)
		}
	})
}

func TestServer_AddEntry_InvalidDate(t *testing.T) {
	t.Parallel()
	sys := openMemSystem(t, nil)
	s := sys.ServerProcess("dates")
	for _, d := range []todo.Date{
		{},
		{Year: 2013, Month: time.February, Day: 29},
		{Year: 2013, Month: 13, Day: 1},
		{Year: 2013, Month: time.December, Day: 0},
		{Year: 0, Month: time.January, Day: 1},
		{Year: 10000, Month: time.January, Day: 1},
	} {
		if _, err := s.AddEntry(context.Background(), todo.Entry{Date: d, Title: "x"}); !errors.Is(err, todo.ErrInvalidDate) {
			t.Errorf("AddEntry with date %+v: %v, want ErrInvalidDate", d, err)
		}
	}
	if _, err := s.Entries(context.Background(), todo.Date{}); !errors.Is(err, todo.ErrInvalidDate) {
		t.Errorf("Entries of the zero Date: %v, want ErrInvalidDate", err)
	}
	if got := mustAllEntries(t, s); len(got) != 0 {
		t.Errorf("AllEntries = %v, want none", got)
	}
	if got := mustLists(t, sys); len(got) != 0 {
		t.Errorf("Lists = %q, want none", got)
	}
	// Ids are not spent by refused entries.
	if e := mustAddEntry(t, s, todo.Date{Year: 2012, Month: time.February, Day: 29}, "leap day"); e.ID != 1 {
		t.Errorf("first valid entry has id %d, want 1", e.ID)
	}
}

func TestServer_UpdateEntry_InvalidDate(t *testing.T) {
	t.Parallel()
	sys := openMemSystem(t, nil)
	s := sys.ServerProcess("dates")
	e := mustAddEntry(t, s, day19, "x")
	for _, d := range []todo.Date{{}, {Year: 2013, Month: time.November, Day: 31}} {
		_, err := s.UpdateEntry(context.Background(), e.ID, func(e todo.Entry) todo.Entry {
			e.Date, e.Title = d, "changed"
			return e
		})
		if !errors.Is(err, todo.ErrInvalidDate) {
			t.Errorf("UpdateEntry to date %+v: %v, want ErrInvalidDate", d, err)
		}
	}
	if got := mustAllEntries(t, s); !slices.Equal(got, []todo.Entry{e}) {
		t.Errorf("AllEntries = %v, want %v unchanged", got, []todo.Entry{e})
	}
	if got := mustEntriesOf(t, s, day19); !slices.Equal(got, []todo.Entry{e}) {
		t.Errorf("Entries = %v, want %v unchanged", got, []todo.Entry{e})
	}
}

func TestServer_UpdateEntry_DeleteEntry_UnknownID(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sys := openMemSystem(t, nil)
	s := sys.ServerProcess("ids")
	mustAddEntry(t, s, day19, "one")
	two := mustAddEntry(t, s, day19, "two")
	if err := s.DeleteEntry(ctx, 1); err != nil {
		t.Fatal(err)
	}
	for _, id := range []int{0, -1, 1, 3, 1 << 40} {
		called := false
		_, err := s.UpdateEntry(ctx, id, func(e todo.Entry) todo.Entry { called = true; return e })
		if !errors.Is(err, todo.ErrEntryNotFound) {
			t.Errorf("UpdateEntry(%d): %v, want ErrEntryNotFound", id, err)
		}
		if called {
			t.Errorf("UpdateEntry(%d) called the updater for an unknown id", id)
		}
		if err := s.DeleteEntry(ctx, id); !errors.Is(err, todo.ErrEntryNotFound) {
			t.Errorf("DeleteEntry(%d): %v, want ErrEntryNotFound", id, err)
		}
	}
	// Unknown ids in a list that was never loaded, too.
	if err := sys.ServerProcess("empty").DeleteEntry(ctx, 1); !errors.Is(err, todo.ErrEntryNotFound) {
		t.Errorf("DeleteEntry on an empty list: %v, want ErrEntryNotFound", err)
	}
	if got := mustAllEntries(t, s); !slices.Equal(got, []todo.Entry{two}) {
		t.Errorf("AllEntries = %v, want %v", got, []todo.Entry{two})
	}
	// A deleted id is never given out again.
	if err := s.DeleteEntry(ctx, two.ID); err != nil {
		t.Fatal(err)
	}
	if e := mustAddEntry(t, s, day19, "three"); e.ID != 3 {
		t.Errorf("AddEntry after deleting ids 1 and 2 gave id %d, want 3", e.ID)
	}
}

func TestServer_UpdateEntry_MovesBetweenDates(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sys := openMemSystem(t, nil)
	s := sys.ServerProcess("move")
	a := mustAddEntry(t, s, day19, "a")
	b := mustAddEntry(t, s, day20, "b")
	c := mustAddEntry(t, s, day19, "c")

	got, err := s.UpdateEntry(ctx, c.ID, func(e todo.Entry) todo.Entry { e.Date = day20; return e })
	movedC := todo.Entry{ID: c.ID, Date: day20, Title: "c"}
	if err != nil || got != movedC {
		t.Fatalf("UpdateEntry = %v, %v; want %v", got, err, movedC)
	}
	if es := mustEntriesOf(t, s, day19); !slices.Equal(es, []todo.Entry{a}) {
		t.Errorf("Entries(day19) = %v, want %v", es, []todo.Entry{a})
	}
	if es := mustEntriesOf(t, s, day20); !slices.Equal(es, []todo.Entry{b, movedC}) {
		t.Errorf("Entries(day20) = %v, want %v (in id order)", es, []todo.Entry{b, movedC})
	}
	// Moving the last entry of a date leaves that date empty.
	if _, err := s.UpdateEntry(ctx, a.ID, func(e todo.Entry) todo.Entry { e.Date = day20; return e }); err != nil {
		t.Fatal(err)
	}
	if es := mustEntriesOf(t, s, day19); len(es) != 0 {
		t.Errorf("Entries(day19) = %v, want none", es)
	}
	movedA := todo.Entry{ID: a.ID, Date: day20, Title: "a"}
	if es := mustEntriesOf(t, s, day20); !slices.Equal(es, []todo.Entry{movedA, b, movedC}) {
		t.Errorf("Entries(day20) = %v, want %v (in id order)", es, []todo.Entry{movedA, b, movedC})
	}
	if es := mustAllEntries(t, s); !slices.Equal(es, []todo.Entry{movedA, b, movedC}) {
		t.Errorf("AllEntries = %v, want %v", es, []todo.Entry{movedA, b, movedC})
	}
}

func TestServer_UpdateEntry_CannotChangeID(t *testing.T) {
	t.Parallel()
	sys := openMemSystem(t, nil)
	s := sys.ServerProcess("ids")
	one := mustAddEntry(t, s, day19, "one")
	two := mustAddEntry(t, s, day19, "two")
	got, err := s.UpdateEntry(context.Background(), one.ID, func(e todo.Entry) todo.Entry {
		e.ID, e.Title = two.ID, "one, renamed"
		return e
	})
	want := todo.Entry{ID: one.ID, Date: day19, Title: "one, renamed"}
	if err != nil || got != want {
		t.Fatalf("UpdateEntry = %v, %v; want %v", got, err, want)
	}
	if es := mustAllEntries(t, s); !slices.Equal(es, []todo.Entry{want, two}) {
		t.Errorf("AllEntries = %v, want %v", es, []todo.Entry{want, two})
	}
	// AddEntry ignores the id it is given.
	if e, err := s.AddEntry(context.Background(), todo.Entry{ID: 1, Date: day19, Title: "three"}); err != nil || e.ID != 3 {
		t.Errorf("AddEntry with ID 1 = %v, %v; want id 3", e, err)
	}
}

func TestServer_CanceledContext_NothingApplied(t *testing.T) {
	t.Parallel()
	sys := openMemSystem(t, nil)
	s := sys.ServerProcess("loaded")
	e := mustAddEntry(t, s, day19, "keep me")
	before := sys.Stats()

	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel := context.WithDeadline(context.Background(), time.Unix(0, 0))
	defer cancel()
	for _, c := range []struct {
		ctx  context.Context
		want error
	}{{canceled, context.Canceled}, {expired, context.DeadlineExceeded}} {
		check := func(what string, err error) {
			t.Helper()
			if !errors.Is(err, c.want) {
				t.Errorf("%s with a done ctx: %v, want %v", what, err, c.want)
			}
		}
		_, err := s.AddEntry(c.ctx, todo.Entry{Date: day19, Title: "never"})
		check("AddEntry", err)
		called := false
		_, err = s.UpdateEntry(c.ctx, e.ID, func(e todo.Entry) todo.Entry { called = true; e.Title = "never"; return e })
		check("UpdateEntry", err)
		if called {
			t.Error("UpdateEntry with a done ctx ran its updater")
		}
		check("DeleteEntry", s.DeleteEntry(c.ctx, e.ID))
		_, err = sys.Lists(c.ctx)
		check("Lists", err)

		fresh := sys.ServerProcess("fresh")
		_, err = fresh.AddEntry(c.ctx, todo.Entry{Date: day19, Title: "never"})
		check("AddEntry on a list not loaded", err)
		_, err = fresh.Entries(c.ctx, day19)
		check("Entries of a list not loaded", err)
		_, err = fresh.AllEntries(c.ctx)
		check("AllEntries of a list not loaded", err)
	}
	if got := mustAllEntries(t, s); !slices.Equal(got, []todo.Entry{e}) {
		t.Errorf("AllEntries = %v, want %v: a call with a done ctx was applied", got, []todo.Entry{e})
	}
	if got := mustLists(t, sys); !slices.Equal(got, []string{"loaded"}) {
		t.Errorf("Lists = %q, want [loaded]", got)
	}
	if st := sys.Stats(); st.RequestsServed != before.RequestsServed || st.ServersStarted != before.ServersStarted {
		t.Errorf("calls with a done ctx reached a server: before %+v, after %+v", before, st)
	}
}

// TestServer_UpdateEntry_Goexit: an updater that calls runtime.Goexit (as
// t.FailNow does) is not a panic and no recover stops it; it must still
// fail only its own request, and the list's server must keep serving.
func TestServer_UpdateEntry_Goexit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sys := openMemSystem(t, nil)
	s := sys.ServerProcess("goexit")
	first := mustAddEntry(t, s, day19, "stays")
	_, err := s.UpdateEntry(ctx, first.ID, func(e todo.Entry) todo.Entry {
		runtime.Goexit()
		return e
	})
	if !errors.Is(err, todo.ErrCrashed) {
		t.Fatalf("UpdateEntry with Goexit: err = %v, want ErrCrashed", err)
	}
	if got := mustAllEntries(t, s); len(got) != 1 || got[0] != first {
		t.Fatalf("after Goexit: %v, want only %v", got, first)
	}
	if e := mustAddEntry(t, s, day19, "next"); e.ID != first.ID+1 {
		t.Fatalf("next add got id %d, want %d", e.ID, first.ID+1)
	}
}

// dentist is the date of the book's first entry.
var dentist = todo.Date{Year: 2013, Month: time.December, Day: 19}

// openSlow opens, inside a synctest bubble, a System with Fsync
// acknowledgement whose list writes take 10ms of the bubble's clock each.
func openSlow(t *testing.T) (*todo.System, func() int64) {
	t.Helper()
	o := neverIdle()
	o.Durability = todo.Fsync
	sys, writes, err := todo.OpenInMemorySlow(o, 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sys.Close() })
	return sys, writes.Load
}

// TestServer_AddEntry_CallersShareEachWrite checks that callers sharing a
// list do not split into groups that take turns at the writes: every write
// after the first few carries a change of every caller. In a synctest
// bubble an answered caller always sends again before the clock moves, so
// the count of writes is exact.
func TestServer_AddEntry_CallersShareEachWrite(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const callers, rounds = 16, 20
		sys, writes := openSlow(t)
		s := sys.ServerProcess("shared")
		ctx := context.Background()
		errs := make(chan error, callers)
		for range callers {
			go func() {
				for range rounds {
					if _, err := s.AddEntry(ctx, todo.Entry{Date: dentist, Title: "x"}); err != nil {
						errs <- err
						return
					}
				}
				errs <- nil
			}()
		}
		for range callers {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		// The first write carries the first caller alone, the second the
		// other callers, which queued behind it; from the third on, every
		// write carries every caller.
		if n := writes(); n > rounds+2 {
			t.Errorf("%d writes for %d callers adding %d entries each; want at most %d", n, callers, rounds, rounds+2)
		}
		all, err := s.AllEntries(ctx)
		if err != nil || len(all) != callers*rounds {
			t.Fatalf("AllEntries: %d entries, %v; want %d", len(all), err, callers*rounds)
		}
	})
}

// TestServer_AddEntry_LoneCallerNeverWaits checks that a server waits for
// callers to come back only when several share its list: one caller, or
// callers that move from list to list, get their writes at once.
func TestServer_AddEntry_LoneCallerNeverWaits(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		sys, writes := openSlow(t)
		ctx := context.Background()
		start := time.Now()
		for i := range 10 {
			if _, err := sys.ServerProcess("alone").AddEntry(ctx, todo.Entry{Date: dentist, Title: "x"}); err != nil {
				t.Fatal(err)
			}
			if got, want := time.Since(start), time.Duration(i+1)*10*time.Millisecond; got != want {
				t.Fatalf("add %d answered after %v; want %v, the writes' time alone", i+1, got, want)
			}
		}
		// Two callers share a write (they queue behind an update held in
		// its updater), which makes the server expect them back. A
		// second later one of them adds alone: the server must not wait
		// for the other, who was due back long ago.
		s := sys.ServerProcess("pair")
		first := mustAddEntry(t, s, dentist, "first")
		release, updated := blockServer(t, s, first.ID, func(e todo.Entry) todo.Entry { return e })
		added := make(chan error, 2)
		for range 2 {
			go func() {
				_, err := s.AddEntry(ctx, todo.Entry{Date: dentist, Title: "pair"})
				added <- err
			}()
		}
		synctest.Wait() // both adds wait in the mailbox
		before := writes()
		close(release)
		for _, c := range []<-chan error{updated, added, added} {
			if err := <-c; err != nil {
				t.Fatal(err)
			}
		}
		if n := writes() - before; n != 2 {
			t.Fatalf("%d writes for an update and two queued adds; want 2 (the adds sharing one)", n)
		}
		time.Sleep(time.Second)
		start, before = time.Now(), writes()
		for range 5 {
			if _, err := s.AddEntry(ctx, todo.Entry{Date: dentist, Title: "x"}); err != nil {
				t.Fatal(err)
			}
		}
		if got, want := time.Since(start), 5*10*time.Millisecond; got != want {
			t.Errorf("5 adds by the remaining caller took %v; want %v, the writes' time alone", got, want)
		}
		if n := writes() - before; n != 5 {
			t.Errorf("%d writes for 5 adds by one caller", n)
		}
	})
}

func TestServer_InvalidTitle(t *testing.T) {
	ctx := context.Background()
	sys := openMemSystem(t, nil)
	s := sys.ServerProcess("bob")
	for _, title := range []string{"line\nforged", "cr\r", "nul\x00", "bell\a", "c1\u0085", "bad\xffutf8"} {
		if _, err := s.AddEntry(ctx, todo.Entry{Date: day19, Title: title}); !errors.Is(err, todo.ErrInvalidTitle) {
			t.Errorf("AddEntry(%q): %v, want ErrInvalidTitle", title, err)
		}
	}
	e := mustAddEntry(t, s, day19, "tab\tis fine, so is ünïcode")
	if _, err := s.UpdateEntry(ctx, e.ID, func(e todo.Entry) todo.Entry { e.Title = "two\nlines"; return e }); !errors.Is(err, todo.ErrInvalidTitle) {
		t.Errorf("UpdateEntry to a two-line title: %v, want ErrInvalidTitle", err)
	}
	got, err := s.AllEntries(ctx)
	if err != nil || len(got) != 1 || got[0] != e {
		t.Errorf("after refused changes: %v, %v; want only %v", got, err, e)
	}
}

// TestServer_UpdateEntry_StuckUpdater checks that an updater that never
// returns holds up neither its list nor Close: its call fails when its ctx
// ends, the list serves other calls meanwhile and keeps its state, and
// Close, with another stuck updater running, returns at once and fails
// that request with ErrClosed. The updaters are then let go, so their
// goroutines end before the leak check.
func TestServer_UpdateEntry_StuckUpdater(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sys, err := todo.OpenInMemory(nil)
		if err != nil {
			t.Fatal(err)
		}
		s := sys.ServerProcess("stuck")
		e := mustAddEntry(t, s, day19, "before")
		release := make(chan struct{})
		defer close(release)
		stuck := func(e todo.Entry) todo.Entry {
			<-release
			e.Title = "after"
			return e
		}

		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		start := time.Now()
		if _, err := s.UpdateEntry(ctx, e.ID, stuck); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("UpdateEntry with a stuck updater: %v, want context.DeadlineExceeded", err)
		}
		if waited := time.Since(start); waited != 5*time.Second {
			t.Errorf("UpdateEntry returned after %v, want its ctx's 5s", waited)
		}
		if got := mustAllEntries(t, s); len(got) != 1 || got[0] != e {
			t.Errorf("after the abandoned update: %v, want only %v", got, e)
		}
		other := mustAddEntry(t, s, day20, "served meanwhile")

		errs := make(chan error, 1)
		go func() {
			_, err := s.UpdateEntry(context.Background(), e.ID, stuck)
			errs <- err
		}()
		synctest.Wait() // the updater is running, the server waits on it
		start = time.Now()
		if err := sys.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if waited := time.Since(start); waited != 0 {
			t.Errorf("Close waited %v for a stuck updater", waited)
		}
		if err := <-errs; !errors.Is(err, todo.ErrClosed) {
			t.Errorf("the request of the updater stuck at Close: %v, want ErrClosed", err)
		}
		_ = other
	})
}
