// Package reliability is the home of JSP's media datagram reliability
// (JSP §13). The work is done by its subpackages, each a pure state machine
// with no I/O and no goroutines, so that a session can drive them from its
// run loop and tests can drive them from a virtual clock:
//
//	sender                                        receiver
//	capture -> mediapkt header (seq, ts, flags)
//	        -> nack.Cache (kept for retransmission)
//	        -> fec.Encoder --- parity every K ---> fec.Decoder --+ rebuilt
//	        -> DATAGRAM -------------------------> mediapkt.Parse  | packets
//	                                               nack.Receiver <-+
//	nack.Cache.Resend <------ NACK (JSP §5.6) <--- gaps           |
//	fec.Policy <------------- loss reports <----- loss meter     |
//	                                               reorder.Buffer <+-> playout
//
// The subpackages:
//
//   - mediapkt: the media datagram header and 16-bit sequence arithmetic;
//   - nack: receiver gap tracking and NACK pacing, sender retransmission
//     cache bounded by count, bytes and the media deadline;
//   - fec: Reed-Solomon groups over variable-length packets and the
//     loss-driven choice of group shape;
//   - reorder: the jitter buffer that releases packets in order at their
//     playout time and declares the rest lost;
//   - replay: anti-replay windows for counters and for signed messages.
//
// Fragmentation of large datagrams lives in reliability/fragment. The
// end-to-end test of this package streams media over internal/simnet links
// through the whole pipeline and reports what each mechanism recovered.
package reliability
