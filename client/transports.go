package client

import (
	"context"
	"crypto/tls"
	"fmt"

	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/transport/quic"
	"github.com/jetstreamproto/jsp/transport/tcptls"
	"github.com/jetstreamproto/jsp/transport/websocket"
)

// dialTransport connects one transport to the target (JSP §7.1-7.3); the
// transport's own TLS 1.3 handshake is done when it returns.
func dialTransport(ctx context.Context, kind transport.Kind, t target, tlsConf *tls.Config, o *Options) (transport.Conn, error) {
	switch kind {
	case transport.KindQUIC:
		return quic.Dial(ctx, t.addr, tlsConf, o.QUIC)
	case transport.KindTCP:
		return tcptls.Dial(ctx, t.addr, tlsConf, o.Link)
	case transport.KindWebSocket:
		return websocket.Dial(ctx, t.wsURL, tlsConf, o.Link)
	}
	return nil, fmt.Errorf("client: no dialer for transport %q", kind)
}
