package todo

import (
	"fmt"
	"testing"
)

// TestPool_WorkerOfAList checks the pool's choice of a list's worker:
// always the same one for a list (its changes must never reorder), the
// lists spread over every worker, and no allocation (every change of
// every list asks).
func TestPool_WorkerOfAList(t *testing.T) {
	p := &pool{}
	for range 3 {
		p.workers = append(p.workers, &worker{})
	}
	count := make(map[*worker]int)
	for i := range 3000 {
		name := fmt.Sprint("list ", i)
		w := p.worker(name)
		if again := p.worker(name); again != w {
			t.Fatalf("%q went to two workers", name)
		}
		count[w]++
	}
	for i, w := range p.workers {
		if count[w] < 800 {
			t.Errorf("worker %d has %d of 3,000 lists, want about 1,000: %v", i, count[w], count)
		}
	}
	if a := testing.AllocsPerRun(100, func() { p.worker("a name longer than sixty-four bytes, to leave any stack buffer behind") }); a != 0 {
		t.Errorf("worker: %v allocations, want 0", a)
	}
}
