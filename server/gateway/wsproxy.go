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
	"time"

	"github.com/jetstreamproto/jsp/transport"
)

// MaxForwardedHops caps the X-Forwarded-For entries examined for one
// request, right to left; a longer chain of trusted proxies is not a
// deployment, and the walk stops at the cap with the last address seen.
const MaxForwardedHops = 16

// forwardedTTL bounds how long the client address of an upgraded request
// waits for the gateway to accept its connection. The WebSocket handler
// closes a connection not accepted within its accept timeout, far below
// this; an entry this old belongs to an upgrade that failed.
const forwardedTTL = time.Minute

// maxForwardedPending is the number of waiting client addresses above
// which stale ones (older than forwardedTTL) are dropped on each new one.
const maxForwardedPending = 1024

// ErrPlaintextExposed is returned by New for a WSBehindTLSProxy listener
// that would take plaintext sessions from any address: bound to a
// non-loopback address without WSTrustedProxies.
var ErrPlaintextExposed = errors.New("gateway: plaintext WebSocket listener reachable by anyone")

// proxyTrust decides which peers of a WSBehindTLSProxy listener are the
// TLS-terminating proxies (docs/decisions.md D32).
type proxyTrust struct {
	prefixes []netip.Prefix // trusted proxies; nil with loopback
	loopback bool           // no list: loopback peers are trusted
}

// newProxyTrust checks a WSBehindTLSProxy listener bound at bound: with
// a trusted-proxy list any address is fine (only those proxies get
// sessions); without one, only a loopback address, so that the proxy is
// a process on the same host and nothing else reaches the plaintext port.
func newProxyTrust(cfg Config, bound net.Addr) (*proxyTrust, error) {
	if len(cfg.WSTrustedProxies) > 0 {
		ps := make([]netip.Prefix, len(cfg.WSTrustedProxies))
		for i, p := range cfg.WSTrustedProxies {
			if !p.IsValid() {
				return nil, fmt.Errorf("gateway: WSTrustedProxies: invalid prefix %v", p)
			}
			ps[i] = p.Masked()
		}
		return &proxyTrust{prefixes: ps}, nil
	}
	ta, ok := bound.(*net.TCPAddr)
	if !ok || !ta.IP.IsLoopback() {
		return nil, fmt.Errorf("%w: WSBehindTLSProxy on %s: bind WSAddr to a loopback address for a proxy on this host, or set WSTrustedProxies to the proxies' prefixes",
			ErrPlaintextExposed, bound)
	}
	return &proxyTrust{loopback: true}, nil
}

// checkPlaintextAddr refuses, before anything is bound, a
// WSBehindTLSProxy listener without WSTrustedProxies whose address names
// every interface or a literal address that is not loopback. A host name
// is resolved by the bind and checked by newProxyTrust.
func checkPlaintextAddr(c *Config) error {
	if !c.WSBehindTLSProxy || c.WSAddr == Off || len(c.WSTrustedProxies) > 0 {
		return nil
	}
	addr := c.WSAddr
	if addr == "" {
		addr = DefaultWSAddr
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("gateway: WSAddr %q: %w", addr, err)
	}
	if ip, perr := netip.ParseAddr(host); host == "" || perr == nil && !ip.IsLoopback() {
		return fmt.Errorf("%w: WSBehindTLSProxy on %q: bind WSAddr to a loopback address for a proxy on this host, or set WSTrustedProxies to the proxies' prefixes",
			ErrPlaintextExposed, addr)
	}
	return nil
}

// trusted reports whether ip is one of the proxies.
func (p *proxyTrust) trusted(ip netip.Addr) bool {
	ip = ip.Unmap()
	if p.loopback {
		return ip.IsLoopback()
	}
	for _, pr := range p.prefixes {
		if pr.Contains(ip) {
			return true
		}
	}
	return false
}

// clientAddr returns the client's address of a request from peer, a
// trusted proxy: the right-most X-Forwarded-For entry that is not a
// trusted proxy. Each proxy appends the address it received the request
// from, so entries right of that one were written by trusted proxies and
// entries left of it by the client, who can write anything. Without the
// header the proxy is the client. An entry that does not parse ends the
// walk at the last trusted hop: a proxy of ours never writes one.
func (p *proxyTrust) clientAddr(peer netip.AddrPort, h http.Header) netip.AddrPort {
	var entries []string
	for _, v := range h.Values("X-Forwarded-For") {
		entries = append(entries, strings.Split(v, ",")...)
	}
	last := peer
	for i, hops := len(entries)-1, 0; i >= 0 && hops < MaxForwardedHops; i, hops = i-1, hops+1 {
		ap, ok := parseForwarded(strings.TrimSpace(entries[i]))
		if !ok {
			return last
		}
		last = ap
		if !p.trusted(ap.Addr()) {
			return ap
		}
	}
	return last
}

