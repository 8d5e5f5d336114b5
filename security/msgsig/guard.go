package msgsig

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/reliability/replay"
	"github.com/jetstreamproto/jsp/security/devicekey"
	"github.com/jetstreamproto/jsp/wire"
)

// Defaults for a zero GuardConfig field. Together they bound the replay
// memory: at most DefaultMaxNonces nonces (about 100 bytes each with map
// overhead, so roughly 100 MiB at the very worst), at most
// DefaultDeviceWindow of them from one device, from at most
// DefaultMaxDevices devices at once.
const (
	// DefaultBucketWidth is the span of timestamps whose nonces share one
	// bucket; memory is released a bucket at a time.
	DefaultBucketWidth = 10 * time.Second
	// DefaultDeviceWindow is how many nonces one device may have in the
	// memory at once: the signed envelopes it sent with timestamps within
	// the window of 2*MaxSkew plus one bucket. 8192 covers a device that
	// signs 13 envelopes a second without pause for the default ten
	// minutes; a device that signs faster is refused with
	// SIGNATURE_MEMORY_FULL until its oldest bucket expires. (WireGuard's
	// counter window is 8128 packets wide; random nonces have no order, so
	// the window here is a set bounded by time and by this count.)
	DefaultDeviceWindow = 8192
	// DefaultMaxDevices caps the devices with nonces in memory.
	DefaultMaxDevices = 16384
	// DefaultMaxNonces caps the nonces in memory across all devices.
	DefaultMaxNonces = 1 << 20
)

