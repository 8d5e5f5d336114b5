package nack

import (
	"bytes"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
)

func TestCacheConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  CacheConfig
		ok   bool
	}{
		{"zero", CacheConfig{}, true},
		{"negative packets", CacheConfig{MaxPackets: -1}, false},
		{"negative bytes", CacheConfig{MaxBytes: -1}, false},
		{"negative delay", CacheConfig{MaxDelay: -1}, false},
	}
	for _, tt := range tests {
		if _, err := NewCache(tt.cfg); (err == nil) != tt.ok {
			t.Fatalf("%s: err = %v", tt.name, err)
		}
	}
}

func TestCacheResend(t *testing.T) {
	c, _ := NewCache(CacheConfig{MaxDelay: 300 * time.Millisecond})
	for i := 0; i < 10; i++ {
		if err := c.Add(protocol.MediaSeq(100+i), []byte{byte(i)}, ms(10*i)); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		seq  protocol.MediaSeq
		now  int
		rtt  time.Duration
		want ResendStatus
		data byte
	}{
		{"fresh", 103, 100, 100 * time.Millisecond, Resent, 3},
		{"exactly at the deadline", 103, 280, 100 * time.Millisecond, Resent, 3}, // 280 + 50 = 330 = 30 + 300
		{"just past the deadline", 103, 281, 100 * time.Millisecond, TooLate, 0},
		{"long RTT", 109, 100, 600 * time.Millisecond, TooLate, 0}, // 100 + 300 > 390
		{"never added", 99, 100, 0, NotCached, 0},
		{"in the future", 110, 100, 0, NotCached, 0},
		{"expired and dropped", 100, 301, 0, NotCached, 0}, // captured at 0, deadline 300
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, st := c.Resend(tt.seq, ms(tt.now), tt.rtt)
			if st != tt.want {
				t.Fatalf("status = %v, want %v", st, tt.want)
			}
			if st == Resent && (len(got) != 1 || got[0] != tt.data) {
				t.Fatalf("data = %v, want [%d]", got, tt.data)
			}
		})
	}
	if s := c.Stats(); s.Resent != 2 || s.TooLate != 2 || s.NotCached != 3 || s.Expired != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestCacheBounds(t *testing.T) {
	tests := []struct {
		name      string
		cfg       CacheConfig
		sizes     []int
		wantLen   int
		wantBytes protocol.ByteCount
		evicted   uint64
	}{
		{"count", CacheConfig{MaxPackets: 3}, []int{10, 10, 10, 10, 10}, 3, 30, 2},
		{"bytes", CacheConfig{MaxBytes: 100}, []int{40, 40, 40, 10}, 3, 90, 1},
		{"oversize packet not stored", CacheConfig{MaxBytes: 100}, []int{50, 101, 20}, 2, 70, 1},
		{"exact fit", CacheConfig{MaxBytes: 100}, []int{50, 50}, 2, 100, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := NewCache(tt.cfg)
			for i, n := range tt.sizes {
				if err := c.Add(protocol.MediaSeq(i), make([]byte, n), t0); err != nil {
					t.Fatal(err)
				}
				if c.Len() > c.cfg.MaxPackets || c.Bytes() > c.cfg.MaxBytes {
					t.Fatalf("after add %d: %d packets, %d bytes", i, c.Len(), c.Bytes())
				}
			}
			if c.Len() != tt.wantLen || c.Bytes() != tt.wantBytes || c.Stats().Evicted != tt.evicted {
				t.Fatalf("Len %d Bytes %d Evicted %d; want %d %d %d", c.Len(), c.Bytes(), c.Stats().Evicted, tt.wantLen, tt.wantBytes, tt.evicted)
			}
			// The newest packet is always there.
			last := protocol.MediaSeq(len(tt.sizes) - 1)
			if n := tt.sizes[last]; protocol.ByteCount(n) <= c.cfg.MaxBytes {
				if _, st := c.Resend(last, t0, 0); st != Resent {
					t.Fatalf("newest packet: %v", st)
				}
			}
		})
	}
}

func TestCacheOrderAndCopy(t *testing.T) {
	c, _ := NewCache(CacheConfig{})
	buf := []byte("hello")
	if err := c.Add(5, buf, t0); err != nil {
		t.Fatal(err)
	}
	buf[0] = 'j'
	if got, _ := c.Resend(5, t0, 0); !bytes.Equal(got, []byte("hello")) {
		t.Fatalf("cache kept the caller's buffer: %q", got)
	}
	for _, s := range []protocol.MediaSeq{5, 4} {
		if err := c.Add(s, nil, t0); err == nil {
			t.Fatalf("Add(%d) after 5 accepted", s)
		}
	}
}

func TestCacheWrapsRing(t *testing.T) {
	c, _ := NewCache(CacheConfig{MaxPackets: 7})
	for i := 0; i < 100; i++ {
		if err := c.Add(protocol.MediaSeq(i*3), []byte{byte(i)}, ms(i)); err != nil {
			t.Fatal(err)
		}
		for j := max(0, i-6); j <= i; j++ {
			got, st := c.Resend(protocol.MediaSeq(j*3), ms(i), 0)
			if st != Resent || got[0] != byte(j) {
				t.Fatalf("after %d adds, seq %d: %v %v", i+1, j*3, st, got)
			}
			if _, st := c.Resend(protocol.MediaSeq(j*3+1), ms(i), 0); st != NotCached {
				t.Fatalf("seq %d never added: %v", j*3+1, st)
			}
		}
	}
}

// TestCacheGet: Get finds what is held, counts nothing and expires nothing.
func TestCacheGet(t *testing.T) {
	c, _ := NewCache(CacheConfig{MaxPackets: 4, MaxDelay: 300 * time.Millisecond})
	for i := range 6 {
		if err := c.Add(protocol.MediaSeq(100+i), []byte{byte(i)}, ms(10*i)); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		seq protocol.MediaSeq
		ok  bool
	}{{100, false}, {101, false}, {102, true}, {105, true}, {106, false}}
	for _, tt := range tests {
		b, ok := c.Get(tt.seq)
		if ok != tt.ok || (ok && !bytes.Equal(b, []byte{byte(tt.seq - 100)})) {
			t.Fatalf("Get(%d) = %v, %v", tt.seq, b, ok)
		}
	}
	if st := c.Stats(); st.Resent != 0 || st.NotCached != 0 || st.Expired != 0 || c.Len() != 4 {
		t.Fatalf("Get changed the cache: %+v, %d held", st, c.Len())
	}
}
