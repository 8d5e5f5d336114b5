package wire

import (
	"hash/maphash"
	"sync/atomic"
)

// Decoded route names and sender identities repeat: a subscriber sees the
// same few channels and publishers in every EVENT, a server the same
// routes in every PUBLISH of a session. Decoding them through a small
// process-wide table of recent strings turns two allocations per envelope
// into none once a name was seen (D47).
//
// The table is direct-mapped: a name hashes to one slot, which holds the
// last string stored there. A hit compares the bytes with the stored
// string and allocates nothing; a miss allocates the string and replaces
// the slot's. Slots are atomic pointers, so decoders on any goroutine
// share the table without a lock. Its size is fixed: internSlots
// pointers, each to a string of at most internMaxLen bytes.
const (
	// internSlots is the number of slots (a power of two).
	internSlots = 4096
	// internMaxLen is the longest string kept; longer ones are always
	// allocated.
	internMaxLen = 64
)

var (
	internSeed  = maphash.MakeSeed()
	internTable [internSlots]atomic.Pointer[string]
)

// internBytes returns b as a string, from the table when an equal string
// is there.
func internBytes(b []byte) string {
	if len(b) > internMaxLen || len(b) == 0 {
		return string(b)
	}
	slot := &internTable[maphash.Bytes(internSeed, b)&(internSlots-1)]
	if p := slot.Load(); p != nil && *p == string(b) {
		return *p
	}
	s := string(b)
	slot.Store(&s)
	return s
}