// GuardConfig configures a Guard. The zero value is valid: each zero field
// takes its documented default.
type GuardConfig struct {
	// MaxSkew is how far a timestamp may lie from the clock, either way.
	// Default DefaultMaxSkew.
	MaxSkew time.Duration
	// BucketWidth groups timestamps for expiry. Default
	// DefaultBucketWidth, capped at MaxSkew.
	BucketWidth time.Duration
	// DeviceWindow caps the nonces of one device. Default
	// DefaultDeviceWindow.
	DeviceWindow int
	// MaxDevices caps the devices remembered. Default DefaultMaxDevices.
	MaxDevices int
	// MaxNonces caps the nonces remembered in total. Default
	// DefaultMaxNonces.
	MaxNonces int
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

func (c *GuardConfig) setDefaults() {
	if c.MaxSkew == 0 {
		c.MaxSkew = DefaultMaxSkew
	}
	if c.BucketWidth == 0 {
		c.BucketWidth = min(DefaultBucketWidth, c.MaxSkew)
	}
	if c.DeviceWindow == 0 {
		c.DeviceWindow = DefaultDeviceWindow
	}
	if c.MaxDevices == 0 {
		c.MaxDevices = DefaultMaxDevices
	}
	if c.MaxNonces == 0 {
		c.MaxNonces = DefaultMaxNonces
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

func (c *GuardConfig) validate() error {
	switch {
	case c.MaxSkew < 0, c.BucketWidth < 0:
		return fmt.Errorf("msgsig: negative MaxSkew %v or BucketWidth %v", c.MaxSkew, c.BucketWidth)
	case c.DeviceWindow < 0, c.MaxDevices < 0, c.MaxNonces < 0:
		return errors.New("msgsig: negative DeviceWindow, MaxDevices or MaxNonces")
	}
	return nil
}

// KeySource finds a device's registered key. devicekey.Registry
// implements it; the Go SDK implements it by asking the server's keys
// service.
type KeySource interface {
	Lookup(ctx context.Context, id devicekey.ID) (devicekey.Device, error)
}

// GuardStats counts a Guard's decisions by outcome.
type GuardStats struct {
	Accepted, Invalid, Stale, Replayed, Unknown, Revoked, Malformed, Full uint64
	// Devices and Nonces are what the memory holds now.
	Devices, Nonces int
}

// Guard is the full check of a signed envelope on its first hop (JSP
// §4.3): well-formed, a registered active signer, a timestamp within the
// skew window, a valid signature, and a nonce not seen from that device
// while its timestamp could still pass the clock check. It is safe for
// concurrent use.
//
// Replay memory: per device, a replay.NonceChecker holds the accepted
// nonces in buckets by timestamp; a replay repeats the timestamp, so it
// finds its nonce in the same bucket, and a bucket whose timestamps are
// all stale is dropped whole, since the clock check rejects any replay of
// them. A device whose newest bucket is stale is dropped too. The memory
// never forgets a nonce whose envelope could still pass the clock check:
// when a bound is reached, new envelopes are refused with
// SIGNATURE_MEMORY_FULL (with a retry-after of one bucket) instead.
type Guard struct {
	cfg GuardConfig

	mu        sync.Mutex
	devices   map[devicekey.ID]*deviceNonces // guarded by mu
	nonces    int                            // guarded by mu: total across devices
	lastSweep time.Time                      // guarded by mu
	stats     GuardStats                     // guarded by mu
}

type deviceNonces struct {
	checker *replay.NonceChecker
	newest  time.Time // newest timestamp accepted
}

// NewGuard returns a Guard.
func NewGuard(cfg GuardConfig) (*Guard, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	if cfg.BucketWidth > cfg.MaxSkew {
		return nil, fmt.Errorf("msgsig: BucketWidth %v above MaxSkew %v", cfg.BucketWidth, cfg.MaxSkew)
	}
	return &Guard{cfg: cfg, devices: map[devicekey.ID]*deviceNonces{}}, nil
}

// Config returns the configuration with defaults filled in.
func (g *Guard) Config() GuardConfig { return g.cfg }

// Stats returns the counters.
func (g *Guard) Stats() GuardStats {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.stats
	s.Devices, s.Nonces = len(g.devices), g.nonces
	return s
}

// Check runs every check on env, looking the signer up in keys, and
// remembers its nonce. It returns the signing device. The checks run
// cheapest first, and the nonce is remembered only once the signature
// verified, so that forged envelopes cannot fill the memory.
func (g *Guard) Check(ctx context.Context, keys KeySource, env *wire.Envelope) (devicekey.Device, error) {
	d, err := g.check(ctx, keys, env)
	g.count(err)
	return d, err
}

func (g *Guard) check(ctx context.Context, keys KeySource, env *wire.Envelope) (devicekey.Device, error) {
	id, err := SignerOf(env)
	if err != nil {
		return devicekey.Device{}, err
	}
	now := g.cfg.Now()
	if err := CheckSkew(env, now, g.cfg.MaxSkew); err != nil {
		return devicekey.Device{}, err
	}
	if keys == nil {
		return devicekey.Device{}, fmt.Errorf("msgsig: device %s: no key registry: %w", id, ErrUnknownSigner)
	}
	d, err := keys.Lookup(ctx, id)
	if errors.Is(err, devicekey.ErrNotFound) {
		return devicekey.Device{}, fmt.Errorf("msgsig: device %s: %w", id, ErrUnknownSigner)
	}
	if err != nil {
		return devicekey.Device{}, jsperr.Wrap(jsperr.Internal, fmt.Errorf("msgsig: look up device %s: %w", id, err))
	}
	if !d.Active() {
		return devicekey.Device{}, fmt.Errorf("msgsig: device %s of %q revoked at %s: %w",
			id, d.Owner, d.Revoked.UTC().Format(time.RFC3339), ErrRevokedSigner)
	}
	if err := VerifySignature(env, d.Key); err != nil {
		return devicekey.Device{}, err
	}
	return d, g.remember(id, env, now)
}

// remember records env's nonce for device id.
func (g *Guard) remember(id devicekey.ID, env *wire.Envelope, now time.Time) error {
	ts := time.UnixMilli(int64(env.Timestamp))
	g.mu.Lock()
	defer g.mu.Unlock()
	g.sweepLocked(now, false)
	dn := g.devices[id]
	if dn == nil {
		if len(g.devices) >= g.cfg.MaxDevices {
			g.sweepLocked(now, true)
		}
		if len(g.devices) >= g.cfg.MaxDevices {
			return g.fullLocked(fmt.Sprintf("%d devices remembered", len(g.devices)))
		}
		c, err := replay.NewNonceChecker(replay.NonceConfig{
			MaxSkew: g.cfg.MaxSkew, BucketWidth: g.cfg.BucketWidth,
			MaxNonces: g.cfg.DeviceWindow, MaxNonceLen: MaxNonceLen,
		})
		if err != nil {
			return jsperr.Wrap(jsperr.Internal, err)
		}
		dn = &deviceNonces{checker: c}
		g.devices[id] = dn
	}
	if g.nonces >= g.cfg.MaxNonces {
		g.sweepLocked(now, true)
		if g.nonces >= g.cfg.MaxNonces {
			return g.fullLocked(fmt.Sprintf("%d nonces remembered", g.nonces))
		}
	}
	before := dn.checker.Len()
	err := dn.checker.Check(ts, env.Nonce, now)
	g.nonces += dn.checker.Len() - before
	switch {
	case err == nil:
		if ts.After(dn.newest) {
			dn.newest = ts
		}
		return nil
	case errors.Is(err, replay.ErrNonceMemoryFull):
		return g.fullLocked(fmt.Sprintf("device %s has %d nonces remembered", id, dn.checker.Len()))
	case jsperr.CodeOf(err) == jsperr.Unauthenticated:
		// Length and clock were checked before; what is left is a nonce
		// seen before.
		return fmt.Errorf("msgsig: device %s: nonce %x at %s: %w", id, env.Nonce, ts.UTC().Format(time.RFC3339Nano), ErrReplayed)
	}
	return jsperr.Wrap(jsperr.Internal, err)
}

func (g *Guard) fullLocked(why string) error {
	e := jsperr.Newf(jsperr.SignatureMemoryFull, "msgsig: replay memory full: %s", why)
	e.RetryAfter = g.cfg.BucketWidth
	return e
}

// sweepInterval is how often Check drops devices whose nonces are all
// stale, besides when a bound is reached.
const sweepInterval = time.Second

// sweepLocked drops the devices whose newest accepted timestamp is stale:
// every nonce they hold belongs to an envelope the clock check rejects.
func (g *Guard) sweepLocked(now time.Time, force bool) {
	if !force && now.Sub(g.lastSweep) < sweepInterval {
		return
	}
	g.lastSweep = now
	// A bucket is kept until its newest possible timestamp is stale;
	// one bucket width of slack covers the newest's own bucket.
	oldest := now.Add(-g.cfg.MaxSkew - g.cfg.BucketWidth)
	for id, dn := range g.devices {
		if dn.newest.Before(oldest) {
			g.nonces -= dn.checker.Len()
			delete(g.devices, id)
		}
	}
}

func (g *Guard) count(err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch jsperr.CodeOf(err) {
	case jsperr.NoError:
		g.stats.Accepted++
	case jsperr.SignatureInvalid:
		g.stats.Invalid++
	case jsperr.SignatureStale:
		g.stats.Stale++
	case jsperr.SignatureReplayed:
		g.stats.Replayed++
	case jsperr.SignerUnknown:
		g.stats.Unknown++
	case jsperr.SignerRevoked:
		g.stats.Revoked++
	case jsperr.SignatureMalformed:
		g.stats.Malformed++
	case jsperr.SignatureMemoryFull:
		g.stats.Full++
	}
}
