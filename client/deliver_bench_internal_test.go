package client

import (
	"testing"

	"github.com/jetstreamproto/jsp/wire"
)

// BenchmarkTrackerDeliver measures the SDK's per-event work after the
// session: a channel's tracker takes in-order events and hands them to
// one subscription's handler goroutine (seqTracker.push, Client.deliver,
// the handler queue). One op is one event.
func BenchmarkTrackerDeliver(b *testing.B) {
	h := newTrackerHarness(b, RecoveryOptions{}, nil)
	envs := make([]*wire.Envelope, b.N)
	for i := range envs {
		envs[i] = ev(uint64(i + 1))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for _, env := range envs {
		h.t.push(env)
	}
	for {
		h.mu.Lock()
		n := len(h.got)
		h.mu.Unlock()
		if n == b.N {
			break
		}
	}
}
