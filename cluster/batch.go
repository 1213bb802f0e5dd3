package cluster

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/gotodo/todo"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"
)

// A commit's writes travel to the stream in atomic batches (JetStream's
// atomic publish, nats-server 2.12 and later): the stream's leader stages
// a batch's messages and proposes them to its Raft group as one, so that
// a commit of many lists costs one replicated, fsynced step where a write
// per list cost one each. A batch is stored whole or not at all, and its
// messages take consecutive sequences ending at the one its ack names.
//
// Every message keeps its fence (the list's expected last sequence), which
// the leader checks for each message of the batch before it proposes any:
// one stale fence refuses the whole batch. Such a batch is split in halves
// and each half sent again, down to the lists at fault, which are settled
// alone as any refused write is (see settle). A batch whose answer was
// lost is settled by its first write's slot when that holds it (the whole
// batch is stored), else write by write in the same way: each write's slot
// holds it, or another write, or nothing yet, whether the batch landed or
// not; the batch being atomic only narrows what may be found there.

const (
	// maxBatchMsgs is the most messages in a batch: nats-server's default
	// (streamDefaultMaxAtomicBatchSize, JetStreamLimits.MaxBatchSize). A
	// server configured lower refuses a batch over its limit, which is
	// then split.
	maxBatchMsgs = 1000
	// maxBatchBytes bounds a batch's size (and the max payload, when that
	// is smaller): the leader holds a batch in memory until its commit,
	// and proposes it whole. A list larger than that is written alone.
	maxBatchBytes = 1 << 20
	// maxBatchesInFlight is how many batches one store keeps open at
	// once. A stream takes 50 at once from all its publishers together
	// (streamDefaultMaxAtomicBatchInflightPerStream); a refusal for too
	// many is tried again after a pause.
	maxBatchesInFlight = 8
	// msgOverhead is what a message's subject and headers add to its data
	// at most, counting towards a batch's size.
	msgOverhead = 512
)

// batchOutcome is what the answer to a batch says of it.
type batchOutcome int

const (
	batchStored     batchOutcome = iota
	batchFenced                  // a fence refused it: some list's write is stale
	batchRefused                 // refused for something one of its messages holds: split it
	batchNotNow                  // nothing was stored and nothing will be: send it again later
	batchUnknown                 // the answer was lost: it may be stored, or may yet be
	batchNotEnabled              // the stream does not take batches
)

// groups splits writes into batches of at most maxBatchMsgs messages and
// maxBatchBytes, in order. A write over that goes alone.
func (s *store) groups(writes []*write) [][]*write {
	var groups [][]*write
	limit := min(maxBatchBytes, s.maxPayload)
	start, size := 0, 0
	for i, w := range writes {
		n := len(w.data) + msgOverhead
		if i > start && (i-start == s.batchMsgs || size+n > limit) {
			groups = append(groups, writes[start:i])
			start, size = i, 0
		}
		size += n
	}
	if len(writes) > start {
		groups = append(groups, writes[start:])
	}
	return groups
}

// publish stores writes, each fenced, in as few atomic batches as the
// limits allow, and settles those not acknowledged. It returns once every
// write is stored or its change's Err is set.
func (s *store) publish(writes []*write) {
	groups := s.groups(writes)
	if len(groups) == 0 {
		return
	}
	var wg sync.WaitGroup
	for _, g := range groups[1:] {
		wg.Go(func() { s.commitGroup(g) })
	}
	s.commitGroup(groups[0])
	wg.Wait()
}

// commitGroup stores ws as one atomic batch, splitting it when a message
// of it is refused, and settles what was not acknowledged.
func (s *store) commitGroup(ws []*write) {
	if len(ws) == 1 || !s.batches.Load() {
		s.publishEach(ws)
		return
	}
	backoff := 20 * time.Millisecond
	for incomplete := 0; ; {
		s.inflight <- struct{}{}
		last, err := s.publishBatch(ws)
		<-s.inflight
		outcome := batchResult(err)
		if outcome == batchNotNow && isIncomplete(err) {
			// Once is a leader that changed while the batch was sent;
			// twice, perhaps a message of it the leader drops without a
			// word (a commit carries the only answer): find it.
			if incomplete++; incomplete > 1 {
				outcome = batchRefused
			}
		}
		switch outcome {
		case batchStored:
			s.batchesStored.Add(1)
			for i, w := range ws {
				s.stored(w, last-uint64(len(ws)-1-i))
			}
			return
		case batchFenced, batchRefused:
			s.batchSplits.Add(1)
			half := len(ws) / 2
			var wg sync.WaitGroup
			wg.Go(func() { s.commitGroup(ws[half:]) })
			s.commitGroup(ws[:half])
			wg.Wait()
			return
		case batchNotEnabled:
			// The stream was made by an earlier version, or changed
			// since: one write at a time, as then.
			s.log.Warn("cluster: the lists' stream takes no atomic batches: writing one list at a time", "err", err)
			s.batches.Store(false)
			s.publishEach(ws)
			return
		case batchUnknown:
			s.settleBatch(ws, err)
			return
		case batchNotNow:
			if time.Since(ws[0].start) > s.writeTimeout {
				for _, w := range ws {
					w.change.Err = fmt.Errorf("%w: list %q not stored: %w", todo.ErrUnavailable, w.change.List, err)
				}
				return
			}
			time.Sleep(backoff)
			backoff = min(2*backoff, 500*time.Millisecond)
		}
	}
}

