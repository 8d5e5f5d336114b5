package session

import (
	"context"
	"fmt"
)

// AcceptStreamOrDatagram waits for whichever comes first: a stream the
// peer opened (as AcceptStream) or a whole datagram payload (as
// ReceiveDatagram). On success exactly one of the two is non-nil. It lets
// a server serve both with one goroutine per session instead of two that
// only wait (decision D24).
func (s *Session) AcceptStreamOrDatagram(ctx context.Context) (*Stream, []byte, error) {
	select {
	case st := <-s.streams:
		return st, nil, nil
	case b := <-s.dgrams:
		return nil, b, nil
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	case <-s.ctx.Done():
		return nil, nil, fmt.Errorf("%w: %w", ErrClosed, context.Cause(s.ctx))
	}
}
