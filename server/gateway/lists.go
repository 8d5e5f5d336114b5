package gateway

import (
	"fmt"
	"net/netip"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/security/ddos"
)

// Refusal reasons of jsp_connections_refused_total. The metric lists each
// from the start, so that a dashboard shows 0 rather than no data.
const (
	// refusedBlockedOpen counts open sessions closed because a list
	// reload blocked their address (SetLists).
	refusedBlockedOpen = "blocked_reload"
)

// refusalReasons are the reasons jsp_connections_refused_total always
// lists: the filter's (refusalLabel), the accept loop's (Gateway.admit)
// and the list reload's.
var refusalReasons = []string{
	"blocked", "attempt_rate", "too_many_connections", "too_many_handshakes",
	"reaped", "draining", "max_sessions", "handshakes", refusedBlockedOpen,
}

// Lists returns the connection filter's block and allow lists in force.
func (g *Gateway) Lists() ddos.Lists { return g.adm.filter.Lists() }

// SetLists replaces the connection filter's CIDR block and allow lists
// without a restart (ARCHITECTURE §5): new connections are judged by the
// new lists at once, and every open session whose address the new lists
// block is closed with BLOCKED. It returns how many sessions it closed.
// Invalid lists are refused and the lists in force stay.
func (g *Gateway) SetLists(l ddos.Lists) (closed int, err error) {
	if err := g.adm.filter.SetLists(l); err != nil {
		return 0, fmt.Errorf("gateway: %w", err)
	}
	// The swap above comes before this snapshot, and a session joins
	// g.hosts before it checks the lists itself (closeIfBlocked): every
	// session is either in the snapshot or checks the new lists.
	g.mu.Lock()
	var blocked []*host
	for h := range g.hosts {
		if g.hostBlocked(h) {
			blocked = append(blocked, h)
		}
	}
	g.mu.Unlock()
	for _, h := range blocked {
		g.closeBlocked(h)
	}
	g.log.Info("gateway: connection lists replaced", "block", len(l.Block), "allow", len(l.Allow), "sessions_closed", len(blocked))
	return len(blocked), nil
}

// hostBlocked reports whether h's address is on the block list now.
func (g *Gateway) hostBlocked(h *host) bool {
	ap, err := netip.ParseAddrPort(h.ident.RemoteAddr)
	return err == nil && g.adm.filter.Blocked(ap.Addr())
}

// closeIfBlocked closes h, which just joined g.hosts, when a list reload
// blocked its address during its handshake.
func (g *Gateway) closeIfBlocked(h *host) {
	if g.hostBlocked(h) {
		g.closeBlocked(h)
	}
}

func (g *Gateway) closeBlocked(h *host) {
	g.metrics.refused.add(refusedBlockedOpen, 1)
	g.refusalLog.log("gateway: open session closed", "code", jsperr.Blocked.String(),
		"reason", "address blocked by a list reload", "remote", h.ident.RemoteAddr, "session", h.id)
	h.closeOnError(jsperr.Newf(jsperr.Blocked, "address %s is blocked", h.ident.RemoteAddr))
}
