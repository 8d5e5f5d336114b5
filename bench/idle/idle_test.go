package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestParsePromGauge(t *testing.T) {
	text := "# HELP go_memstats_heap_inuse_bytes x\n# TYPE go_memstats_heap_inuse_bytes gauge\n" +
		"go_memstats_heap_inuse_bytes 1.2345e+07\ngo_memstats_heap_inuse_bytes_total 5\nother{a=\"b\"} 3\n"
	v, err := parsePromGauge(text, "go_memstats_heap_inuse_bytes")
	if err != nil || v != 12345000 {
		t.Fatalf("parsePromGauge = %v, %v", v, err)
	}
	if _, err := parsePromGauge(text, "missing"); err == nil {
		t.Fatal("missing metric found")
	}
}

func TestSourceAddr(t *testing.T) {
	seen := map[string]bool{}
	for i := range 600 {
		ip := SourceAddr(i, 300)
		if !ip.IsLoopback() {
			t.Fatalf("SourceAddr(%d) = %v, not loopback", i, ip)
		}
		seen[ip.String()] = true
	}
	if len(seen) != 300 {
		t.Fatalf("%d distinct addresses, want 300", len(seen))
	}
	if SourceAddr(0, 300).String() != "127.1.0.1" || SourceAddr(255, 300).String() != "127.1.1.0" {
		t.Fatalf("addresses %v %v", SourceAddr(0, 300), SourceAddr(255, 300))
	}
}

type countCloser struct{ n *atomic.Int64 }

func (c countCloser) Close() error { c.n.Add(1); return nil }

func TestHoldLoop(t *testing.T) {
	var dialed, closed atomic.Int64
	var out bytes.Buffer
	err := HoldLoop(strings.NewReader("3\n5\n2\n"), &out, 2, func(_ context.Context, i int) (io.Closer, error) {
		dialed.Add(1)
		return countCloser{&closed}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Totals only grow: asking for 2 after 5 keeps 5.
	if got := out.String(); got != "at 3\nat 5\nat 5\n" {
		t.Fatalf("output %q", got)
	}
	if dialed.Load() != 5 || closed.Load() != 5 {
		t.Fatalf("dialed %d closed %d, want 5 and 5", dialed.Load(), closed.Load())
	}

	out.Reset()
	err = HoldLoop(strings.NewReader("4\n"), &out, 1, func(_ context.Context, i int) (io.Closer, error) {
		if i == 2 {
			return nil, errors.New("refused")
		}
		return countCloser{&closed}, nil
	})
	if err != nil || !strings.HasPrefix(out.String(), "error: at 2:") {
		t.Fatalf("output %q err %v, want an error line at 2", out.String(), err)
	}
	if err := HoldLoop(strings.NewReader("x\n"), &out, 1, nil); err == nil {
		t.Fatal("bad total accepted")
	}
}
