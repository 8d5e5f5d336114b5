package core_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/server/storage"
)

// TestShutdown checks that Shutdown returns as soon as no request is in
// progress (it does not wait for the core's own background work), that
// requests after it are not served, and that WriteMetrics reports the
// counters.
func TestShutdown(t *testing.T) {
	f := newFixture(t, newMemBus(t))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := f.client.Publish(ctx, "room", storage.Message{ClientID: "c1", Sender: "u", Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := f.core.WriteMetrics(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"jsp_core_requests_total 1\n", "jsp_core_published_total 1\n", "jsp_core_failed_total 0\n"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, b.String())
		}
	}
	start := time.Now()
	if err := f.core.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown = %v after %v", err, time.Since(start))
	}
	rctx, rcancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer rcancel()
	if _, err := f.client.Publish(rctx, "room", storage.Message{ClientID: "c2", Sender: "u", Body: []byte("y")}); err == nil {
		t.Fatal("a stopped core served a request")
	} else if errors.Is(err, context.Canceled) {
		t.Fatalf("unexpected error %v", err)
	}
}
