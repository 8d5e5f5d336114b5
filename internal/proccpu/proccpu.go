// Package proccpu reads the CPU time the current process has used. The
// benchmarks report CPU per operation from it: client and server of a
// benchmark often run in one process, so the difference across an
// operation is all the work it cost, wherever it ran, and unlike wall
// time it hardly changes when other processes compete for the cores.
package proccpu

import "time"

// Self returns the CPU time, user plus system, the process has used so
// far, or 0 where the system does not say.
func Self() time.Duration { return self() }
