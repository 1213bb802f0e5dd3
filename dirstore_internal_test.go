package todo

import (
	"hash/crc32"
	"testing"
)

// TestLaneIndex checks that laneIndex is crc32.Checksum of the name modulo
// the lanes (the lane a list's records go to must not change between
// versions), and that it costs no allocation: every change of every list
// calls it.
func TestLaneIndex(t *testing.T) {
	for _, name := range []string{"", "a", "list_123", "Bob's list", "a name longer than sixty-four bytes, to leave any stack buffer behind"} {
		for _, n := range []int{1, 2, 3, 7} {
			if got, want := laneIndex(name, n), int(crc32.Checksum([]byte(name), castagnoli)%uint32(n)); got != want {
				t.Errorf("laneIndex(%q, %d) = %d, want %d", name, n, got, want)
			}
		}
	}
	for _, n := range []int{1, 3} {
		if a := testing.AllocsPerRun(100, func() { laneIndex("list_123", n) }); a != 0 {
			t.Errorf("laneIndex with %d lanes: %v allocations, want 0", n, a)
		}
	}
}
