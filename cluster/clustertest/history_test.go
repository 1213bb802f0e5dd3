package clustertest_test

import (
	"testing"
	"time"

	"github.com/gotodo/todo"
	"github.com/gotodo/todo/cluster/clustertest"
)

// The checker finds each kind of violation, and passes a clean history.
func TestHistory_Check(t *testing.T) {
	h := clustertest.NewHistory()
	now := time.Now()
	h.Record(clustertest.Op{List: "a", Title: "t1", ID: 1, Outcome: clustertest.Acked}, now)
	h.Record(clustertest.Op{List: "a", Title: "t2", ID: 2, Outcome: clustertest.Acked}, now)
	h.Record(clustertest.Op{List: "a", Title: "t3", Outcome: clustertest.Unknown}, now)
	h.Record(clustertest.Op{List: "a", Title: "t4", Outcome: clustertest.Refused}, now)
	e := func(id int, title string) todo.Entry { return todo.Entry{ID: id, Title: title} }
	cases := []struct {
		name  string
		final []todo.Entry
		want  int
	}{
		{"clean", []todo.Entry{e(1, "t1"), e(2, "t2")}, 0},
		{"unknown present", []todo.Entry{e(1, "t1"), e(2, "t2"), e(3, "t3")}, 0},
		{"lost", []todo.Entry{e(1, "t1")}, 1},
		{"refused present", []todo.Entry{e(1, "t1"), e(2, "t2"), e(4, "t4")}, 1},
		{"duplicated", []todo.Entry{e(1, "t1"), e(2, "t2"), e(3, "t2")}, 2}, // twice, and once under another id
		{"moved id", []todo.Entry{e(1, "t1"), e(3, "t2")}, 1},
		{"phantom", []todo.Entry{e(1, "t1"), e(2, "t2"), e(5, "zz")}, 1},
		{"id twice", []todo.Entry{e(1, "t1"), e(2, "t2"), e(2, "t3")}, 1},
	}
	for _, c := range cases {
		got := h.Check(map[string][]todo.Entry{"a": c.final})
		if len(got) != c.want {
			t.Errorf("%s: got %d problems %q, want %d", c.name, len(got), got, c.want)
		}
	}
}
