package client

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/session"
	"github.com/jetstreamproto/jsp/wire"
)

// Event is one message published to a channel (JSP §5.8).
type Event struct {
	// Channel is the channel's name.
	Channel string
	// Seq is the channel's sequence number for the event, assigned by the
	// server; a subscriber that sees a gap knows it missed events.
	Seq uint64
	// Sender is the publisher's identity as the server reports it.
	Sender string
	// Time is when the publisher sent the event, by its clock.
	Time time.Time
	// Body is the payload.
	Body []byte
	// Envelope is the whole envelope, for headers and signatures.
	Envelope *wire.Envelope
	// Verified reports that Options.Verify checked the event's signature
	// against its device's published key (JSP §4.3); Signer then names
	// the device and its owner. Always false with verification off.
	Verified bool
	// Signer is the verified signing device; nil unless Verified.
	Signer *Signer
	// VerifyErr says why an event is not Verified when verification is
	// on: ErrUnsigned, or an error with the registry code of the failed
	// check (SIGNATURE_INVALID, SIGNER_UNKNOWN, SIGNER_REVOKED, ...).
	VerifyErr error
}

func eventOf(env *wire.Envelope) Event {
	return Event{
		Channel:  env.Route.Name,
		Seq:      env.Seq,
		Sender:   env.Sender,
		Time:     time.UnixMilli(int64(env.Timestamp)),
		Body:     env.Body,
		Envelope: env,
	}
}

// Subscription is an active subscription to a channel. Its handler receives
// the channel's events in order on a goroutine of its own.
type Subscription struct {
	c       *Client
	channel string
	r       *runner[Event]
}

// Channel returns the subscribed channel's name.
func (s *Subscription) Channel() string { return s.channel }

// SubscribeOption is a per-call extra for Subscribe.
type SubscribeOption func(*wire.Subscribe)

// Since asks the server to replay retained events with a sequence number
// above seq before live ones (JSP §5.7); Since(0) replays everything
// retained.
func Since(seq uint64) SubscribeOption {
	return func(m *wire.Subscribe) { m.Since, m.HasSince = seq, true }
}

// Subscribe subscribes to channel and calls handler for each of its events,
// one at a time, in order (see the package comment for how a slow handler
// is bounded). It returns once the server has confirmed the subscription.
// Several local subscriptions to one channel each get every event; the
// server-side subscription ends with the last of them.
func (c *Client) Subscribe(ctx context.Context, channel string, handler func(Event), opts ...SubscribeOption) (*Subscription, error) {
	if handler == nil {
		return nil, fmt.Errorf("client: subscribe %q: nil handler", channel)
	}
	if channel == "" || len(channel) > wire.MaxRouteNameLen {
		return nil, jsperr.Newf(jsperr.BadRequest, "channel name of %d bytes (want 1..%d)", len(channel), wire.MaxRouteNameLen)
	}
	m := &wire.Subscribe{Channel: channel}
	for _, o := range opts {
		o(m)
	}
	if _, err := c.waitLink(ctx); err != nil {
		return nil, fmt.Errorf("client: subscribe %q: %w", channel, err)
	}
	handler = c.sigs.wrap(handler, c.opts.Verify.KeyFetchTimeout)
	c.mu.Lock()
	r, err := startRunnerLocked(c, handler)
	if err != nil {
		c.mu.Unlock()
		return nil, err
	}
	sub := &Subscription{c: c, channel: channel, r: r}
	if len(c.subs[channel]) == 0 {
		// A reconnect without any event seen resubscribes with the
		// channel's first Since.
		delete(c.since, channel)
		if m.HasSince {
			c.since[channel] = m.Since
		}
		c.order[channel] = newSeqTracker(c, channel, m.Since, m.HasSince)
	}
	// Registered before SUBSCRIBE leaves, so that no event the server
	// sends right after its ACK finds no handler. SUBSCRIBE is idempotent
	// on the server (JSP §5.7), so every local subscription sends one.
	c.subs[channel] = append(c.subs[channel], sub)
	req, err := c.sendRequestLocked(m, func(id []byte) { m.ReqID = id })
	c.mu.Unlock()
	if err == nil {
		err = c.awaitRequest(ctx, req)
	}
	if err != nil {
		c.mu.Lock()
		c.removeSubLocked(sub)
		c.mu.Unlock()
		return nil, fmt.Errorf("client: subscribe %q: %w", channel, err)
	}
	return sub, nil
}

