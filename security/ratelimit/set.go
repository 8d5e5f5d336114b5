package ratelimit

import (
	"fmt"
	"net/netip"
	"time"
)

// Scope is what a limit is keyed by.
type Scope uint8

// Scopes, in the order a Set checks them.
const (
	// ScopeIP keys by client address; IPv6 by prefix (SetConfig.IPv6Prefix).
	ScopeIP Scope = iota
	// ScopeConn keys by connection.
	ScopeConn
	// ScopeUser keys by authenticated user.
	ScopeUser
	// ScopeChannel keys by channel, across all users: it protects the
	// channel's subscribers from a flood.
	ScopeChannel
	// ScopeCommand keys by (user, command), or (connection, command) before
	// authentication.
	ScopeCommand
	// NumScopes is the number of scopes.
	NumScopes
)

var scopeNames = [NumScopes]string{"ip", "conn", "user", "channel", "command"}

// String returns the scope's name.
func (s Scope) String() string {
	if s < NumScopes {
		return scopeNames[s]
	}
	return fmt.Sprintf("Scope(%d)", uint8(s))
}

// DefaultIPv6Prefix is the prefix length IPv6 clients are grouped by: one
// subscriber usually gets a whole /64, so limiting single addresses would
// let one client use 2^64 buckets.
const DefaultIPv6Prefix = 64

// SetConfig configures a Set. A scope whose Config has Rate 0 is not
// limited.
type SetConfig struct {
	IP, Conn, User, Channel, Command Config
	// IPv6Prefix groups IPv6 addresses for ScopeIP. Zero means
	// DefaultIPv6Prefix (64); 128 limits single addresses.
	IPv6Prefix int
	// Now is the clock of every scope whose Config has none. Zero means
	// time.Now.
	Now func() time.Time
}

// Request is one thing to rate-limit. Empty fields (and an invalid IP)
// skip their scope.
type Request struct {
	IP      netip.Addr
	Conn    string
	User    string
	Channel string
	Command string
	// Cost in tokens, taken from every scope. Zero means 1.
	Cost int
}

// Set checks one request against every configured scope. It is safe for
// concurrent use.
type Set struct {
	limiters   [NumScopes]*Limiter
	ipv6Prefix int
}

// NewSet returns a Set.
func NewSet(cfg SetConfig) (*Set, error) {
	if cfg.IPv6Prefix < 0 || cfg.IPv6Prefix > 128 {
		return nil, fmt.Errorf("ratelimit: IPv6Prefix %d outside 0..128", cfg.IPv6Prefix)
	}
	s := &Set{ipv6Prefix: cfg.IPv6Prefix}
	if s.ipv6Prefix == 0 {
		s.ipv6Prefix = DefaultIPv6Prefix
	}
	for i, c := range [NumScopes]Config{cfg.IP, cfg.Conn, cfg.User, cfg.Channel, cfg.Command} {
		if c.Rate == 0 {
			continue
		}
		if c.Name == "" {
			c.Name = Scope(i).String()
		}
		if c.Now == nil {
			c.Now = cfg.Now
		}
		l, err := New(c)
		if err != nil {
			return nil, err
		}
		s.limiters[i] = l
	}
	return s, nil
}

// Limiter returns the scope's limiter, nil if the scope is not limited.
func (s *Set) Limiter(scope Scope) *Limiter {
	if scope >= NumScopes {
		return nil
	}
	return s.limiters[scope]
}

// IPKey returns the bucket key of addr: the address for IPv4 (also when
// written as IPv4-mapped IPv6), the prefix of ipv6Prefix bits for IPv6.
func IPKey(addr netip.Addr, ipv6Prefix int) string {
	addr = addr.Unmap()
	if addr.Is6() {
		if p, err := addr.Prefix(ipv6Prefix); err == nil {
			return p.String()
		}
	}
	return addr.WithZone("").String()
}

// keys returns the bucket key of each scope for r; "" skips the scope.
func (s *Set) keys(r Request) [NumScopes]string {
	var k [NumScopes]string
	if r.IP.IsValid() {
		k[ScopeIP] = IPKey(r.IP, s.ipv6Prefix)
	}
	k[ScopeConn], k[ScopeUser], k[ScopeChannel] = r.Conn, r.User, r.Channel
	if r.Command != "" {
		// The NUL keeps ("a", "b/c") and ("a/b", "c") apart.
		switch {
		case r.User != "":
			k[ScopeCommand] = "u\x00" + r.User + "\x00" + r.Command
		case r.Conn != "":
			k[ScopeCommand] = "c\x00" + r.Conn + "\x00" + r.Command
		}
	}
	return k
}

// Allow takes r.Cost tokens from every applicable scope, or none: when a
// scope refuses, the tokens already taken from earlier scopes are given
// back and that scope's RATE_LIMITED error (with RetryAfter) is returned.
func (s *Set) Allow(r Request) error {
	cost := r.Cost
	if cost <= 0 {
		cost = 1
	}
	keys := s.keys(r)
	for i, l := range s.limiters {
		if l == nil || keys[i] == "" {
			continue
		}
		if err := l.AllowN(keys[i], cost); err != nil {
			for j := range i {
				if s.limiters[j] != nil && keys[j] != "" {
					s.limiters[j].refund(keys[j], cost)
				}
			}
			return err
		}
	}
	return nil
}

// Sweep sweeps every scope and returns the buckets dropped.
func (s *Set) Sweep() int {
	n := 0
	for _, l := range s.limiters {
		if l != nil {
			n += l.Sweep()
		}
	}
	return n
}

// Stats returns each scope's counters; unlimited scopes are zero.
func (s *Set) Stats() [NumScopes]Stats {
	var out [NumScopes]Stats
	for i, l := range s.limiters {
		if l != nil {
			out[i] = l.Stats()
		}
	}
	return out
}
