package client

import (
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
)

// TestRateLimitWait: the wait is never shorter than the retry-after plus
// the wire's millisecond grain, and jitter only lengthens it, by at most
// Jitter of it.
func TestRateLimitWait(t *testing.T) {
	for _, tc := range []struct {
		name       string
		r          RateLimitRetry
		retryAfter time.Duration
		min, max   time.Duration
	}{
		{"no jitter", RateLimitRetry{Jitter: -1}, 100 * time.Millisecond, 101 * time.Millisecond, 101 * time.Millisecond},
		{"jitter low", RateLimitRetry{Rand: func() float64 { return 0 }}, 100 * time.Millisecond, 101 * time.Millisecond, 101 * time.Millisecond},
		{"jitter high", RateLimitRetry{Rand: func() float64 { return 0.999999 }}, 100 * time.Millisecond, 101 * time.Millisecond, 121200 * time.Microsecond},
		{"no retry-after", RateLimitRetry{Jitter: -1}, 0, DefaultRateLimitRetryAfter + time.Millisecond, DefaultRateLimitRetryAfter + time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.r
			r.setDefaults()
			e := jsperr.New(jsperr.RateLimited, "test")
			e.RetryAfter = tc.retryAfter
			if d := r.wait(e); d < tc.min || d > tc.max {
				t.Fatalf("wait %v outside [%v, %v]", d, tc.min, tc.max)
			}
		})
	}
}

func TestRateLimitRetryValidate(t *testing.T) {
	for _, r := range []RateLimitRetry{{Attempts: -1}, {MaxWait: -1}, {DefaultRetryAfter: -1}, {Jitter: 11}} {
		if err := r.validate(); err == nil {
			t.Errorf("%+v accepted", r)
		}
	}
	if err := (&RateLimitRetry{}).validate(); err != nil {
		t.Fatal(err)
	}
}
