package websocket

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"

	"github.com/jetstreamproto/jsp/transport/netpoll"
	"github.com/jetstreamproto/jsp/transport/tcptls"
)

// wss:// without a goroutine per idle connection (decision D40).
//
// crypto/tls reads its socket directly, so a *tls.Conn cannot be polled.
// TLSListener therefore puts each accepted connection's tls.Conn on a
// record feed (tcptls.Feed) over a socket of the Handler's poller. The
// HTTP server sees an ordinary *tls.Conn: it runs the handshake under its
// own timeouts and reads the upgrade request through the feed, which
// waits for the socket like the bare connection would. After the upgrade
// the feed stops waiting (tcptls.Feed.SetNonblocking) and hands crypto/tls
// whole records only; the link is a mux.NewPolled link over serverConn,
// whose frames come from tlsSource.

// tlsSource is the rawSource of an upgraded wss:// connection: plaintext
// from crypto/tls, which reads the feed without waiting.
type tlsSource struct {
	tc   *tls.Conn
	feed *tcptls.Feed
	// inner is set while crypto/tls may hold plaintext: after a Read
	// that filled its buffer, and at the start (the HTTP server reads
	// ahead). Otherwise a Read is only worth it when the feed is ready.
	inner bool
}

// ReadAvailable returns plaintext that crypto/tls holds or can decrypt
// from whole records that have arrived. A short p leaves the rest of a
// record in crypto/tls, which the next call returns first; crypto/tls may
// also hold plaintext read before the upgrade (the HTTP server reads
// ahead), which the first call returns. When crypto/tls holds nothing and
// the feed has no record, it returns without calling crypto/tls, whose
// Read would only fail with ErrWouldBlock after allocating.
func (s *tlsSource) ReadAvailable(p []byte) (int, error) {
	if !s.inner && !s.feed.Ready() {
		return 0, nil
	}
	n, err := s.tc.Read(p)
	// A short Read emptied crypto/tls's plaintext buffer.
	s.inner = n == len(p) && n > 0
	if err != nil && errors.Is(err, tcptls.ErrWouldBlock) {
		return n, nil
	}
	return n, err
}

// Watch implements rawSource.
func (s *tlsSource) Watch(ready func()) error { return s.feed.Socket().Watch(ready) }

// Rearm implements rawSource.
func (s *tlsSource) Rearm() error { return s.feed.Rearm() }

// Close closes the socket without close_notify: the link has exchanged
// LINK_CLOSE (and the WebSocket close frame, where there was one) already.
func (s *tlsSource) Close() error { return s.feed.Socket().Close() }

// TLSListener returns a listener for an http.Server that serves h over
// TLS: it accepts connections on ln and returns each as a *tls.Conn with
// conf over a record feed on h's poller, so that a connection h upgrades
// is read without a goroutine while idle (decision D40). The HTTP server
// does the TLS handshake and parses the request as over tls.NewListener,
// under its own timeouts. conf is used as given (the caller restricts it
// to TLS 1.3 and HTTP/1.1), except that TLS records are always filled up
// to their size: the WebSocket frames a link writes leave as one record
// where they fit one.
//
// Where sockets cannot be polled (HandlerConfig.NoPoll, other platforms,
// or a connection without a descriptor) the connection is a bare
// tls.Conn, and its upgrade is read by the link's goroutine. The listener
// owns ln: Close closes it.
func (h *Handler) TLSListener(ln net.Listener, conf *tls.Config) (net.Listener, error) {
	conf = conf.Clone()
	// crypto/tls sizes the first records of a connection to one TCP
	// segment so that a browser can parse a page as it arrives; a link's
	// batch gains nothing from that and would cost a record (and, without
	// the cork, a write call) per segment.
	conf.DynamicRecordSizingDisabled = true
	p, err := h.pollerForTLS()
	if err != nil {
		return nil, err
	}
	if p == nil {
		return tls.NewListener(ln, conf), nil
	}
	return &feedListener{Listener: ln, poller: p, conf: conf}, nil
}

// pollerForTLS returns the Handler's poller, starting it on first use;
// nil when connections are read by goroutines.
func (h *Handler) pollerForTLS() (*netpoll.Poller, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.poller != nil || h.cfg.NoPoll {
		return h.poller, nil
	}
	if h.closed {
		return nil, errors.New("websocket: TLS listener for a closed handler")
	}
	p, err := netpoll.New(netpoll.Config{})
	switch {
	case err == nil:
		h.poller = p
		return p, nil
	case errors.Is(err, netpoll.ErrUnsupported):
		return nil, nil
	}
	return nil, fmt.Errorf("websocket: %w", err)
}

// feedListener is the listener TLSListener returns.
type feedListener struct {
	net.Listener
	poller *netpoll.Poller
	conf   *tls.Config
}

// Accept returns the next connection as a server *tls.Conn.
func (l *feedListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	sock, err := netpoll.NewSocket(l.poller, nc)
	if err != nil {
		// No descriptor to watch: a bare TLS connection, read by a
		// goroutine once upgraded.
		return tls.Server(nc, l.conf), nil
	}
	return tls.Server(tcptls.NewFeed(sock), l.conf), nil
}
