package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/security/ddos"
	"github.com/jetstreamproto/jsp/security/ratelimit"
	jspquic "github.com/jetstreamproto/jsp/transport/quic"
)

// admission is the gateway's first filter for new connections
// (ARCHITECTURE §5), run before the TLS handshake: on each raw TCP
// connection of the TCP and HTTPS listeners (filteredListener) and on each
// QUIC connection attempt (quicConnContext, with Retry decided by
// verifySourceAddress). In order it refuses blocked addresses (BLOCKED),
// addresses over their connection-attempt rate (RATE_LIMITED), and
// addresses or a server over the filter's connection and handshake caps
// (TOO_MANY_CONNECTIONS, TOO_MANY_HANDSHAKES).
//
// A refused attempt is still given its handshake while fewer than
// MaxRefusalHandshakes refusals are in flight, so that the client learns
// its refusal code from the close; beyond that it is dropped at once. The
// outcome travels with the connection as a ticket: in the QUIC
// connection's context, or in the listener's table by remote address for
// TCP and WebSocket; Gateway.admit reads it after Accept.
type admission struct {
	filter   *ddos.Filter
	attempts *ratelimit.Limiter // nil: connection attempts are not limited
	v6Prefix int
	refusals chan struct{} // semaphore: refused connections given a handshake
	log      *sampledLog
	metrics  *metrics
}

func newAdmission(cfg *Config, m *metrics, log *sampledLog) (*admission, error) {
	f, err := ddos.New(cfg.DDoS)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	attempts, err := cfg.RateLimits.attemptLimit(cfg.Now)
	if err != nil {
		return nil, err
	}
	a := &admission{
		filter:   f,
		attempts: attempts,
		v6Prefix: cfg.DDoS.IPv6Prefix,
		log:      log,
		metrics:  m,
	}
	if a.v6Prefix == 0 {
		a.v6Prefix = ddos.DefaultIPv6Prefix
	}
	for _, r := range refusalReasons {
		m.refused.add(r, 0)
	}
	if cfg.MaxRefusalHandshakes > 0 {
		a.refusals = make(chan struct{}, cfg.MaxRefusalHandshakes)
	}
	return a, nil
}

// allowListed tells whether ip is on the filter's allow list in force,
// which exempts it from the connection-attempt limit as it does from the
// filter's caps.
func (a *admission) allowListed(ip netip.Addr) bool { return a.filter.Allowed(ip) }

// ticket is the admission of one connection: a filter slot, or the
// refusal the gateway tells the client once the handshake is done.
type ticket struct {
	a       *admission
	slot    *ddos.Slot    // nil when refused
	refusal *jsperr.Error // nil when admitted
	label   string        // metrics label of the refusal
	// courtesy is set when the ticket holds a place in a.refusals.
	courtesy bool
	once     sync.Once
}

// release gives back what the ticket holds; later calls do nothing.
func (t *ticket) release() {
	t.once.Do(func() {
		if t.slot != nil {
			t.slot.Release()
		}
		if t.courtesy {
			<-t.a.refusals
		}
	})
}

// refusalLabel is the metrics label of a filter refusal.
func refusalLabel(code jsperr.Code) string {
	switch code {
	case jsperr.Blocked:
		return "blocked"
	case jsperr.RateLimited:
		return "attempt_rate"
	case jsperr.TooManyConnections:
		return "too_many_connections"
	case jsperr.TooManyHandshakes:
		return "too_many_handshakes"
	}
	return "filter"
}

// begin decides about a connection attempt from remote before its
// handshake. It returns a ticket, which may carry a refusal to deliver
// after the handshake when courtesy allows, or an error when the attempt is
// to be dropped at once.
func (a *admission) begin(remote net.Addr, transportName string, courtesy bool) (*ticket, error) {
	ip, err := ddos.AddrIP(remote)
	if err != nil {
		return nil, fmt.Errorf("gateway: admission: %w", err)
	}
	var refusal *jsperr.Error
	if err := a.filter.Check(ip); err != nil {
		refusal = asJSP(err, jsperr.Blocked)
	} else if a.attempts != nil && !a.allowListed(ip) {
		if err := a.attempts.Allow(ratelimit.IPKey(ip, a.v6Prefix)); err != nil {
			refusal = asJSP(err, jsperr.RateLimited)
		}
	}
	if refusal == nil {
		slot, err := a.filter.BeginHandshake(ip)
		if err == nil {
			return &ticket{a: a, slot: slot}, nil
		}
		refusal = asJSP(err, jsperr.TooManyConnections)
	}
	t := &ticket{a: a, refusal: refusal, label: refusalLabel(refusal.Code)}
	a.metrics.refused.add(t.label, 1)
	if courtesy && a.refusals != nil {
		select {
		case a.refusals <- struct{}{}:
			t.courtesy = true
		default:
		}
	}
	answer := "after the handshake"
	if courtesy && !t.courtesy {
		answer = "dropped before the handshake"
	}
	a.log.log("gateway: connection refused", "code", refusal.Code.String(), "reason", refusal.Reason,
		"remote", remote.String(), "transport", transportName, "answer", answer)
	if courtesy && !t.courtesy {
		return nil, refusal
	}
	return t, nil
}

// asJSP returns err's *jsperr.Error, or one with code def.
func asJSP(err error, def jsperr.Code) *jsperr.Error {
	var je *jsperr.Error
	if errors.As(err, &je) {
		return je
	}
	return jsperr.Wrap(def, err)
}

