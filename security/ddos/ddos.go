// Package ddos is the gateway's first filter for new connections
// (ARCHITECTURE §5; JSP §9): CIDR block and allow lists, per-IP caps on
// open connections and on handshakes in flight, global caps, a reaper for
// handshakes that overstay their time limit, and the load-based decision
// to make QUIC clients prove their address with a Retry before the server
// keeps any state for them (RFC 9000 §8.1.2).
//
// Intended wiring (done by the listeners, not here):
//
//   - QUIC: quic-go's Transport.VerifySourceAddress = f.RequireAddressValidation
//     (called for each Initial packet without a valid token; true makes
//     quic-go answer with a stateless Retry). Transport.ConnContext calls
//     f.BeginHandshake with ClientInfo.RemoteAddr and refuses the
//     connection on error; the slot is marked Established when the
//     handshake completes and Released when the connection's context ends.
//   - TCP/TLS and WebSocket: f.BeginHandshake right after Accept, before
//     the TLS handshake; Established after it; Release on close.
//   - A goroutine owned by the gateway calls f.Reap every few seconds.
//
// Addresses are accounted per IPv4 address and per IPv6 prefix
// (IPv6Prefix, /64 by default), because one client usually holds a whole
// /64. The memory held is bounded by the global caps: an address is
// tracked only while it has a connection or a handshake.
package ddos

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
)

// Defaults for a zero [Config] field.
const (
	// DefaultMaxConnsPerIP caps open connections plus handshakes in flight
	// from one address (prefix).
	DefaultMaxConnsPerIP = 64
	// DefaultMaxHandshakesPerIP caps handshakes in flight from one address.
	DefaultMaxHandshakesPerIP = 8
	// DefaultMaxHandshakes caps handshakes in flight in total.
	DefaultMaxHandshakes = 1024
	// DefaultMaxConns caps open connections plus handshakes in total.
	DefaultMaxConns = 100_000
	// DefaultIPv6Prefix groups IPv6 addresses.
	DefaultIPv6Prefix = 64
	// DefaultHandshakeTimeout is how long a handshake may stay in flight
	// before Reap releases its slot.
	DefaultHandshakeTimeout = 10 * time.Second
	// DefaultRetryAttemptRate is how many unvalidated connection attempts
	// per second the server takes before requiring Retry from everyone.
	DefaultRetryAttemptRate = 500
	// DefaultRetryHold keeps Retry on this long after the last sign of
	// load, so the decision does not flap at the threshold.
	DefaultRetryHold = 10 * time.Second
)

// Config configures a Filter. The zero value is ready to use.
type Config struct {
	// MaxConnsPerIP caps open connections plus handshakes in flight per
	// address. Zero means DefaultMaxConnsPerIP (64).
	MaxConnsPerIP int
	// MaxHandshakesPerIP caps handshakes in flight per address. Zero means
	// DefaultMaxHandshakesPerIP (8).
	MaxHandshakesPerIP int
	// MaxHandshakes caps handshakes in flight in total. Zero means
	// DefaultMaxHandshakes (1024).
	MaxHandshakes int
	// MaxConns caps open connections plus handshakes in total. Zero means
	// DefaultMaxConns (100,000).
	MaxConns int
	// IPv6Prefix is the prefix length IPv6 addresses are grouped by. Zero
	// means DefaultIPv6Prefix (64).
	IPv6Prefix int
	// HandshakeTimeout is the longest a handshake may hold a slot; Reap
	// releases older ones. Zero means DefaultHandshakeTimeout (10 s).
	HandshakeTimeout time.Duration

	// Block lists prefixes whose connections are refused with BLOCKED.
	// Filter.SetLists replaces Block and Allow while the filter runs.
	Block []netip.Prefix
	// Allow lists prefixes exempt from the caps and from Retry (own load
	// balancers, monitoring). When an address matches both lists, the
	// longer prefix decides; at equal length Block wins.
	Allow []netip.Prefix

	// RetryHandshakes is the number of handshakes in flight (in total) from
	// which QUIC clients must validate their address. Zero means a quarter
	// of MaxHandshakes.
	RetryHandshakes int
	// RetryPerIPHandshakes makes an address validate when it has this many
	// handshakes in flight. Zero means half of MaxHandshakesPerIP (at
	// least 1).
	RetryPerIPHandshakes int
	// RetryAttemptRate is the rate of unvalidated attempts (calls to
	// RequireAddressValidation) per second above which everyone must
	// validate. Zero means DefaultRetryAttemptRate (500/s); negative
	// disables this trigger.
	RetryAttemptRate float64
	// RetryHold keeps global Retry on after the last trigger. Zero means
	// DefaultRetryHold (10 s).
	RetryHold time.Duration

	// Now is the clock. Zero means time.Now.
	Now func() time.Time
}

