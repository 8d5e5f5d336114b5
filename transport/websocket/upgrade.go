package websocket

import (
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/transport/netpoll"
)

// The server's opening handshake for upgrades that arrive without TLS
// (behind a TLS-terminating proxy, HandlerConfig.BehindTLSProxy), which
// hand their socket to serverConn (decision D33). RFC 6455, Section 4.2.

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

// upgradePlain answers the upgrade, takes the connection over and returns
// its serverConn, watched by poller when the socket allows (poller nil:
// read by a goroutine). On error the request has been answered or the
// connection closed.
func upgradePlain(w http.ResponseWriter, r *http.Request, patterns []string, poller *netpoll.Poller, maxPayload uint64) (*serverConn, error) {
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
		nc.Close()
		return nil, fmt.Errorf("websocket: write upgrade response: %w", err)
	}
	var sock *netpoll.Socket
	if poller != nil {
		s, err := netpoll.NewSocket(poller, nc)
		switch {
		case err == nil:
			sock = s
		case errors.Is(err, netpoll.ErrNotPollable):
			// Read by the link's goroutine instead.
		default:
			nc.Close()
			return nil, err
		}
	}
	return newServerConn(nc, sock, early, maxPayload), nil
}