// publishBatch publishes ws as one atomic batch and returns the sequence
// of its last message.
func (s *store) publishBatch(ws []*write) (uint64, error) {
	msgs := make([]*nats.Msg, len(ws))
	for i, w := range ws {
		msgs[i] = s.batchMsg(w)
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.ackTimeout)
	defer cancel()
	return s.sendBatch(ctx, s.js, msgs)
}

// sharedHeaders are header values every message of a kind shares (nats.go
// only reads them), made once per store.
type sharedHeaders struct {
	delta, snapshot, stream []string
}

func newSharedHeaders() sharedHeaders {
	return sharedHeaders{delta: []string{kindDelta}, snapshot: []string{kindSnapshot}, stream: []string{listsStream}}
}

// batchMsg is w's message in a batch: w.msg, fenced, built for few
// allocations (this is the hot path): the values of its headers in one
// array, those all messages share made once.
func (s *store) batchMsg(w *write) *nats.Msg {
	vals := make([]string, 3)
	vals[0] = strconv.FormatUint(w.base, 10)
	vals[1] = w.id
	h := make(nats.Header, 8)
	h[kindHeader] = s.hdr.delta
	if w.kind == kindSnapshot {
		h[kindHeader] = s.hdr.snapshot
	}
	h[baseHeader] = vals[0:1:1]
	h[writeHeader] = vals[1:2:2]
	if !s.noFence {
		vals[2] = strconv.FormatUint(w.expected, 10)
		h[jetstream.ExpectedLastSubjSeqHeader] = vals[2:3:3]
		h[jetstream.ExpectedStreamHeader] = s.hdr.stream
	}
	return &nats.Msg{Subject: w.subject, Header: h, Data: w.data}
}

// sendBatch publishes msgs as one atomic batch and returns the sequence of
// the last one. The messages before the commit go without waiting for an
// answer (no AckFirst): a leader that missed some refuses the commit as
// incomplete, and the batch is sent again.
func sendBatch(ctx context.Context, js jetstream.JetStream, msgs []*nats.Msg) (uint64, error) {
	ack, err := jetstreamext.PublishMsgBatch(ctx, js, msgs, jetstreamext.BatchFlowControl{})
	if err != nil {
		return 0, err
	}
	return ack.Sequence, nil
}

// isIncomplete reports whether err is the leader's word that it did not
// see every message of the batch.
func isIncomplete(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstreamext.JSErrCodeBatchPublishIncomplete
}

// batchResult tells what err, the answer to a batch, says of it.
func batchResult(err error) batchOutcome {
	if err == nil {
		return batchStored
	}
	if wrongLastSequence(err) {
		return batchFenced
	}
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) {
			return batchNotNow // nobody took it: the stream has no leader now
		}
		return batchUnknown
	}
	switch {
	case apiErr.ErrorCode == jetstreamext.JSErrCodeBatchPublishNotEnabled:
		return batchNotEnabled
	case apiErr.ErrorCode == jetstreamext.JSErrCodeBatchPublishIncomplete:
		// The leader did not see every message: it changed while the
		// batch was sent, or the batch waited too long.
		return batchNotNow
	case apiErr.Code == 429 || apiErr.Code >= 500:
		return batchNotNow
	}
	return batchRefused
}

// publishEach publishes each write alone, fenced, and settles those not
// acknowledged: a batch of one, a write the batch limits leave alone, or
// every write when the stream takes no batches.
func (s *store) publishEach(ws []*write) {
	futures := make([]jetstream.PubAckFuture, len(ws))
	sendErrs := make([]error, len(ws))
	for i, w := range ws {
		futures[i], sendErrs[i] = s.js.PublishMsgAsync(w.msg(w.kind, w.data, w.id), s.pubOpts(w)...)
	}
	var wg sync.WaitGroup
	for i, w := range ws {
		var seq uint64
		err := sendErrs[i]
		if err == nil {
			select {
			case ack := <-futures[i].Ok():
				seq = ack.Sequence
			case err = <-futures[i].Err():
			}
		}
		if err == nil {
			s.stored(w, seq)
			continue
		}
		wg.Go(func() { s.settle(w, err) })
	}
	wg.Wait()
}

// settleBatch settles a batch whose answer was lost. When its first
// write's slot holds that write, the batch was stored, whole and at
// consecutive sequences from there: no attempt of it but this one could
// have stored anything (a batch is sent again only after a refusal,
// which stores nothing). Otherwise each write is settled on its own.
func (s *store) settleBatch(ws []*write, err error) {
	if !s.noFence {
		if holder, seq, rerr := s.slot(ws[0]); rerr == nil && holder == ws[0].id {
			for i, w := range ws {
				s.stored(w, seq+uint64(i))
			}
			return
		}
	}
	s.settleEach(ws, err)
}

// settleEach settles every write of a batch whose answer was lost.
func (s *store) settleEach(ws []*write, err error) {
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Go(func() { s.settle(w, err) })
	}
	wg.Wait()
}
