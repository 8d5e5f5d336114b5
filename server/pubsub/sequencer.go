package pubsub

import (
	"sync"

	"github.com/jetstreamproto/jsp/jsperr"
)

// DefaultMaxSequencedChannels caps the channels a MemorySequencer numbers.
// At roughly a hundred bytes per entry the default bounds the table near
// 100 MiB.
const DefaultMaxSequencedChannels = 1 << 20

// Sequencer assigns per-channel sequence numbers (ARCHITECTURE §1: storage
// assigns them at commit). NextSeq returns the channel's next number,
// starting at 1 and increasing by one per call. It must be safe for
// concurrent use.
type Sequencer interface {
	NextSeq(channel string) (uint64, error)
}

// MemorySequencer numbers channels in memory. Numbers restart after a
// process restart; durable storage replaces it where that matters.
type MemorySequencer struct {
	max int

	mu  sync.Mutex
	seq map[string]uint64 // guarded by mu
}

// NewMemorySequencer returns a sequencer for at most maxChannels channels
// (DefaultMaxSequencedChannels when maxChannels <= 0).
func NewMemorySequencer(maxChannels int) *MemorySequencer {
	if maxChannels <= 0 {
		maxChannels = DefaultMaxSequencedChannels
	}
	return &MemorySequencer{max: maxChannels, seq: map[string]uint64{}}
}

// NextSeq returns the channel's next sequence number. A channel beyond the
// table's capacity fails with LIMIT_EXCEEDED rather than evicting another
// channel, whose numbers would then restart and look like a reset stream.
func (m *MemorySequencer) NextSeq(channel string) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, ok := m.seq[channel]
	if !ok && len(m.seq) >= m.max {
		return 0, jsperr.Newf(jsperr.LimitExceeded, "sequence table full (%d channels)", m.max)
	}
	n++
	m.seq[channel] = n
	return n, nil
}

// Last returns the channel's last assigned number, 0 if none.
func (m *MemorySequencer) Last(channel string) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.seq[channel]
}