// Unsubscribe ends the subscription: its handler gets no further events
// (one already running completes). The server-side subscription ends with
// the channel's last local subscription. It is safe to call from the
// subscription's own handler, and more than once.
func (s *Subscription) Unsubscribe(ctx context.Context) error {
	c := s.c
	c.mu.Lock()
	if !c.removeSubLocked(s) || len(c.subs[s.channel]) > 0 || c.closed {
		c.mu.Unlock()
		return nil
	}
	// UNSUBSCRIBE is queued under c.mu, like SUBSCRIBE, so that the
	// server sees them in the order the local decisions were made: a
	// concurrent Subscribe to the same channel cannot be undone by this
	// UNSUBSCRIBE overtaking it.
	m := &wire.Unsubscribe{Channel: s.channel}
	req, err := c.sendRequestLocked(m, func(id []byte) { m.ReqID = id })
	c.mu.Unlock()
	if err == nil {
		err = c.awaitRequest(ctx, req)
	}
	if err != nil && c.opts.Reconnect.Enabled && jsperr.CodeOf(err) == jsperr.TransportClosed {
		// The session that had the subscription is gone, and the
		// next one will not get it: the local decision stands.
		err = nil
	}
	if err != nil {
		return fmt.Errorf("client: unsubscribe %q: %w", s.channel, err)
	}
	return nil
}

// removeSubLocked unregisters sub and retires its runner; false when it was
// not registered. c.mu must be held.
func (c *Client) removeSubLocked(sub *Subscription) bool {
	list := c.subs[sub.channel]
	i := slices.Index(list, sub)
	if i < 0 {
		return false
	}
	// A new slice, not slices.Delete: deliver may still be handing the
	// old one to the subscriptions (Client.subs).
	list = append(list[:i:i], list[i+1:]...)
	if len(list) == 0 {
		delete(c.subs, sub.channel)
		delete(c.since, sub.channel)
		if t := c.order[sub.channel]; t != nil {
			t.close()
			delete(c.order, sub.channel)
		}
	} else {
		c.subs[sub.channel] = list
	}
	retireRunnerLocked(c, sub.r)
	return true
}

// routeEvent offers an EVENT to the channel's tracker, which hands it to
// the subscriptions in order (recovery.go); false when the channel has
// none.
func (c *Client) routeEvent(env *wire.Envelope) bool {
	c.mu.Lock()
	t := c.order[env.Route.Name]
	c.mu.Unlock()
	if t == nil {
		return false
	}
	t.push(env)
	return true
}

// recoveryImpossible hands RECOVERY_IMPOSSIBLE for channel to its tracker.
func (c *Client) recoveryImpossible(channel string) {
	c.mu.Lock()
	t := c.order[channel]
	c.mu.Unlock()
	c.log.Warn("server cannot replay missed events", "channel", channel)
	if t != nil {
		t.recoveryFailed()
	}
}

// Publish sends body to channel as an event (JSP §5.8) with QoS class chat.
// It returns when the event is queued for sending. While reconnecting, the
// event waits in the Client's outbox (ReconnectOptions.QueueLength) and is
// sent with the same envelope id once the next session is up. A server
// with storage acknowledges it after the commit; until then the Client
// keeps it and sends it again after a reconnect (see PublishAcked).
func (c *Client) Publish(ctx context.Context, channel string, body []byte) error {
	_, err := c.publish(ctx, channel, body)
	return err
}

func (c *Client) publish(ctx context.Context, channel string, body []byte) (*inflightPub, error) {
	env := &wire.Envelope{
		ID:    c.newID(),
		Route: wire.Route{Kind: wire.RouteChannel, Name: channel},
		Kind:  wire.KindEvent,
		Class: protocol.ClassChat,
		Body:  body,
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("client: publish to %q: %w", channel, err)
	}
	if err := c.sigs.sign(env); err != nil {
		return nil, fmt.Errorf("client: publish to %q: %w", channel, err)
	}
	p, err := c.sendOrQueue(queued{frame: wire.FramePublish, env: env})
	if err != nil {
		return nil, fmt.Errorf("client: publish to %q: %w", channel, err)
	}
	return p, nil
}

// queued is an envelope waiting in the outbox for the next session.
type queued struct {
	frame wire.FrameType // FramePublish, or FrameMessage for Send
	env   *wire.Envelope
}

