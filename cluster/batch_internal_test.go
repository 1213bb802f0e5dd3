package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"
)

// TestGroups: a commit's writes go in batches of at most maxBatchMsgs
// messages and maxBatchBytes (or the max payload, if smaller), in order;
// a write over the size goes alone.
func TestGroups(t *testing.T) {
	t.Parallel()
	writes := func(sizes ...int) []*write {
		var ws []*write
		for _, n := range sizes {
			ws = append(ws, &write{data: make([]byte, n)})
		}
		return ws
	}
	repeat := func(n, size int) []int {
		s := make([]int, n)
		for i := range s {
			s[i] = size
		}
		return s
	}
	const big = 600 << 10
	for _, tc := range []struct {
		name       string
		sizes      []int
		maxPayload int
		want       []int // the messages of each batch
	}{
		{"none", nil, 1 << 30, nil},
		{"one", []int{40}, 1 << 30, []int{1}},
		{"under the count", repeat(1000, 40), 1 << 30, []int{1000}},
		{"over the count", repeat(2001, 40), 1 << 30, []int{1000, 1000, 1}},
		{"over the size", []int{40, big, big, 40, big}, 1 << 30, []int{2, 2, 1}},
		{"a write over the size alone", []int{40, 40, 1500 << 10, 40}, 1 << 30, []int{2, 1, 1}},
		{"the max payload below the size", []int{40, 300 << 10, 300 << 10}, 512 << 10, []int{2, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &store{maxPayload: tc.maxPayload, batchMsgs: maxBatchMsgs}
			ws := writes(tc.sizes...)
			var got []int
			var all []*write
			for _, g := range s.groups(ws) {
				got = append(got, len(g))
				all = append(all, g...)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("batches of %v messages, want %v", got, tc.want)
			}
			if !slices.Equal(all, ws) {
				t.Error("the batches do not hold every write once, in order")
			}
		})
	}
}

// TestBatchResult: what each answer to a batch makes the store do.
func TestBatchResult(t *testing.T) {
	t.Parallel()
	api := func(code int, errCode jetstream.ErrorCode) error {
		return fmt.Errorf("wrapped: %w", &jetstream.APIError{Code: code, ErrorCode: errCode})
	}
	for _, tc := range []struct {
		err  error
		want batchOutcome
	}{
		{nil, batchStored},
		{api(400, jetstream.JSErrCodeStreamWrongLastSequence), batchFenced},
		{api(400, jetstream.JSErrCodeStreamWrongLastSequenceConstant), batchFenced},
		{api(400, jetstreamext.JSErrCodeBatchPublishExceedsLimit), batchRefused},
		{api(400, jetstream.JSErrCodeStreamMessageExceedsMaximum), batchRefused},
		{api(400, jetstreamext.JSErrCodeBatchPublishIncomplete), batchNotNow},
		{api(429, jetstreamext.JSErrCodeAtomicPublishTooManyInflight), batchNotNow},
		{api(503, 10008), batchNotNow},
		{api(400, jetstreamext.JSErrCodeBatchPublishNotEnabled), batchNotEnabled},
		{nats.ErrNoResponders, batchNotNow},
		{context.DeadlineExceeded, batchUnknown},
		{nats.ErrTimeout, batchUnknown},
		{nats.ErrConnectionClosed, batchUnknown},
		{jetstreamext.ErrInvalidBatchAck, batchUnknown},
		{errors.New("anything else"), batchUnknown},
	} {
		if got := batchResult(tc.err); got != tc.want {
			t.Errorf("batchResult(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}
