package gateway

import (
	"fmt"
	"sync"

	"github.com/jetstreamproto/jsp/server/pubsub"
)

// hostSub is a host's hub subscriber, made by its first Subscribe: a
// session that never subscribes (an idle one, a publisher, a command
// client) holds none, some 0.3 KB less per session (D34). Deliveries go
// to the host's onDelivery as before. It is safe for concurrent use:
// handle subscribes, the gateway drops users' subscriptions from other
// goroutines (dropUsers), finish closes it.
type hostSub struct {
	h *host

	mu     sync.Mutex
	sub    *pubsub.Subscriber[*event] // guarded by mu; nil until the first Subscribe
	closed bool                       // guarded by mu: Close was called
}

// get returns the subscriber, making it when create is set; nil (and no
// error) when it does not exist and create is not set.
func (l *hostSub) get(create bool) (*pubsub.Subscriber[*event], error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, fmt.Errorf("%w: %s", pubsub.ErrClosed, l.h.id)
	}
	if l.sub == nil && create {
		l.sub = l.h.g.hub.NewSinkSubscriber(l.h.id, l.h.onDelivery)
	}
	return l.sub, nil
}

// Subscribe joins channel name (pubsub.Subscriber.Subscribe).
func (l *hostSub) Subscribe(name string) error {
	s, err := l.get(true)
	if err != nil {
		return err
	}
	return s.Subscribe(name)
}

// Unsubscribe leaves channel name (pubsub.Subscriber.Unsubscribe); a
// session that never subscribed is in no channel.
func (l *hostSub) Unsubscribe(name string) error {
	s, err := l.get(false)
	if err != nil || s == nil {
		return err
	}
	return s.Unsubscribe(name)
}

// Close ends the subscriber, if any; later calls fail with
// pubsub.ErrClosed.
func (l *hostSub) Close() {
	l.mu.Lock()
	s := l.sub
	l.closed = true
	l.mu.Unlock()
	if s != nil {
		s.Close()
	}
}
