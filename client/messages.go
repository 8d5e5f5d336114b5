package client

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/session"
	"github.com/jetstreamproto/jsp/wire"
)

// Delivery is how a Mixed API message travels (JSP §12).
type Delivery = session.Delivery

// Delivery modes of the Mixed API (JSP §12).
const (
	// Ordered: reliable and in order with the other messages of its class.
	Ordered = session.DeliveryOrdered
	// Unordered: reliable, on a stream of its own, so a loss elsewhere
	// never delays it.
	Unordered = session.DeliveryUnordered
	// Unreliable: a datagram (fragmented when large); it may be lost.
	Unreliable = session.DeliveryUnreliable
	// Partial: reliable until its TTL passes, then abandoned.
	Partial = session.DeliveryPartial
)

// Message is a Mixed API message (JSP §12).
type Message struct {
	// Route is where the message was addressed.
	Route wire.Route
	// Sender is the sender's identity as the server reports it.
	Sender string
	// Class is the message's QoS class.
	Class protocol.Class
	// Delivery is how the message travelled.
	Delivery Delivery
	// Body is the payload.
	Body []byte
	// Envelope is the whole envelope.
	Envelope *wire.Envelope
}

func messageOf(env *wire.Envelope, d Delivery) Message {
	return Message{Route: env.Route, Sender: env.Sender, Class: env.Class, Delivery: d, Body: env.Body, Envelope: env}
}

// Notification is a push from the server to this user (JSP §5.10).
type Notification struct {
	// Route names what the notification is about.
	Route wire.Route
	// Body is the payload.
	Body []byte
	// Envelope is the whole envelope.
	Envelope *wire.Envelope
}

func notificationOf(env *wire.Envelope) Notification {
	return Notification{Route: env.Route, Body: env.Body, Envelope: env}
}

// SendOption is a per-call extra for Send.
type SendOption func(*wire.Envelope)

// WithClass sets the message's QoS class. Default: chat, or media for
// Unreliable.
func WithClass(c protocol.Class) SendOption {
	return func(e *wire.Envelope) { e.Class = c }
}

// WithTTL sets how long the message stays worth delivering; Partial
// delivery abandons it after that. Default: none, or for Partial the time
// left until ctx's deadline.
func WithTTL(d time.Duration) SendOption {
	return func(e *wire.Envelope) { e.TTL = uint64(max(d.Milliseconds(), 1)) }
}

// WithHeaders attaches headers to the message envelope.
func WithHeaders(h map[string]string) SendOption {
	return func(e *wire.Envelope) { e.Headers = h }
}

// Send sends body to route with a delivery mode (JSP §12). It returns when
// the message is queued (Ordered), written to its stream (Unordered,
// Partial) or handed to the transport (Unreliable). Partial needs a TTL:
// WithTTL or a deadline on ctx. While reconnecting, Ordered messages wait in
// the outbox like Publish; the other modes wait for the next session,
// bounded by ctx.
func (c *Client) Send(ctx context.Context, route wire.Route, body []byte, mode Delivery, opts ...SendOption) error {
	env := &wire.Envelope{
		ID:    c.newID(),
		Route: route,
		Kind:  wire.KindEvent,
		Class: protocol.ClassChat,
		Body:  body,
	}
	if mode == Unreliable {
		env.Class = protocol.ClassMedia
	}
	for _, o := range opts {
		o(env)
	}
	if mode == Partial && env.TTL == 0 {
		if dl, ok := ctx.Deadline(); ok {
			env.TTL = uint64(max(time.Until(dl).Milliseconds(), 1))
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("client: send to %s %q: %w", route.Kind, route.Name, err)
	}
	if mode == Ordered {
		// Queued while reconnecting, like Publish.
		if _, err := c.sendOrQueue(queued{frame: wire.FrameMessage, env: env}); err != nil {
			return fmt.Errorf("client: send %s to %s %q: %w", mode, route.Kind, route.Name, err)
		}
		return nil
	}
	l, err := c.waitLink(ctx)
	if err == nil {
		err = l.sess.SendMessage(ctx, env, mode)
		if err != nil && !l.alive() {
			err = c.lostErr(l)
		}
	}
	if err != nil {
		return fmt.Errorf("client: send %s to %s %q: %w", mode, route.Kind, route.Name, err)
	}
	return nil
}

// OnMessage sets the handler for Mixed API messages from the server,
// replacing the previous one; nil removes it. Messages arriving without a
// handler are counted in Stats.Unrouted and dropped.
func (c *Client) OnMessage(handler func(Message)) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	retireRunnerLocked(c, c.messages)
	c.messages = nil
	if handler == nil {
		return nil
	}
	r, err := startRunnerLocked(c, handler)
	if err != nil {
		return err
	}
	c.messages = r
	return nil
}

// OnNotify sets the handler for notifications (JSP §5.10), replacing the
// previous one; nil removes it. Notifications arriving without a handler
// are counted in Stats.Unrouted and dropped.
func (c *Client) OnNotify(handler func(Notification)) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	retireRunnerLocked(c, c.notify)
	c.notify = nil
	if handler == nil {
		return nil
	}
	r, err := startRunnerLocked(c, handler)
	if err != nil {
		return err
	}
	c.notify = r
	return nil
}

// Command sends body as a COMMAND to service and returns the REPLY's body
// (JSP §5.9). The deadline comes from ctx, or Options.CommandTimeout when
// ctx has none; when it passes first, the error has code TIMEOUT
// (jsperr.CodeOf). A reply carrying an error code is returned as a remote
// *jsperr.Error. With reconnection on, a command whose session is lost
// fails with TRANSPORT_CLOSED, which is retryable; one issued while
// reconnecting waits for the next session.
func (c *Client) Command(ctx context.Context, service string, body []byte) ([]byte, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.opts.CommandTimeout)
		defer cancel()
	}
	env := &wire.Envelope{
		Route: wire.Route{Kind: wire.RouteService, Name: service},
		Class: protocol.ClassChat,
		Body:  body,
	}
	l, err := c.waitLink(ctx)
	if err != nil {
		return nil, fmt.Errorf("client: command %q: %w", service, err)
	}
	rep, err := l.sess.Request(ctx, env)
	if err != nil {
		if errors.Is(err, session.ErrClosed) {
			return nil, fmt.Errorf("client: command %q: %w", service, c.lostErr(l))
		}
		return nil, fmt.Errorf("client: command %q: %w", service, err)
	}
	return rep.Body, nil
}

// newRandomID returns 16 bytes from r (crypto/rand when nil); an envelope id
// is an idempotency key (JSP §4), so it must not repeat.
func newRandomID(r io.Reader) []byte {
	if r == nil {
		r = rand.Reader
	}
	b := make([]byte, 16)
	if _, err := io.ReadFull(r, b); err != nil {
		// crypto/rand does not fail; an injected reader that runs dry is a
		// test bug worth surfacing.
		panic(fmt.Sprintf("client: random id: %v", err))
	}
	return b
}
