package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	ws "github.com/coder/websocket"

	"github.com/jetstreamproto/jsp/session"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/transport/mux"
	"github.com/jetstreamproto/jsp/wire"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
)

func TestParseForwarded(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // "" when refused
	}{
		{"203.0.113.7", "203.0.113.7:0"},
		{"203.0.113.7:5000", "203.0.113.7:5000"},
		{"2001:db8::1", "[2001:db8::1]:0"},
		{"[2001:db8::1]", "[2001:db8::1]:0"},
		{"[2001:db8::1]:443", "[2001:db8::1]:443"},
		{"::ffff:192.0.2.1", "192.0.2.1:0"},
		{"unknown", ""},
		{"", ""},
		{"_hidden", ""},
		{"203.0.113.7:port", ""},
		{"fe80::1%eth0", ""},
		{"example.com", ""},
	} {
		ap, ok := parseForwarded(tc.in)
		if got := map[bool]string{true: ap.String(), false: ""}[ok]; got != tc.want {
			t.Errorf("parseForwarded(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestProxyClientAddr checks that the client address comes from the
// right-most X-Forwarded-For entry that is not a trusted proxy, so that a
// client cannot choose its address by sending the header itself.
func TestProxyClientAddr(t *testing.T) {
	lists := &proxyTrust{prefixes: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8:1::/48")}}
	loop := &proxyTrust{loopback: true}
	peer := netip.MustParseAddrPort("10.0.0.2:40000")
	lpeer := netip.MustParseAddrPort("127.0.0.1:40000")
	long := make([]string, MaxForwardedHops+4)
	for i := range long {
		long[i] = fmt.Sprintf("10.0.0.%d", i+10)
	}
	long[0] = "198.51.100.1" // beyond the cap: never reached
	for _, tc := range []struct {
		name   string
		trust  *proxyTrust
		peer   netip.AddrPort
		header []string // X-Forwarded-For lines
		want   string
	}{
		{"no header", lists, peer, nil, "10.0.0.2:40000"},
		{"one hop", lists, peer, []string{"203.0.113.7"}, "203.0.113.7:0"},
		{"with port", lists, peer, []string{"203.0.113.7:5555"}, "203.0.113.7:5555"},
		{"client spoofs", lists, peer, []string{"192.0.2.66, 203.0.113.7"}, "203.0.113.7:0"},
		{"chain of proxies", lists, peer, []string{"203.0.113.7, 10.1.1.1, 10.2.2.2"}, "203.0.113.7:0"},
		{"two header lines", lists, peer, []string{"192.0.2.66", "203.0.113.7, 10.1.1.1"}, "203.0.113.7:0"},
		{"spoofed trusted", lists, peer, []string{"10.9.9.9, 203.0.113.7"}, "203.0.113.7:0"},
		{"all trusted", lists, peer, []string{"10.1.1.1, 10.2.2.2"}, "10.1.1.1:0"},
		{"garbage from client", lists, peer, []string{"nonsense, 10.1.1.1"}, "10.1.1.1:0"},
		{"garbage last", lists, peer, []string{"203.0.113.7, nonsense"}, "10.0.0.2:40000"},
		{"ipv6", lists, peer, []string{"2001:db8:2::5, 2001:db8:1::9"}, "[2001:db8:2::5]:0"},
		{"spaces", lists, peer, []string{" 203.0.113.7 ,10.1.1.1 "}, "203.0.113.7:0"},
		{"loopback proxy", loop, lpeer, []string{"203.0.113.7"}, "203.0.113.7:0"},
		{"loopback chain", loop, lpeer, []string{"192.0.2.66, 203.0.113.7, 127.0.0.1"}, "203.0.113.7:0"},
		{"hop cap", lists, peer, []string{strings.Join(long, ", ")}, long[4] + ":0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tc.header {
				h.Add("X-Forwarded-For", v)
			}
			if got := tc.trust.clientAddr(tc.peer, h).String(); got != tc.want {
				t.Fatalf("client = %s, want %s", got, tc.want)
			}
		})
	}
}

// TestPlaintextRefused checks that a plaintext WebSocket listener is only
// allowed where nothing but the proxy reaches it.
func TestPlaintextRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"all interfaces", Config{WSAddr: ":0", WSBehindTLSProxy: true}, false},
		{"default address", Config{WSBehindTLSProxy: true}, false},
		{"unspecified v4", Config{WSAddr: "0.0.0.0:7401", WSBehindTLSProxy: true}, false},
		{"public address", Config{WSAddr: "192.0.2.1:7401", WSBehindTLSProxy: true}, false},
		{"loopback", Config{WSAddr: "127.0.0.1:0", WSBehindTLSProxy: true}, true},
		{"loopback v6", Config{WSAddr: "[::1]:0", WSBehindTLSProxy: true}, true},
		{"trusted list", Config{WSAddr: ":0", WSBehindTLSProxy: true, WSTrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, true},
		{"TLS listener", Config{WSAddr: ":0"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkPlaintextAddr(&tc.cfg)
			if tc.ok != (err == nil) || err != nil && !errors.Is(err, ErrPlaintextExposed) {
				t.Fatalf("err = %v, want ok %v", err, tc.ok)
			}
		})
	}
	// A host name is checked once bound, by the address it resolved to.
	for _, tc := range []struct {
		bound net.Addr
		cfg   Config
		ok    bool
	}{
		{&net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 7401}, Config{}, false},
		{&net.TCPAddr{IP: net.IPv6unspecified, Port: 7401}, Config{}, false},
		{&net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 7401}, Config{}, true},
		{&net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 7401}, Config{WSTrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, true},
		{&net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 7401}, Config{WSTrustedProxies: []netip.Prefix{{}}}, false},
	} {
		_, err := newProxyTrust(tc.cfg, tc.bound)
		if tc.ok != (err == nil) {
			t.Errorf("bound %v, %v: err = %v, want ok %v", tc.bound, tc.cfg.WSTrustedProxies, err, tc.ok)
		}
	}
	_, err := New(Config{WSAddr: ":0", WSBehindTLSProxy: true, QUICAddr: Off, TCPAddr: Off, DataDir: t.TempDir(), Logger: testLogger()})
	if !errors.Is(err, ErrPlaintextExposed) {
		t.Fatalf("New on all interfaces: %v", err)
	}
}