// parseForwarded parses one X-Forwarded-For entry: an IP address, with
// or without a port ("203.0.113.7", "203.0.113.7:5000", "2001:db8::1",
// "[2001:db8::1]:5000"). Port 0 stands for none.
func parseForwarded(s string) (netip.AddrPort, bool) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), true
	}
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		return netip.AddrPortFrom(a.Unmap(), 0), true
	}
	return netip.AddrPort{}, false
}

// proxyEndpoint wraps the WebSocket endpoint of a WSBehindTLSProxy
// listener: its handler refuses peers that are not trusted proxies and
// notes the client address of each upgrade, and its Accept returns the
// connections with that address as their RemoteAddr. The handler and the
// listener meet in pending, keyed by the proxy connection's address,
// which is unique among open connections.
type proxyEndpoint struct {
	trust    *proxyTrust
	handler  http.Handler
	listener transport.Listener
	now      func() time.Time

	mu      sync.Mutex
	pending map[string]forwarded // guarded by mu
}

type forwarded struct {
	client netip.AddrPort
	at     time.Time
}

func newProxyEndpoint(trust *proxyTrust, h http.Handler, l transport.Listener, now func() time.Time) *proxyEndpoint {
	if now == nil {
		now = time.Now
	}
	return &proxyEndpoint{trust: trust, handler: h, listener: l, now: now, pending: map[string]forwarded{}}
}

// ServeHTTP refuses requests from peers that are not trusted proxies,
// then records the client address and passes the request on.
func (p *proxyEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil || !p.trust.trusted(peer.Addr()) {
		http.Error(w, "JSP over plain WebSocket only through the TLS-terminating proxy", http.StatusForbidden)
		return
	}
	client := p.trust.clientAddr(peer, r.Header)
	p.mu.Lock()
	if len(p.pending) >= maxForwardedPending {
		p.pruneLocked()
	}
	// A request on a connection whose earlier upgrade failed replaces
	// that request's entry: the key is the connection.
	p.pending[r.RemoteAddr] = forwarded{client: client, at: p.now()}
	p.mu.Unlock()
	p.handler.ServeHTTP(w, r)
}

// pruneLocked drops entries of upgrades that were never accepted.
func (p *proxyEndpoint) pruneLocked() {
	cutoff := p.now().Add(-forwardedTTL)
	for k, f := range p.pending {
		if f.at.Before(cutoff) {
			delete(p.pending, k)
		}
	}
}

// Accept returns the next connection with its client's address.
func (p *proxyEndpoint) Accept(ctx context.Context) (transport.Conn, error) {
	c, err := p.listener.Accept(ctx)
	if err != nil {
		return nil, err
	}
	key := c.RemoteAddr().String()
	p.mu.Lock()
	f, ok := p.pending[key]
	delete(p.pending, key)
	p.mu.Unlock()
	if !ok || f.client.String() == key {
		return c, nil
	}
	return &forwardedConn{Conn: c, client: net.TCPAddrFromAddrPort(f.client)}, nil
}

// Addr returns the wrapped listener's address.
func (p *proxyEndpoint) Addr() net.Addr { return p.listener.Addr() }

// Close closes the wrapped listener.
func (p *proxyEndpoint) Close() error { return p.listener.Close() }

// forwardedConn is a connection through a trusted proxy: RemoteAddr is
// the client's address from X-Forwarded-For, PeerAddr the proxy's, which
// the connection filter knows the connection by.
type forwardedConn struct {
	transport.Conn
	client net.Addr
}

// RemoteAddr returns the client's address.
func (c *forwardedConn) RemoteAddr() net.Addr { return c.client }

// PeerAddr returns the address of the proxy the connection came from.
func (c *forwardedConn) PeerAddr() net.Addr { return c.Conn.RemoteAddr() }

// peerAddr is the address conn arrived from at the socket: the proxy's
// for a connection through a trusted proxy, else its RemoteAddr.
func peerAddr(conn transport.Conn) net.Addr {
	if pc, ok := conn.(interface{ PeerAddr() net.Addr }); ok {
		return pc.PeerAddr()
	}
	return conn.RemoteAddr()
}
