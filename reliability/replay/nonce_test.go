package replay

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
)

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func nonce(i uint64) []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint64(b, i)
	return b
}

func TestNonceConfig(t *testing.T) {
	tests := []struct {
		name    string
		cfg     NonceConfig
		wantErr bool
	}{
		{"zero is valid", NonceConfig{}, false},
		{"short skew shrinks the default bucket", NonceConfig{MaxSkew: time.Second}, false},
		{"negative skew", NonceConfig{MaxSkew: -1}, true},
		{"bucket wider than skew", NonceConfig{MaxSkew: time.Second, BucketWidth: 2 * time.Second}, true},
		{"negative max nonces", NonceConfig{MaxNonces: -1}, true},
		{"nonce length below minimum", NonceConfig{MaxNonceLen: 4}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewNonceChecker(tt.cfg)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
		})
	}
}

func TestNonceScript(t *testing.T) {
	type step struct {
		ts    time.Duration // offset of the message timestamp from t0
		now   time.Duration // offset of the receiver clock from t0
		nonce uint64
		want  error
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"fresh then replay", []step{{0, 0, 1, nil}, {0, 0, 1, ErrReplayed}, {0, time.Second, 1, ErrReplayed}}},
		{"same nonce, other bucket", []step{{0, 0, 1, nil}, {10 * time.Second, 10 * time.Second, 1, nil}}},
		{"skew limits", []step{
			{-30 * time.Second, 0, 1, nil},
			{30 * time.Second, 0, 2, nil},
			{-30*time.Second - 1, 0, 3, ErrStale},
			{30*time.Second + 1, 0, 4, ErrStale},
		}},
		{"replay after expiry is stale", []step{{0, 0, 1, nil}, {0, 31 * time.Second, 1, ErrStale}}},
		{"replay just inside the window is caught", []step{{0, 0, 1, nil}, {0, 30 * time.Second, 1, ErrReplayed}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewNonceChecker(NonceConfig{})
			if err != nil {
				t.Fatal(err)
			}
			for i, s := range tt.steps {
				err := c.Check(t0.Add(s.ts), nonce(s.nonce), t0.Add(s.now))
				if !errors.Is(err, s.want) || (err == nil) != (s.want == nil) {
					t.Fatalf("step %d: err = %v, want %v", i, err, s.want)
				}
			}
		})
	}
}

func TestNonceLength(t *testing.T) {
	c, _ := NewNonceChecker(NonceConfig{})
	for _, n := range []int{0, MinNonceLen - 1, DefaultMaxNonceLen + 1} {
		if err := c.Check(t0, make([]byte, n), t0); !errors.Is(err, ErrBadNonce) {
			t.Fatalf("nonce of %d bytes: err = %v", n, err)
		}
	}
	for _, n := range []int{MinNonceLen, DefaultMaxNonceLen} {
		if err := c.Check(t0, make([]byte, n), t0); err != nil {
			t.Fatalf("nonce of %d bytes: err = %v", n, err)
		}
	}
	if s := c.Stats(); s.BadNonce != 3 || s.Accepted != 2 {
		t.Fatalf("stats %+v", s)
	}
}

func TestNonceMemoryBounded(t *testing.T) {
	c, _ := NewNonceChecker(NonceConfig{MaxNonces: 100})
	for i := uint64(0); i < 100; i++ {
		if err := c.Check(t0, nonce(i), t0); err != nil {
			t.Fatal(err)
		}
	}
	err := c.Check(t0, nonce(100), t0)
	if !errors.Is(err, ErrNonceMemoryFull) || jsperr.CodeOf(err) != jsperr.RateLimited {
		t.Fatalf("101st nonce: err = %v", err)
	}
	// A replay is still reported as a replay, not as a full memory.
	if err := c.Check(t0, nonce(5), t0); !errors.Is(err, ErrReplayed) {
		t.Fatalf("replay while full: err = %v", err)
	}
	// Once the bucket is stale it is dropped and memory is free again.
	later := t0.Add(DefaultMaxSkew + DefaultBucketWidth)
	if err := c.Check(later, nonce(100), later); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
	if c.Len() != 1 || c.Buckets() != 1 {
		t.Fatalf("Len = %d, Buckets = %d after expiry", c.Len(), c.Buckets())
	}
}

func TestNonceBucketsBounded(t *testing.T) {
	// A steady stream for ten minutes: the checker holds only the buckets
	// of the skew window, not the history.
	c, _ := NewNonceChecker(NonceConfig{})
	maxBuckets := int(2*DefaultMaxSkew/DefaultBucketWidth) + 2
	for i := uint64(0); i < 6000; i++ {
		now := t0.Add(time.Duration(i) * 100 * time.Millisecond)
		if err := c.Check(now.Add(-time.Second), nonce(i), now); err != nil {
			t.Fatal(err)
		}
		if c.Buckets() > maxBuckets {
			t.Fatalf("after %d messages: %d buckets, bound %d", i, c.Buckets(), maxBuckets)
		}
	}
	// 30 s of skew behind plus the partial bucket: at most 35 s of traffic
	// at 10 messages per second.
	if c.Len() > 350 {
		t.Fatalf("remembering %d nonces", c.Len())
	}
}

func TestNonceBeforeEpoch(t *testing.T) {
	c, _ := NewNonceChecker(NonceConfig{})
	old := time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := c.Check(old, nonce(1), old); err != nil {
		t.Fatal(err)
	}
	if err := c.Check(old, nonce(1), old); !errors.Is(err, ErrReplayed) {
		t.Fatalf("replay before 1970: %v", err)
	}
}

func FuzzNonceChecker(f *testing.F) {
	f.Add([]byte{0, 1, 0, 1, 5, 0, 200, 2})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := NewNonceChecker(NonceConfig{MaxSkew: 10 * time.Second, BucketWidth: 2 * time.Second, MaxNonces: 50})
		if err != nil {
			t.Fatal(err)
		}
		type key struct {
			ts    time.Time
			nonce uint64
		}
		accepted := map[key]bool{}
		now := t0
		for len(data) >= 3 {
			now = now.Add(time.Duration(data[0]) * 100 * time.Millisecond)
			ts := now.Add(time.Duration(int8(data[1])) * 100 * time.Millisecond)
			k := key{ts, uint64(data[2] % 16)}
			data = data[3:]
			err := c.Check(ts, nonce(k.nonce), now)
			if err == nil && accepted[k] {
				t.Fatalf("replay of %v accepted", k)
			}
			if err == nil {
				accepted[k] = true
			}
			if c.Len() > 50 {
				t.Fatalf("remembering %d nonces, cap 50", c.Len())
			}
		}
	})
}
