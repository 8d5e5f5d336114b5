package client

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"testing"
	"time"
)

func TestBackoffCeiling(t *testing.T) {
	r := ReconnectOptions{}
	r.setDefaults()
	want := []time.Duration{
		250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second,
		4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second,
	}
	for n, w := range want {
		if got := r.backoffCeiling(n); got != w {
			t.Errorf("ceiling(%d) = %v, want %v", n, got, w)
		}
	}
	// Far rounds neither overflow nor pass the cap.
	if got := r.backoffCeiling(1000); got != DefaultReconnectMaxBackoff {
		t.Errorf("ceiling(1000) = %v, want the cap", got)
	}
}

func TestBackoffDefaultsAndValidate(t *testing.T) {
	for _, tt := range []struct {
		name          string
		in            ReconnectOptions
		wantInit, max time.Duration
		wantErr       bool
	}{
		{name: "zero", wantInit: 250 * time.Millisecond, max: 30 * time.Second},
		{name: "small cap", in: ReconnectOptions{MaxBackoff: 100 * time.Millisecond}, wantInit: 100 * time.Millisecond, max: 100 * time.Millisecond},
		{name: "big initial", in: ReconnectOptions{InitialBackoff: time.Minute}, wantInit: time.Minute, max: time.Minute},
		{name: "initial over cap", in: ReconnectOptions{InitialBackoff: 2 * time.Second, MaxBackoff: time.Second}, wantErr: true},
		{name: "negative attempts", in: ReconnectOptions{MaxAttempts: -1}, wantErr: true},
		{name: "negative queue", in: ReconnectOptions{QueueLength: -1}, wantErr: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.in
			r.setDefaults()
			err := r.validate()
			if (err != nil) != tt.wantErr {
				t.Fatalf("validate() = %v, want error %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if r.InitialBackoff != tt.wantInit || r.MaxBackoff != tt.max {
				t.Fatalf("initial %v max %v, want %v %v", r.InitialBackoff, r.MaxBackoff, tt.wantInit, tt.max)
			}
			if r.QueueLength != DefaultReconnectQueueLength {
				t.Fatalf("QueueLength %d", r.QueueLength)
			}
		})
	}
}

func TestBackoffDefaultJitterInRange(t *testing.T) {
	r := ReconnectOptions{}
	r.setDefaults()
	for n := range 12 {
		ceil := r.backoffCeiling(n)
		for range 50 {
			if d := r.backoff(n); d < 0 || d > ceil {
				t.Fatalf("backoff(%d) = %v outside [0, %v]", n, d, ceil)
			}
		}
	}
	if d := r.Jitter(0); d != 0 {
		t.Fatalf("Jitter(0) = %v", d)
	}
}

// TestRedialSchedule runs the reconnect loop against an address that
// refuses connections, with a fake clock and jitter, and checks the waits,
// the callbacks and the give-up.
func TestRedialSchedule(t *testing.T) {
	for _, tt := range []struct {
		name  string
		lost  bool
		waits []time.Duration
	}{
		// After a loss every round waits, from the first.
		{"lost", true, []time.Duration{125 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond, time.Second}},
		// After GOAWAY the first round goes at once.
		{"goaway", false, []time.Duration{125 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var waits []time.Duration
			var rounds []int
			o := Options{Logger: slog.New(slog.DiscardHandler), InsecureSkipVerify: true}
			o.Reconnect = ReconnectOptions{
				Enabled:      true,
				MaxAttempts:  4,
				Jitter:       func(c time.Duration) time.Duration { return c / 2 },
				After:        func(d time.Duration) <-chan time.Time { waits = append(waits, d); return closedTimeChan() },
				OnConnecting: func(n int) { rounds = append(rounds, n) },
			}
			o.setDefaults()
			if err := o.validate(); err != nil {
				t.Fatal(err)
			}
			plan, err := newDialPlan(&o, "jsp+tcp://127.0.0.1:1")
			if err != nil {
				t.Fatal(err)
			}
			c := &Client{opts: o, log: o.Logger, plan: plan}
			_, err = c.redial(t.Context(), nil, tt.lost)
			if err == nil {
				t.Fatal("redial to a closed port succeeded")
			}
			if !slices.Equal(waits, tt.waits) {
				t.Fatalf("waits %v, want %v", waits, tt.waits)
			}
			if !slices.Equal(rounds, []int{1, 2, 3, 4}) {
				t.Fatalf("OnConnecting rounds %v", rounds)
			}
		})
	}
}

// TestRedialStopped ends a backoff wait when the context ends.
func TestRedialStopped(t *testing.T) {
	o := Options{Logger: slog.New(slog.DiscardHandler)}
	o.Reconnect = ReconnectOptions{Enabled: true, After: func(time.Duration) <-chan time.Time { return nil }}
	o.setDefaults()
	plan, err := newDialPlan(&o, "jsp+tcp://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	c := &Client{opts: o, log: o.Logger, plan: plan}
	ctx, cancel := contextWithCancelCause(t)
	cancel(errStop)
	if _, err := c.redial(ctx, nil, true); !errors.Is(err, errStop) {
		t.Fatalf("redial = %v, want the context's cause", err)
	}
}

func closedTimeChan() <-chan time.Time {
	ch := make(chan time.Time)
	close(ch)
	return ch
}

var errStop = errors.New("stop")

func contextWithCancelCause(t *testing.T) (context.Context, context.CancelCauseFunc) {
	ctx, cancel := context.WithCancelCause(t.Context())
	t.Cleanup(func() { cancel(nil) })
	return ctx, cancel
}
