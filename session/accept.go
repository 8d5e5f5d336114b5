package session

import (
	"context"
	"fmt"
)

// AcceptStreamOrDatagram waits for whichever comes first: a stream the
// peer opened (as AcceptStream) or a whole datagram payload (as
// ReceiveDatagram). On success exactly one of the two is non-nil. It lets
// a server serve both with one goroutine per session instead of two that
// only wait (decision D24); HandleArrivals needs none (D27).
func (s *Session) AcceptStreamOrDatagram(ctx context.Context) (*Stream, []byte, error) {
	q := s.arrivalQueues()
	select {
	case st := <-q.streams:
		return st, nil, nil
	case b := <-q.dgrams:
		return nil, b, nil
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	case <-s.ctx.Done():
		return nil, nil, fmt.Errorf("%w: %w", ErrClosed, context.Cause(s.ctx))
	}
}

// HandleArrivals registers f to receive, instead of AcceptStream,
// ReceiveDatagram and AcceptStreamOrDatagram, each application stream the
// peer opens (st set) and each whole Datagram API payload (dg set); media
// flows and NACKs keep their own queues. Streams and datagrams queued
// before the call are handed to f at once. f runs on the session's intake
// goroutines, possibly on several at a time, so it must be safe for
// concurrent use and must not block: it hands a stream to a goroutine of
// its own. It never runs after Wait has returned. With it a server needs
// no goroutine per session that only waits for streams and datagrams
// (decision D27).
func (s *Session) HandleArrivals(f func(st *Stream, dg []byte)) {
	s.intakeMu.Lock()
	s.intake = f
	var sts []*Stream
	var dgs [][]byte
	for q := s.queues.Load(); q != nil; {
		select {
		case st := <-q.streams:
			sts = append(sts, st)
			continue
		case b := <-q.dgrams:
			dgs = append(dgs, b)
			continue
		default:
		}
		break
	}
	s.intakeMu.Unlock()
	for _, st := range sts {
		f(st, nil)
	}
	for _, b := range dgs {
		f(nil, b)
	}
}

// deliverStream hands a peer stream to the HandleArrivals callback or the
// accept queue; false when the queue is full.
func (s *Session) deliverStream(st *Stream) bool {
	s.intakeMu.Lock()
	f := s.intake
	if f == nil {
		defer s.intakeMu.Unlock()
		select {
		case s.arrivalQueues().streams <- st:
			return true
		default:
			return false
		}
	}
	s.intakeMu.Unlock()
	f(st, nil)
	return true
}

// deliverDatagram hands a Datagram API payload to the HandleArrivals
// callback or the datagram queue, dropping it when the queue is full, as
// the transport would.
func (s *Session) deliverDatagram(b []byte) {
	s.intakeMu.Lock()
	f := s.intake
	if f == nil {
		select {
		case s.arrivalQueues().dgrams <- b:
		default:
		}
		s.intakeMu.Unlock()
		return
	}
	s.intakeMu.Unlock()
	f(nil, b)
}
