package ddos

import (
	"fmt"
	"net"
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

func mustNew(t *testing.T, cfg Config) *Filter {
	t.Helper()
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

var (
	ip   = netip.MustParseAddr
	pfx  = netip.MustParsePrefix
	udp  = func(s string) net.Addr { return net.UDPAddrFromAddrPort(netip.MustParseAddrPort(s)) }
	none = jsperr.NoError
)

func TestLists(t *testing.T) {
	f := mustNew(t, Config{
		Block: []netip.Prefix{pfx("10.0.0.0/8"), pfx("2001:db8::/32"), pfx("192.0.2.7/32")},
		Allow: []netip.Prefix{pfx("10.1.0.0/16"), pfx("192.0.2.0/24"), pfx("198.51.100.0/24"), pfx("10.1.2.3/32"), pfx("198.51.100.9/32")},
	})
	tests := []struct {
		addr string
		want verdict
	}{
		{"10.9.9.9", listedBlock},
		{"10.1.9.9", listedAllow},  // longer allow inside a block
		{"192.0.2.7", listedBlock}, // longer block inside an allow
		{"192.0.2.8", listedAllow},
		{"::ffff:10.9.9.9", listedBlock}, // IPv4-mapped
		{"2001:db8::1", listedBlock},
		{"2001:db9::1", listedNone},
		{"203.0.113.1", listedNone},
		{"10.1.2.3", listedAllow},
	}
	for _, tt := range tests {
		if got := f.listed(ip(tt.addr)); got != tt.want {
			t.Errorf("listed(%s) = %d, want %d", tt.addr, got, tt.want)
		}
	}
	// Equal length: block wins.
	g := mustNew(t, Config{Block: []netip.Prefix{pfx("203.0.113.0/24")}, Allow: []netip.Prefix{pfx("203.0.113.0/24")}})
	if g.listed(ip("203.0.113.5")) != listedBlock {
		t.Error("tie not resolved to block")
	}
	// Unmasked prefixes in the config are masked.
	h := mustNew(t, Config{Block: []netip.Prefix{pfx("203.0.113.77/24")}})
	if err := h.Check(ip("203.0.113.1")); jsperr.CodeOf(err) != jsperr.Blocked {
		t.Errorf("Check: %v", err)
	}
	if err := h.Check(ip("203.0.114.1")); err != nil {
		t.Errorf("Check unlisted: %v", err)
	}
}

func TestCaps(t *testing.T) {
	type op struct {
		addr string
		want jsperr.Code
	}
	tests := []struct {
		name string
		cfg  Config
		ops  []op
	}{
		{"per-IP handshakes", Config{MaxHandshakesPerIP: 2}, []op{
			{"192.0.2.1", none}, {"192.0.2.1", none}, {"192.0.2.1", jsperr.TooManyHandshakes}, {"192.0.2.2", none},
		}},
		{"per-IP connections", Config{MaxConnsPerIP: 2, MaxHandshakesPerIP: 5}, []op{
			{"192.0.2.1", none}, {"192.0.2.1", none}, {"192.0.2.1", jsperr.TooManyConnections},
		}},
		{"global handshakes", Config{MaxHandshakes: 2}, []op{
			{"192.0.2.1", none}, {"192.0.2.2", none}, {"192.0.2.3", jsperr.TooManyHandshakes},
		}},
		{"global connections", Config{MaxConns: 2}, []op{
			{"192.0.2.1", none}, {"192.0.2.2", none}, {"192.0.2.3", jsperr.TooManyConnections},
		}},
		{"IPv6 /64 shares the cap", Config{MaxHandshakesPerIP: 1}, []op{
			{"2001:db8::1", none}, {"2001:db8::2", jsperr.TooManyHandshakes}, {"2001:db8:0:1::1", none},
		}},
		{"IPv6 /128", Config{MaxHandshakesPerIP: 1, IPv6Prefix: 128}, []op{
			{"2001:db8::1", none}, {"2001:db8::2", none},
		}},
		{"blocked", Config{Block: []netip.Prefix{pfx("192.0.2.0/24")}}, []op{{"192.0.2.1", jsperr.Blocked}}},
		{"allow-listed skip the caps", Config{MaxHandshakesPerIP: 1, MaxHandshakes: 1, Allow: []netip.Prefix{pfx("192.0.2.0/24")}}, []op{
			{"192.0.2.1", none}, {"192.0.2.1", none}, {"192.0.2.2", none},
			{"203.0.113.1", jsperr.TooManyHandshakes}, // allowed slots still count globally
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := mustNew(t, tt.cfg)
			for i, o := range tt.ops {
				_, err := f.BeginHandshake(ip(o.addr))
				if got := jsperr.CodeOf(err); got != o.want {
					t.Fatalf("op %d (%s): %v, want %s", i, o.addr, err, o.want)
				}
			}
		})
	}
}

func TestSlotLifecycle(t *testing.T) {
	f := mustNew(t, Config{MaxConnsPerIP: 2, MaxHandshakesPerIP: 1})
	a := ip("192.0.2.1")
	s1, err := f.BeginHandshake(a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.BeginHandshake(a); jsperr.CodeOf(err) != jsperr.TooManyHandshakes {
		t.Fatalf("second handshake: %v", err)
	}
	// Completing the handshake frees the handshake slot, not the connection.
	if err := s1.Established(); err != nil {
		t.Fatal(err)
	}
	if err := s1.Established(); err != nil {
		t.Fatal("Established twice")
	}
	s2, err := f.BeginHandshake(a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.BeginHandshake(a); jsperr.CodeOf(err) != jsperr.TooManyConnections {
		t.Fatalf("third: %v", err)
	}
	if s := f.Stats(); s.Handshakes != 1 || s.Conns != 1 || s.TrackedAddrs != 1 || s.Begun != 2 || s.Established != 1 {
		t.Fatalf("stats %+v", s)
	}
	s2.Release() // failed handshake
	s1.Release() // closed connection
	s1.Release() // no-op
	if s := f.Stats(); s.Handshakes != 0 || s.Conns != 0 || s.TrackedAddrs != 0 {
		t.Fatalf("after release: %+v", s)
	}
	if err := s2.Established(); jsperr.CodeOf(err) != jsperr.HandshakeTimeout {
		t.Fatalf("Established after Release: %v", err)
	}
}

func TestReap(t *testing.T) {
	clk := newClock()
	f := mustNew(t, Config{HandshakeTimeout: 5 * time.Second, Now: clk.Now})
	old, _ := f.BeginHandshake(ip("192.0.2.1"))
	done, _ := f.BeginHandshake(ip("192.0.2.2"))
	if err := done.Established(); err != nil {
		t.Fatal(err)
	}
	clk.Advance(3 * time.Second)
	young, _ := f.BeginHandshake(ip("192.0.2.3"))
	clk.Advance(2*time.Second + time.Millisecond)
	if n := f.Reap(); n != 1 {
		t.Fatalf("reaped %d, want 1", n)
	}
	if err := old.Established(); jsperr.CodeOf(err) != jsperr.HandshakeTimeout {
		t.Fatalf("reaped slot established: %v", err)
	}
	if err := young.Established(); err != nil {
		t.Fatal(err)
	}
	if s := f.Stats(); s.Reaped != 1 || s.Conns != 2 || s.Handshakes != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestRequireAddressValidation(t *testing.T) {
	type step struct {
		do      func(f *Filter, clk *testClock)
		addr    net.Addr
		want    bool
		comment string
	}
	begin := func(addr string, n int) func(*Filter, *testClock) {
		return func(f *Filter, _ *testClock) {
			for range n {
				if _, err := f.BeginHandshake(ip(addr)); err != nil {
					panic(err)
				}
			}
		}
	}
	advance := func(d time.Duration) func(*Filter, *testClock) {
		return func(_ *Filter, clk *testClock) { clk.Advance(d) }
	}
	reapAll := func(f *Filter, clk *testClock) { clk.Advance(time.Minute); f.Reap() }
	base := Config{MaxHandshakes: 8, MaxHandshakesPerIP: 4, RetryAttemptRate: -1, RetryHold: 10 * time.Second,
		HandshakeTimeout: 30 * time.Second,
		Allow:            []netip.Prefix{pfx("198.51.100.0/24")}, Block: []netip.Prefix{pfx("203.0.113.0/24")}}
	tests := []struct {
		name  string
		cfg   Config
		steps []step
	}{
		{"idle", base, []step{
			{addr: udp("192.0.2.1:4000"), want: false},
			{addr: udp("[2001:db8::1]:4000"), want: false},
		}},
		{"lists", base, []step{
			{addr: udp("198.51.100.1:1"), want: false, comment: "allow-listed"},
			{addr: udp("203.0.113.1:1"), want: true, comment: "blocked"},
			{addr: nil, want: true, comment: "unreadable"},
		}},
		{"global load with hold", base, []step{
			{do: begin("192.0.2.10", 1)},
			{do: begin("192.0.2.11", 1), addr: udp("192.0.2.1:1"), want: true, comment: "2 = 8/4 in flight"},
			{addr: udp("198.51.100.1:1"), want: false, comment: "allow-listed even under load"},
			{do: reapAll, addr: udp("192.0.2.1:1"), want: false, comment: "hold ran out with the reap"},
			{do: begin("192.0.2.10", 2), addr: udp("192.0.2.1:1"), want: true},
			{do: reapAll, addr: udp("192.0.2.1:1"), want: false},
		}},
		{"hold outlasts the load", base, []step{
			{do: begin("192.0.2.10", 2)},
			{do: func(f *Filter, clk *testClock) {
				clk.Advance(31 * time.Second)
				f.Reap() // load gone; the hold started at the last trigger, 31 s ago
			}, addr: udp("192.0.2.1:1"), want: false},
			{do: func(f *Filter, clk *testClock) {
				f.BeginHandshake(ip("192.0.2.10"))
				f.BeginHandshake(ip("192.0.2.10"))
				f.RequireAddressValidation(udp("192.0.2.1:1")) // trigger at this instant
				clk.Advance(31 * time.Second)
				f.Reap()
				clk.Advance(-25 * time.Second) // 6 s after the trigger, load gone
			}, addr: udp("192.0.2.1:1"), want: true, comment: "within RetryHold"},
			{do: advance(5 * time.Second), addr: udp("192.0.2.1:1"), want: false, comment: "11 s later"},
		}},
		{"per address", func() Config { c := base; c.MaxHandshakes = 100; return c }(), []step{
			{do: begin("2001:db8::5", 2), addr: udp("[2001:db8::77]:1"), want: true, comment: "same /64, 2 = 4/2 in flight"},
			{addr: udp("[2001:db8:1::1]:1"), want: false, comment: "other /64"},
		}},
		{"attempt rate", Config{RetryAttemptRate: 3, RetryHold: time.Second}, []step{
			{addr: udp("192.0.2.1:1"), want: false},
			{addr: udp("192.0.2.2:1"), want: false},
			{addr: udp("192.0.2.3:1"), want: false},
			{addr: udp("192.0.2.4:1"), want: true, comment: "4th attempt within a second"},
			{do: advance(999 * time.Millisecond), addr: udp("192.0.2.5:1"), want: true, comment: "hold"},
			{do: advance(2 * time.Millisecond), addr: udp("192.0.2.6:1"), want: false, comment: "refilled, hold over"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			cfg := tt.cfg
			cfg.Now = clk.Now
			f := mustNew(t, cfg)
			for i, st := range tt.steps {
				if st.do != nil {
					st.do(f, clk)
				}
				if st.addr == nil && st.do != nil && st.comment == "" {
					continue
				}
				if got := f.RequireAddressValidation(st.addr); got != st.want {
					t.Fatalf("step %d (%s): got %v, want %v", i, st.comment, got, st.want)
				}
			}
		})
	}
}

func TestBoundedTracking(t *testing.T) {
	f := mustNew(t, Config{MaxConns: 100, MaxHandshakes: 100})
	var slots []*Slot
	refused := 0
	for i := range 1000 {
		s, err := f.BeginHandshake(ip(fmt.Sprintf("10.%d.%d.1", i/256, i%256)))
		if err != nil {
			refused++
			continue
		}
		slots = append(slots, s)
	}
	if s := f.Stats(); s.TrackedAddrs > 100 || refused != 900 {
		t.Fatalf("tracked %d, refused %d", s.TrackedAddrs, refused)
	}
	for _, s := range slots {
		s.Release()
	}
	if s := f.Stats(); s.TrackedAddrs != 0 {
		t.Fatalf("tracked %d after release", s.TrackedAddrs)
	}
}

func TestConcurrentSlots(t *testing.T) {
	f := mustNew(t, Config{MaxHandshakesPerIP: 3, MaxConnsPerIP: 5})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			addr := ip(fmt.Sprintf("192.0.2.%d", g%2))
			for i := range 500 {
				s, err := f.BeginHandshake(addr)
				if err != nil {
					continue
				}
				f.RequireAddressValidation(udp(addr.String() + ":1"))
				if i%2 == 0 {
					s.Established()
				}
				s.Release()
			}
		})
	}
	wg.Wait()
	if s := f.Stats(); s.Handshakes != 0 || s.Conns != 0 || s.TrackedAddrs != 0 {
		t.Fatalf("leaked: %+v", s)
	}
}

func TestConfig(t *testing.T) {
	for _, cfg := range []Config{
		{MaxConnsPerIP: -1}, {IPv6Prefix: 129}, {Block: []netip.Prefix{{}}}, {RetryHold: -1},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
	f := mustNew(t, Config{})
	if f.cfg.RetryHandshakes != DefaultMaxHandshakes/4 || f.cfg.RetryPerIPHandshakes != DefaultMaxHandshakesPerIP/2 {
		t.Fatalf("defaults %+v", f.cfg)
	}
	if _, err := f.BeginHandshake(netip.Addr{}); err == nil {
		t.Fatal("invalid address admitted")
	}
	if f.UnderLoad() {
		t.Fatal("idle filter under load")
	}
	if _, err := AddrIP(&net.UnixAddr{Name: "/x"}); err == nil {
		t.Fatal("unix address has an IP")
	}
	if a, err := AddrIP(&net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.1"), Port: 1}); err != nil || a != ip("192.0.2.1") {
		t.Fatalf("AddrIP = %v, %v", a, err)
	}
}
