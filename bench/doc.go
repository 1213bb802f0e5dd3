// Package bench compares todo's durable writes with the stores a Go user
// would reach for instead: Pebble, bbolt and SQLite, and this disk's raw
// write+fdatasync append rate. It holds benchmarks only (durable_test.go);
// it has no API.
//
// It is a module of its own, nested in todo's repository with a replace of
// the root, so that the comparison can import Pebble, bbolt and SQLite
// while nobody who imports github.com/gotodo/todo ever finds them in their
// module graph. The root's go test ./... does not descend into it.
//
// # Running
//
// From this directory, each impl measured in the same run so that the
// ratios between them hold for one disk at one time:
//
//	go test -run '^$' -bench BenchmarkDurable -count=10 -benchtime=2s . | tee durable.bench
//	benchstat -col /impl durable.bench
//
// (benchstat: go install golang.org/x/perf/cmd/benchstat@latest.) The
// README beside this file says what each impl is, which options it uses
// and why, and the figures of the last run.
package bench
