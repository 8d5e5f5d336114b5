package session

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/wire"
)

// Delivery is how a Mixed API message travels (JSP §12).
type Delivery uint8

// Delivery modes (JSP §12).
const (
	// DeliveryOrdered: reliable and in order with the other messages of its
	// class, on the control stream.
	DeliveryOrdered Delivery = iota
	// DeliveryUnordered: reliable, on a stream of its own, so a lost packet
	// of another message never delays it.
	DeliveryUnordered
	// DeliveryUnreliable: a datagram (fragmented when large); may be lost.
	DeliveryUnreliable
	// DeliveryPartial: reliable until the envelope's TTL passes; then the
	// sender abandons it.
	DeliveryPartial
)

// String names the mode.
func (d Delivery) String() string {
	switch d {
	case DeliveryOrdered:
		return "reliable-ordered"
	case DeliveryUnordered:
		return "reliable-unordered"
	case DeliveryUnreliable:
		return "unreliable"
	case DeliveryPartial:
		return "partially-reliable"
	}
	return fmt.Sprintf("delivery(%d)", uint8(d))
}

// Stream is an application stream of the Stream API (JSP §5.12): a reliable
// byte stream with a QoS class and a label, opened with STREAM_OPEN.
type Stream struct {
	transport.Stream
	r     io.Reader // buffered reader positioned after STREAM_OPEN
	label string
	meta  map[string]string
}

// Read reads stream data.
func (st *Stream) Read(p []byte) (int, error) { return st.r.Read(p) }

// Label is the label given by the opener.
func (st *Stream) Label() string { return st.label }

// Metadata is the metadata given by the opener.
func (st *Stream) Metadata() map[string]string { return st.meta }

// OpenStream opens an application stream with a class, label and optional
// metadata (JSP §5.12).
func (s *Session) OpenStream(ctx context.Context, class protocol.Class, label string, meta map[string]string) (*Stream, error) {
	if err := s.ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrClosed, context.Cause(s.ctx))
	}
	if err := s.announce(wire.UsesStreams); err != nil {
		return nil, fmt.Errorf("session: open stream %q: %w", label, err)
	}
	ts, err := s.conn.OpenStream(ctx, class)
	if err != nil {
		return nil, fmt.Errorf("session: open stream %q: %w", label, err)
	}
	so := &wire.StreamOpen{Class: class, Label: label, Metadata: meta}
	if _, err := ts.Write(wire.AppendFrame(nil, wire.FrameStreamOpen, wire.Flags(0).WithClass(class), 0, so.Append(nil))); err != nil {
		ts.CancelWrite(jsperr.Internal)
		return nil, fmt.Errorf("session: write STREAM_OPEN on %q: %w", label, err)
	}
	return &Stream{Stream: ts, r: ts, label: label, meta: meta}, nil
}

// AcceptStream waits for the next application stream opened by the peer.
func (s *Session) AcceptStream(ctx context.Context) (*Stream, error) {
	select {
	case st := <-s.arrivalQueues().streams:
		return st, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.ctx.Done():
		return nil, fmt.Errorf("%w: %w", ErrClosed, context.Cause(s.ctx))
	}
}

// acceptStreams accepts peer-opened streams and dispatches each by its first
// frame: STREAM_OPEN (Stream API) or MESSAGE (Mixed API, unordered or
// partially reliable).
func (s *Session) acceptStreams(ctx context.Context) error {
	for {
		ts, err := s.conn.AcceptStream(ctx)
		if err != nil {
			return nil // the session or the transport is closing
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serveStream(ctx, ts)
		}()
	}
}

