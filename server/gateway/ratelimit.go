package gateway

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jetstreamproto/jsp/security/ratelimit"
	"github.com/jetstreamproto/jsp/wire"
)

// Default rates (ARCHITECTURE §5: token buckets per IP, connection, user,
// channel and command), in tokens per second; each burst defaults to twice
// its rate. They are far above what a person's chat or an app's commands
// need, and low enough that one client cannot take a gateway's CPU: media
// travels as datagrams and bulk data on streams, neither of which is
// limited here.
const (
	// DefaultConnAttemptsPerSecond limits new connections from one address.
	DefaultConnAttemptsPerSecond = 20
	// DefaultConnMessagesPerSecond limits PUBLISH, COMMAND and MESSAGE on
	// one connection.
	DefaultConnMessagesPerSecond = 1000
	// DefaultUserMessagesPerSecond limits PUBLISH, COMMAND and MESSAGE of
	// one authenticated user across all their sessions.
	DefaultUserMessagesPerSecond = 2000
	// DefaultChannelPublishesPerSecond limits PUBLISH to one channel from
	// everyone together; it protects the channel's subscribers.
	DefaultChannelPublishesPerSecond = 5000
	// DefaultCommandsPerSecond limits COMMANDs to one service from one user
	// (or one connection, for anonymous sessions).
	DefaultCommandsPerSecond = 500
)

// Rate is a token bucket: PerSecond tokens a second, at most Burst at
// once.
type Rate struct {
	// PerSecond is the sustained rate. Zero means the default of the
	// field; negative means unlimited.
	PerSecond float64
	// Burst is the bucket's size. Zero means twice PerSecond (at least 1).
	Burst int
}

// unlimited reports whether r limits nothing.
func (r Rate) unlimited() bool { return r.PerSecond < 0 }

func (r *Rate) setDefault(perSecond float64) {
	if r.PerSecond == 0 {
		r.PerSecond = perSecond
	}
	if r.Burst == 0 && r.PerSecond > 0 {
		r.Burst = max(1, int(math.Ceil(2*r.PerSecond)))
	}
}

func (r Rate) validate(name string) error {
	if math.IsNaN(r.PerSecond) || math.IsInf(r.PerSecond, 0) || r.Burst < 0 {
		return fmt.Errorf("gateway: RateLimits.%s: invalid rate %v, burst %d", name, r.PerSecond, r.Burst)
	}
	return nil
}

// config returns the limiter config of r, with Rate 0 (no limiter) when r
// is unlimited.
func (r Rate) config(maxKeys int, now func() time.Time) ratelimit.Config {
	if r.unlimited() {
		return ratelimit.Config{}
	}
	return ratelimit.Config{Rate: r.PerSecond, Burst: r.Burst, MaxKeys: maxKeys, Now: now}
}

// RateLimits are the gateway's rate limits. Refused connection attempts
// are closed with RATE_LIMITED; refused messages are answered with ERROR
// {RATE_LIMITED, retry_after_ms, ref = the message id} (JSP §5.3) and the
// session goes on.
type RateLimits struct {
	// ConnAttemptsPerIP limits new connections from one address (IPv4, or
	// IPv6 prefix per DDoS.IPv6Prefix), checked before the handshake.
	// Allow-listed addresses (DDoS.Allow) are not limited. Default:
	// DefaultConnAttemptsPerSecond.
	ConnAttemptsPerIP Rate
	// Conn limits PUBLISH, COMMAND and MESSAGE per connection. Default:
	// DefaultConnMessagesPerSecond.
	Conn Rate
	// User limits PUBLISH, COMMAND and MESSAGE per authenticated user,
	// across sessions; anonymous sessions are limited by Conn only.
	// Default: DefaultUserMessagesPerSecond.
	User Rate
	// Channel limits PUBLISH per channel, across users. Default:
	// DefaultChannelPublishesPerSecond.
	Channel Rate
	// Command limits COMMAND per (user or connection, service). Default:
	// DefaultCommandsPerSecond.
	Command Rate
	// MaxKeys caps the buckets each limit holds. Default:
	// ratelimit.DefaultMaxKeys.
	MaxKeys int
}

func (r *RateLimits) setDefaults() {
	r.ConnAttemptsPerIP.setDefault(DefaultConnAttemptsPerSecond)
	r.Conn.setDefault(DefaultConnMessagesPerSecond)
	r.User.setDefault(DefaultUserMessagesPerSecond)
	r.Channel.setDefault(DefaultChannelPublishesPerSecond)
	r.Command.setDefault(DefaultCommandsPerSecond)
	if r.MaxKeys == 0 {
		r.MaxKeys = ratelimit.DefaultMaxKeys
	}
}

func (r *RateLimits) validate() error {
	if r.MaxKeys < 0 {
		return fmt.Errorf("gateway: negative RateLimits.MaxKeys %d", r.MaxKeys)
	}
	return errors.Join(
		r.ConnAttemptsPerIP.validate("ConnAttemptsPerIP"), r.Conn.validate("Conn"), r.User.validate("User"),
		r.Channel.validate("Channel"), r.Command.validate("Command"))
}

// messageLimits builds the message limiter; nil when nothing is limited.
func (r *RateLimits) messageLimits(ipv6Prefix int, now func() time.Time) (*ratelimit.Set, error) {
	if r.Conn.unlimited() && r.User.unlimited() && r.Channel.unlimited() && r.Command.unlimited() {
		return nil, nil
	}
	s, err := ratelimit.NewSet(ratelimit.SetConfig{
		Conn:       r.Conn.config(r.MaxKeys, now),
		User:       r.User.config(r.MaxKeys, now),
		Channel:    r.Channel.config(r.MaxKeys, now),
		Command:    r.Command.config(r.MaxKeys, now),
		IPv6Prefix: ipv6Prefix,
		Now:        now,
	})
	if err != nil {
		return nil, fmt.Errorf("gateway: rate limits: %w", err)
	}
	return s, nil
}

// attemptLimit builds the connection-attempt limiter; nil when unlimited.
func (r *RateLimits) attemptLimit(now func() time.Time) (*ratelimit.Limiter, error) {
	if r.ConnAttemptsPerIP.unlimited() {
		return nil, nil
	}
	c := r.ConnAttemptsPerIP.config(r.MaxKeys, now)
	c.Name = "connection attempt"
	l, err := ratelimit.New(c)
	if err != nil {
		return nil, fmt.Errorf("gateway: rate limits: %w", err)
	}
	return l, nil
}

// limitMessage takes a token for a PUBLISH, COMMAND or MESSAGE from every
// limit that applies, or returns the RATE_LIMITED refusal.
func (h *host) limitMessage(t wire.FrameType, env *wire.Envelope) error {
	lim := h.g.msgLimits
	if lim == nil {
		return nil
	}
	r := ratelimit.Request{Conn: h.id, User: h.user}
	switch t {
	case wire.FramePublish:
		if env.Route.Kind == wire.RouteChannel {
			r.Channel = env.Route.Name
		}
	case wire.FrameCommand:
		r.Command = env.Route.Kind.String() + "/" + env.Route.Name
	}
	return lim.Allow(r)
}