// ticketKey is the context key of a QUIC connection's ticket.
type ticketKey struct{}

// verifySourceAddress is the QUIC listener's VerifySourceAddress: Retry
// when the filter says so (under load, for an address with handshakes in
// flight, for a blocked address).
func (a *admission) verifySourceAddress(addr net.Addr) bool {
	if a.filter.RequireAddressValidation(addr) {
		a.metrics.quicRetries.add("required", 1)
		return true
	}
	return false
}

// quicConnContext is the QUIC listener's ConnContext: it admits the
// attempt before its handshake and keeps the ticket in the connection's
// context until the connection ends.
func (a *admission) quicConnContext(ctx context.Context, info jspquic.ClientInfo) (context.Context, error) {
	if info.AddrVerified {
		a.metrics.quicRetries.add("validated", 1)
	}
	t, err := a.begin(info.RemoteAddr, "quic", true)
	if err != nil {
		return ctx, err
	}
	// ctx ends when the connection closes or its handshake fails; the
	// AfterFunc runs once then and is never stopped.
	context.AfterFunc(ctx, t.release)
	return context.WithValue(ctx, ticketKey{}, t), nil
}

// filteredListener admits raw TCP connections before their TLS handshake
// and keeps their tickets by remote address until they close.
type filteredListener struct {
	net.Listener
	a    *admission
	name string // transport, for log lines

	mu      sync.Mutex
	tickets map[string]*ticket // guarded by mu
}

func newFilteredListener(ln net.Listener, a *admission, name string) *filteredListener {
	return &filteredListener{Listener: ln, a: a, name: name, tickets: map[string]*ticket{}}
}

// Accept returns the next admitted connection; connections refused
// without courtesy are closed here.
func (l *filteredListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		t, err := l.a.begin(c.RemoteAddr(), l.name, true)
		if err != nil {
			_ = c.Close()
			continue
		}
		key := c.RemoteAddr().String()
		l.mu.Lock()
		l.tickets[key] = t
		l.mu.Unlock()
		return &admittedConn{Conn: c, l: l, t: t, key: key}, nil
	}
}

// ticket returns the ticket of the open connection from remote.
func (l *filteredListener) ticket(remote string) *ticket {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.tickets[remote]
}

// admittedConn is a raw connection with its ticket; closing it releases
// the ticket.
type admittedConn struct {
	net.Conn
	l      *filteredListener
	t      *ticket
	key    string
	closed atomic.Bool
}

func (c *admittedConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.l.mu.Lock()
		if c.l.tickets[c.key] == c.t {
			delete(c.l.tickets, c.key)
		}
		c.l.mu.Unlock()
		c.t.release()
	}
	return c.Conn.Close()
}

// SyscallConn passes the socket's descriptor on, so that the transports
// can watch an idle admitted connection with a poller instead of a
// goroutine (decision D33). Reads and writes still go through the
// connection and Close still releases the ticket.
func (c *admittedConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("gateway: %T has no descriptor", c.Conn)
	}
	return sc.SyscallConn()
}

// maxLogReasons caps the reasons sampledLog tells apart; refusals of
// further reasons share one budget. Reasons are a message and a registry
// code, a small fixed set, so the cap is only a guard.
const maxLogReasons = 256

// sampledLog logs refusals at info level, at most a rate per second for
// each reason (the message and its "code" attribute), so that a flood of
// one refusal neither floods the log nor hides the lines of another; the
// lines left out are counted in the next line of that reason as
// "suppressed".
type sampledLog struct {
	out *slog.Logger
	lim *ratelimit.Limiter // keyed by reason; nil: every line is logged

	mu         sync.Mutex
	suppressed map[string]uint64 // guarded by mu; by reason, at most maxLogReasons
}

func newSampledLog(log *slog.Logger, perSecond float64, now func() time.Time) (*sampledLog, error) {
	s := &sampledLog{out: log, suppressed: map[string]uint64{}}
	if perSecond > 0 {
		lim, err := ratelimit.New(ratelimit.Config{Name: "refusal log", Rate: perSecond, Burst: max(1, int(perSecond)),
			MaxKeys: maxLogReasons + 1, Now: now})
		if err != nil {
			return nil, fmt.Errorf("gateway: refusal log: %w", err)
		}
		s.lim = lim
	}
	return s, nil
}

// reasonKey is the reason of a line: msg and the value of its "code"
// attribute. Beyond maxLogReasons known reasons, every new one maps to "".
func (s *sampledLog) reasonKeyLocked(msg string, args []any) string {
	key := msg
	for i := 0; i+1 < len(args); i += 2 {
		if k, ok := args[i].(string); ok && k == "code" {
			key += "\x00" + fmt.Sprint(args[i+1])
			break
		}
	}
	if _, ok := s.suppressed[key]; !ok && len(s.suppressed) >= maxLogReasons {
		return ""
	}
	return key
}

func (s *sampledLog) log(msg string, args ...any) {
	if s.lim == nil {
		s.out.Info(msg, args...)
		return
	}
	s.mu.Lock()
	key := s.reasonKeyLocked(msg, args)
	if s.lim.Allow(key) != nil {
		s.suppressed[key]++
		s.mu.Unlock()
		return
	}
	n := s.suppressed[key]
	s.suppressed[key] = 0 // the reason stays known, so that its key is stable
	s.mu.Unlock()
	if n > 0 {
		args = append(args, "suppressed", n)
	}
	s.out.Info(msg, args...)
}
