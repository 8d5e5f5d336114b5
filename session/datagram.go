package session

import (
	"context"
	"errors"
	"fmt"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/reliability/fragment"
	"github.com/jetstreamproto/jsp/wire"
)

// Datagram flows: the stream-id field of a DATAGRAM frame names the flow
// (JSP §5.13).
const (
	flowDatagramAPI = 0 // Datagram API payloads
	flowMixed       = 1 // Mixed API unreliable messages (a MESSAGE frame)
)

// SendDatagram sends one unreliable datagram (JSP §5.13). Payloads larger
// than one transport datagram are fragmented; the peer delivers the whole
// payload or nothing. It fails with DATAGRAM_TOO_LARGE above
// Config.MaxDatagramMessage.
func (s *Session) SendDatagram(b []byte, class protocol.Class) error {
	return s.sendDatagramData(flowDatagramAPI, b, class)
}

func (s *Session) sendDatagramData(flow uint64, data []byte, class protocol.Class) error {
	if err := s.ctx.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrClosed, context.Cause(s.ctx))
	}
	if len(data) > int(s.cfg.MaxDatagramMessage) {
		return jsperr.Newf(jsperr.DatagramTooLarge, "datagram of %d bytes over limit %d", len(data), s.cfg.MaxDatagramMessage)
	}
	// Room for one fragment (its header included) after the DATAGRAM frame
	// header; the length field is sized for the largest possible fragment.
	maxDG := s.conn.MaxDatagramSize()
	room := maxDG - wire.Header{Type: wire.FrameDatagram, StreamID: protocol.StreamID(flow), Length: uint64(maxDG)}.Len()
	if room <= 0 {
		return jsperr.Newf(jsperr.DatagramTooLarge, "transport datagrams of %d bytes cannot carry fragments", s.conn.MaxDatagramSize())
	}
	frags, err := fragment.Split(fragment.MsgID(s.dgramID.Add(1)), data, room)
	if err != nil {
		return fmt.Errorf("session: fragment datagram: %w", err)
	}
	f := wire.Flags(0).WithClass(class)
	for _, frag := range frags {
		if err := s.conn.SendDatagram(wire.AppendFrame(nil, wire.FrameDatagram, f, protocol.StreamID(flow), frag), class); err != nil {
			return fmt.Errorf("session: send datagram: %w", err)
		}
	}
	return nil
}

// ReceiveDatagram returns the next whole Datagram API payload.
func (s *Session) ReceiveDatagram(ctx context.Context) ([]byte, error) {
	select {
	case b := <-s.dgrams:
		return b, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.ctx.Done():
		return nil, fmt.Errorf("%w: %w", ErrClosed, context.Cause(s.ctx))
	}
}

// receiveDatagrams reads transport datagrams, reassembles fragments and
// dispatches whole payloads by flow. A malformed datagram is dropped and
// counted: datagrams are unauthenticated by order and may be reordered or
// duplicated, so one bad one is not worth the connection.
func (s *Session) receiveDatagrams(ctx context.Context) error {
	for {
		b, err := s.conn.ReceiveDatagram(ctx)
		if err != nil {
			return nil
		}
		h, payload, _, err := wire.ParseFrame(b, uint64(s.cfg.MaxFrameSize))
		if err != nil || h.Type != wire.FrameDatagram {
			// JSP §8.3: unknown frame types in datagrams are skipped.
			continue
		}
		s.lastRecv.Store(s.cfg.Now().UnixNano())
		if h.StreamID > flowMixed {
			continue // media flows are not handled here yet
		}
		msg, done, err := s.reasm[h.StreamID].Add(payload, s.cfg.Now())
		if err != nil || !done {
			continue
		}
		whole := msg.Data
		switch h.StreamID {
		case flowDatagramAPI:
			select {
			case s.dgrams <- whole:
			default: // bounded queue: drop, as the transport would
			}
		case flowMixed:
			mh, mp, _, err := wire.ParseFrame(whole, uint64(s.cfg.MaxFrameSize))
			if err != nil || mh.Type != wire.FrameMessage {
				continue
			}
			if err := s.handleFrame(mh, mp, DeliveryUnreliable); err != nil && !errors.Is(err, wire.ErrUnknownFrame) {
				continue
			}
		}
	}
}
