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
// Goroutines: a Client owns its session's goroutines, one dispatcher that
// reads incoming messages and routes them to handlers, and one goroutine per
// registered handler. Each handler receives its messages one at a time, in
// order, from a bounded queue; a handler that falls behind loses messages
// (counted in Stats) instead of stalling the dispatcher and every other
// handler, see Options.HandlerPatience. Close joins all of them.
package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jetstreamproto/jsp/session"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/wire"
)

// ErrClosed is returned by operations on a closed Client.
var ErrClosed = errors.New("client: closed")

// stopper is a runner of any message type.
type stopper interface{ stop() }

// Client is a connection to a JSP server with one session on it. Its methods
// are safe for concurrent use.
type Client struct {
	sess      *session.Session
	kind      transport.Kind
	handshake time.Duration
	opts      Options
	log       *slog.Logger

	stopDispatch context.CancelFunc
	dispatchDone chan struct{}
	wg           sync.WaitGroup // dispatcher and handler runners
	closeOnce    sync.Once
	handlerDrops atomic.Uint64
	unrouted     atomic.Uint64

	// mu guards the routing tables below. The dispatcher holds it only to
	// look a handler up, never while a handler runs.
	mu       sync.Mutex
	closed   bool                       // guarded by mu
	subs     map[string][]*Subscription // guarded by mu; by channel name
	pending  map[string]chan error      // guarded by mu; SUBSCRIBE/UNSUBSCRIBE by request id
	reqID    uint64                     // guarded by mu
	notify   *runner[Notification]      // guarded by mu
	messages *runner[Message]           // guarded by mu
	runners  map[stopper]struct{}       // guarded by mu; every started runner
}

// ConnInfo describes an established connection.
type ConnInfo struct {
	// Transport is the transport in use; in automatic mode, the one that
	// won the race.
	Transport transport.Kind
	// Handshake is the time Dial took from its start to the server's
	// WELCOME, including the transport's own handshake.
	Handshake time.Duration
	// SessionID is the id the server assigned.
	SessionID []byte
	// Remote is the server's address.
	Remote string
}

func newClient(sess *session.Session, kind transport.Kind, handshake time.Duration, o Options) *Client {
	dctx, stop := context.WithCancel(context.Background())
	c := &Client{
		stopDispatch: stop,
		sess:         sess,
		kind:         kind,
		handshake:    handshake,
		opts:         o,
		log:          o.Logger.With("transport", string(kind)),
		dispatchDone: make(chan struct{}),
		subs:         map[string][]*Subscription{},
		pending:      map[string]chan error{},
		runners:      map[stopper]struct{}{},
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer close(c.dispatchDone)
		c.dispatch(dctx)
	}()
	return c
}

// Transport returns the transport in use; in automatic mode, the one that
// won the race.
func (c *Client) Transport() transport.Kind { return c.kind }

// Info describes the connection.
func (c *Client) Info() ConnInfo {
	return ConnInfo{
		Transport: c.kind,
		Handshake: c.handshake,
		SessionID: c.sess.ID(),
		Remote:    c.sess.Conn().RemoteAddr().String(),
	}
}

// Session returns the underlying session, for what the Client does not wrap.
func (c *Client) Session() *session.Session { return c.sess }

// Done is closed when the connection has ended, by Close or by the server.
func (c *Client) Done() <-chan struct{} { return c.sess.Context().Done() }

// Err returns why the connection ended, or nil while it is up.
func (c *Client) Err() error { return c.sess.Err() }

// GoingAway is closed when the server announced a shutdown (GOAWAY,
// JSP §11.6); GoAwayInfo then says where to reconnect.
func (c *Client) GoingAway() <-chan struct{} { return c.sess.GoingAway() }

// GoAwayInfo returns the server's GOAWAY, or nil.
func (c *Client) GoAwayInfo() *wire.Goaway { return c.sess.GoAwayInfo() }

// Ping sends a PING and returns the round-trip time (JSP §5.4).
func (c *Client) Ping(ctx context.Context) (time.Duration, error) {
	rtt, err := c.sess.Ping(ctx)
	if err != nil {
		return 0, fmt.Errorf("client: ping: %w", err)
	}
	return rtt, nil
}

// SetBatteryMode switches battery mode (JSP §11.5): a longer heartbeat and
// wider batching, at the cost of latency for chat and bulk traffic.
func (c *Client) SetBatteryMode(on bool) { c.sess.SetBatteryMode(on) }

// Stats are counters of one Client.
type Stats struct {
	// Session are the session's counters.
	Session session.Stats
	// HandlerDrops counts messages dropped because a handler's queue stayed
	// full (Options.HandlerPatience).
	HandlerDrops uint64
	// Unrouted counts incoming messages no handler wanted: an EVENT for a
	// channel without subscription, a NOTIFY without OnNotify, a MESSAGE
	// without OnMessage, a REPLY that came after its command gave up.
	Unrouted uint64
}

// Stats returns a snapshot of the counters.
func (c *Client) Stats() Stats {
	return Stats{
		Session:      c.sess.Stats(),
		HandlerDrops: c.handlerDrops.Load(),
		Unrouted:     c.unrouted.Load(),
	}
}

// Close ends the session and waits for the Client's goroutines, in this
// order: the session (so nothing new arrives), the dispatcher, then every
// handler runner, each after the handler call in progress returns. Messages
// still queued for handlers are discarded. A handler that never returns
// makes Close wait for it; handlers must not call Close themselves.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		_ = c.sess.Close()
		c.stopDispatch()
		<-c.dispatchDone
		c.mu.Lock()
		for r := range c.runners {
			r.stop()
		}
		c.mu.Unlock()
		c.wg.Wait()
	})
	return nil
}

// closedErr wraps the session's end cause for operations after the end.
func (c *Client) closedErr() error {
	if err := c.sess.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return ErrClosed
}

// startRunnerLocked registers and starts a handler runner. c.mu must be
// held.
func startRunnerLocked[T any](c *Client, fn func(T)) (*runner[T], error) {
	if c.closed {
		return nil, c.closedErr()
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

// dispatch reads the session's incoming messages and routes them to their
// handlers until the session ends and what arrived before its end has been
// routed, or until Close.
func (c *Client) dispatch(ctx context.Context) {
	for {
		in, err := c.sess.Recv(ctx)
		if err != nil {
			return
		}
		c.route(in)
	}
}

// route hands one incoming message to its handler.
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
		if c.completeRequest(in) {
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
