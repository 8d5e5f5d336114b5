package gateway

import (
	"fmt"
	"net"
	"path/filepath"

	"github.com/jetstreamproto/jsp/transport"
	jspquic "github.com/jetstreamproto/jsp/transport/quic"
	"github.com/jetstreamproto/jsp/transport/tcptls"
	"github.com/jetstreamproto/jsp/transport/tlsconf"
)

func devCertPath(dataDir string) string { return filepath.Join(dataDir, tlsconf.DevCertFile) }

// listen binds every enabled listener. On failure the caller closes what
// was bound.
func (g *Gateway) listen() error {
	tlsConf := tlsconf.Server(g.cert)
	if g.cfg.QUICAddr != Off {
		// The filter decides before quic-go keeps state for an attempt:
		// Retry under load, and admission before the handshake.
		qc := g.cfg.QUIC
		qc.VerifySourceAddress = g.adm.verifySourceAddress
		qc.ConnContext = g.adm.quicConnContext
		l, err := jspquic.Listen(g.cfg.QUICAddr, tlsConf, qc)
		if err != nil {
			return fmt.Errorf("gateway: QUIC listener on %s: %w", g.cfg.QUICAddr, err)
		}
		g.listeners = append(g.listeners, &listener{kind: transport.KindQUIC, l: l})
	}
	if g.cfg.TCPAddr != Off {
		ln, err := net.Listen("tcp", g.cfg.TCPAddr)
		if err != nil {
			return fmt.Errorf("gateway: TCP listener on %s: %w", g.cfg.TCPAddr, err)
		}
		// The filter sees each TCP connection before its TLS handshake.
		fl := newFilteredListener(ln, g.adm, string(transport.KindTCP))
		l, err := tcptls.ListenConfig{Mux: g.cfg.Link}.Serve(fl, tlsConf)
		if err != nil {
			return fmt.Errorf("gateway: TCP listener on %s: %w", g.cfg.TCPAddr, err)
		}
		g.listeners = append(g.listeners, &listener{kind: transport.KindTCP, l: l, filtered: fl})
	}
	if g.cfg.WSAddr != Off {
		if err := g.listenHTTPS(tlsConf); err != nil {
			return err
		}
	}
	for _, l := range g.cfg.ExtraListeners {
		// Sessions report their transport from their connection; the
		// listener's kind only labels its log lines.
		g.listeners = append(g.listeners, &listener{kind: transport.Kind(l.Addr().Network()), l: l})
	}
	return nil
}
