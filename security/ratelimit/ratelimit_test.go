package ratelimit

import (
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
)

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *testClock { return &testClock{now: t0} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func mustNew(t testing.TB, cfg Config) *Limiter {
	t.Helper()
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestLimiterBucket(t *testing.T) {
	type step struct {
		advance time.Duration
		cost    int
		ok      bool
		retry   time.Duration // when refused
	}
	tests := []struct {
		name  string
		rate  float64
		burst int
		steps []step
	}{
		{"burst then refuse", 10, 3, []step{
			{0, 1, true, 0}, {0, 1, true, 0}, {0, 1, true, 0},
			{0, 1, false, 100 * time.Millisecond},
		}},
		{"refill", 10, 3, []step{
			{0, 3, true, 0}, {0, 1, false, 100 * time.Millisecond},
			{50 * time.Millisecond, 1, false, 50 * time.Millisecond},
			{50 * time.Millisecond, 1, true, 0},
			{0, 1, false, 100 * time.Millisecond},
		}},
		{"refill caps at burst", 10, 3, []step{
			{0, 3, true, 0}, {time.Hour, 3, true, 0}, {0, 1, false, 100 * time.Millisecond},
		}},
		{"cost", 2, 4, []step{
			{0, 3, true, 0}, {0, 2, false, 500 * time.Millisecond}, {0, 1, true, 0},
			{0, 4, false, 2 * time.Second},
		}},
		{"slow rate", 0.5, 1, []step{
			{0, 1, true, 0}, {time.Second, 1, false, time.Second}, {time.Second, 1, true, 0},
		}},
		{"cost above burst", 10, 3, []step{{0, 4, false, 0}}},
		{"zero cost always allowed", 1, 1, []step{{0, 1, true, 0}, {0, 0, true, 0}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			l := mustNew(t, Config{Name: "test", Rate: tt.rate, Burst: tt.burst, Now: clk.Now})
			for i, st := range tt.steps {
				clk.Advance(st.advance)
				err := l.AllowN("k", st.cost)
				if (err == nil) != st.ok {
					t.Fatalf("step %d: err %v, want ok %v", i, err, st.ok)
				}
				if err != nil {
					e, ok := err.(*jsperr.Error)
					if !ok || e.Code != jsperr.RateLimited {
						t.Fatalf("step %d: error %v is not RATE_LIMITED", i, err)
					}
					if e.RetryAfter != st.retry {
						t.Fatalf("step %d: RetryAfter %v, want %v", i, e.RetryAfter, st.retry)
					}
				}
			}
		})
	}
}

// TestRetryAfterSuffices checks that waiting RetryAfter is always enough.
func TestRetryAfterSuffices(t *testing.T) {
	clk := newClock()
	l := mustNew(t, Config{Rate: 3, Burst: 5, Now: clk.Now})
	for i := range 200 {
		cost := 1 + i%5
		err := l.AllowN("k", cost)
		if err == nil {
			continue
		}
		clk.Advance(err.(*jsperr.Error).RetryAfter)
		if err := l.AllowN("k", cost); err != nil {
			t.Fatalf("request %d refused after RetryAfter: %v", i, err)
		}
	}
}

func TestClockStepsBack(t *testing.T) {
	clk := newClock()
	l := mustNew(t, Config{Rate: 1, Burst: 1, Now: clk.Now})
	if err := l.Allow("k"); err != nil {
		t.Fatal(err)
	}
	clk.Advance(-time.Hour)
	if err := l.Allow("k"); err == nil {
		t.Fatal("a clock stepping back refilled the bucket")
	}
	clk.Advance(time.Second)
	if err := l.Allow("k"); err != nil {
		t.Fatalf("after a second: %v", err)
	}
}

func TestBoundedMemory(t *testing.T) {
	for _, maxKeys := range []int{100, 4096} {
		t.Run(fmt.Sprint(maxKeys), func(t *testing.T) {
			clk := newClock()
			l := mustNew(t, Config{Rate: 1, Burst: 2, MaxKeys: maxKeys, Now: clk.Now})
			for i := range 10 * maxKeys {
				l.Allow(fmt.Sprint("key-", i))
				if i%10 == 0 {
					l.Allow("hot") // recently used keys survive
				}
			}
			s := l.Stats()
			if s.Keys > maxKeys {
				t.Fatalf("%d buckets, cap %d", s.Keys, maxKeys)
			}
			if s.Evicted < uint64(9*maxKeys) {
				t.Fatalf("evicted %d", s.Evicted)
			}
			if maxKeys < shardedFrom {
				// With one shard the LRU order is exact: "hot" was used a few
				// keys ago and must still be drained.
				if err := l.AllowN("hot", 2); err == nil {
					t.Fatal("hot key's bucket was evicted")
				}
			}
		})
	}
}

func TestSweep(t *testing.T) {
	clk := newClock()
	l := mustNew(t, Config{Rate: 1, Burst: 2, Now: clk.Now})
	l.AllowN("a", 2)
	l.AllowN("b", 1)
	if n := l.Sweep(); n != 0 {
		t.Fatalf("swept %d drained buckets", n)
	}
	clk.Advance(time.Second)
	if n := l.Sweep(); n != 1 || l.Len() != 1 {
		t.Fatalf("swept %d, %d left; want b dropped", n, l.Len())
	}
	clk.Advance(time.Second)
	if n := l.Sweep(); n != 1 || l.Len() != 0 {
		t.Fatalf("swept %d, %d left", n, l.Len())
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []Config{{}, {Rate: -1}, {Rate: 1, Burst: -1}, {Rate: 1, MaxKeys: -1}} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
	l := mustNew(t, Config{Rate: 2.5})
	if c := l.Config(); c.Burst != 3 || c.MaxKeys != DefaultMaxKeys {
		t.Fatalf("defaults %+v", c)
	}
}

// TestConcurrentAllow checks under -race that a frozen clock admits
// exactly Burst requests however many goroutines ask.
func TestConcurrentAllow(t *testing.T) {
	clk := newClock()
	l := mustNew(t, Config{Rate: 1, Burst: 50, MaxKeys: 4096, Now: clk.Now})
	var mu sync.Mutex
	allowed := map[string]int{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range 400 {
				key := fmt.Sprint("k", i%4)
				if l.Allow(key) == nil {
					mu.Lock()
					allowed[key]++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	for k, n := range allowed {
		if n != 50 {
			t.Errorf("%s: %d allowed, want 50", k, n)
		}
	}
}

func TestSet(t *testing.T) {
	clk := newClock()
	s, err := NewSet(SetConfig{
		IP:      Config{Rate: 1, Burst: 3},
		User:    Config{Rate: 1, Burst: 2},
		Command: Config{Rate: 1, Burst: 1},
		Now:     clk.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	ip := netip.MustParseAddr("192.0.2.1")
	// Command "send" by alice: 1 allowed, then refused by the command scope;
	// the refused request must not have consumed IP or user tokens.
	if err := s.Allow(Request{IP: ip, User: "alice", Command: "send"}); err != nil {
		t.Fatal(err)
	}
	err = s.Allow(Request{IP: ip, User: "alice", Command: "send"})
	if jsperr.CodeOf(err) != jsperr.RateLimited || err.(*jsperr.Error).RetryAfter != time.Second {
		t.Fatalf("second send: %v", err)
	}
	if err := s.Allow(Request{IP: ip, User: "alice", Command: "edit"}); err != nil {
		t.Fatalf("another command: %v", err)
	}
	// IP has had 2 taken, user 2: the user scope refuses now.
	if err := s.Allow(Request{IP: ip, User: "alice", Command: "read"}); jsperr.CodeOf(err) != jsperr.RateLimited {
		t.Fatalf("user limit: %v", err)
	}
	if err := s.Allow(Request{IP: ip, User: "bob"}); err != nil {
		t.Fatalf("bob from the same IP: %v", err)
	}
	if err := s.Allow(Request{IP: ip, User: "carol"}); jsperr.CodeOf(err) != jsperr.RateLimited {
		t.Fatalf("IP limit: %v", err)
	}
	if s.Limiter(ScopeConn) != nil || s.Limiter(ScopeIP) == nil || s.Limiter(NumScopes) != nil {
		t.Fatal("Limiter() scopes wrong")
	}
	stats := s.Stats()
	// "read" was refused by the user scope and carol by the IP scope before
	// their later scopes were reached, so neither made buckets there.
	if stats[ScopeIP].Keys != 1 || stats[ScopeUser].Keys != 2 || stats[ScopeCommand].Keys != 2 {
		t.Fatalf("stats %+v", stats)
	}
	clk.Advance(time.Hour)
	if n := s.Sweep(); n != 1+2+2 {
		t.Fatalf("swept %d", n)
	}
}

func TestIPKey(t *testing.T) {
	tests := []struct {
		addr   string
		prefix int
		want   string
	}{
		{"192.0.2.1", 64, "192.0.2.1"},
		{"::ffff:192.0.2.1", 64, "192.0.2.1"},
		{"2001:db8:1:2:3:4:5:6", 64, "2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff::1", 64, "2001:db8:1:2::/64"},
		{"2001:db8:1:2:3:4:5:6", 128, "2001:db8:1:2:3:4:5:6/128"},
		{"2001:db8:1:2:3:4:5:6", 48, "2001:db8:1::/48"},
		{"fe80::1%eth0", 64, "fe80::/64"},
	}
	for _, tt := range tests {
		if got := IPKey(netip.MustParseAddr(tt.addr), tt.prefix); got != tt.want {
			t.Errorf("IPKey(%s, %d) = %s, want %s", tt.addr, tt.prefix, got, tt.want)
		}
	}
}

func TestSetIPv6Prefix(t *testing.T) {
	clk := newClock()
	s, err := NewSet(SetConfig{IP: Config{Rate: 1, Burst: 1}, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Allow(Request{IP: netip.MustParseAddr("2001:db8::1")}); err != nil {
		t.Fatal(err)
	}
	// Another address in the same /64 shares the bucket.
	if err := s.Allow(Request{IP: netip.MustParseAddr("2001:db8::ffff")}); jsperr.CodeOf(err) != jsperr.RateLimited {
		t.Fatalf("same /64: %v", err)
	}
	if err := s.Allow(Request{IP: netip.MustParseAddr("2001:db8:0:1::1")}); err != nil {
		t.Fatalf("other /64: %v", err)
	}
	// No IP, no IP limit.
	if err := s.Allow(Request{}); err != nil {
		t.Fatal(err)
	}
	if _, err := NewSet(SetConfig{IPv6Prefix: 129}); err == nil {
		t.Fatal("prefix 129 accepted")
	}
	if _, err := NewSet(SetConfig{User: Config{Rate: -1}}); err == nil {
		t.Fatal("bad scope config accepted")
	}
}

func TestCommandKeys(t *testing.T) {
	s, err := NewSet(SetConfig{Command: Config{Rate: 1, Burst: 1}, Now: newClock().Now})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		r    Request
		want error
	}{
		{Request{Conn: "c1", Command: "x"}, nil},
		{Request{Conn: "c1", Command: "x"}, jsperr.New(jsperr.RateLimited, "")},
		{Request{Conn: "c2", Command: "x"}, nil},
		{Request{User: "u", Conn: "c1", Command: "x"}, nil}, // user key, not conn key
		{Request{User: "u", Conn: "c9", Command: "x"}, jsperr.New(jsperr.RateLimited, "")},
		{Request{User: "u\x00x", Command: ""}, nil}, // no command: scope skipped
	}
	for i, tt := range tests {
		err := s.Allow(tt.r)
		if jsperr.CodeOf(err) != jsperr.CodeOf(tt.want) {
			t.Fatalf("request %d %+v: %v", i, tt.r, err)
		}
	}
	if ScopeCommand.String() != "command" || Scope(99).String() != "Scope(99)" {
		t.Fatal("Scope.String")
	}
}

func BenchmarkAllow(b *testing.B) {
	l := mustNew(b, Config{Rate: 1e9, Burst: 1 << 30})
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprint("key-", i)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			l.Allow(keys[i%len(keys)])
			i++
		}
	})
}
