package gateway

import (
	"bufio"
	"fmt"

	"github.com/jetstreamproto/jsp/security/ratelimit"
)

// limitKinds are the key kinds of jsp_rate_limited_total, in the order
// written, with the message limiter's scope of each (the "ip" kind is the
// connection-attempt limiter, which is not part of the message set).
var limitKinds = []struct {
	kind  string
	scope ratelimit.Scope
}{
	{"ip", ratelimit.ScopeIP},
	{"connection", ratelimit.ScopeConn},
	{"user", ratelimit.ScopeUser},
	{"channel", ratelimit.ScopeChannel},
	{"command", ratelimit.ScopeCommand},
}

// rateLimited returns the requests refused with RATE_LIMITED, by key
// kind (RateLimits): connection attempts per IP, and PUBLISH, COMMAND and
// MESSAGE per connection, user, channel and command. A kind that is not
// limited counts 0.
func (g *Gateway) rateLimited() map[string]uint64 {
	out := make(map[string]uint64, len(limitKinds))
	var set [ratelimit.NumScopes]ratelimit.Stats
	if g.msgLimits != nil {
		set = g.msgLimits.Stats()
	}
	for _, k := range limitKinds {
		out[k.kind] = set[k.scope].Limited
	}
	if g.adm.attempts != nil {
		out["ip"] += g.adm.attempts.Stats().Limited
	}
	return out
}

// writeLimits writes jsp_rate_limited_total{kind}.
func (g *Gateway) writeLimits(w *bufio.Writer) {
	fmt.Fprintf(w, "# HELP jsp_rate_limited_total Requests refused with RATE_LIMITED, by key kind: ip (connection attempts), connection, user, channel, command (PUBLISH, COMMAND, MESSAGE).\n# TYPE jsp_rate_limited_total counter\n")
	n := g.rateLimited()
	for _, k := range limitKinds {
		fmt.Fprintf(w, "jsp_rate_limited_total{kind=%q} %d\n", k.kind, n[k.kind])
	}
}

// RateLimitedCounts returns the requests refused with RATE_LIMITED so far,
// by key kind as in jsp_rate_limited_total: "ip", "connection", "user",
// "channel", "command".
func (g *Gateway) RateLimitedCounts() map[string]uint64 { return g.rateLimited() }
