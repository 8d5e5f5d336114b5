package client

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/media"
	"github.com/jetstreamproto/jsp/session"
	"github.com/jetstreamproto/jsp/wire"
)

func TestOptionsDefaults(t *testing.T) {
	var o Options
	o.setDefaults()
	if o.DialTimeout != DefaultDialTimeout || o.HappyEyeballsDelay != DefaultHappyEyeballsDelay ||
		o.CommandTimeout != DefaultCommandTimeout || o.HandlerQueueLength != DefaultHandlerQueueLength ||
		o.HandlerPatience != DefaultHandlerPatience || o.Info.Name != DefaultClientName ||
		o.Logger == nil || o.Session.Logger != o.Logger || o.Now == nil {
		t.Fatalf("defaults not filled: %+v", o)
	}
	set := Options{DialTimeout: time.Second, HandlerQueueLength: 3}
	set.Info.Name = "app"
	set.setDefaults()
	if set.DialTimeout != time.Second || set.HandlerQueueLength != 3 || set.Info.Name != "app" {
		t.Fatalf("defaults overwrote set fields: %+v", set)
	}
}

// TestOptionsMediaFEC: the FEC capability is offered by default, once,
// without writing to the caller's slice, and not with DisableMediaFEC.
func TestOptionsMediaFEC(t *testing.T) {
	mine := make([]string, 1, 4)
	mine[0] = "x"
	cases := []struct {
		name string
		o    Options
		want []string
	}{
		{"default", Options{}, []string{media.CapFEC}},
		{"kept", Options{Session: session.Config{Capabilities: mine}}, []string{"x", media.CapFEC}},
		{"once", Options{Session: session.Config{Capabilities: []string{media.CapFEC}}}, []string{media.CapFEC}},
		{"disabled", Options{DisableMediaFEC: true, Session: session.Config{Capabilities: mine}}, []string{"x"}},
	}
	for _, c := range cases {
		c.o.setDefaults()
		if !slices.Equal(c.o.Session.Capabilities, c.want) {
			t.Errorf("%s: capabilities %q, want %q", c.name, c.o.Session.Capabilities, c.want)
		}
	}
	if got := mine[:cap(mine)][1]; got != "" {
		t.Fatalf("the caller's backing array was written: %q", got)
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		o    Options
		want string
	}{
		{name: "zero", o: Options{}},
		{name: "negative dial timeout", o: Options{DialTimeout: -1}, want: "negative duration"},
		{name: "negative head start", o: Options{HappyEyeballsDelay: -1}, want: "negative duration"},
		{name: "negative command timeout", o: Options{CommandTimeout: -1}, want: "negative duration"},
		{name: "negative patience", o: Options{HandlerPatience: -1}, want: "negative duration"},
		{name: "negative queue", o: Options{HandlerQueueLength: -1}, want: "HandlerQueueLength"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.o.validate()
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("validate() = %v, want containing %q", err, tt.want)
			}
		})
	}
}

func TestPerCallOptions(t *testing.T) {
	var m wire.Subscribe
	Since(0)(&m)
	if !m.HasSince || m.Since != 0 {
		t.Fatalf("Since(0) = %+v: zero must still replay", m)
	}
	Since(42)(&m)
	if m.Since != 42 {
		t.Fatalf("Since(42) = %+v", m)
	}
	var e wire.Envelope
	WithClass(protocol.ClassBulk)(&e)
	WithTTL(1500 * time.Microsecond)(&e)
	WithHeaders(map[string]string{"k": "v"})(&e)
	if e.Class != protocol.ClassBulk || e.TTL != 1 || e.Headers["k"] != "v" {
		t.Fatalf("envelope after options: %+v", e)
	}
	WithTTL(0)(&e)
	if e.TTL != 1 {
		t.Fatalf("WithTTL(0) gave TTL %d: a TTL is at least 1 ms, 0 means none", e.TTL)
	}
	var so streamOpts
	WithMetadata(map[string]string{"name": "f"})(&so)
	if so.meta["name"] != "f" {
		t.Fatalf("WithMetadata: %+v", so)
	}
}
