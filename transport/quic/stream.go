package quic

import (
	"fmt"
	"sync/atomic"
	"time"

	quicgo "github.com/quic-go/quic-go"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/transport"
)

// classUrgency maps a QoS class to the RFC 9218 urgency quic-go uses to
// order stream data in its own packets (lower is sent first). This only
// orders bytes already handed to QUIC; the session's scheduler decides what
// to hand over (JSP §11.3). Nothing of it goes on the wire.
var classUrgency = [protocol.NumClasses]int8{
	protocol.ClassSystem: 0,
	protocol.ClassMedia:  1,
	protocol.ClassChat:   3, // quic-go's default urgency
	protocol.ClassBulk:   6,
}

// Stream is one QUIC bidirectional stream. It implements transport.Stream.
//
// QUIC carries no QoS class per stream, so the class lives only on the side
// that knows it: the opener's stream reports the class it was opened with;
// an accepted stream reports protocol.ClassChat until the session layer,
// which reads the class from the STREAM_OPEN frame the opener sends first
// (JSP §5.12), calls SetClass.
type Stream struct {
	qs    *quicgo.Stream
	class atomic.Uint32 // protocol.Class
}

var _ transport.Stream = (*Stream)(nil)

func newStream(qs *quicgo.Stream, class protocol.Class) *Stream {
	s := &Stream{qs: qs}
	s.SetClass(class)
	return s
}

// SetClass records the stream's QoS class and lets the class decide how
// early quic-go sends this stream's data relative to other streams.
func (s *Stream) SetClass(class protocol.Class) {
	s.class.Store(uint32(class))
	urgency := classUrgency[protocol.ClassChat]
	if class < protocol.NumClasses {
		urgency = classUrgency[class]
	}
	// Incremental: streams of one class share bandwidth round-robin instead
	// of the lowest stream id going first.
	s.qs.SetPriority(urgency, true)
}

// Class returns the stream's QoS class.
func (s *Stream) Class() protocol.Class { return protocol.Class(s.class.Load()) }

// ID returns the QUIC stream id.
func (s *Stream) ID() protocol.StreamID { return protocol.StreamID(s.qs.StreamID()) }

// Read reads stream data. After the peer resets the stream it fails with a
// STREAM_RESET *jsperr.Error that wraps the peer's code (see also
// ResetCode); after the connection closes, with the connection's error.
func (s *Stream) Read(p []byte) (int, error) {
	n, err := s.qs.Read(p)
	return n, streamError(err)
}

// Peek fills p with stream data without consuming it, waiting until
// len(p) bytes are there; errors are those of Read. A reader that only
// waits for input peeks one byte into a buffer of its own and makes its
// read buffer when data is there, so an idle reader holds none (D34).
func (s *Stream) Peek(p []byte) (int, error) {
	n, err := s.qs.Peek(p)
	return n, streamError(err)
}

// Write writes stream data. After the peer stops reading (CancelRead) it
// fails with a STREAM_RESET *jsperr.Error.
func (s *Stream) Write(p []byte) (int, error) {
	n, err := s.qs.Write(p)
	return n, streamError(err)
}

// Close closes the sending side; the peer reads io.EOF after the data.
func (s *Stream) Close() error {
	if err := streamError(s.qs.Close()); err != nil {
		return fmt.Errorf("quic: close stream %d: %w", s.ID(), err)
	}
	return nil
}

// CancelWrite abandons the sending side with code (RESET_STREAM).
func (s *Stream) CancelWrite(code jsperr.Code) { s.qs.CancelWrite(quicgo.StreamErrorCode(code)) }

// CancelRead asks the peer to stop sending, with code (STOP_SENDING).
func (s *Stream) CancelRead(code jsperr.Code) { s.qs.CancelRead(quicgo.StreamErrorCode(code)) }

// SetReadDeadline sets the deadline for current and future Read calls.
func (s *Stream) SetReadDeadline(t time.Time) error { return s.qs.SetReadDeadline(t) }

// SetWriteDeadline sets the deadline for current and future Write calls.
func (s *Stream) SetWriteDeadline(t time.Time) error { return s.qs.SetWriteDeadline(t) }
