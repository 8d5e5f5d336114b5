package websocket

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
)

// The client's opening handshake (RFC 6455, Section 4.1) and framing. The
// dialing side frames its connection with the server's codec (serverConn
// with client set), reading frames straight from the TLS connection with
// one buffered read per burst, instead of through the WebSocket library's
// reader over net/http's body and a bufio.Reader, which cost a third of a
// fan-out subscriber's CPU.

// maxUpgradeResponse caps the server's upgrade response (status line and
// headers): a 101 answer is a few hundred bytes, and a peer that sends
// endless headers must not hold the dial until its deadline.
const maxUpgradeResponse = 16 << 10

// clientMaxPayload is the largest server frame the client accepts: none
// is refused for its size, as on the library's path. Payload is decoded
// into the link's buffer as it arrives, never allocated from the declared
// length, and the link's frame reader bounds every link frame it carries
// (JSP §9).
const clientMaxPayload = math.MaxInt64

// errUpgradeResponseTooLarge is returned when the upgrade response does not
// end within maxUpgradeResponse bytes.
var errUpgradeResponseTooLarge = errors.New("websocket: upgrade response too large")

// newClientConn frames the client's side of an upgraded connection. early
// holds bytes the server sent right after its upgrade response.
func newClientConn(nc net.Conn, early []byte) *serverConn {
	s := newServerConn(nc, nil, early, clientMaxPayload)
	s.client = true
	return s
}

// dialUpgrade connects to u over TLS 1.3 and performs the opening
// handshake with subprotocol "jsp.1" (JSP §7.3). It returns the TLS
// connection, its state and the bytes read past the upgrade response. ctx
// bounds the whole exchange.
func (d Dialer) dialUpgrade(ctx context.Context, u *url.URL, conf *tls.Config) (_ *tls.Conn, _ tls.ConnectionState, early []byte, err error) {
	hostport := u.Host
	if u.Port() == "" {
		hostport = net.JoinHostPort(u.Hostname(), "443")
	}
	var nd net.Dialer
	nc, err := nd.DialContext(ctx, "tcp", hostport)
	if err != nil {
		return nil, tls.ConnectionState{}, nil, fmt.Errorf("connect: %w", err)
	}
	defer func() {
		if err != nil {
			nc.Close()
		}
	}()
	// A cancelled ctx interrupts a read or write in progress; its deadline
	// bounds them all.
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	if conf.ServerName == "" {
		conf.ServerName = u.Hostname()
	}
	tc := tls.Client(nc, conf)
	if err := tc.HandshakeContext(ctx); err != nil {
		stop()
		return nil, tls.ConnectionState{}, nil, fmt.Errorf("TLS handshake: %w", err)
	}
	state := tc.ConnectionState()
	if state.Version != tls.VersionTLS13 {
		stop()
		return nil, state, nil, jsperr.New(jsperr.TlsRequired, "connection is not TLS 1.3 (JSP §7.4)")
	}
	early, err = d.upgradeOver(tc, u)
	if !stop() {
		return nil, state, nil, fmt.Errorf("upgrade: %w", context.Cause(ctx))
	}
	if err != nil {
		return nil, state, nil, err
	}
	nc.SetDeadline(time.Time{})
	return tc, state, early, nil
}

// upgradeOver sends the upgrade request on tc and checks the server's
// answer (RFC 6455, Section 4.1).
func (d Dialer) upgradeOver(tc *tls.Conn, u *url.URL) ([]byte, error) {
	var nonce [16]byte
	rand.Read(nonce[:])
	key := base64.StdEncoding.EncodeToString(nonce[:])
	h := d.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	h.Set("Upgrade", "websocket")
	h.Set("Connection", "Upgrade")
	h.Set("Sec-WebSocket-Key", key)
	h.Set("Sec-WebSocket-Version", "13")
	h.Set("Sec-WebSocket-Protocol", protocol.WebSocketSubprotocol)
	req := &http.Request{
		Method:     http.MethodGet,
		URL:        &url.URL{Path: u.Path, RawPath: u.RawPath, RawQuery: u.RawQuery},
		Host:       u.Host,
		Header:     h,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
	}
	if err := req.Write(tc); err != nil {
		return nil, fmt.Errorf("send upgrade request: %w", err)
	}
	lr := &io.LimitedReader{R: tc, N: maxUpgradeResponse}
	br := bufio.NewReader(lr)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		if lr.N == 0 {
			return nil, fmt.Errorf("%w: over %d bytes", errUpgradeResponseTooLarge, maxUpgradeResponse)
		}
		return nil, fmt.Errorf("read upgrade response: %w", err)
	}
	resp.Body.Close()
	if err := checkUpgradeResponse(resp, key); err != nil {
		return nil, err
	}
	// The server may send its first frames right behind the response.
	var early []byte
	if n := br.Buffered(); n > 0 {
		early, _ = br.Peek(n)
	}
	return early, nil
}

// checkUpgradeResponse validates the server's answer to an upgrade request
// sent with key (RFC 6455, Section 4.1, the client's checks 1-6) and the
// subprotocol JSP requires (JSP §7.3).
func checkUpgradeResponse(resp *http.Response, key string) error {
	switch {
	case resp.StatusCode != http.StatusSwitchingProtocols:
		return fmt.Errorf("upgrade refused: %s", resp.Status)
	case !headerHasToken(resp.Header, "Upgrade", "websocket") || !headerHasToken(resp.Header, "Connection", "upgrade"):
		return errors.New("upgrade response without Upgrade: websocket and Connection: upgrade")
	case resp.Header.Get("Sec-WebSocket-Accept") != acceptKey(key):
		return errors.New("upgrade response with a wrong Sec-WebSocket-Accept")
	case resp.Header.Get("Sec-WebSocket-Extensions") != "":
		// None was offered (JSP uses no extension).
		return errors.New("server chose an extension that was not offered")
	}
	if p := strings.Join(resp.Header.Values("Sec-WebSocket-Protocol"), ","); p != protocol.WebSocketSubprotocol {
		return fmt.Errorf("server chose subprotocol %q, JSP requires %q", p, protocol.WebSocketSubprotocol)
	}
	return nil
}

// writeMaskedLocked writes a client frame: the header with a fresh masking
// key and the masked payload, copied a TLS record's worth at a time into a
// pooled buffer, since p belongs to the caller and must not be masked in
// place (RFC 6455, Section 5.3). s.wmu is held.
func (s *serverConn) writeMaskedLocked(h frameHeader, p []byte) error {
	// The key only has to be unpredictable to whoever chooses the payload
	// (Section 10.3); the runtime's ChaCha8 generator, seeded from the
	// system, is, without a system call per frame.
	h.masked = true
	binary.LittleEndian.PutUint32(h.mask[:], mrand.Uint32())
	bp := recordPool.Get().(*[]byte)
	b := appendFrameHeader((*bp)[:0], h)
	defer func() {
		*bp = b[:0]
		recordPool.Put(bp)
	}()
	pos := 0
	for {
		k := min(len(p), tlsRecordPayload-len(b))
		start := len(b)
		b = append(b, p[:k]...)
		pos = maskBytes(h.mask, pos, b[start:])
		p = p[k:]
		if _, err := s.nc.Write(b); err != nil {
			return err
		}
		if len(p) == 0 {
			return nil
		}
		b = b[:0]
	}
}