func (s *Session) serveStream(ctx context.Context, ts transport.Stream) {
	br := bufio.NewReaderSize(ts, 4<<10)
	fr := wire.NewFrameReader(br, uint64(s.cfg.MaxFrameSize))
	_ = ts.SetReadDeadline(s.cfg.Now().Add(s.cfg.HandshakeTimeout))
	h, payload, err := fr.ReadFrame()
	if err != nil {
		code := jsperr.CodeOf(err)
		if isTimeout(err) || errors.Is(err, os.ErrDeadlineExceeded) {
			code = jsperr.HandshakeTimeout
		}
		ts.CancelRead(code)
		ts.CancelWrite(code)
		return
	}
	s.lastRecv.Store(s.cfg.Now().UnixNano())
	switch h.Type {
	case wire.FrameStreamOpen:
		_ = ts.SetReadDeadline(time.Time{})
		m, err := wire.DecodeMessage(h.Type, payload)
		if err != nil {
			ts.CancelRead(jsperr.CodeOf(err))
			ts.CancelWrite(jsperr.CodeOf(err))
			return
		}
		so := m.(*wire.StreamOpen)
		// QUIC carries no class on the wire; STREAM_OPEN does (JSP §7.1), so
		// replies on this stream get the opener's priority.
		if cs, ok := ts.(interface{ SetClass(protocol.Class) }); ok {
			cs.SetClass(so.Class)
		}
		st := &Stream{Stream: ts, r: br, label: so.Label, meta: so.Metadata}
		if !s.deliverStream(st) {
			// JSP §9: the accept queue is bounded; refuse the stream rather
			// than hold it without a reader.
			ts.CancelRead(jsperr.StreamLimit)
			ts.CancelWrite(jsperr.StreamLimit)
		}
	case wire.FrameMessage:
		// Read the message frames until FIN; a partially reliable message
		// whose sender gave up arrives as a reset and is discarded.
		for {
			if err := s.handleFrame(h, payload, DeliveryUnordered); err != nil {
				s.fail(err)
				return
			}
			_ = ts.SetReadDeadline(s.cfg.Now().Add(s.idleTimeout()))
			h, payload, err = fr.ReadFrame()
			if err != nil {
				ts.CancelWrite(jsperr.NoError)
				return
			}
		}
	default:
		ts.CancelRead(jsperr.ProtocolViolation)
		ts.CancelWrite(jsperr.ProtocolViolation)
	}
}

// SendMessage sends a Mixed API message with the chosen delivery mode
// (JSP §12). The envelope's class selects its QoS; DeliveryPartial requires
// a TTL. It returns when the message is queued (ordered), written
// (unordered, partial) or handed to the transport (unreliable).
func (s *Session) SendMessage(ctx context.Context, env *wire.Envelope, mode Delivery) error {
	if len(env.ID) == 0 {
		env.ID = s.newID()
	}
	if env.Timestamp == 0 {
		env.Timestamp = uint64(s.cfg.Now().UnixMilli())
	}
	switch mode {
	case DeliveryOrdered:
		return s.SendEnvelope(wire.FrameMessage, env)
	case DeliveryUnreliable:
		frame := s.encodeFrame(wire.FrameMessage, envelopeFlags(env), 0,
			(&wire.EnvelopeFrame{Type: wire.FrameMessage, Envelope: *env}).Append(nil))
		return s.sendDatagramData(flowMixed, frame, env.Class)
	case DeliveryUnordered, DeliveryPartial:
		if len(env.Body) > int(s.cfg.MaxMessageSize) {
			return jsperr.Newf(jsperr.MessageTooLarge, "body of %d bytes over limit %d", len(env.Body), s.cfg.MaxMessageSize)
		}
		if mode == DeliveryPartial && env.TTL == 0 {
			return jsperr.New(jsperr.BadRequest, "partially reliable delivery needs a TTL")
		}
		if err := s.announce(wire.UsesStreams); err != nil {
			return fmt.Errorf("session: open message stream: %w", err)
		}
		ts, err := s.conn.OpenStream(ctx, env.Class)
		if err != nil {
			return fmt.Errorf("session: open message stream: %w", err)
		}
		frame := s.encodeFrame(wire.FrameMessage, envelopeFlags(env)|wire.FlagFIN, 0,
			(&wire.EnvelopeFrame{Type: wire.FrameMessage, Envelope: *env}).Append(nil))
		if mode == DeliveryPartial {
			_ = ts.SetWriteDeadline(s.cfg.Now().Add(time.Duration(env.TTL) * time.Millisecond))
		}
		if _, err := ts.Write(frame); err != nil {
			if mode == DeliveryPartial && (isTimeout(err) || errors.Is(err, os.ErrDeadlineExceeded)) {
				ts.CancelWrite(jsperr.Expired)
				return jsperr.Newf(jsperr.Expired, "message not written within its TTL of %d ms", env.TTL)
			}
			ts.CancelWrite(jsperr.Internal)
			return fmt.Errorf("session: write message stream: %w", err)
		}
		// The peer never writes back on a message stream; stop reading so
		// the transport can release the stream once our FIN is acknowledged.
		ts.CancelRead(jsperr.NoError)
		return ts.Close()
	}
	return jsperr.Newf(jsperr.BadRequest, "unknown delivery mode %d", mode)
}
