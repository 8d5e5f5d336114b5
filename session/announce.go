package session

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/wire"
)

// CapAnnounce is the HELLO/WELCOME capability under which the client sends
// ANNOUNCE before its first application stream and its first datagram
// (JSP §5.14, §8.2), and the server reads neither until then.
//
// Why: over a transport that cannot report arrivals by callback (QUIC:
// quic-go has only blocking calls), a server session otherwise keeps one
// goroutine blocked in AcceptStream and another in ReceiveDatagram for its
// whole life, although most sessions never use either; with it an idle
// session keeps neither (decision D38). The transport holds what arrives
// before the ANNOUNCE (JSP §7.1): quic-go keeps peer streams up to the
// stream limit and 128 received datagrams, so nothing that raced ahead of
// the ANNOUNCE is lost.
const CapAnnounce = "announce"

// announcer is the client's side of CapAnnounce: what it has announced.
type announcer struct {
	on bool // CapAnnounce is in effect; set before the session starts
	// sent holds the wire.Uses bits announced so far; mu serialises
	// sending, so that no caller goes on before its bit's ANNOUNCE is
	// queued.
	sent atomic.Uint64
	mu   sync.Mutex
}

// announce makes sure the server has been told about u before the caller
// opens a stream or sends a datagram (JSP §5.14): it queues an ANNOUNCE on
// the control stream with the bits of u not yet announced, and returns
// once it is queued. The control stream is ordered and the sender keeps
// the order of a class, so the server reads it before anything the caller
// sends on the control stream afterwards; streams and datagrams may still
// overtake it, which the transport absorbs (§7.1). A no-op unless the
// capability is in effect (always on the server).
func (s *Session) announce(u wire.Uses) error {
	a := &s.ann
	if !a.on || wire.Uses(a.sent.Load()).Has(u) {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	have := wire.Uses(a.sent.Load())
	if have.Has(u) {
		return nil
	}
	if err := s.sendFrame(&wire.Announce{Uses: u &^ have}, protocol.ClassSystem); err != nil {
		return fmt.Errorf("session: announce: %w", err)
	}
	a.sent.Store(uint64(have | u))
	return nil
}

// acceptsAnnounce reports whether a server accepts CapAnnounce on conn:
// only where it saves something, that is where the transport cannot report
// arriving streams and datagrams by callback (transport.ArrivalNotifier);
// there the intake runs on demand anyway (D27).
func acceptsAnnounce(cfg *Config, conn transport.Conn) bool {
	if cfg.DisableAnnounce {
		return false
	}
	_, callbacks := conn.(transport.ArrivalNotifier)
	return !callbacks
}

// startAnnounced starts the stream acceptor and the datagram receiver the
// client has announced (JSP §5.14) and that do not run yet. It runs on the
// control reader (the only caller of handleFrame with DeliveryOrdered),
// which owns s.unannounced and holds a count in s.wg, so that adding to
// the WaitGroup here cannot race with Close's Wait. After the session has
// ended, what it starts returns at once (its context is done).
func (s *Session) startAnnounced(u wire.Uses) {
	if u.Has(wire.UsesStreams) && s.unannounced.Has(wire.UsesStreams) {
		s.unannounced &^= wire.UsesStreams
		s.run("stream acceptor", s.acceptStreams)
	}
	if u.Has(wire.UsesDatagrams) && s.unannounced.Has(wire.UsesDatagrams) {
		s.unannounced &^= wire.UsesDatagrams
		s.run("datagram receiver", s.receiveDatagrams)
	}
}
