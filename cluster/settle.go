package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gotodo/todo"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// settle finds out what became of a write whose publish did not return an
// ack, sets its change's Err, and never returns before it knows: a change
// whose Err is set must not be stored, now or later.
//
// Until writeTimeout has passed since the write began, the write is
// published again (the fence makes at most one copy land: whichever lands
// first moves the subject's last sequence past the one the others
// expect). After that, a fence marker is published in its place: once the
// marker or anything else holds the slot after the expected sequence, the
// write can never land. After every refusal or lost answer, the slot is
// read to learn who holds it. Only Close cuts this short (see abandon).
func (s *store) settle(w *write, err error) {
	if s.noFence {
		// The broken twin knows no better than the error it got.
		w.change.Err = fmt.Errorf("%w: list %q: %w", todo.ErrUnavailable, w.change.List, err)
		return
	}
	backoff := 20 * time.Millisecond
	marker := false
	markerID := w.id + ".m"
	for {
		if final := s.definite(w, err); final != nil {
			w.change.Err = final
			return
		}
		if wrongLastSequence(err) || ambiguous(err) {
			holder, seq, rerr := s.slot(w)
			switch {
			case rerr != nil:
				// Cannot tell yet.
			case holder == w.id:
				s.stored(w, seq)
				return
			case holder == markerID:
				s.lastSeen(w, seq)
				w.change.Err = fmt.Errorf("%w: list %q not stored: no quorum answered within %v", todo.ErrUnavailable, w.change.List, s.writeTimeout)
				return
			case holder != "":
				s.fenceFailed(w.change.List)
				w.change.Err = fmt.Errorf("%w: list %q was written by another node", ErrNotOwner, w.change.List)
				return
			case wrongLastSequence(err):
				// A refusal of a current sequence: it happens for a while
				// after a leader change. Try again.
				s.spuriousRefusals.Add(1)
			}
		}
		if s.abandoned(w) {
			return
		}
		select {
		case <-time.After(backoff):
		case <-s.closing:
		}
		backoff = min(2*backoff, 500*time.Millisecond)
		if !marker && time.Since(w.start) > s.writeTimeout {
			marker = true
			s.markers.Add(1)
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.ackTimeout)
		var ack *jetstream.PubAck
		if marker {
			ack, err = s.js.PublishMsg(ctx, w.msg(kindMarker, nil, markerID), s.pubOpts(w)...)
		} else {
			ack, err = s.js.PublishMsg(ctx, w.msg(w.kind, w.data, w.id), s.pubOpts(w)...)
		}
		cancel()
		if err == nil && !marker {
			s.stored(w, ack.Sequence)
			return
		}
		if err == nil {
			s.lastSeen(w, ack.Sequence)
			w.change.Err = fmt.Errorf("%w: list %q not stored: no quorum answered within %v", todo.ErrUnavailable, w.change.List, s.writeTimeout)
			return
		}
	}
}

// definite returns the error to report when err says for sure that the
// write was refused for a reason that retrying cannot cure, or nil.
func (s *store) definite(w *write, err error) error {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return nil
	}
	switch apiErr.ErrorCode {
	case jetstream.JSErrCodeStreamWrongLastSequence, jetstream.JSErrCodeStreamWrongLastSequenceConstant:
		return nil
	case jetstream.JSErrCodeStreamMessageExceedsMaximum:
		return fmt.Errorf("%w: list %q: %w", todo.ErrTooLarge, w.change.List, err)
	}
	if apiErr.Code >= 500 {
		return nil // the stream is unavailable for now: try again
	}
	return fmt.Errorf("list %q not stored: %w", w.change.List, err)
}

// wrongLastSequence reports whether err is the fence's refusal: the
// subject's last sequence is not the one expected. KV Create's losers on
// a deleted key get the constant form, 10164, not ErrKeyExists.
func wrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// ambiguous reports whether err leaves open whether the write landed: its
// answer never came. "No responders" is not ambiguous (nobody took the
// message), nor is any answer of the stream.
func ambiguous(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) || errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) {
		return false
	}
	return true
}

