package natsbus

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetstreamproto/jsp/server/bus"
)

// TestTransient pins which JetStream answers the open retry waits out and
// which it reports at once.
func TestTransient(t *testing.T) {
	api := func(code jetstream.ErrorCode, status int, desc string) error {
		return fmt.Errorf("create: %w", &jetstream.APIError{ErrorCode: code, Code: status, Description: desc})
	}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"attempt deadline", fmt.Errorf("3 replicas: %w", context.DeadlineExceeded), true},
		{"nats timeout", nats.ErrTimeout, true},
		{"no responders", mapErr(nats.ErrNoResponders), true},
		{"jetstream not enabled yet", jetstream.ErrJetStreamNotEnabled, true},
		{"no meta leader", api(10008, 503, "JetStream system temporarily unavailable"), true},
		{"not leader", api(10009, 500, "JetStream cluster can not handle request"), true},
		{"insufficient resources", api(10023, 503, "insufficient resources"), true},
		{"stream offline", api(10118, 500, "stream is offline"), true},
		{"peer offline", api(10005, 500, "no suitable peers for placement, peer offline"), true},
		{"other 503", api(10999, 503, "unavailable"), true},
		{"cluster too small", api(10005, 500, "no suitable peers for placement"), false},
		{"replicas in single mode", api(10074, 500, "replicas > 1 not supported in non-clustered mode"), false},
		{"config mismatch", api(10058, 400, "stream name already in use with a different configuration"), false},
		{"subjects overlap", api(10065, 400, "subjects overlap with an existing stream"), false},
		{"permission", fmt.Errorf("%w: %w", bus.ErrPermission, nats.ErrPermissionViolation), false},
		{"closed", bus.ErrClosed, false},
		{"plain error", errors.New("bad"), false},
		{"nil", nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := transient(tc.err); got != tc.want {
				t.Fatalf("transient(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

// TestOpenAttemptTimeout checks the deadlines of successive attempts:
// 1 s doubling up to the configured limit, never above it.
func TestOpenAttemptTimeout(t *testing.T) {
	tests := []struct {
		n     int
		limit time.Duration
		want  time.Duration
	}{
		{1, DefaultAPITimeout, time.Second},
		{2, DefaultAPITimeout, 2 * time.Second},
		{3, DefaultAPITimeout, 4 * time.Second},
		{4, DefaultAPITimeout, DefaultAPITimeout},
		{40, DefaultAPITimeout, DefaultAPITimeout},
		{1, 300 * time.Millisecond, 300 * time.Millisecond},
	}
	for _, tc := range tests {
		if got := openAttemptTimeout(tc.n, tc.limit); got != tc.want {
			t.Errorf("openAttemptTimeout(%d, %v) = %v, want %v", tc.n, tc.limit, got, tc.want)
		}
	}
}

// TestOpenBackoff checks the pause between attempts: doubling from
// openRetryMin, capped at openRetryMax, jitter at most a quarter on top.
func TestOpenBackoff(t *testing.T) {
	none := func(int64) int64 { return 0 }
	most := func(n int64) int64 { return n - 1 }
	tests := []struct {
		n      int
		jitter func(int64) int64
		want   time.Duration
	}{
		{1, none, openRetryMin},
		{2, none, 2 * openRetryMin},
		{3, none, 4 * openRetryMin},
		{30, none, openRetryMax},
		{1, most, openRetryMin + openRetryMin/4},
		{30, most, openRetryMax + openRetryMax/4},
	}
	for _, tc := range tests {
		if got := openBackoff(tc.n, tc.jitter); got != tc.want {
			t.Errorf("openBackoff(%d) = %v, want %v", tc.n, got, tc.want)
		}
	}
}
