package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/transport/quic"
	"github.com/jetstreamproto/jsp/wire"
)

// forgetResume drops the resume request after SESSION_NOT_FOUND.
func (c *Client) forgetResume() {
	c.mu.Lock()
	c.resume = nil
	c.mu.Unlock()
}

// drainPoll is how often a session being left after GOAWAY is checked for
// frames still waiting to be sent.
const drainPoll = 5 * time.Millisecond

// supervise watches the session in use. Without reconnection it ends the
// Client with its session; with it, it replaces a lost session and moves to
// another server on GOAWAY. It returns at Close (ctx) or when the Client
// ends.
func (c *Client) supervise(ctx context.Context) {
	var moved *link // the session whose GOAWAY was handled
	for {
		l := c.link()
		var goaway <-chan struct{}
		if c.opts.Reconnect.Enabled && moved != l {
			goaway = l.sess.GoingAway()
		}
		select {
		case <-ctx.Done():
			return
		case <-l.sess.Context().Done():
			reason := l.sess.Err()
			// Joins the dead session's goroutines; closing twice is
			// harmless.
			_ = l.sess.Close()
			if !c.opts.Reconnect.Enabled {
				c.finish(fmt.Errorf("%w: %w", ErrClosed, reason))
				return
			}
			c.log.Info("session lost, reconnecting", "reason", reason)
			// The gateway just lost goes to the back of the list.
			c.noteRTT(l)
			c.noteFailure(l.url)
			c.callback(func(r *ReconnectOptions) {
				if r.OnDisconnected != nil {
					r.OnDisconnected(reason)
				}
			})
			nl, err := c.redial(ctx, nil, true)
			if err != nil {
				if ctx.Err() == nil {
					c.finish(fmt.Errorf("%w: reconnect: %w", ErrClosed, err))
				}
				return
			}
			c.install(ctx, nl, nil)
		case <-goaway:
			moved = l
			var alts []string
			if g := l.sess.GoAwayInfo(); g != nil {
				alts = g.Alternatives
			}
			c.log.Info("server going away, moving", "alternatives", alts)
			// The move ends with the old session: from then on it is an
			// ordinary loss, reported and resumed as one.
			mctx, cancel := context.WithCancel(ctx)
			stop := context.AfterFunc(l.sess.Context(), cancel)
			nl, err := c.redial(mctx, c.alternativeURLs(l.url, alts), false)
			stop()
			cancel()
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				// Nowhere to go before the old session ended; its end
				// starts an ordinary reconnect.
				c.log.Warn("no server to move to after GOAWAY", "err", err)
				continue
			}
			c.install(ctx, nl, l)
		}
	}
}

// callback runs fn with the reconnect options; callbacks run only here, on
// the supervise goroutine, so they never overlap.
func (c *Client) callback(fn func(r *ReconnectOptions)) { fn(&c.opts.Reconnect) }

// redial dials rounds of URLs until one connects: first, when given, then
// the Dial URL and the fallbacks. Before each round after a loss (and
// before every round but the first after GOAWAY) it waits the backoff.
func (c *Client) redial(ctx context.Context, first []string, lost bool) (*link, error) {
	r := &c.opts.Reconnect
	var errs []error
	for round := 0; r.MaxAttempts == 0 || round < r.MaxAttempts; round++ {
		// Ranked again each round: the last round's failures count.
		urls := c.candidates(first)
		if lost || round > 0 {
			n := round
			if !lost {
				n--
			}
			if !r.wait(r.backoff(n), ctx.Done()) {
				return nil, context.Cause(ctx)
			}
		}
		c.callback(func(r *ReconnectOptions) {
			if r.OnConnecting != nil {
				r.OnConnecting(round + 1)
			}
		})
		errs = errs[:0]
		for _, u := range urls {
			var resume *wire.Resume
			if lost {
				// Resume the lost session (JSP §11.1 item 4); a move
				// after GOAWAY starts a new one while the old still runs.
				resume = c.resumeInfo()
			}
			l, err := c.plan.dial(ctx, u, resume)
			if err != nil && resume != nil && jsperr.CodeOf(err) == jsperr.SessionNotFound {
				// The server no longer holds the session (restarted, or
				// the resume window passed): start a new one at once and
				// subscribe again with Since.
				c.log.Info("session not resumable, starting a new one", "url", u)
				c.forgetResume()
				l, err = c.plan.dial(ctx, u, nil)
			}
			if err == nil {
				return l, nil
			}
			if ctx.Err() != nil {
				return nil, context.Cause(ctx)
			}
			errs = append(errs, err)
			c.noteFailure(u)
			if isFatal(err) && c.configured(u) {
				// A pin or certificate failure does not heal with time.
				// For a gateway a server listed it only rules that one
				// out: the list is a hint, the trust is the caller's.
				return nil, err
			}
		}
		c.log.Debug("reconnect round failed", "round", round+1, "err", errors.Join(errs...))
	}
	return nil, fmt.Errorf("gave up after %d rounds: %w", r.MaxAttempts, errors.Join(errs...))
}

// alternativeURLs turns GOAWAY alternatives into URLs: a full URL is taken
// as is, a bare host:port gets the scheme (and WebSocket path) of the URL
// in use. Unusable entries are skipped.
func (c *Client) alternativeURLs(current string, alts []string) []string {
	cu, err := url.Parse(current)
	if err != nil {
		return nil
	}
	var out []string
	for _, a := range alts {
		u := a
		if !strings.Contains(a, "://") {
			if _, _, err := net.SplitHostPort(a); err != nil {
				continue
			}
			v := url.URL{Scheme: cu.Scheme, Host: a, Path: cu.Path}
			u = v.String()
		}
		if _, err := parseTarget(u); err != nil {
			c.log.Warn("unusable GOAWAY alternative", "alternative", a, "err", err)
			continue
		}
		out = append(out, u)
	}
	return out
}

