package session

import (
	"fmt"
	"sync"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/wire"
)

// heartbeatState drives the heartbeat (JSP §11.2)
// from callbacks instead of goroutines that would only wait: a timer
// (time.AfterFunc) sends the client's PINGs and enforces the idle timeout
// on both sides (decision D24: fewer goroutines per idle session). The
// transport's close is seen by the control reader (D34).
//
// Ownership: a callback that runs joins the session's WaitGroup under mu
// unless stopped is set; fail sets stopped (stopHeartbeat) before it
// cancels the session, so every Close/Wait joins the callbacks that
// started and no callback starts afterwards.
type heartbeatState struct {
	mu      sync.Mutex
	stopped bool        // guarded by mu: the session is ending
	timer   *time.Timer // guarded by mu: nil until started
	idle    time.Duration
	// lastWrites and pinged belong to heartbeatTick, which runs once at a
	// time (the timer is re-armed at its end): the control stream's write
	// count at the previous tick, and whether that tick sent a PING.
	lastWrites uint64
	pinged     bool
}

// startHeartbeat arms the heartbeat timer. There is no transport watch
// (D34): the control reader sees the transport close, by the read that
// fails where it blocks in Read (QUIC) and by the readability callback,
// which runs on the connection's close (transport.ReadNotifier), where it
// reads on demand, and ends the session with the transport's error. A
// watch would cost each session a context.AfterFunc on the transport's
// context, that context's children map and its Done channel.
func (s *Session) startHeartbeat() {
	idle := s.idleTimeout()
	tick := min(time.Duration(s.heartbeat.Load()), idle/3)
	if s.role == RoleServer {
		tick = idle / 3
	}
	s.hb.mu.Lock()
	defer s.hb.mu.Unlock()
	if s.hb.stopped {
		return
	}
	s.hb.idle = idle
	s.hb.timer = time.AfterFunc(tick, s.heartbeatTick)
}

// stopHeartbeat stops the timer; callbacks
// already running finish and are joined by the session's WaitGroup.
func (s *Session) stopHeartbeat() {
	s.hb.mu.Lock()
	defer s.hb.mu.Unlock()
	s.hb.stopped = true
	if s.hb.timer != nil {
		s.hb.timer.Stop()
	}
}

// heartbeatNeeded reports whether this tick's PING is needed: it is not
// when, since the previous tick, the control stream carried frames both
// ways that were not that tick's own PING and PONG. The server's idle
// timer was then reset by what this side sent, and this side's by what
// the server sent, so the PING would prove nothing, and a busy session
// (a subscriber that ACKs its events) spares both ends a write and a read
// per tick. An idle session pings at every tick, as before.
func (s *Session) heartbeatNeeded(sinceRecv, tick time.Duration) bool {
	writes := s.send.writes.Load()
	busy := !s.hb.pinged && writes != s.hb.lastWrites && sinceRecv < tick
	s.hb.lastWrites, s.hb.pinged = writes, !busy
	return !busy
}

// sendHeartbeatPing sends the client's heartbeat PING; it reports false
// when the session is closing.
func (s *Session) sendHeartbeatPing() bool {
	s.pendingMu.Lock()
	s.pingID++
	id := s.pingID
	s.addPingLocked(id, make(chan time.Duration, 1))
	// Keep at most a handful of heartbeat pings outstanding.
	if len(s.pings) > 8 {
		for k := range s.pings {
			if k != id {
				delete(s.pings, k)
				break
			}
		}
	}
	s.pendingMu.Unlock()
	return s.Send(&wire.Ping{ID: id, Timestamp: uint64(s.cfg.Now().UnixMicro())}) == nil
}

// heartbeatEnter registers a running callback with the session's
// WaitGroup, or reports false once the session is ending.
func (s *Session) heartbeatEnter() bool {
	s.hb.mu.Lock()
	defer s.hb.mu.Unlock()
	if s.hb.stopped {
		return false
	}
	s.wg.Add(1)
	return true
}

// heartbeatTick runs when the heartbeat timer fires: it closes a session
// whose peer has been silent past the idle timeout, sends the client's
// PING, and re-arms the timer.
func (s *Session) heartbeatTick() {
	if !s.heartbeatEnter() {
		return
	}
	defer s.wg.Done()
	idle := s.hb.idle
	tick := idle / 3
	since := s.cfg.Now().Sub(time.Unix(0, s.lastRecv.Load()))
	if since > idle {
		err := jsperr.Newf(jsperr.IdleTimeout, "nothing from the peer for %v (limit %v)", since.Round(time.Millisecond), idle)
		s.fail(fmt.Errorf("session heartbeat: %w", err))
		return
	}
	if s.role == RoleClient {
		interval := time.Duration(s.heartbeat.Load())
		if s.heartbeatNeeded(since, interval) && !s.sendHeartbeatPing() {
			return // closing
		}
		tick = interval
	}
	s.hb.mu.Lock()
	if !s.hb.stopped {
		s.hb.timer.Reset(tick)
	}
	s.hb.mu.Unlock()
}
