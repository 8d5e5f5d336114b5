package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/session"
	"github.com/jetstreamproto/jsp/wire"
)

// Defaults for a zero [RateLimitRetry] field.
const (
	// DefaultRateLimitAttempts is how many times a call is sent in total
	// (the first send and its retries) while the server answers
	// RATE_LIMITED.
	DefaultRateLimitAttempts = 4
	// DefaultRateLimitMaxWait bounds the time one call spends waiting for
	// retry-afters, summed over its retries.
	DefaultRateLimitMaxWait = 30 * time.Second
	// DefaultRateLimitJitter is the largest fraction of a retry-after added
	// to it at random, so that clients limited together do not come back
	// together.
	DefaultRateLimitJitter = 0.2
	// DefaultRateLimitRetryAfter is the wait when a RATE_LIMITED refusal
	// carries no retry-after.
	DefaultRateLimitRetryAfter = time.Second
)

// retryAfterGrain is added to every wait: the wire carries retry-after in
// whole milliseconds rounded down (JSP §5.3), so waiting exactly the
// carried value can arrive up to a millisecond before the server's bucket
// has the token.
const retryAfterGrain = time.Millisecond

// RateLimitRetry configures how the Client honours RATE_LIMITED refusals
// (JSP §5.3, §9): Command, CommandWithHeaders, PublishAcked and OpenStream
// refused with RATE_LIMITED are sent again after the refusal's
// retry-after plus jitter, at most Attempts times in total and for at most
// MaxWait of waiting, and never after ctx ends. When the attempts or the
// wait are used up the last RATE_LIMITED error (a *jsperr.Error with
// RetryAfter) is returned. Publish and Send return before the server
// answers, so they are not retried; use PublishAcked to have a refused
// PUBLISH sent again. The zero value retries with the defaults.
type RateLimitRetry struct {
	// Disabled turns automatic retries off: RATE_LIMITED is returned at
	// once.
	Disabled bool
	// Attempts is the number of sends per call, the first included. Zero
	// means DefaultRateLimitAttempts (4); 1 never retries.
	Attempts int
	// MaxWait bounds the summed waits of one call; a retry whose wait
	// would pass it is not made. Zero means DefaultRateLimitMaxWait (30 s).
	MaxWait time.Duration
	// Jitter is the largest fraction of the retry-after added at random
	// (0.2: up to 20 % later). It only ever lengthens the wait, so a retry
	// never comes before the server's retry-after. Zero means
	// DefaultRateLimitJitter; negative means none.
	Jitter float64
	// DefaultRetryAfter is the wait when the refusal carries none. Zero
	// means DefaultRateLimitRetryAfter (1 s).
	DefaultRetryAfter time.Duration
	// Rand returns a number in [0, 1) for the jitter. Zero means
	// math/rand/v2.Float64.
	Rand func() float64
}

func (r *RateLimitRetry) setDefaults() {
	if r.Attempts == 0 {
		r.Attempts = DefaultRateLimitAttempts
	}
	if r.MaxWait == 0 {
		r.MaxWait = DefaultRateLimitMaxWait
	}
	if r.Jitter == 0 {
		r.Jitter = DefaultRateLimitJitter
	}
	if r.Jitter < 0 {
		r.Jitter = 0
	}
	if r.DefaultRetryAfter == 0 {
		r.DefaultRetryAfter = DefaultRateLimitRetryAfter
	}
	if r.Rand == nil {
		r.Rand = rand.Float64
	}
}

func (r *RateLimitRetry) validate() error {
	switch {
	case r.Attempts < 0:
		return fmt.Errorf("client: negative RateLimitRetry.Attempts %d", r.Attempts)
	case r.MaxWait < 0, r.DefaultRetryAfter < 0:
		return errors.New("client: negative duration in RateLimitRetry")
	case r.Jitter > 10:
		return fmt.Errorf("client: RateLimitRetry.Jitter %g above 10", r.Jitter)
	}
	return nil
}

// wait returns how long to wait before sending again after refusal e.
func (r *RateLimitRetry) wait(e *jsperr.Error) time.Duration {
	d := e.RetryAfter
	if d <= 0 {
		d = r.DefaultRetryAfter
	}
	d += retryAfterGrain
	if r.Jitter > 0 {
		d += time.Duration(float64(d) * r.Jitter * r.Rand())
	}
	return d
}

// rateLimited returns err's RATE_LIMITED error, or nil when err is
// something else.
func rateLimited(err error) *jsperr.Error {
	var e *jsperr.Error
	if errors.As(err, &e) && e.Code == jsperr.RateLimited {
		return e
	}
	return nil
}

// retryRateLimited runs send, and again after each RATE_LIMITED refusal's
// retry-after while Options.RateLimitRetry allows. It returns send's last
// error; when ctx ends during a wait, the last refusal joined with the
// context's error.
func (c *Client) retryRateLimited(ctx context.Context, send func() error) error {
	r := &c.opts.RateLimitRetry
	var waited time.Duration
	for attempt := 1; ; attempt++ {
		err := send()
		e := rateLimited(err)
		if e == nil || r.Disabled || attempt >= r.Attempts {
			return err
		}
		d := r.wait(e)
		if waited+d > r.MaxWait {
			return err
		}
		if dl, ok := ctx.Deadline(); ok && c.opts.Now().Add(d).After(dl) {
			// The retry could not be answered before the deadline; say why
			// the call failed rather than wait for a timeout.
			return err
		}
		waited += d
		c.rateLimitRetries.Add(1)
		c.log.Debug("rate limited; sending again after the retry-after", "reason", e.Reason,
			"retry_after", e.RetryAfter, "wait", d, "attempt", attempt)
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return errors.Join(err, jsperr.Wrap(jsperr.Cancelled, ctx.Err()))
		}
	}
}

// request sends env as a COMMAND to service on the current session and
// returns the REPLY's body, retrying RATE_LIMITED refusals
// (Options.RateLimitRetry). ctx carries the deadline.
func (c *Client) request(ctx context.Context, service string, env *wire.Envelope) ([]byte, error) {
	var body []byte
	err := c.retryRateLimited(ctx, func() error {
		l, err := c.waitLink(ctx)
		if err != nil {
			return err
		}
		// Each attempt sends its own copy: the session sets the request
		// id on the envelope it sends.
		e := *env
		rep, err := l.sess.Request(ctx, &e)
		if err != nil {
			if errors.Is(err, session.ErrClosed) {
				return c.lostErr(l)
			}
			return err
		}
		body = rep.Body
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("client: command %q: %w", service, err)
	}
	return body, nil
}
