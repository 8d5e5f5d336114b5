// Package client is the Go SDK of JetStreamProto: it dials a JSP server over
// QUIC, TLS/TCP or WebSocket, runs one session on the connection and offers
// the session's APIs to applications.
//
//	c, err := client.Dial(ctx, "jsp://example.net:7400", client.Options{})
//	if err != nil { ... }
//	defer c.Close()
//	reply, err := c.Command(ctx, "echo", []byte("hi"))
//
// URL schemes pick the transport (JSP §7): jsp+quic://, jsp+tcp://, wss://,
// or jsp://, which races QUIC against TCP on the same port number and keeps
// whichever completes the JSP handshake first (happy eyeballs, with a head
// start for QUIC), so clients on networks that block UDP still connect.
//
// The APIs:
//   - Stream API: OpenStream / AcceptStream give reliable byte streams with a
//     QoS class and a label (JSP §5.12);
//   - Datagram API: SendDatagram / ReceiveDatagram, fragmented and
//     reassembled when larger than one transport datagram (JSP §5.13);
//   - Mixed API: Send with a delivery mode per message, OnMessage for
//     messages from the server (JSP §12);
//   - commands (Command, JSP §5.9), channel events (Subscribe, Publish,
//     JSP §5.7, §5.8) and notifications (OnNotify, JSP §5.10).
//
// Reconnection (Options.Reconnect, off by default) re-dials a lost session
// with exponential backoff and full jitter, restores subscriptions, sends
// what was published meanwhile, and moves to another server on GOAWAY
// before leaving the old one; see ReconnectOptions. Against a server with
// storage it resumes the lost session, delivers each channel's events in
// order exactly once (repairing gaps from history), and resends PUBLISHes
// the server has not acknowledged; see RecoveryOptions and
// docs/protocol-guide.md, "Delivery guarantees". Migrate moves a QUIC
// session to a new local socket without a new handshake (Options.QUIC
// Migratable).
//
// Goroutines: a Client owns its sessions' goroutines, one supervisor that
// watches the session and reconnects, and one goroutine per registered
// handler. The session's receiving goroutine routes each incoming message
// to its handler's queue itself (the dispatch, D47). Each handler receives
// its messages one at a time, in order, from a bounded queue; a handler
// that falls behind loses messages (counted in Stats) instead of stalling
// the dispatch and every other handler, see Options.HandlerPatience. Close
// joins all of them.
package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/session"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/wire"
)

// ErrClosed is returned by operations on a closed Client.
var ErrClosed = errors.New("client: closed")

// stopper is a runner of any message type.
type stopper interface{ stop() }

// Client is a connection to a JSP server with one session on it at a time
// (several briefly while moving after GOAWAY, see ReconnectOptions). Its
// methods are safe for concurrent use.
type Client struct {
	opts Options
	log  *slog.Logger
	plan *dialPlan
	sigs *signatures // signing key and verification (signatures.go); set before use
	// book ranks the gateways a reconnect tries (gateways.go).
	book *gatewayBook

	stopSupervise  context.CancelFunc
	superviseDone  chan struct{}
	tokens         *tokenState        // the session token (Options.TokenSource)
	stopRefresh    context.CancelFunc // ends refreshLoop; nil without TokenSource
	refreshDone    chan struct{}
	stopDispatch   context.CancelFunc
	dispatchCtx    context.Context
	wg             sync.WaitGroup // handler runners
	closeOnce      sync.Once
	finishOnce     sync.Once
	done           chan struct{} // closed by finish
	handlerDrops   atomic.Uint64
	unrouted       atomic.Uint64
	reconnects     atomic.Uint64
	queuedMessages atomic.Uint64
	// rateLimitRetries counts calls sent again after RATE_LIMITED
	// (ratelimit.go).
	rateLimitRetries atomic.Uint64

	// mu guards the state below. The dispatch holds it only to look a
	// handler up, never while a handler runs; nothing holds it while
	// dialling.
	mu     sync.Mutex
	closed bool          // guarded by mu
	endErr error         // guarded by mu; set by finish
	cur    *link         // guarded by mu; the session in use, never nil
	next   chan struct{} // guarded by mu; closed when cur is replaced
	outbox []queued      // guarded by mu; sent after reconnecting
	// subs is guarded by mu; by channel name. A channel's slice is never
	// changed in place once published (removeSubLocked copies), so that
	// deliver can hand it on without a copy.
	subs     map[string][]*Subscription
	since    map[string]uint64     // guarded by mu; Since of a channel's first Subscribe
	pending  map[string]chan error // guarded by mu; SUBSCRIBE/UNSUBSCRIBE by request id
	reqID    uint64                // guarded by mu
	notify   *runner[Notification] // guarded by mu
	messages *runner[Message]      // guarded by mu
	runners  map[stopper]struct{}  // guarded by mu; every started runner

	// Recovery state (recovery.go), guarded by mu.
	order         map[string]*seqTracker  // per subscribed channel
	ackQueue      []*seqTracker           // trackers with a cursor delivered, not yet acknowledged
	ackCount      int                     // events delivered since the last ACK
	ackTimer      *time.Timer             // flushes ackQueue after AckDelay
	inflight      map[string]*inflightPub // PUBLISHes waiting for their ACK, by id
	inflightOrder []string                // their ids in send order (settled ones pruned lazily)
	resume        *wire.Resume            // resumes the last session; nil = none
	acking        bool                    // the last session's server ACKs PUBLISHes

	duplicates       atomic.Uint64
	gapsSkipped      atomic.Uint64
	recoveryFailures atomic.Uint64
	acksSent         atomic.Uint64
	resent           atomic.Uint64
	resumes          atomic.Uint64
}

