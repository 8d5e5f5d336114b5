package client_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/client"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/server/gateway"
)

// commandLimit limits COMMANDs only, to rate per second with a burst of 1.
func commandLimit(rate float64) gateway.RateLimits {
	off := gateway.Rate{PerSecond: -1}
	return gateway.RateLimits{Conn: off, User: off, Channel: off, Command: gateway.Rate{PerSecond: rate, Burst: 1}}
}

// limitedCommands returns the gateway's count of COMMANDs refused with
// RATE_LIMITED.
func limitedCommands(t *testing.T, s *server) uint64 {
	t.Helper()
	return s.g.RateLimitedCounts()["command"]
}

// TestRateLimitRetrySucceeds: back-to-back commands over a limit of 5 per
// second all succeed, each refused at most once: every retry waited for
// the retry-after, or the server would have refused it again. The client's
// retries and the server's refusals are the same count.
func TestRateLimitRetrySucceeds(t *testing.T) {
	s := startServer(t, serverOpts{noQUIC: true, noWS: true, rateLimits: commandLimit(5)})
	c := s.dial(t, client.SchemeTCP)
	const calls = 4
	for i := range calls {
		if _, err := c.Command(ctxT(t), "echo", []byte("x")); err != nil {
			t.Fatalf("command %d: %v", i, err)
		}
	}
	limited := limitedCommands(t, s)
	retries := c.Stats().RateLimitRetries
	if limited == 0 || limited > calls-1 {
		// 0: the limit never bit, the test proved nothing; more than one
		// per call after the first: a retry came before the retry-after.
		t.Fatalf("server refused %d commands of %d", limited, calls)
	}
	if retries != limited {
		t.Fatalf("client retried %d times, server refused %d", retries, limited)
	}
}

// TestRateLimitRetryGivesUp: RATE_LIMITED reaches the caller, with its
// retry-after, when retrying is off, when the attempts are used up, when
// the wait would pass MaxWait, and when ctx ends first.
func TestRateLimitRetryGivesUp(t *testing.T) {
	// The server's clock runs at a thousandth of real time, so its bucket
	// does not refill within the test: every retry is refused again.
	start := time.Now()
	slowClock := func() time.Time { return start.Add(time.Since(start) / 1000) }
	for _, tc := range []struct {
		name    string
		rate    float64 // commands per second: a retry-after of 1/rate
		retry   client.RateLimitRetry
		timeout time.Duration // of the call's ctx; 0: ctxT's
		cancel  bool          // cancel the call's ctx during its first wait
		retries uint64        // sent again by the client
		limited uint64        // refused by the server, the first call's included
	}{
		{name: "disabled", rate: 20, retry: client.RateLimitRetry{Disabled: true}, limited: 1},
		{name: "attempts", rate: 20, retry: client.RateLimitRetry{Attempts: 3}, retries: 2, limited: 3},
		{name: "max wait", rate: 20, retry: client.RateLimitRetry{MaxWait: 10 * time.Millisecond}, limited: 1},
		// A retry-after of 100 s does not fit the 5 s deadline: no wait.
		{name: "deadline", rate: 0.01, timeout: 5 * time.Second, limited: 1},
		// A retry-after of 1 s, cancelled while waiting for it.
		{name: "cancel", rate: 1, timeout: 10 * time.Second, cancel: true, retries: 1, limited: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// 20 per second: a retry-after of 50 ms.
			s := startServer(t, serverOpts{noQUIC: true, noWS: true, rateLimits: commandLimit(tc.rate), now: slowClock})
			c := s.dial(t, client.SchemeTCP, func(o *client.Options) { o.RateLimitRetry = tc.retry })
			if _, err := c.Command(ctxT(t), "echo", []byte("first")); err != nil {
				t.Fatal(err)
			}
			ctx := ctxT(t)
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(context.Background(), tc.timeout)
				defer cancel()
				if tc.cancel {
					stop := make(chan struct{})
					defer close(stop)
					go func() {
						// The retry is counted before its wait begins.
						for c.Stats().RateLimitRetries == 0 {
							select {
							case <-stop:
								return
							case <-time.After(time.Millisecond):
							}
						}
						cancel()
					}()
				}
			}
			_, err := c.Command(ctx, "echo", []byte("x"))
			if tc.cancel && jsperr.CodeOf(err) != jsperr.Cancelled && !errors.Is(err, context.Canceled) {
				t.Fatalf("cancelled call: %v", err)
			}
			var je *jsperr.Error
			if !errors.As(err, &je) || je.Code != jsperr.RateLimited || je.RetryAfter <= 0 {
				t.Fatalf("err = %v, want RATE_LIMITED with a retry-after", err)
			}
			if got := c.Stats().RateLimitRetries; got != tc.retries {
				t.Fatalf("client retried %d times, want %d", got, tc.retries)
			}
			if got := limitedCommands(t, s); got != tc.limited {
				t.Fatalf("server refused %d, want %d", got, tc.limited)
			}
		})
	}
}
