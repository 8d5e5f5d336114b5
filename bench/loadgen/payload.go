package loadgen

import (
	"encoding/binary"
	"errors"
	"time"
)

// StampLen is the size of the stamp at the front of every payload.
const StampLen = 20

// stampMagic marks a payload as the load generator's, so that a stray
// message is not mistaken for a measurement.
const stampMagic = 0x6a737062 // "jspb"

// ErrNotStamped is returned by ParseStamp for payloads without a stamp.
var ErrNotStamped = errors.New("loadgen: payload carries no stamp")

// Stamp returns a payload of size bytes (at least StampLen) that carries
// seq and the due time as Unix nanoseconds; the rest is filler. Senders
// and receivers share one process and so one clock.
func Stamp(size int, seq int64, due time.Time) []byte {
	if size < StampLen {
		size = StampLen
	}
	b := make([]byte, size)
	binary.BigEndian.PutUint32(b[0:4], stampMagic)
	binary.BigEndian.PutUint64(b[4:12], uint64(seq))
	binary.BigEndian.PutUint64(b[12:20], uint64(due.UnixNano()))
	for i := StampLen; i < size; i++ {
		b[i] = byte('a' + i%26)
	}
	return b
}

// ParseStamp returns the sequence number and due time of a stamped payload.
func ParseStamp(b []byte) (seq int64, due time.Time, err error) {
	if len(b) < StampLen || binary.BigEndian.Uint32(b[0:4]) != stampMagic {
		return 0, time.Time{}, ErrNotStamped
	}
	seq = int64(binary.BigEndian.Uint64(b[4:12]))
	due = time.Unix(0, int64(binary.BigEndian.Uint64(b[12:20])))
	return seq, due, nil
}