// link is one established session.
type link struct {
	sess      *session.Session
	kind      transport.Kind
	handshake time.Duration
	url       string
}

// alive reports whether the session still runs.
func (l *link) alive() bool { return l.sess.Context().Err() == nil }

// ConnInfo describes an established connection.
type ConnInfo struct {
	// Transport is the transport in use; in automatic mode, the one that
	// won the race.
	Transport transport.Kind
	// Handshake is the time dialling this connection took, from its start
	// to the server's WELCOME, including the transport's own handshake.
	Handshake time.Duration
	// SessionID is the id the server assigned.
	SessionID []byte
	// Remote is the server's address.
	Remote string
	// URL is the URL dialled.
	URL string
}

func (l *link) info() ConnInfo {
	return ConnInfo{
		Transport: l.kind,
		Handshake: l.handshake,
		SessionID: l.sess.ID(),
		Remote:    l.sess.Conn().RemoteAddr().String(),
		URL:       l.url,
	}
}

func newClient(l *link, plan *dialPlan, o Options) *Client {
	dctx, stopDispatch := context.WithCancel(context.Background())
	sctx, stopSupervise := context.WithCancel(context.Background())
	c := &Client{
		opts:          o,
		log:           o.Logger,
		plan:          plan,
		book:          newGatewayBook(plan.urls),
		stopDispatch:  stopDispatch,
		dispatchCtx:   dctx,
		stopSupervise: stopSupervise,
		superviseDone: make(chan struct{}),
		done:          make(chan struct{}),
		cur:           l,
		next:          make(chan struct{}),
		subs:          map[string][]*Subscription{},
		since:         map[string]uint64{},
		pending:       map[string]chan error{},
		runners:       map[stopper]struct{}{},
		order:         map[string]*seqTracker{},
	}
	c.tokens = plan.tokens
	c.noteResumableLocked(l)
	c.noteSession(l)
	c.startDispatch(l)
	go func() {
		defer close(c.superviseDone)
		c.supervise(sctx)
	}()
	if o.TokenSource != nil {
		rctx, stop := context.WithCancel(context.Background())
		c.stopRefresh, c.refreshDone = stop, make(chan struct{})
		go func() {
			defer close(c.refreshDone)
			c.refreshLoop(rctx)
		}()
	}
	return c
}

// startDispatch routes l's session's messages to their handlers from now
// on, on the goroutine that received each (session.DeliverInline, D47);
// what arrived before is routed within the call. c.mu must not be held:
// routing takes it. Routing ends with the session (Close joins it).
func (c *Client) startDispatch(l *link) { l.sess.DeliverInline(c.route) }

// link returns the session in use, up or not.
func (c *Client) link() *link {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur
}

// waitLink returns a running session. While reconnecting, it waits for the
// next one until ctx ends; without reconnection, or after the Client ended,
// it returns the last one, whose operations fail with its end.
func (c *Client) waitLink(ctx context.Context) (*link, error) {
	for {
		c.mu.Lock()
		l, next, closed := c.cur, c.next, c.closed
		c.mu.Unlock()
		if closed {
			return nil, c.closedErr()
		}
		if l.alive() || !c.opts.Reconnect.Enabled {
			return l, nil
		}
		select {
		case <-next:
		case <-c.done:
			return nil, c.closedErr()
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for a reconnect: %w", jsperr.Wrap(jsperr.TransportClosed, context.Cause(ctx)))
		}
	}
}

// Transport returns the transport in use; in automatic mode, the one that
// won the race.
func (c *Client) Transport() transport.Kind { return c.link().kind }