// dialPlainWS opens a JSP session over ws:// with extra upgrade headers.
func dialPlainWS(ctx context.Context, url string, header http.Header) (*session.Session, *http.Response, error) {
	c, resp, err := ws.Dial(ctx, url, &ws.DialOptions{Subprotocols: []string{protocol.WebSocketSubprotocol}, HTTPHeader: header})
	if err != nil {
		return nil, resp, err
	}
	tc := mux.New(ws.NetConn(context.Background(), c, ws.MessageBinary), mux.Config{Kind: transport.KindWebSocket}, true)
	sess, err := session.Dial(ctx, tc, session.ClientInfo{Name: "proxy-test"}, session.Config{Logger: testLogger()})
	if err != nil {
		_ = tc.CloseWithError(0, "")
		return nil, resp, err
	}
	return sess, resp, nil
}

// TestWSForwardedClient checks, end to end on a gateway, that a session
// through a trusted proxy carries the forwarded client address, and that
// a peer that is not a trusted proxy is refused.
func TestWSForwardedClient(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	auth := func(_ context.Context, _ *wire.Hello, conn transport.Conn) (session.Identity, error) {
		mu.Lock()
		seen = append(seen, conn.RemoteAddr().String())
		mu.Unlock()
		return session.Identity{}, nil
	}
	tg := startGateway(t, Config{WSAddr: "127.0.0.1:0", TCPAddr: "127.0.0.1:0", WSBehindTLSProxy: true, Authenticate: auth})
	// The plain ws:// address is the proxy's business: it is never
	// announced to clients of other gateways.
	if urls := tg.publicURLs(); len(urls) != 1 || !strings.HasPrefix(urls[0], "jsp+tcp://") {
		t.Errorf("announced URLs %v, want only the TCP one", urls)
	}
	url := "ws://" + tg.Addrs().WebSocket.String() + DefaultWSPath
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tc := range []struct {
		xff  string
		want string
	}{
		{"", "127.0.0.1:"}, // no header: the proxy's own address and port
		{"203.0.113.7", "203.0.113.7:0"},
		{"192.0.2.66, 203.0.113.8:4000", "203.0.113.8:4000"},
	} {
		h := http.Header{}
		if tc.xff != "" {
			h.Set("X-Forwarded-For", tc.xff)
		}
		sess, _, err := dialPlainWS(ctx, url, h)
		if err != nil {
			t.Fatalf("%q: %v", tc.xff, err)
		}
		if _, err := sess.Ping(ctx); err != nil {
			t.Fatalf("ping: %v", err)
		}
		_ = sess.Close()
		mu.Lock()
		got := seen[len(seen)-1]
		mu.Unlock()
		if !strings.HasPrefix(got, tc.want) || tc.xff != "" && got != tc.want {
			t.Errorf("X-Forwarded-For %q: remote %s, want %s", tc.xff, got, tc.want)
		}
	}

	// Loopback is not trusted once a list names the proxies.
	other := startGateway(t, Config{WSAddr: "127.0.0.1:0", WSBehindTLSProxy: true,
		WSTrustedProxies: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}})
	_, resp, err := dialPlainWS(ctx, "ws://"+other.Addrs().WebSocket.String()+DefaultWSPath, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("untrusted peer: err %v, response %v", err, resp)
	}
}

