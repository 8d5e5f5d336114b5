package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jetstreamproto/jsp/security/credential"
	"github.com/jetstreamproto/jsp/security/devicekey"
	"github.com/jetstreamproto/jsp/session"
)

// Token is a credential from Options.TokenSource: the token text (jsp
// token issue) and when it expires.
type Token struct {
	// Text is the token as the server's key set verifies it.
	Text string
	// Expires is the token's expiry; zero means unknown, which makes the
	// Client refresh at once and then after each refresh's reply.
	Expires time.Time
}

// Refresh timing.
const (
	// TokenRefreshFraction is the part of a token's lifetime (from when it
	// was obtained) after which the Client refreshes it, as the service
	// certificates renew: a third of the lifetime is left for retries.
	TokenRefreshFraction = 2.0 / 3.0
	// DefaultTokenRetry is the wait after a failed refresh; it shrinks to
	// half the time left when the token is close to expiry.
	DefaultTokenRetry = time.Second
	// minTokenRetry keeps a failing refresh from spinning.
	minTokenRetry = 50 * time.Millisecond
)

// tokenState is the token the session runs on: set by the dialer when
// HELLO carried a TokenSource token, and by each refresh.
type tokenState struct {
	mu       sync.Mutex
	obtained time.Time // guarded by mu
	expires  time.Time // guarded by mu; zero = unknown
	known    bool      // guarded by mu; a token was recorded for the current session
	// kick wakes the refresh loop after a change; one pending signal is
	// enough.
	kick chan struct{}
}

func newTokenState() *tokenState { return &tokenState{kick: make(chan struct{}, 1)} }

func (s *tokenState) record(obtained, expires time.Time) {
	s.mu.Lock()
	s.obtained, s.expires, s.known = obtained, expires, true
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// next returns when to refresh: at TokenRefreshFraction of the lifetime,
// or now when the expiry is unknown.
func (s *tokenState) next(now time.Time) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.known || s.expires.IsZero() {
		return now
	}
	life := s.expires.Sub(s.obtained)
	return s.obtained.Add(time.Duration(float64(life) * TokenRefreshFraction))
}

func (s *tokenState) expiry() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.expires
}

// helloAuth returns HELLO auth from Options.TokenSource for a connection
// whose TLS state is cs, and records the token.
func helloAuth(ctx context.Context, o *Options, tokens *tokenState, cs tls.ConnectionState) ([]byte, error) {
	obtained := o.Now()
	tok, err := o.TokenSource(ctx)
	if err != nil {
		return nil, fmt.Errorf("client: token source: %w", err)
	}
	auth, err := credential.ForConnection(tok.Text, devicekey.PrivateKey{}, cs)
	if err != nil {
		return nil, err
	}
	tokens.record(obtained, tok.Expires)
	return auth, nil
}

// RefreshToken gets a token from Options.TokenSource and sends it to the
// server in the session (JSP §5.9.1), which extends the session's
// credential without reconnecting; it returns the new expiry the server
// granted. The Client calls it by itself before each token expires.
func (c *Client) RefreshToken(ctx context.Context) (time.Time, error) {
	if c.opts.TokenSource == nil {
		return time.Time{}, errors.New("client: refresh: no Options.TokenSource")
	}
	obtained := c.opts.Now()
	tok, err := c.opts.TokenSource(ctx)
	if err != nil {
		return time.Time{}, fmt.Errorf("client: refresh: token source: %w", err)
	}
	rep, err := c.Command(ctx, session.RefreshService, session.AppendRefreshRequest(nil, tok.Text))
	if err != nil {
		return time.Time{}, fmt.Errorf("client: refresh: %w", err)
	}
	exp, err := session.ParseRefreshReply(rep)
	if err != nil {
		return time.Time{}, fmt.Errorf("client: refresh: %w", err)
	}
	c.tokens.record(obtained, exp)
	return exp, nil
}

// refreshLoop refreshes the session's token before it expires until ctx
// ends. A failed refresh is retried after DefaultTokenRetry (or half the
// time left); if the token expires anyway the server closes the session
// with TOKEN_EXPIRED and reconnection, when on, starts over with a fresh
// token from the source.
func (c *Client) refreshLoop(ctx context.Context) {
	var retryAt time.Time
	for {
		now := c.opts.Now()
		at := c.tokens.next(now)
		if !retryAt.IsZero() && retryAt.After(at) {
			at = retryAt
		}
		t := time.NewTimer(max(at.Sub(now), 0))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-c.tokens.kick:
			t.Stop()
			retryAt = time.Time{}
			continue
		case <-t.C:
		}
		exp, err := c.RefreshToken(ctx)
		if err == nil {
			c.log.Debug("token refreshed", "expires", exp)
			retryAt = time.Time{}
			// record kicked the loop; drain so the next wait is not cut.
			select {
			case <-c.tokens.kick:
			default:
			}
			continue
		}
		if ctx.Err() != nil {
			return
		}
		wait := DefaultTokenRetry
		if e := c.tokens.expiry(); !e.IsZero() {
			wait = min(wait, max(e.Sub(c.opts.Now())/2, minTokenRetry))
		}
		c.log.Warn("token refresh failed", "err", err, "retry_in", wait)
		retryAt = c.opts.Now().Add(wait)
	}
}