func (c *Config) validate() error {
	var errs []error
	for _, v := range []struct {
		name string
		v    int64
	}{
		{"MaxConnsPerIP", int64(c.MaxConnsPerIP)}, {"MaxHandshakesPerIP", int64(c.MaxHandshakesPerIP)},
		{"MaxHandshakes", int64(c.MaxHandshakes)}, {"MaxConns", int64(c.MaxConns)},
		{"HandshakeTimeout", int64(c.HandshakeTimeout)}, {"RetryHandshakes", int64(c.RetryHandshakes)},
		{"RetryPerIPHandshakes", int64(c.RetryPerIPHandshakes)}, {"RetryHold", int64(c.RetryHold)},
	} {
		if v.v < 0 {
			errs = append(errs, fmt.Errorf("%s %d is negative", v.name, v.v))
		}
	}
	if c.IPv6Prefix < 0 || c.IPv6Prefix > 128 {
		errs = append(errs, fmt.Errorf("IPv6Prefix %d outside 0..128", c.IPv6Prefix))
	}
	for _, p := range append(append([]netip.Prefix(nil), c.Block...), c.Allow...) {
		if !p.IsValid() {
			errs = append(errs, fmt.Errorf("invalid prefix %v", p))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("ddos: invalid config: %w", err)
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.MaxConnsPerIP == 0 {
		c.MaxConnsPerIP = DefaultMaxConnsPerIP
	}
	if c.MaxHandshakesPerIP == 0 {
		c.MaxHandshakesPerIP = DefaultMaxHandshakesPerIP
	}
	if c.MaxHandshakes == 0 {
		c.MaxHandshakes = DefaultMaxHandshakes
	}
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.IPv6Prefix == 0 {
		c.IPv6Prefix = DefaultIPv6Prefix
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.RetryHandshakes == 0 {
		c.RetryHandshakes = max(1, c.MaxHandshakes/4)
	}
	if c.RetryPerIPHandshakes == 0 {
		c.RetryPerIPHandshakes = max(1, c.MaxHandshakesPerIP/2)
	}
	if c.RetryAttemptRate == 0 {
		c.RetryAttemptRate = DefaultRetryAttemptRate
	}
	if c.RetryHold == 0 {
		c.RetryHold = DefaultRetryHold
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Stats counts a Filter's decisions and holds its current load.
type Stats struct {
	// Begun counts handshakes admitted; Established those that completed.
	Begun, Established uint64
	// Refusals by reason.
	RefusedBlocked, RefusedConnsPerIP, RefusedHandshakesPerIP, RefusedHandshakes, RefusedConns uint64
	// Reaped counts handshakes released by Reap.
	Reaped uint64
	// RetryRequired counts RequireAddressValidation calls that said yes.
	RetryRequired uint64
	// Current load.
	Handshakes, Conns, TrackedAddrs int
}

type addrState struct {
	handshakes, conns int
}

// Filter decides about new connections. It is safe for concurrent use.
type Filter struct {
	cfg Config
	// lists are the block and allow lists in force; SetLists swaps them
	// whole, so that a reader never sees one list old and one new.
	lists atomic.Pointer[Lists]

	mu         sync.Mutex
	addrs      map[netip.Prefix]*addrState // guarded by mu
	handshakes map[*Slot]struct{}          // guarded by mu; slots in handshake
	conns      int                         // guarded by mu
	retryUntil time.Time                   // guarded by mu; global Retry is on before this
	attempts   float64                     // guarded by mu; token bucket of unvalidated attempts
	attemptsAt time.Time                   // guarded by mu
	stats      Stats                       // guarded by mu; counters only
}

// New returns a Filter.
func New(cfg Config) (*Filter, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	f := &Filter{
		cfg:        cfg,
		addrs:      map[netip.Prefix]*addrState{},
		handshakes: map[*Slot]struct{}{},
		attempts:   cfg.RetryAttemptRate, // a full bucket: one second's worth
		attemptsAt: cfg.Now(),
	}
	f.lists.Store(&Lists{Block: masked(cfg.Block), Allow: masked(cfg.Allow)})
	return f, nil
}

func masked(ps []netip.Prefix) []netip.Prefix {
	out := make([]netip.Prefix, len(ps))
	for i, p := range ps {
		out[i] = p.Masked()
	}
	return out
}

// verdict is what the lists say about an address.
type verdict uint8

const (
	listedNone verdict = iota
	listedBlock
	listedAllow
)

// listed applies the lists: the longest matching prefix wins, Block at a
// tie. IPv4-mapped IPv6 addresses are treated as IPv4.
func (f *Filter) listed(ip netip.Addr) verdict {
	ip = ip.Unmap()
	best, v := -1, listedNone
	ls := f.lists.Load()
	for _, p := range ls.Block {
		if p.Bits() > best && p.Contains(ip) {
			best, v = p.Bits(), listedBlock
		}
	}
	for _, p := range ls.Allow {
		if p.Bits() > best && p.Contains(ip) {
			best, v = p.Bits(), listedAllow
		}
	}
	return v
}

// key groups ip with its neighbours: the address for IPv4, the IPv6Prefix
// prefix for IPv6.
func (f *Filter) key(ip netip.Addr) netip.Prefix {
	ip = ip.Unmap().WithZone("")
	bits := 32
	if ip.Is6() {
		bits = f.cfg.IPv6Prefix
	}
	p, _ := ip.Prefix(bits) // cannot fail: bits fits the family
	return p
}

// Check refuses a blocked address with BLOCKED. Listeners can call it
// before any other work, e.g. on TCP accept.
func (f *Filter) Check(ip netip.Addr) error {
	if f.listed(ip) == listedBlock {
		f.mu.Lock()
		f.stats.RefusedBlocked++
		f.mu.Unlock()
		return jsperr.Newf(jsperr.Blocked, "address %s is blocked", ip)
	}
	return nil
}

// Slot is a handshake, and after Established a connection, counted against
// the caps. Release it exactly when the handshake fails or the connection
// closes; later calls are no-ops.
type Slot struct {
	f       *Filter
	key     netip.Prefix
	started time.Time
	state   slotState // guarded by f.mu
}

type slotState uint8

const (
	slotHandshake slotState = iota
	slotConn
	slotReleased
)

// BeginHandshake admits a new connection from ip or refuses it: BLOCKED
// for a blocked address, TOO_MANY_CONNECTIONS over MaxConnsPerIP or
// MaxConns, TOO_MANY_HANDSHAKES over MaxHandshakesPerIP or MaxHandshakes.
// Allow-listed addresses skip the caps (they are still counted).
func (f *Filter) BeginHandshake(ip netip.Addr) (*Slot, error) {
	if !ip.IsValid() {
		// Unknown peers would all share one slot group; refuse instead.
		return nil, errors.New("ddos: begin handshake: invalid address")
	}
	v := f.listed(ip)
	key := f.key(ip)
	f.mu.Lock()
	defer f.mu.Unlock()
	if v == listedBlock {
		f.stats.RefusedBlocked++
		return nil, jsperr.Newf(jsperr.Blocked, "address %s is blocked", ip)
	}
	a := f.addrs[key]
	if a == nil {
		a = &addrState{}
	}
	if v != listedAllow {
		var code jsperr.Code
		var reason string
		switch {
		case a.conns+a.handshakes >= f.cfg.MaxConnsPerIP:
			f.stats.RefusedConnsPerIP++
			code, reason = jsperr.TooManyConnections, fmt.Sprintf("%s has %d connections, at most %d", key, a.conns+a.handshakes, f.cfg.MaxConnsPerIP)
		case a.handshakes >= f.cfg.MaxHandshakesPerIP:
			f.stats.RefusedHandshakesPerIP++
			code, reason = jsperr.TooManyHandshakes, fmt.Sprintf("%s has %d handshakes in flight, at most %d", key, a.handshakes, f.cfg.MaxHandshakesPerIP)
		case len(f.handshakes) >= f.cfg.MaxHandshakes:
			f.stats.RefusedHandshakes++
			code, reason = jsperr.TooManyHandshakes, fmt.Sprintf("server has %d handshakes in flight", len(f.handshakes))
		case f.conns+len(f.handshakes) >= f.cfg.MaxConns:
			f.stats.RefusedConns++
			code, reason = jsperr.TooManyConnections, fmt.Sprintf("server has %d connections", f.conns+len(f.handshakes))
		}
		if code != jsperr.NoError {
			return nil, jsperr.New(code, reason)
		}
	}
	now := f.cfg.Now()
	s := &Slot{f: f, key: key, started: now}
	a.handshakes++
	f.addrs[key] = a
	f.handshakes[s] = struct{}{}
	f.stats.Begun++
	f.noteLoadLocked(now)
	return s, nil
}

// Established turns the handshake into an open connection. It fails if the
// slot was released (e.g. reaped for overstaying HandshakeTimeout); the
// caller should then close the connection.
func (s *Slot) Established() error {
	f := s.f
	f.mu.Lock()
	defer f.mu.Unlock()
	switch s.state {
	case slotConn:
		return nil
	case slotReleased:
		return jsperr.Newf(jsperr.HandshakeTimeout, "handshake from %s released before it completed", s.key)
	}
	s.state = slotConn
	delete(f.handshakes, s)
	a := f.addrs[s.key]
	a.handshakes--
	a.conns++
	f.conns++
	f.stats.Established++
	return nil
}

// Release ends the handshake or connection.
func (s *Slot) Release() {
	f := s.f
	f.mu.Lock()
	defer f.mu.Unlock()
	f.releaseLocked(s)
}

func (f *Filter) releaseLocked(s *Slot) {
	a := f.addrs[s.key]
	switch s.state {
	case slotReleased:
		return
	case slotHandshake:
		delete(f.handshakes, s)
		a.handshakes--
	case slotConn:
		a.conns--
		f.conns--
	}
	s.state = slotReleased
	if a.handshakes == 0 && a.conns == 0 {
		delete(f.addrs, s.key)
	}
}

// Reap releases handshakes in flight for longer than HandshakeTimeout and
// returns how many. It is a safety net: listeners enforce their own
// handshake timeouts, and a slot leaked by a bug must not eat capacity
// forever.
func (f *Filter) Reap() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.cfg.Now()
	n := 0
	for s := range f.handshakes {
		if now.Sub(s.started) > f.cfg.HandshakeTimeout {
			f.releaseLocked(s)
			n++
		}
	}
	f.stats.Reaped += uint64(n)
	return n
}

// noteLoadLocked turns global Retry on when handshakes in flight reach
// RetryHandshakes.
func (f *Filter) noteLoadLocked(now time.Time) {
	if len(f.handshakes) >= f.cfg.RetryHandshakes {
		f.retryUntil = now.Add(f.cfg.RetryHold)
	}
}

// RequireAddressValidation reports whether a connection attempt from addr,
// whose address is not validated yet, must first prove it with a QUIC
// Retry. Its signature is that of quic-go's Transport.VerifySourceAddress.
//
// Yes when: the address is blocked (a stateless Retry is the cheapest
// answer; the connection is refused later anyway); the address has
// RetryPerIPHandshakes handshakes in flight; or the server is under load —
// RetryHandshakes handshakes in flight, or unvalidated attempts above
// RetryAttemptRate — within the last RetryHold. No for allow-listed
// addresses. An address it cannot read is validated.
func (f *Filter) RequireAddressValidation(addr net.Addr) bool {
	ip, ok := addrIP(addr)
	if !ok {
		f.countRetry()
		return true
	}
	switch f.listed(ip) {
	case listedAllow:
		return false
	case listedBlock:
		f.countRetry()
		return true
	}
	key := f.key(ip)
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.cfg.Now()
	if f.cfg.RetryAttemptRate > 0 {
		// Token bucket of one second's worth of attempts: an empty bucket
		// is load. A clock stepping back refills nothing.
		if el := now.Sub(f.attemptsAt); el > 0 {
			f.attempts = min(f.attempts+el.Seconds()*f.cfg.RetryAttemptRate, f.cfg.RetryAttemptRate)
		}
		f.attemptsAt = now
		if f.attempts >= 1 {
			f.attempts--
		} else {
			f.retryUntil = now.Add(f.cfg.RetryHold)
		}
	}
	f.noteLoadLocked(now)
	need := now.Before(f.retryUntil)
	if a := f.addrs[key]; a != nil && a.handshakes >= f.cfg.RetryPerIPHandshakes {
		need = true
	}
	if need {
		f.stats.RetryRequired++
	}
	return need
}

func (f *Filter) countRetry() {
	f.mu.Lock()
	f.stats.RetryRequired++
	f.mu.Unlock()
}

// UnderLoad reports whether global Retry is on.
func (f *Filter) UnderLoad() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cfg.Now().Before(f.retryUntil)
}

// addrIP extracts the IP of a UDP or TCP address, or of anything whose
// String is host:port.
func addrIP(addr net.Addr) (netip.Addr, bool) {
	switch a := addr.(type) {
	case *net.UDPAddr:
		ip, ok := netip.AddrFromSlice(a.IP)
		return ip.Unmap(), ok
	case *net.TCPAddr:
		ip, ok := netip.AddrFromSlice(a.IP)
		return ip.Unmap(), ok
	case nil:
		return netip.Addr{}, false
	}
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return netip.Addr{}, false
	}
	return ap.Addr().Unmap(), true
}

// AddrIP returns the IP of a net.Addr from a listener, for BeginHandshake.
func AddrIP(addr net.Addr) (netip.Addr, error) {
	ip, ok := addrIP(addr)
	if !ok {
		return netip.Addr{}, fmt.Errorf("ddos: no IP address in %v", addr)
	}
	return ip, nil
}

// Stats returns the counters and current load.
func (f *Filter) Stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.stats
	s.Handshakes, s.Conns, s.TrackedAddrs = len(f.handshakes), f.conns, len(f.addrs)
	return s
}
