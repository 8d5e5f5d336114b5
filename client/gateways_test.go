package client

import (
	"slices"
	"testing"
	"time"
)

func TestGatewayBookOrder(t *testing.T) {
	t0 := time.Unix(1000, 0)
	tests := []struct {
		name  string
		setup func(b *gatewayBook)
		first []string
		want  []string
	}{
		{"initial order", func(b *gatewayBook) {}, nil, []string{"a", "b"}},
		{"server list after configured", func(b *gatewayBook) { b.learn([]string{"c", "a", "d"}) }, nil, []string{"a", "b", "c", "d"}},
		{"measured rtt first", func(b *gatewayBook) {
			b.learn([]string{"c"})
			b.success("c", 5*time.Millisecond)
			b.success("a", 20*time.Millisecond)
		}, nil, []string{"c", "a", "b"}},
		{"failed last, oldest failure first", func(b *gatewayBook) {
			b.success("a", time.Millisecond)
			b.learn([]string{"c"})
			b.failure("a", t0.Add(2*time.Second))
			b.failure("b", t0.Add(time.Second))
		}, nil, []string{"c", "b", "a"}},
		{"goaway alternatives first", func(b *gatewayBook) { b.learn([]string{"c"}) }, []string{"x", "c"}, []string{"x", "c", "a", "b"}},
		{"success clears failures", func(b *gatewayBook) {
			b.failure("a", t0)
			b.success("a", 0)
		}, nil, []string{"a", "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newGatewayBook([]string{"a", "b"})
			tt.setup(b)
			if got := b.order(tt.first); !slices.Equal(got, tt.want) {
				t.Fatalf("order = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestGatewayBookRTTAverage(t *testing.T) {
	b := newGatewayBook([]string{"a"})
	b.success("a", 10*time.Millisecond)
	b.success("a", 30*time.Millisecond)
	if got := b.snapshot()[0].RTT; got != 20*time.Millisecond {
		t.Fatalf("rtt = %v", got)
	}
}

// TestGatewayBookCap checks the limit on learnt entries.
func TestGatewayBookCap(t *testing.T) {
	b := newGatewayBook(nil)
	for i := range 2 * maxBookEntries {
		b.learn([]string{string(rune('A' + i))})
	}
	if n := len(b.snapshot()); n != maxBookEntries {
		t.Fatalf("entries = %d, want %d", n, maxBookEntries)
	}
}
