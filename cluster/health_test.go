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

// Calls that fail without an answer, one after another and each at once
// (a bucket whose new leader says it cannot check a revision yet), are a
// stall since the first began, though none is under way long; one that
// goes through ends it, and so does a pause in them of settling/2 (nothing
// is known to fail then).
func TestInflight_RunOfFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const settling = 2 * time.Second
		var f inflight
		for range 12 { // 1.2s of quick failures
			id := f.begin()
			time.Sleep(10 * time.Millisecond)
			f.fail(id, settling)
			time.Sleep(90 * time.Millisecond)
		}
		if d := f.stalled(time.Now(), settling); d != 1200*time.Millisecond {
			t.Fatalf("stalled %v after 1.2s of calls that failed without an answer, want 1.2s", d)
		}
		read := f.begin()
		f.end(read, false) // answered, proves nothing
		if d := f.stalled(time.Now(), settling); d != 1200*time.Millisecond {
			t.Fatalf("stalled %v after a read was answered, want 1.2s still", d)
		}
		ok := f.begin()
		f.end(ok, true)
		if d := f.stalled(time.Now(), settling); d != 0 {
			t.Fatalf("stalled %v once a call went through", d)
		}
		id := f.begin()
		f.fail(id, settling)
		time.Sleep(settling / 2)
		if d := f.stalled(time.Now(), settling); d != 0 {
			t.Fatalf("stalled %v, %v after the last failure: the run is over", d, settling/2)
		}
		id = f.begin() // a new run begins with this call, not the old one
		time.Sleep(300 * time.Millisecond)
		f.fail(id, settling)
		if d := f.stalled(time.Now(), settling); d != 300*time.Millisecond {
			t.Fatalf("stalled %v, want 300ms: a new run since its first call began", d)
		}
	})
}
