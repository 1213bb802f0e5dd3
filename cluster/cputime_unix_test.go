//go:build unix

package cluster_test

import (
	"syscall"
	"time"
)

// cpuTime returns the CPU time, user and system, the process has used so
// far: all three nodes' servers and the test's callers.
func cpuTime() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
