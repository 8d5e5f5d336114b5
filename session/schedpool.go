package session

import (
	"sync"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/qos"
)

// schedPool holds empty send schedulers given back by senders whose queue
// drained (D27, D34: an idle session holds none). A session on a fan-out
// channel queues one event every few hundred milliseconds and drains it at
// once, so without the pool every delivery would make a scheduler and its
// ring buffer again (docs/benchmarks.md, "Per-delivery CPU").
var schedPool sync.Pool

// newSched returns an empty scheduler whose class queues hold queueLen
// frames each: a pooled one when its limits match, a new one otherwise.
func (s *sender) newSched() *qos.Scheduler[[]byte] {
	if sc, ok := schedPool.Get().(*qos.Scheduler[[]byte]); ok && sc.Len() == 0 && schedFits(sc, s.queueLen) {
		sc.OnExpire(s.expired)
		return sc
	}
	var qc qos.Config
	for c := range qc.QueueLength {
		qc.QueueLength[c] = s.queueLen
	}
	sc := qos.New[[]byte](qc)
	sc.OnExpire(s.expired)
	return sc
}

// schedFits reports whether every class queue of sc holds queueLen frames.
func schedFits(sc *qos.Scheduler[[]byte], queueLen int) bool {
	for c := range protocol.NumClasses {
		if sc.Cap(protocol.Class(c)) != queueLen {
			return false
		}
	}
	return true
}

// putSched gives an empty scheduler back to schedPool; it drops its expiry
// hook so that the pool keeps no sender alive.
func putSched(sc *qos.Scheduler[[]byte]) {
	if sc == nil || sc.Len() != 0 {
		return
	}
	sc.OnExpire(nil)
	schedPool.Put(sc)
}

// onExpire counts a media frame dropped because its deadline passed.
func (s *sender) onExpire(qos.Item[[]byte]) { s.mediaDropped.Add(1) }
