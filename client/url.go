package client

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/jetstreamproto/jsp/transport"
)

// Default ports and WebSocket path (JSP §7): QUIC and TCP share a port number
// (UDP and TCP), WebSocket listens on the next one.
const (
	DefaultPort          = 7400
	DefaultWebSocketPort = 7401
	DefaultWebSocketPath = "/jsp"
)

// URL schemes accepted by Dial.
const (
	SchemeAuto      = "jsp"      // race QUIC against TCP on the same port
	SchemeQUIC      = "jsp+quic" // QUIC only
	SchemeTCP       = "jsp+tcp"  // TLS 1.3 over TCP only
	SchemeWebSocket = "wss"      // WebSocket over TLS
)

// target is a parsed server URL.
type target struct {
	// auto is true for jsp://, where QUIC races TCP.
	auto bool
	// kind is the single transport to use when auto is false.
	kind transport.Kind
	// host is the host name or IP literal without brackets; it is the TLS
	// server name unless the caller sets one.
	host string
	// addr is host:port for QUIC and TCP.
	addr string
	// wsURL is the full wss:// URL for WebSocket.
	wsURL string
}

// parseTarget parses a server URL. Accepted forms:
//
//	jsp://host[:port]        auto: QUIC raced against TCP, default port 7400
//	jsp+quic://host[:port]   QUIC, default port 7400
//	jsp+tcp://host[:port]    TLS over TCP, default port 7400
//	wss://host[:port][/path] WebSocket, default port 7401, path /jsp
//
// Plain ws:// is refused: JSP requires TLS 1.3 on every transport (JSP §7.4).
func parseTarget(raw string) (target, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return target{}, fmt.Errorf("client: parse URL %q: %w", raw, err)
	}
	if u.Opaque != "" || u.Host == "" {
		return target{}, fmt.Errorf("client: URL %q has no host (want scheme://host:port)", raw)
	}
	if u.User != nil {
		return target{}, fmt.Errorf("client: URL %q: credentials in the URL are not supported; use Options.Info.Auth", raw)
	}
	host := u.Hostname()
	if host == "" {
		return target{}, fmt.Errorf("client: URL %q has an empty host", raw)
	}
	// A colon in the host is only valid in a bracketed IPv6 literal;
	// url.Parse lets "jsp://::" through with host ":".
	if strings.Contains(host, ":") {
		if _, err := netip.ParseAddr(host); err != nil || !strings.HasPrefix(u.Host, "[") {
			return target{}, fmt.Errorf("client: URL %q: bad host %q (IPv6 addresses go in brackets)", raw, host)
		}
	}
	var t target
	t.host = host
	defPort := DefaultPort
	scheme := strings.ToLower(u.Scheme)
	switch scheme {
	case SchemeAuto:
		t.auto = true
	case SchemeQUIC:
		t.kind = transport.KindQUIC
	case SchemeTCP:
		t.kind = transport.KindTCP
	case SchemeWebSocket:
		t.kind = transport.KindWebSocket
		defPort = DefaultWebSocketPort
	case "ws":
		return target{}, fmt.Errorf("client: URL %q: plain ws:// is not allowed, JSP requires TLS (JSP §7.4); use wss://", raw)
	default:
		return target{}, fmt.Errorf("client: URL %q: unknown scheme %q (want jsp, jsp+quic, jsp+tcp or wss)", raw, u.Scheme)
	}
	port := defPort
	if p := u.Port(); p != "" {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return target{}, fmt.Errorf("client: URL %q: bad port %q", raw, p)
		}
		port = int(n)
	}
	t.addr = net.JoinHostPort(host, strconv.Itoa(port))
	if t.kind == transport.KindWebSocket {
		path := u.EscapedPath()
		if path == "" || path == "/" {
			path = DefaultWebSocketPath
		}
		w := url.URL{Scheme: SchemeWebSocket, Host: t.addr, RawPath: path, RawQuery: u.RawQuery}
		w.Path, _ = url.PathUnescape(path)
		t.wsURL = w.String()
	} else if (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return target{}, fmt.Errorf("client: URL %q: %s URLs take no path or query", raw, scheme)
	}
	return t, nil
}