// slot returns the write id of the message that follows w's expected
// sequence on its subject and its sequence, or "" when there is none yet.
func (s *store) slot(w *write) (string, uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.ackTimeout)
	defer cancel()
	m, err := s.stream.GetMsg(ctx, w.expected+1, jetstream.WithGetMsgSubject(w.subject))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return "", 0, nil
	}
	if err != nil {
		return "", 0, err
	}
	id := m.Header.Get(writeHeader)
	if id == "" {
		id = "?" // not written by a node: someone else's all the same
	}
	return id, m.Sequence, nil
}

// lastSeen moves a list's known last sequence to seq, the sequence of a
// marker this node wrote, which is where the list now stands.
func (s *store) lastSeen(w *write, seq uint64) {
	s.mu.Lock()
	ll := s.lists[w.change.List]
	s.mu.Unlock()
	ll.lastSeq = seq
}

// fenceFailed marks a list lost: another node wrote it. Every commit of
// it fails from now on, and the node is told to unload it.
func (s *store) fenceFailed(list string) {
	s.fenceFailures.Add(1)
	s.mu.Lock()
	ll := s.lists[list]
	first := ll != nil && !ll.lost
	if ll != nil {
		ll.lost = true
	}
	s.mu.Unlock()
	if first {
		s.log.Warn("cluster: fence failed: another node wrote the list; unloading it", "list", list)
		s.lost(list) // does not block: the unload runs on a goroutine of the node's
	}
}

// abandoned reports whether Close has cut w's settling short, and if so
// sets its Err. Only then may an outcome stay unknown: the change is
// reported lost, which Close's caller sees.
func (s *store) abandoned(w *write) bool {
	select {
	case <-s.closing:
	default:
		return false
	}
	if time.Since(w.start) < s.writeTimeout+s.ackTimeout {
		return false
	}
	w.change.Err = fmt.Errorf("%w: list %q: closed before its last write was known to be stored or not", todo.ErrUnavailable, w.change.List)
	return true
}

// purger compacts the lists' logs: after a snapshot, the messages before
// it are purged, a minute later (see purgeDelay). A purge that fails is
// left to the next snapshot of the list.
func (s *store) purger() {
	defer s.purgeWG.Done()
	for {
		var p purge
		select {
		case p = <-s.purges:
		case <-s.closing:
			return
		}
		select {
		case <-time.After(time.Until(p.at)):
		case <-s.closing:
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.ackTimeout)
		err := s.stream.Purge(ctx, jetstream.WithPurgeSubject(p.subject), jetstream.WithPurgeSequence(p.seq))
		cancel()
		if err != nil {
			s.log.Debug("cluster: purge failed", "subject", p.subject, "err", err)
		}
	}
}

// Lists returns the name of every list that has a subject in the stream.
func (s *store) Lists(ctx context.Context) ([]string, error) {
	info, err := s.stream.Info(ctx, jetstream.WithSubjectFilter(listPrefix+">"))
	if err != nil {
		return nil, fmt.Errorf("%w: list the lists: %w", todo.ErrUnavailable, err)
	}
	names := make([]string, 0, len(info.State.Subjects))
	for subj := range info.State.Subjects {
		name, err := decodeName(subj[len(listPrefix):])
		if err != nil {
			s.log.Warn("cluster: a subject that no node wrote", "subject", subj)
			continue
		}
		names = append(names, name)
	}
	return names, nil
}

// stopping tells the store that the node closes: a write whose outcome is
// still unknown is given up once its time is out (see abandoned).
func (s *store) stopping() { s.closeOne.Do(func() { close(s.closing) }) }

// Close stops the purger. It does not close the connection, which belongs
// to the node.
func (s *store) Close() error {
	s.stopping()
	s.purgeWG.Wait()
	return nil
}
