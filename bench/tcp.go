package bench

import (
	"context"

	"github.com/jetstreamproto/jsp/session"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/transport/mux"
	"github.com/jetstreamproto/jsp/transport/tcptls"
)

// TCPListener listens with transport/tcptls and the default link Config.
func TCPListener(t TLS) (transport.Listener, func() error, error) {
	ln, err := tcptls.Listen("127.0.0.1:0", t.Server, mux.Config{})
	return ln, nil, err
}

// TCPDialer dials with transport/tcptls and the default link Config.
func TCPDialer(ctx context.Context, addr string, t TLS) (transport.Conn, error) {
	return tcptls.Dial(ctx, addr, t.Client, mux.Config{})
}

// JSPTCP is JSP with default session settings over TLS on TCP: the link
// layer (transport/mux) multiplexes the session's streams (JSP §7.2).
func JSPTCP() Stack { return JSP(TCPListener, TCPDialer, session.Config{}) }
