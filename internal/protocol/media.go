package protocol

// MediaSeq is the extended sequence number of a media datagram (JSP §13).
//
// On the wire a media datagram carries only the low 16 bits of its sequence
// number (see reliability/mediapkt); each receiver extends what it reads into
// this 64-bit counter, which never wraps in the life of a flow. The
// reliability layers (NACK, FEC, reorder buffer) all work in this space so
// that none of them needs wraparound arithmetic of its own.
type MediaSeq uint64