// Info describes the connection in use.
func (c *Client) Info() ConnInfo { return c.link().info() }

// Session returns the session in use, for what the Client does not wrap.
// After a reconnect it is another one.
func (c *Client) Session() *session.Session { return c.link().sess }

// Done is closed when the Client has ended: by Close, by the server without
// reconnection, or when reconnection gave up.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns why the Client ended, or nil while it is up (or
// reconnecting).
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.endErr != nil {
		return c.endErr
	}
	if !c.opts.Reconnect.Enabled {
		return c.cur.sess.Err()
	}
	return nil
}

// finish ends the Client with err: Done closes, waiting calls fail.
func (c *Client) finish(err error) {
	c.finishOnce.Do(func() {
		c.mu.Lock()
		if err == nil {
			err = ErrClosed
		}
		c.endErr = err
		c.failInflightLocked(err)
		c.mu.Unlock()
		close(c.done)
	})
}

// GoingAway is closed when the server of the session in use announced a
// shutdown (GOAWAY, JSP §11.6); GoAwayInfo then says where to reconnect.
// With reconnection on, the Client moves by itself.
func (c *Client) GoingAway() <-chan struct{} { return c.link().sess.GoingAway() }

// GoAwayInfo returns the GOAWAY of the session in use, or nil.
func (c *Client) GoAwayInfo() *wire.Goaway { return c.link().sess.GoAwayInfo() }

// Ping sends a PING and returns the round-trip time (JSP §5.4).
func (c *Client) Ping(ctx context.Context) (time.Duration, error) {
	l, err := c.waitLink(ctx)
	if err != nil {
		return 0, fmt.Errorf("client: ping: %w", err)
	}
	rtt, err := l.sess.Ping(ctx)
	if err != nil {
		return 0, fmt.Errorf("client: ping: %w", err)
	}
	return rtt, nil
}

// SetBatteryMode switches battery mode (JSP §11.5) on the session in use: a
// longer heartbeat and wider batching, at the cost of latency for chat and
// bulk traffic.
func (c *Client) SetBatteryMode(on bool) { c.link().sess.SetBatteryMode(on) }

// Stats are counters of one Client.
type Stats struct {
	// Session are the counters of the session in use.
	Session session.Stats
	// HandlerDrops counts messages dropped because a handler's queue stayed
	// full (Options.HandlerPatience).
	HandlerDrops uint64
	// Unrouted counts incoming messages no handler wanted: an EVENT for a
	// channel without subscription, a NOTIFY without OnNotify, a MESSAGE
	// without OnMessage, a REPLY that came after its command gave up.
	Unrouted uint64
	// Reconnects counts sessions established after the first, by
	// reconnection or a move after GOAWAY.
	Reconnects uint64
	// Queued counts messages queued while disconnected (and sent later).
	Queued uint64
	// Unverified counts events that failed verification or were unsigned
	// while Options.Verify was enabled (dropped with DropUnverified).
	Unverified uint64
	// Resumes counts reconnections that resumed the lost session (JSP
	// §11.1 item 4) instead of starting a new one.
	Resumes uint64
	// Resent counts PUBLISHes sent again after a reconnect because their
	// ACK had not arrived.
	Resent uint64
	// Duplicates counts events dropped because they were delivered before
	// (replays after a resume or reconnect).
	Duplicates uint64
	// GapsSkipped counts gaps in a channel's events that could not be
	// repaired from history (RecoveryOptions.OnGap).
	GapsSkipped uint64
	// RecoveryFailures counts RECOVERY_IMPOSSIBLE answers.
	RecoveryFailures uint64
	// AcksSent counts ACK messages with cursors sent.
	AcksSent uint64
	// RateLimitRetries counts calls sent again after a RATE_LIMITED
	// refusal (Options.RateLimitRetry).
	RateLimitRetries uint64
}

// Stats returns a snapshot of the counters.
func (c *Client) Stats() Stats {
	return Stats{
		Session:      c.link().sess.Stats(),
		HandlerDrops: c.handlerDrops.Load(),
		Unrouted:     c.unrouted.Load(),
		Reconnects:   c.reconnects.Load(),
		Queued:       c.queuedMessages.Load(),
		Unverified:   c.sigs.unverifiedCount(),

		Resumes:          c.resumes.Load(),
		Resent:           c.resent.Load(),
		Duplicates:       c.duplicates.Load(),
		GapsSkipped:      c.gapsSkipped.Load(),
		RecoveryFailures: c.recoveryFailures.Load(),
		AcksSent:         c.acksSent.Load(),
		RateLimitRetries: c.rateLimitRetries.Load(),
	}
}

