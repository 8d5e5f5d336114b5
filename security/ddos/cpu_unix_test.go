//go:build unix

package ddos

import (
	"syscall"
	"time"
)

// processCPU returns the user plus system CPU time this process has used:
// on a shared machine it measures the work done, where wall time also
// counts waiting for a core.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