// TestProxyEndpointPrune checks that the client addresses of upgrades
// that never reach Accept are dropped once they are stale.
func TestProxyEndpointPrune(t *testing.T) {
	now := time.Unix(1000, 0)
	refuse := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "no", http.StatusBadRequest) })
	p := newProxyEndpoint(&proxyTrust{loopback: true}, refuse, nil, func() time.Time { return now })
	for i := range maxForwardedPending {
		r, _ := http.NewRequest(http.MethodGet, "/jsp", nil)
		r.RemoteAddr = fmt.Sprintf("127.0.0.1:%d", 1024+i)
		p.ServeHTTP(newDiscardWriter(), r)
	}
	if len(p.pending) != maxForwardedPending {
		t.Fatalf("pending = %d", len(p.pending))
	}
	// A request on the same connection replaces its entry.
	r, _ := http.NewRequest(http.MethodGet, "/jsp", nil)
	r.RemoteAddr = "127.0.0.1:1024"
	now = now.Add(forwardedTTL / 2)
	p.ServeHTTP(newDiscardWriter(), r)
	now = now.Add(forwardedTTL/2 + time.Second)
	r.RemoteAddr = "127.0.0.1:9"
	p.ServeHTTP(newDiscardWriter(), r)
	if len(p.pending) != 2 {
		t.Fatalf("after pruning: %d pending, want 2 (the replaced entry and the new one)", len(p.pending))
	}
	// A peer that is not a proxy is refused and leaves nothing.
	r.RemoteAddr = "192.0.2.1:9"
	w := newDiscardWriter()
	p.ServeHTTP(w, r)
	if w.code != http.StatusForbidden || len(p.pending) != 2 {
		t.Fatalf("untrusted peer: %d, %d pending", w.code, len(p.pending))
	}
}

type discardWriter struct {
	h    http.Header
	code int
}

func newDiscardWriter() *discardWriter               { return &discardWriter{h: http.Header{}} }
func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }

// TestWSForwardedKeepsFilterVerdict checks that the connection filter's
// verdict, taken on the proxy's connection before the upgrade, still
// applies to a session that carries a forwarded client address: a blocked
// proxy address is refused whatever client it names.
func TestWSForwardedKeepsFilterVerdict(t *testing.T) {
	cfg := Config{WSAddr: "127.0.0.1:0", WSBehindTLSProxy: true}
	cfg.DDoS.Block = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	tg := startGateway(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h := http.Header{}
	h.Set("X-Forwarded-For", "203.0.113.7")
	sess, _, err := dialPlainWS(ctx, "ws://"+tg.Addrs().WebSocket.String()+DefaultWSPath, h)
	if err == nil {
		_, err = sess.Ping(ctx)
		if err == nil {
			select {
			case <-sess.Context().Done():
				err = sess.Err()
			case <-ctx.Done():
				err = errors.New("session stayed open")
			}
		}
		_ = sess.Close()
	}
	if jsperr.CodeOf(err) != jsperr.Blocked {
		t.Fatalf("session from a blocked proxy: %v, want BLOCKED", err)
	}
}

// FuzzClientAddr checks that any X-Forwarded-For value yields the peer or
// an address written in the header, never a panic.
func FuzzClientAddr(f *testing.F) {
	for _, s := range []string{"", "203.0.113.7", "192.0.2.66, 203.0.113.7, 10.1.1.1", "[2001:db8::1]:443, 10.0.0.1", "nonsense,,", strings.Repeat("10.0.0.1,", 40)} {
		f.Add(s)
	}
	trust := &proxyTrust{prefixes: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	peer := netip.MustParseAddrPort("10.0.0.2:40000")
	f.Fuzz(func(t *testing.T, xff string) {
		h := http.Header{}
		h.Set("X-Forwarded-For", xff)
		got := trust.clientAddr(peer, h)
		if got == peer {
			return
		}
		for _, e := range strings.Split(xff, ",") {
			if ap, ok := parseForwarded(strings.TrimSpace(e)); ok && ap == got {
				return
			}
		}
		t.Fatalf("client %v is neither the peer nor an entry of %q", got, xff)
	})
}