// Close ends the Client and waits for its goroutines, in this order: the
// token refresher, the reconnect goroutine (a dial in progress is
// abandoned), the session (so nothing new arrives or is routed), then
// every handler runner, each after the handler call in progress returns. Messages still queued for
// handlers or for sending are discarded. A handler that never returns
// makes Close wait for it; handlers must not call Close themselves.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		if c.stopRefresh != nil {
			// First: a refresh sends a command on the session.
			c.stopRefresh()
			<-c.refreshDone
		}
		c.stopSupervise()
		<-c.superviseDone
		_ = c.link().sess.Close()
		c.finish(ErrClosed)
		c.stopDispatch()
		c.mu.Lock()
		c.outbox = nil
		if c.ackTimer != nil {
			c.ackTimer.Stop()
			c.ackTimer = nil
		}
		c.failInflightLocked(ErrClosed)
		for r := range c.runners {
			r.stop()
		}
		c.mu.Unlock()
		c.wg.Wait()
	})
	return nil
}

// closedErr wraps the Client's end cause for operations after the end.
func (c *Client) closedErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closedErrLocked()
}

// closedErrLocked is closedErr with c.mu held.
func (c *Client) closedErrLocked() error {
	err := c.endErr
	if err == nil || errors.Is(err, ErrClosed) {
		err = c.cur.sess.Err()
	}
	if err != nil && !errors.Is(err, ErrClosed) {
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return ErrClosed
}

// lostErr is the error of an operation whose session ended under it: with
// reconnection on, a retryable TRANSPORT_CLOSED; else the Client's end.
func (c *Client) lostErr(l *link) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lostErrLocked(l)
}

// lostErrLocked is lostErr with c.mu held.
func (c *Client) lostErrLocked(l *link) error {
	if c.opts.Reconnect.Enabled && !c.closed && c.endErr == nil {
		return jsperr.Wrap(jsperr.TransportClosed, fmt.Errorf("session lost: %w", l.sess.Err()))
	}
	return c.closedErrLocked()
}

func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// startRunnerLocked registers and starts a handler runner. c.mu must be
// held.
func startRunnerLocked[T any](c *Client, fn func(T)) (*runner[T], error) {
	if c.closed {
		return nil, c.closedErrLocked()
	}
	r := newRunner(fn, c.opts.HandlerQueueLength, c.opts.HandlerPatience, &c.handlerDrops)
	c.runners[r] = struct{}{}
	r.start(&c.wg)
	return r, nil
}

// retireRunnerLocked stops r without waiting for it: the caller may be r's
// own handler. Close joins it. c.mu must be held.
func retireRunnerLocked[T any](c *Client, r *runner[T]) {
	if r == nil {
		return
	}
	r.stop()
	// Close no longer needs to stop it; it still joins its goroutine
	// through c.wg.
	delete(c.runners, r)
}

// route hands one incoming message to its handler. It runs on the
// session's receiving goroutine, one call at a time: it never waits longer
// than a handler queue's patience (runner.offer).
func (c *Client) route(in session.Incoming) {
	switch in.Type {
	case wire.FrameEvent:
		if in.Envelope != nil && c.routeEvent(in.Envelope) {
			return
		}
	case wire.FrameNotify:
		c.mu.Lock()
		r := c.notify
		c.mu.Unlock()
		if r != nil && in.Envelope != nil {
			r.offer(notificationOf(in.Envelope))
			return
		}
	case wire.FrameMessage:
		c.mu.Lock()
		r := c.messages
		c.mu.Unlock()
		if r != nil && in.Envelope != nil {
			r.offer(messageOf(in.Envelope, in.Delivery))
			return
		}
	default:
		settled := false
		switch m := in.Message.(type) {
		case *wire.Ack:
			settled = c.settle(m.IDs, nil)
		case *wire.ErrorMessage:
			if m.Code == jsperr.RecoveryImpossible && m.Channel != "" && len(m.Ref) == 0 {
				c.recoveryImpossible(m.Channel)
				return
			}
			if len(m.Ref) > 0 {
				settled = c.settle([][]byte{m.Ref}, m.Err())
			}
		}
		if c.completeRequest(in) || settled {
			return
		}
		if m, ok := in.Message.(*wire.ErrorMessage); ok {
			// A refused PUBLISH or MESSAGE: the server acknowledges
			// neither on success, so nobody waits for this answer.
			c.log.Warn("server refused a message", "ref", fmt.Sprintf("%x", m.Ref), "code", m.Code.String(), "reason", m.Reason)
		}
	}
	c.unrouted.Add(1)
	c.log.Debug("incoming message not routed", "type", in.Type.String())
}
