package cluster

import (
	"testing"
	"testing/synctest"
	"time"
)

// The store is stalled while an operation has waited and none went
// through since it began: a write whose acknowledgement is late does not
// make a node that goes on writing say it cannot, until it has waited
// out the acknowledgement's timeout (settling): from then on its lists
// wait with it, and the store is stalled since it began.
func TestInflight_Stalled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const settling = 4 * time.Second
		var f inflight
		if d := f.stalled(time.Now(), settling); d != 0 {
			t.Fatalf("stalled %v with nothing under way", d)
		}
		stuck := f.begin()
		time.Sleep(2 * time.Second)
		if d := f.stalled(time.Now(), settling); d != 2*time.Second {
			t.Fatalf("stalled %v after one write waited 2s, want 2s", d)
		}
		quick := f.begin()
		time.Sleep(100 * time.Millisecond)
		f.end(quick, true)
		time.Sleep(400 * time.Millisecond)
		if d := f.stalled(time.Now(), settling); d != 400*time.Millisecond {
			t.Fatalf("stalled %v, 400ms after a write went through, want 400ms", d)
		}
		failed := f.begin()
		f.end(failed, false)
		time.Sleep(time.Second)
		if d := f.stalled(time.Now(), settling); d != 1400*time.Millisecond {
			t.Fatalf("stalled %v: a write that failed does not count as one that went through", d)
		}
		time.Sleep(500 * time.Millisecond)
		if d := f.stalled(time.Now(), settling); d != settling {
			t.Fatalf("stalled %v once the stuck write waited %v, want %v: it is being settled, its lists wait", d, settling, settling)
		}
		f.end(stuck, false)
		if d := f.stalled(time.Now(), settling); d != 0 {
			t.Fatalf("stalled %v with nothing under way", d)
		}
	})
}
