//go:build !race

package main

// raceEnabled is true when the tests run with the race detector, whose
// sync.Pool drops a quarter of what is put in it, on purpose.
const raceEnabled = false
