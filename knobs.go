package todo

import "time"

// config is what a System runs by: its Options, with their defaults, and
// the knobs of the tests.
type config struct {
	Options
	knobs knobs
}

// knobs are the seams of the tests that no Store or clock double can
// reach, because they are the System's own code: the broken twins of the
// servers' hibernation and of the pool's retries, and a pause inside a
// race of a server's timer. Only export_test.go sets them, through
// newSystemWith; Open and OpenStore leave them zero, which is how a System
// runs.
type knobs struct {
	// retryBackoff, when set, replaces the wait before the retry of
	// acknowledged changes whose commit failed (see worker.setBackoff).
	retryBackoff func(time.Duration) time.Duration

	// ackWhileFailing makes the broken twin of the pool's refusal: Async
	// changes are acknowledged while commits fail, as the seed did, and
	// held in memory without bound (see pool.refusal).
	ackWhileFailing bool

	// noProbe makes the broken twin of the pool's prober: a failing
	// store is never probed, and the System is healthy again only once
	// a commit succeeds (see pool.probeLoop).
	noProbe bool

	// movedFails makes the broken twin of the pool's handling of a list
	// that moved to another writer (ErrListMoved): its refused commit is
	// taken for a failing store, and its acknowledged changes are retried
	// for ever (see worker.moved).
	movedFails bool

	// logEveryFailure makes the broken twin of the System's fault log:
	// every failure is logged, none counted into a summary (see package
	// faults).
	logEveryFailure bool

	// hibernateOverMail makes the broken twin of hibernation: a server
	// hibernates even with a request just put in its mailbox, which is
	// then never answered (see proc.hibernateIfIdle).
	hibernateOverMail bool

	// watchTwin makes the broken twins of watches (see feed.take):
	// "skip" drops, and "repeat" yields twice, the event of every
	// revision that is 50 more than a multiple of 100.
	watchTwin string

	// onTimerMiss, when set, is called by a server's timer that found the
	// mailbox full, between finding it full and noting the miss (see
	// proc.postFromTimer).
	onTimerMiss func(sig *call)
}
