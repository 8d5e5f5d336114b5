//go:build !unix

package proccpu

import "time"

// self returns 0: this system has no getrusage.
func self() time.Duration { return 0 }
