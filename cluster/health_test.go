package cluster

import (
	"context"
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
// goes through ends it, and so does a pause in them of settling (nothing
// is known to fail then). One failure alone is no run.
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
		time.Sleep(time.Second)
		f.fail(id, settling)
		if d := f.stalled(time.Now(), settling); d != 0 {
			t.Fatalf("stalled %v after one failure: one alone is no run", d)
		}
		time.Sleep(time.Second) // a retry a second later, as rebalance's tick makes
		id = f.begin()
		f.fail(id, settling)
		if d := f.stalled(time.Now(), settling); d != 2*time.Second {
			t.Fatalf("stalled %v after a second failure, want 2s: since the first began", d)
		}
		time.Sleep(settling)
		if d := f.stalled(time.Now(), settling); d != 0 {
			t.Fatalf("stalled %v, %v after the last failure: the run is over", d, settling)
		}
		first := f.begin()
		time.Sleep(300 * time.Millisecond)
		second := f.begin()
		f.fail(second, settling)
		f.fail(first, settling) // the older call fails last: the run began with it
		if d := f.stalled(time.Now(), settling); d != 300*time.Millisecond {
			t.Fatalf("stalled %v, want 300ms: a new run, since its oldest call began", d)
		}
	})
}

// A call of the owners bucket whose caller gave up (a client that went
// away cancels its request, or its deadline was shorter than AckTimeout)
// says nothing of the bucket: clients leaving one after another must not
// keep a node that can write at 503. A call given AckTimeout that got no
// answer does count.
func TestWatchedKV_CallerGaveUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const settling = 2 * time.Second
		kv := watchedKV{ops: new(inflight), settling: settling}
		call := func(ctx context.Context) {
			id, began := kv.begin()
			<-ctx.Done()
			kv.done(ctx, id, began, ctx.Err(), true)
		}
		for range 5 {
			ctx, cancel := context.WithCancel(context.Background())
			go func() { time.Sleep(100 * time.Millisecond); cancel() }()
			call(ctx)
			short, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
			call(short)
			cancel2()
		}
		if d := kv.ops.stalled(time.Now(), settling); d != 0 {
			t.Fatalf("stalled %v after calls their callers gave up on", d)
		}
		for range 2 {
			long, cancel := context.WithTimeout(context.Background(), settling)
			call(long)
			cancel()
		}
		if d := kv.ops.stalled(time.Now(), settling); d != 2*settling {
			t.Fatalf("stalled %v after two calls that waited out AckTimeout, want %v", d, 2*settling)
		}
	})
}
