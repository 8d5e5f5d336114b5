package mux

import "github.com/jetstreamproto/jsp/transport"

// Arrival and readability callbacks (transport.ArrivalNotifier,
// transport.ReadNotifier): they let a session serve an idle link without a
// goroutine blocked in AcceptStream, ReceiveDatagram or the control
// stream's Read (decision D27). The callbacks run on the reader goroutine,
// or the closing one, with mu held; they only schedule work.

var (
	_ transport.ArrivalNotifier = (*Conn)(nil)
	_ transport.ReadNotifier    = (*stream)(nil)
)

// NotifyArrivals implements transport.ArrivalNotifier.
func (c *Conn) NotifyArrivals(f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.onArrival = f
	if f != nil && (len(c.acceptQ) > 0 || len(c.dgRecv) > 0) {
		f()
	}
}

// arrivedLocked runs the arrival callback, if any.
func (c *Conn) arrivedLocked() {
	if c.onArrival != nil {
		c.onArrival()
	}
}

// TryAcceptStream implements transport.ArrivalNotifier.
func (c *Conn) TryAcceptStream() (transport.Stream, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.acceptQ) == 0 {
		return nil, false
	}
	s := c.acceptQ[0]
	c.acceptQ[0] = nil
	c.acceptQ = c.acceptQ[1:]
	return s, true
}

// TryReceiveDatagram implements transport.ArrivalNotifier.
func (c *Conn) TryReceiveDatagram() ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.dgRecv) == 0 {
		return nil, false
	}
	b := c.dgRecv[0]
	c.dgRecv[0] = nil
	c.dgRecv = c.dgRecv[1:]
	return b, true
}

// NotifyReadable implements transport.ReadNotifier.
func (s *stream) NotifyReadable(f func()) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	s.onReadable = f
	if f != nil && s.readableLocked() {
		f()
	}
}

// Readable implements transport.ReadNotifier.
func (s *stream) Readable() bool {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return s.readableLocked()
}

func (s *stream) readableLocked() bool {
	return s.rbufLen > 0 || s.finRecv || s.resetRecv || s.readCancelled || s.c.closeErr != nil
}

// wakeReaderLocked wakes a blocked Read and runs the readability
// callback, if any.
func (s *stream) wakeReaderLocked() {
	signal(s.readWake)
	if s.onReadable != nil {
		s.onReadable()
	}
}