func (q queued) sendOn(s *session.Session) error {
	if q.frame == wire.FrameMessage {
		// Ordered delivery only enqueues; the context is not used for
		// waiting.
		return s.SendMessage(context.Background(), q.env, Ordered)
	}
	return s.SendEnvelope(q.frame, q.env)
}

// sendOrQueue hands q to the running session or, while reconnecting, puts
// it in the outbox. It runs under c.mu so that the outbox is flushed to a
// new session before anything newer is sent on it. A PUBLISH to a server
// that acknowledges PUBLISHes is tracked until its ACK instead of queued:
// the in-flight list is resent on the next session (recovery.go); the
// returned inflightPub is then non-nil.
func (c *Client) sendOrQueue(q queued) (*inflightPub, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.endErr != nil {
		return nil, c.closedErrLocked()
	}
	track := q.frame == wire.FramePublish && c.acking
	if track && len(c.inflight) >= c.opts.Reconnect.QueueLength {
		return nil, jsperr.Newf(jsperr.QueueFull, "%d messages already wait for their acknowledgement", len(c.inflight))
	}
	l := c.cur
	if l.alive() || !c.opts.Reconnect.Enabled {
		err := q.sendOn(l.sess)
		if err == nil && track {
			return c.trackLocked(q), nil
		}
		if err == nil || l.alive() || !c.opts.Reconnect.Enabled {
			return nil, err
		}
		// The session ended between the check and the send.
	}
	if track {
		// Sent with the in-flight list after the reconnect.
		c.queuedMessages.Add(1)
		return c.trackLocked(q), nil
	}
	if len(c.outbox) >= c.opts.Reconnect.QueueLength {
		return nil, jsperr.Newf(jsperr.QueueFull, "%d messages already wait for a reconnect", len(c.outbox))
	}
	c.outbox = append(c.outbox, q)
	c.queuedMessages.Add(1)
	return nil, nil
}

// request is a SUBSCRIBE or UNSUBSCRIBE waiting for its answer.
type request struct {
	id   string
	ch   chan error
	link *link // the session it was sent on
}

// sendRequestLocked queues a control message carrying a fresh request id
// (set by setID) on the session in use and registers the wait for its
// answer. c.mu must be held.
func (c *Client) sendRequestLocked(m wire.Message, setID func(id []byte)) (request, error) {
	if c.closed {
		return request{}, c.closedErrLocked()
	}
	return c.sendRequestOnLocked(c.cur, m, setID)
}

// sendRequestOnLocked is sendRequestLocked on session l. c.mu must be held.
func (c *Client) sendRequestOnLocked(l *link, m wire.Message, setID func(id []byte)) (request, error) {
	c.reqID++
	id := binary.BigEndian.AppendUint64(nil, c.reqID)
	setID(id)
	if err := l.sess.Send(m); err != nil {
		if !l.alive() {
			return request{}, c.lostErrLocked(l)
		}
		return request{}, err
	}
	ch := make(chan error, 1)
	c.pending[string(id)] = ch
	return request{id: string(id), ch: ch, link: l}, nil
}

// awaitRequest waits for the server's ACK naming the request id, or an
// ERROR referring to it (JSP §5.6, §5.7).
func (c *Client) awaitRequest(ctx context.Context, r request) error {
	defer func() {
		c.mu.Lock()
		delete(c.pending, r.id)
		c.mu.Unlock()
	}()
	select {
	case err := <-r.ch:
		return err
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return jsperr.New(jsperr.Timeout, "no acknowledgement before the deadline")
		}
		return jsperr.Wrap(jsperr.Cancelled, ctx.Err())
	case <-r.link.sess.Context().Done():
		return c.lostErr(r.link)
	}
}

// completeRequest resolves pending requests named by an ACK or an ERROR;
// false when in is neither or names none.
func (c *Client) completeRequest(in session.Incoming) bool {
	var ids [][]byte
	var result error
	switch m := in.Message.(type) {
	case *wire.Ack:
		ids = m.IDs
	case *wire.ErrorMessage:
		if len(m.Ref) == 0 {
			return false
		}
		ids, result = [][]byte{m.Ref}, m.Err()
	default:
		return false
	}
	found := false
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ids {
		if ch, ok := c.pending[string(id)]; ok {
			found = true
			delete(c.pending, string(id))
			ch <- result // buffered, one value per request
		}
	}
	return found
}

// newID returns a fresh random envelope id.
func (c *Client) newID() []byte {
	return newRandomID(c.opts.Session.Rand)
}
