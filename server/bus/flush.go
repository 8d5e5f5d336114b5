package bus

import (
	"context"
	"fmt"
)

// Flusher is a Bus whose Subscribe may return before the server has the
// subscription: NATS sends SUB and moves on, so a message published
// through another connection just after Subscribe returned can still miss
// it. Flush returns once the server has processed everything sent on this
// connection before the call, subscriptions included.
//
// A gateway flushes after a channel's first subscription before it
// acknowledges the client's SUBSCRIBE, so that every message committed
// after the acknowledgement reaches the subscriber (JSP §5.8).
type Flusher interface {
	Flush(ctx context.Context) error
}

// Flush waits until b's earlier subscriptions are in effect when b is a
// [Flusher]; any other bus has them in effect when Subscribe returns.
func Flush(ctx context.Context, b Bus) error {
	f, ok := b.(Flusher)
	if !ok {
		return nil
	}
	if err := f.Flush(ctx); err != nil {
		return fmt.Errorf("bus flush: %w", err)
	}
	return nil
}
