package client

import (
	"errors"
	"math/rand/v2"
	"time"
)

// Defaults of ReconnectOptions.
const (
	DefaultReconnectInitialBackoff = 250 * time.Millisecond
	DefaultReconnectMaxBackoff     = 30 * time.Second
	// DefaultReconnectQueueLength caps the messages Publish and Send
	// queue while disconnected.
	DefaultReconnectQueueLength = 1024
)

// ReconnectOptions configure automatic reconnection. Reconnection is off by
// default: without it, a Client ends with its session, as a plain
// connection does, and the application decides what to do. With it, a lost
// session is dialled again with exponential backoff and full jitter, and
// the application keeps one Client across server restarts and moves.
//
// What reconnection does:
//   - A lost session is dialled again: the Dial URL (in automatic mode the
//     QUIC/TCP race again), then each of Fallback in order, as one round;
//     rounds are separated by the backoff. A server key that fails the
//     pins or the certificate check ends reconnection, and the Client.
//   - Subscriptions are sent again, each with Since set to the last
//     sequence number seen on its channel, so a server that keeps history
//     replays what was missed (JSP §5.7).
//   - On GOAWAY (JSP §11.6), the Client dials an alternative from the
//     GOAWAY (a URL, or host:port with the scheme in use; verified with the
//     same roots and pins as the Dial URL), then the Dial URL and the
//     fallbacks, while the old session still runs, moves
//     subscriptions, sends what it queued, and only then lets the old
//     session go (make before break).
//   - Commands in flight when a session is lost fail with a retryable
//     TRANSPORT_CLOSED error; calls made while disconnected wait for the
//     next session, bounded by their context.
//   - Publish, and Send with Ordered delivery, while disconnected queue the
//     envelope (at most QueueLength) and send it after reconnecting with the
//     same envelope id, so a server can drop duplicates (JSP §4).
//
// Callbacks run on the Client's reconnect goroutine, one at a time, in the
// order OnDisconnected, OnConnecting (per round), OnConnected, OnResumed. A
// move after GOAWAY fires OnConnecting, OnConnected and OnResumed only.
// Callbacks must return promptly and must not call Close.
type ReconnectOptions struct {
	// Enabled turns automatic reconnection on. Default: off.
	Enabled bool
	// Fallback are further URLs tried in order after the Dial URL in each
	// round, typically the same server over other transports (for
	// instance jsp+tcp://host and wss://host after jsp+quic://host).
	Fallback []string
	// InitialBackoff is the backoff ceiling before the first round after a
	// loss; it doubles per failed round. Default: 250 ms.
	InitialBackoff time.Duration
	// MaxBackoff caps the ceiling. Default: 30 s.
	MaxBackoff time.Duration
	// MaxAttempts ends reconnection after this many failed rounds, and
	// with it the Client. Default: 0, unlimited.
	MaxAttempts int
	// QueueLength caps the messages queued while disconnected; Publish
	// fails with QUEUE_FULL beyond it. Default: 1024.
	QueueLength int
	// IgnoreServerGateways keeps reconnects to the Dial URL and Fallback:
	// the gateways a server lists in WELCOME are not tried. Default: they
	// are, ranked by health and measured RTT (gateways.go).
	IgnoreServerGateways bool

	// Jitter returns a uniformly random duration in [0, ceiling]: full
	// jitter, so that clients that lost one server do not return in
	// step. Default: math/rand/v2.
	Jitter func(ceiling time.Duration) time.Duration
	// After is the clock for backoff waits. Default: time.After, through
	// a timer that is stopped when the wait is abandoned.
	After func(d time.Duration) <-chan time.Time

	// OnConnecting is called before each round of dial attempts, with the
	// round's number from 1.
	OnConnecting func(attempt int)
	// OnConnected is called when a new session is up and the
	// subscriptions and queued messages have been handed to it, before
	// the server has confirmed the subscriptions.
	OnConnected func(ConnInfo)
	// OnResumed is called when subscriptions are restored and queued
	// messages sent on the new session.
	OnResumed func(ConnInfo)
	// OnDisconnected is called when the session is lost, with the reason.
	OnDisconnected func(reason error)
}

func (r *ReconnectOptions) setDefaults() {
	if r.MaxBackoff == 0 {
		r.MaxBackoff = max(DefaultReconnectMaxBackoff, r.InitialBackoff)
	}
	if r.InitialBackoff == 0 {
		r.InitialBackoff = min(DefaultReconnectInitialBackoff, r.MaxBackoff)
	}
	if r.QueueLength == 0 {
		r.QueueLength = DefaultReconnectQueueLength
	}
	if r.Jitter == nil {
		r.Jitter = func(ceiling time.Duration) time.Duration {
			if ceiling <= 0 {
				return 0
			}
			return rand.N(ceiling + 1)
		}
	}
}

func (r *ReconnectOptions) validate() error {
	switch {
	case r.InitialBackoff < 0, r.MaxBackoff < 0:
		return errors.New("client: negative backoff in ReconnectOptions")
	case r.InitialBackoff > r.MaxBackoff:
		return errors.New("client: ReconnectOptions.InitialBackoff above MaxBackoff")
	case r.MaxAttempts < 0:
		return errors.New("client: negative ReconnectOptions.MaxAttempts")
	case r.QueueLength < 0:
		return errors.New("client: negative ReconnectOptions.QueueLength")
	}
	return nil
}

// backoffCeiling is the ceiling before round n (from 0): InitialBackoff
// doubled n times, capped at MaxBackoff.
func (r *ReconnectOptions) backoffCeiling(n int) time.Duration {
	d := r.InitialBackoff
	for range n {
		if d >= r.MaxBackoff/2 {
			// Doubling again would pass the cap (or overflow).
			return r.MaxBackoff
		}
		d *= 2
	}
	return min(d, r.MaxBackoff)
}

// backoff is the wait before round n: full jitter over the ceiling.
func (r *ReconnectOptions) backoff(n int) time.Duration {
	return r.Jitter(r.backoffCeiling(n))
}

// wait sleeps d on the injected clock, or until stop is closed; false when
// stopped.
func (r *ReconnectOptions) wait(d time.Duration, stop <-chan struct{}) bool {
	if r.After != nil {
		select {
		case <-r.After(d):
			return true
		case <-stop:
			return false
		}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-stop:
		return false
	}
}
