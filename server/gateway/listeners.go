package gateway

import (
	"fmt"
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
		l, err := jspquic.Listen(g.cfg.QUICAddr, tlsConf, g.cfg.QUIC)
		if err != nil {
			return fmt.Errorf("gateway: QUIC listener on %s: %w", g.cfg.QUICAddr, err)
		}
		g.listeners = append(g.listeners, &listener{kind: transport.KindQUIC, l: l})
	}
	if g.cfg.TCPAddr != Off {
		l, err := tcptls.Listen(g.cfg.TCPAddr, tlsConf, g.cfg.Link)
		if err != nil {
			return fmt.Errorf("gateway: TCP listener on %s: %w", g.cfg.TCPAddr, err)
		}
		g.listeners = append(g.listeners, &listener{kind: transport.KindTCP, l: l})
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
