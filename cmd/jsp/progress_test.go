package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// fakeClock advances by step on every reading.
type fakeClock struct {
	t    time.Time
	step time.Duration
}

func (c *fakeClock) now() time.Time { c.t = c.t.Add(c.step); return c.t }

func TestProgressBarRender(t *testing.T) {
	start := time.Unix(1000, 0)
	p := &progressBar{label: "upload", total: 10 << 20, start: start}
	tests := []struct {
		done int64
		at   time.Duration
		want string
	}{
		{done: 0, at: 0, want: "upload   [>                             ]   0%  0 B / 10.0 MiB"},
		{done: 5 << 20, at: time.Second, want: "upload   [===============>              ]  50%  5.0 MiB / 10.0 MiB  5.0 MiB/s"},
		{done: 10 << 20, at: 2 * time.Second, want: "upload   [==============================] 100%  10.0 MiB / 10.0 MiB  5.0 MiB/s"},
	}
	for _, tt := range tests {
		p.done = tt.done
		if got := p.render(start.Add(tt.at)); got != tt.want {
			t.Errorf("render(%d bytes):\n got %q\nwant %q", tt.done, got, tt.want)
		}
	}
	empty := &progressBar{label: "x", total: 0, start: start}
	if got := empty.render(start); !strings.Contains(got, "100%") {
		t.Errorf("empty transfer renders %q, want 100%%", got)
	}
}

func TestProgressBarRedrawsInPlace(t *testing.T) {
	var out bytes.Buffer
	clock := &fakeClock{t: time.Unix(0, 0), step: progressRedraw}
	p := newProgressBar(&out, "download", 1000, clock.now)
	for range 10 {
		if n, err := p.Write(make([]byte, 100)); n != 100 || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	p.Finish()
	p.Finish() // idempotent
	s := out.String()
	if got := strings.Count(s, "\r"); got != 11 {
		t.Fatalf("%d redraws, want 11 (one per write with the clock past the interval, one at Finish)", got)
	}
	if !strings.HasSuffix(s, "\n") || strings.Count(s, "\n") != 1 {
		t.Fatalf("Finish must end the line exactly once: %q", s)
	}
	if !strings.Contains(s, "100%") {
		t.Fatalf("final state not drawn: %q", s)
	}
}

func TestProgressBarThrottles(t *testing.T) {
	var out bytes.Buffer
	clock := &fakeClock{t: time.Unix(0, 0), step: time.Millisecond}
	p := newProgressBar(&out, "upload", 1<<20, clock.now)
	for range 1000 {
		p.Write(make([]byte, 1024))
	}
	// 1000 writes 1 ms apart span 1 s: at most one redraw per interval.
	if got := strings.Count(out.String(), "\r"); got > 11 {
		t.Fatalf("%d redraws for 1 s of writes, want at most 11", got)
	}
}

func TestProgressBarNil(t *testing.T) {
	var p *progressBar
	if n, err := p.Write([]byte("abc")); n != 3 || err != nil {
		t.Fatalf("nil bar Write = %d, %v", n, err)
	}
	p.Finish()
}

func TestFormatBytes(t *testing.T) {
	tests := []struct {
		n    float64
		want string
	}{
		{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {1536, "1.5 KiB"}, {3 << 30, "3.0 GiB"}, {1 << 50, "1024.0 TiB"},
	}
	for _, tt := range tests {
		if got := formatBytes(tt.n); got != tt.want {
			t.Errorf("formatBytes(%v) = %q, want %q", tt.n, got, tt.want)
		}
	}
}
