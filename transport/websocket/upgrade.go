package websocket

import (
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/transport/netpoll"
	"github.com/jetstreamproto/jsp/transport/tcptls"
)

// The server's opening handshake (RFC 6455, Section 4.2). Upgraded
// connections are framed by serverConn: plain ones behind a
// TLS-terminating proxy (HandlerConfig.BehindTLSProxy, decision D33) and
// wss:// ones (decision D40).

// acceptGUID is appended to the client's key before hashing (RFC 6455,
// Section 1.3).
const acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// acceptKey computes Sec-WebSocket-Accept for a client key.
func acceptKey(key string) string {
	h := sha1.Sum([]byte(key + acceptGUID)) // RFC 6455 prescribes SHA-1 here; it is no security measure
	return base64.StdEncoding.EncodeToString(h[:])
}

// headerHasToken reports whether a comma-separated header lists token,
// case-insensitively (RFC 6455, Section 4.2.1: Connection and Upgrade).
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// upgradeError is a refused upgrade: the HTTP status and the reason.
type upgradeError struct {
	status int
	reason string
}

func (e *upgradeError) Error() string { return "websocket: upgrade refused: " + e.reason }

// checkUpgrade validates an opening handshake (RFC 6455, Section 4.2.1)
// and the browser's Origin (Section 10.2): the request's own host, or one
// of patterns (path.Match syntax, case-insensitive). A request without
// Origin is not from a browser and is allowed.
func checkUpgrade(r *http.Request, patterns []string) *upgradeError {
	switch {
	case r.Method != http.MethodGet:
		return &upgradeError{http.StatusMethodNotAllowed, "upgrade must be a GET request"}
	case !headerHasToken(r.Header, "Connection", "upgrade") || !headerHasToken(r.Header, "Upgrade", "websocket"):
		return &upgradeError{http.StatusUpgradeRequired, "not a WebSocket upgrade"}
	case r.Header.Get("Sec-WebSocket-Version") != "13":
		return &upgradeError{http.StatusUpgradeRequired, "unsupported WebSocket version"}
	}
	key, err := base64.StdEncoding.DecodeString(r.Header.Get("Sec-WebSocket-Key"))
	if err != nil || len(key) != 16 {
		return &upgradeError{http.StatusBadRequest, "invalid Sec-WebSocket-Key"}
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return nil
	}
	u, err := url.Parse(origin)
	if err != nil {
		return &upgradeError{http.StatusForbidden, "unparsable Origin"}
	}
	if strings.EqualFold(u.Host, r.Host) {
		return nil
	}
	for _, p := range patterns {
		if ok, err := path.Match(strings.ToLower(p), strings.ToLower(u.Host)); err == nil && ok {
			return nil
		}
	}
	return &upgradeError{http.StatusForbidden, fmt.Sprintf("origin %q not allowed", u.Host)}
}

// upgrade answers the upgrade, takes the connection over and returns its
// serverConn: watched by poller when the connection is a plain socket the
// poller can watch, read without waiting through its record feed when it
// is a TLS connection accepted by Handler.TLSListener (decision D40), and
// read by the link's goroutine otherwise. On error the request has been
// answered or the connection closed.
func upgrade(w http.ResponseWriter, r *http.Request, patterns []string, poller *netpoll.Poller, maxPayload uint64) (*serverConn, error) {
	if e := checkUpgrade(r, patterns); e != nil {
		if e.status == http.StatusUpgradeRequired {
			w.Header().Set("Sec-WebSocket-Version", "13")
		}
		http.Error(w, e.reason, e.status)
		return nil, e
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "connection cannot be upgraded", http.StatusInternalServerError)
		return nil, fmt.Errorf("websocket: %T cannot hijack its connection", w)
	}
	nc, brw, err := hj.Hijack()
	if err != nil {
		return nil, fmt.Errorf("websocket: hijack: %w", err)
	}
	// Bytes read past the request are the client's first frames.
	var early []byte
	if n := brw.Reader.Buffered(); n > 0 {
		early, _ = brw.Reader.Peek(n)
	}
	resp := "HTTP/1.1 101 Switching Protocols\r\n" +
		"Upgrade: websocket\r\n" +
		"Connection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + acceptKey(r.Header.Get("Sec-WebSocket-Key")) + "\r\n" +
		"Sec-WebSocket-Protocol: " + protocol.WebSocketSubprotocol + "\r\n\r\n"
	if _, err := nc.Write([]byte(resp)); err != nil {
		closeRaw(nc)
		return nil, fmt.Errorf("websocket: write upgrade response: %w", err)
	}
	src, err := pollSource(nc, poller)
	if err != nil {
		closeRaw(nc)
		return nil, err
	}
	return newServerConn(nc, src, early, maxPayload), nil
}

// pollSource returns what the poller reads an upgraded connection from,
// or nil when a goroutine reads it.
func pollSource(nc net.Conn, poller *netpoll.Poller) (rawSource, error) {
	if tc, ok := nc.(*tls.Conn); ok {
		feed, ok := tc.NetConn().(*tcptls.Feed)
		if !ok {
			return nil, nil
		}
		// The HTTP server's reads are over (Hijack ended its background
		// read): from here on the pump reads, and must never wait.
		feed.SetNonblocking()
		return &tlsSource{tc: tc, feed: feed, inner: true}, nil
	}
	if poller == nil {
		return nil, nil
	}
	s, err := netpoll.NewSocket(poller, nc)
	switch {
	case err == nil:
		return s, nil
	case errors.Is(err, netpoll.ErrNotPollable):
		return nil, nil // read by the link's goroutine instead
	}
	return nil, fmt.Errorf("websocket: %w", err)
}

// closeRaw closes an upgraded connection at once; a TLS one without
// close_notify, which could stall on a peer that does not read.
func closeRaw(nc net.Conn) {
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	nc.Close()
}
