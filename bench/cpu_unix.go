//go:build unix

package bench

import (
	"syscall"
	"time"
)

// ProcessCPU returns the CPU time, user plus system, the process has used
// so far, or 0 where the system does not say. Client and server of a
// benchmark run in one process, so the difference across an operation is
// all the work the operation cost, wherever it ran; unlike wall-clock time,
// it hardly changes when other processes compete for the cores.
func ProcessCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