// install makes nl the session in use: it restores subscriptions, sends
// the outbox, and, after GOAWAY, drains and closes the old session (make
// before break).
func (c *Client) install(ctx context.Context, nl, old *link) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		_ = nl.sess.Close()
		return
	}
	c.noteSession(nl)
	c.cur = nl
	close(c.next)
	c.next = make(chan struct{})
	resumed := nl.sess.Resumed()
	c.noteResumableLocked(nl)
	if !c.acking {
		// A server without storage numbers events per run: the numbers
		// seen on the lost session say nothing about the new one.
		for _, t := range c.order {
			t.rebase.Store(true)
		}
	}
	// Subscriptions first, so that events published from the outbox and
	// echoed back find their handlers, then the PUBLISHes not yet
	// acknowledged and the outbox, all before any newer message:
	// sendOrQueue takes c.mu too. A resumed session still has its
	// subscriptions, and the server replays what they missed.
	var reqs []request
	for ch := range c.subs {
		if resumed {
			break
		}
		m := &wire.Subscribe{Channel: ch}
		if t := c.order[ch]; t != nil && t.seen > 0 {
			m.Since, m.HasSince = t.seen, true
		} else if seq, ok := c.since[ch]; ok {
			m.Since, m.HasSince = seq, true
		}
		req, err := c.sendRequestOnLocked(nl, m, func(id []byte) { m.ReqID = id })
		if err != nil {
			c.log.Warn("resubscribe failed", "channel", ch, "err", err)
			continue
		}
		reqs = append(reqs, req)
	}
	c.resendInflightLocked(nl)
	outbox := c.outbox
	c.outbox = nil
	for i, q := range outbox {
		// Signed while disconnected, perhaps longer ago than the
		// server's clock-skew window: sign again at sending time.
		env, err := c.sigs.resign(q.env)
		if err == nil {
			q.env = env
			err = q.sendOn(nl.sess)
		}
		if err != nil {
			c.log.Warn("queued messages not sent", "count", len(outbox)-i, "err", err)
			break
		}
	}
	c.mu.Unlock()
	// After the resubscriptions and resends are queued, as before: the
	// answers waiting meanwhile are routed within the call.
	c.startDispatch(nl)
	c.reconnects.Add(1)
	if resumed {
		c.resumes.Add(1)
	}
	info := nl.info()
	c.log.Info("connected", "url", nl.url, "transport", string(nl.kind))
	c.callback(func(r *ReconnectOptions) {
		if r.OnConnected != nil {
			r.OnConnected(info)
		}
	})

	wctx, cancel := context.WithTimeout(ctx, c.opts.DialTimeout)
	for _, req := range reqs {
		if err := c.awaitRequest(wctx, req); err != nil {
			c.log.Warn("resubscribe not acknowledged", "err", err)
		}
	}
	cancel()
	if old != nil {
		c.drain(ctx, old)
	}
	c.callback(func(r *ReconnectOptions) {
		if r.OnResumed != nil {
			r.OnResumed(info)
		}
	})
}

// drain lets a session that is no longer in use go: once the frames
// queued on it are written, a PING round trip shows the server has read
// them (they share the control stream, which is ordered), and the session
// closes. It waits at most DialTimeout, and never past the server's close.
func (c *Client) drain(ctx context.Context, old *link) {
	dctx, cancel := context.WithTimeout(ctx, c.opts.DialTimeout)
	defer cancel()
	t := time.NewTicker(drainPoll)
	defer t.Stop()
	for old.alive() && old.sess.Stats().SendQueued > 0 {
		select {
		case <-t.C:
		case <-dctx.Done():
		case <-old.sess.Context().Done():
		}
		if dctx.Err() != nil {
			break
		}
	}
	if old.alive() {
		if _, err := old.sess.Ping(dctx); err != nil {
			c.log.Debug("old session not drained", "err", err)
		}
	}
	_ = old.sess.CloseWithError(jsperr.NoError, "moved")
}

// ErrNotQUIC is returned by Migrate when the session does not run on QUIC.
var ErrNotQUIC = errors.New("client: migrate: session does not run on QUIC")

// Migrate moves the QUIC connection to a new UDP socket without a new
// handshake (RFC 9000 §9, JSP §7.1): it opens the socket, probes the path
// to the server and switches to it; the old socket is closed. Use it when
// the local address changed or is about to (another interface, a NAT
// rebinding). The session, its id and its streams carry on; no reconnect
// callbacks fire. It needs Options.QUIC.Migratable and fails with
// ErrNotQUIC on TCP and WebSocket.
func (c *Client) Migrate(ctx context.Context) error {
	l := c.link()
	qc, ok := l.sess.Conn().(*quic.Conn)
	if !ok {
		return ErrNotQUIC
	}
	pc, err := net.ListenUDP("udp", nil)
	if err != nil {
		return fmt.Errorf("client: migrate: open UDP socket: %w", err)
	}
	// Migrate owns pc from here, also on failure.
	if err := qc.Migrate(ctx, pc); err != nil {
		return fmt.Errorf("client: migrate: %w", err)
	}
	c.log.Debug("migrated", "local", qc.LocalAddr().String())
	return nil
}
