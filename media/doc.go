// Package media carries real-time media frames over a session's datagram
// flows with JSP's media reliability (JSP §13): sequence numbers, NACK and
// retransmission within a deadline, Reed-Solomon FEC whose strength follows
// the loss the receiver reports, a jitter buffer and frame reassembly.
//
// The flow of one media flow F, sender on the left:
//
//	app: WriteFrame(frame)                          app: <-Frames() / OnFrame
//	  |                                                  ^ whole frames, in order
//	Sender                                          Receiver
//	  packetize (mediapkt, E on the last packet)       Unwrapper (16 -> 64-bit seq)
//	  nack.Cache.Add                                   fec.Decoder ----+ rebuilt
//	  fec.Encoder (shape from fec.Policy)              nack.Receiver   |
//	  |                                                reorder.Buffer <+ playout
//	  |== DATAGRAM flow F: media + parity packets ==>  assembler (frames)
//	  |<= NACK {flow F, 16-bit seqs} (JSP §5.6) =====  gaps, paced by the RTT
//	  |<= DATAGRAM flow F: receiver report (0xFF) ===  loss per interval
//	Resend (R flag) while the deadline allows
//
// A [Mux] owns the session's ReceiveFlow and ReceiveNack loops: it sends
// media packets of flow F to the Receiver of F, and control packets and
// NACKs about F (which travel against F) to the Sender of F. One clock
// goroutine runs every flow's timers (NACKs, playout, reports, FEC group
// flushes) and one prober keeps the session's RTT fresh. Senders and
// Receivers guard their state with a mutex each; the pure state machines of
// reliability/* do the work.
//
// FEC is used only when both sides put [CapFEC] in their session
// capabilities; receiver reports are sent only then, since the FEC policy
// is their one consumer.
package media
