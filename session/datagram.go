package session

import (
	"context"
	"fmt"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/reliability/fragment"
	"github.com/jetstreamproto/jsp/wire"
)

// Datagram flows: the stream-id field of a DATAGRAM frame names the flow
// (JSP §5.13). Flows from FirstMediaFlow up are media flows.
const (
	flowDatagramAPI = wire.FlowDatagramAPI
	flowMixed       = wire.FlowMixedUnreliable
	// FirstMediaFlow is the lowest flow id for media (JSP §13).
	FirstMediaFlow wire.FlowID = 2
)

// FlowDatagram is one whole datagram of a media flow.
type FlowDatagram struct {
	Flow wire.FlowID
	Data []byte
}

// SendDatagram sends one unreliable datagram (JSP §5.13). Payloads larger
// than one transport datagram are fragmented; the peer delivers the whole
// payload or nothing. It fails with DATAGRAM_TOO_LARGE above
// Config.MaxDatagramMessage.
func (s *Session) SendDatagram(b []byte, class protocol.Class) error {
	return s.sendDatagramData(flowDatagramAPI, b, class)
}

// SendFlow sends one datagram on a media flow (flow >= FirstMediaFlow),
// fragmented like SendDatagram's payloads.
func (s *Session) SendFlow(flow wire.FlowID, b []byte, class protocol.Class) error {
	if flow < FirstMediaFlow {
		return jsperr.Newf(jsperr.BadRequest, "flow %d is reserved; media flows start at %d", flow, FirstMediaFlow)
	}
	return s.sendDatagramData(flow, b, class)
}

// ReceiveFlow returns the next whole datagram of any media flow. Media
// datagrams that nobody reads are dropped, oldest first, beyond
// Config.AcceptQueueLength.
func (s *Session) ReceiveFlow(ctx context.Context) (FlowDatagram, error) {
	select {
	case d := <-s.arrivalQueues().flows:
		return d, nil
	case <-ctx.Done():
		return FlowDatagram{}, ctx.Err()
	case <-s.ctx.Done():
		return FlowDatagram{}, fmt.Errorf("%w: %w", ErrClosed, context.Cause(s.ctx))
	}
}

func (s *Session) sendDatagramData(flow wire.FlowID, data []byte, class protocol.Class) error {
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
	if err := s.announce(wire.UsesDatagrams); err != nil {
		return fmt.Errorf("session: send datagram: %w", err)
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
	case b := <-s.arrivalQueues().dgrams:
		return b, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.ctx.Done():
		return nil, fmt.Errorf("%w: %w", ErrClosed, context.Cause(s.ctx))
	}
}

// receiveDatagrams reads transport datagrams and hands each to
// handleDatagram, for transports that do not report them by callback.
func (s *Session) receiveDatagrams(ctx context.Context) error {
	for {
		b, err := s.conn.ReceiveDatagram(ctx)
		if err != nil {
			return nil
		}
		s.handleDatagram(b)
	}
}

// handleDatagram reassembles fragments and dispatches whole payloads by
// flow. A malformed datagram is dropped and counted: datagrams are
// unauthenticated by order and may be reordered or duplicated, so one bad
// one is not worth the connection. It waits only where a message delivered
// through Recv applies backpressure (deliver). Only one goroutine at a
// time calls it (the receiver, or the on-demand intake), which owns the
// reassemblers.
func (s *Session) handleDatagram(b []byte) {
	h, payload, _, err := wire.ParseFrame(b, uint64(s.cfg.MaxFrameSize))
	if err != nil {
		return
	}
	if h.Type == wire.FrameNack {
		// Media feedback travels as datagrams too (JSP §13), so that a
		// loss on the control stream never delays a retransmission.
		if m, err := wire.DecodeMessage(h.Type, payload); err == nil {
			s.lastRecv.Store(s.cfg.Now().UnixNano())
			s.queueNack(m.(*wire.Nack))
		}
		return
	}
	if h.Type != wire.FrameDatagram {
		// JSP §8.3: unknown frame types in datagrams are skipped.
		return
	}
	s.lastRecv.Store(s.cfg.Now().UnixNano())
	flow := wire.FlowID(h.StreamID)
	r := s.reassembler(flow)
	if r == nil {
		return // over the flow limit: dropped like any excess datagram
	}
	msg, done, err := r.Add(payload, s.cfg.Now())
	if err != nil || !done {
		return
	}
	whole := msg.Data
	switch flow {
	case flowDatagramAPI:
		s.deliverDatagram(whole)
	case flowMixed:
		mh, mp, _, err := wire.ParseFrame(whole, uint64(s.cfg.MaxFrameSize))
		if err != nil || mh.Type != wire.FrameMessage {
			return
		}
		_ = s.handleFrame(mh, mp, DeliveryUnreliable)
	default:
		d := FlowDatagram{Flow: flow, Data: whole}
		flows := s.arrivalQueues().flows
		select {
		case flows <- d:
		default:
			// Media: drop the oldest queued datagram for the newest.
			select {
			case <-flows:
			default:
			}
			select {
			case flows <- d:
			default:
			}
		}
	}
}

// reassembler returns the reassembler of flow, creating it within the
// Config.MaxFlows bound; nil when the bound is reached. Only the datagram
// receiver goroutine calls it.
func (s *Session) reassembler(flow wire.FlowID) *fragment.Reassembler {
	if r, ok := s.reasm[flow]; ok {
		return r
	}
	if flow >= FirstMediaFlow {
		if s.mediaFlows >= s.cfg.MaxFlows {
			return nil
		}
		s.mediaFlows++
	}
	// The config is valid by construction: every field is a default or a
	// validated limit.
	r, _ := fragment.NewReassembler(fragment.Config{MaxMessageSize: s.cfg.MaxDatagramMessage})
	if s.reasm == nil {
		s.reasm = map[wire.FlowID]*fragment.Reassembler{}
	}
	s.reasm[flow] = r
	return r
}

// SendNack sends media feedback for a flow (JSP §5.6, §13). It goes as a
// datagram when it fits, so that it is never queued behind reliable data,
// and on the control stream otherwise.
func (s *Session) SendNack(n *wire.Nack) error {
	if err := s.ctx.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrClosed, context.Cause(s.ctx))
	}
	frame := wire.AppendFrame(nil, wire.FrameNack, wire.Flags(0).WithClass(protocol.ClassMedia), 0, n.Append(nil))
	// Without the ANNOUNCE (JSP §5.14) the NACK goes on the control stream.
	if len(frame) <= s.conn.MaxDatagramSize() && s.announce(wire.UsesDatagrams) == nil {
		if err := s.conn.SendDatagram(frame, protocol.ClassMedia); err == nil {
			return nil
		}
	}
	return s.sendFrame(n, protocol.ClassMedia)
}

// ReceiveNack returns the next NACK from the peer, whichever way it came.
func (s *Session) ReceiveNack(ctx context.Context) (*wire.Nack, error) {
	select {
	case n := <-s.arrivalQueues().nacks:
		return n, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.ctx.Done():
		return nil, fmt.Errorf("%w: %w", ErrClosed, context.Cause(s.ctx))
	}
}

// queueNack hands a NACK to ReceiveNack; when nobody keeps up the oldest is
// dropped, as a newer NACK supersedes it.
func (s *Session) queueNack(n *wire.Nack) {
	nacks := s.arrivalQueues().nacks
	for {
		select {
		case nacks <- n:
			return
		default:
		}
		select {
		case <-nacks:
		default:
		}
	}
}
