package devicekey

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
)

// Registry errors.
var (
	// ErrNotFound: no device with that id.
	ErrNotFound = errors.New("devicekey: device not found")
	// ErrExists: a device with that id is registered (or was, and is
	// revoked: a revoked key never comes back; the device makes a new one).
	ErrExists = errors.New("devicekey: device already registered")
	// ErrFull: the registry holds its maximum number of devices.
	ErrFull = errors.New("devicekey: registry full")
)

// Device is a registered device key.
type Device struct {
	// ID is Key.ID().
	ID ID
	// Key is the device's public key.
	Key PublicKey
	// Owner is the user the device acts for.
	Owner string
	// Name is a label for people, e.g. "Alice's phone".
	Name string
	// Registered is when the device was registered.
	Registered time.Time
	// Revoked is when the device was revoked; zero while it is active.
	Revoked time.Time
}

// Active reports whether the device is not revoked.
func (d Device) Active() bool { return d.Revoked.IsZero() }

// Registry stores device keys. Implementations are safe for concurrent
// use; storage-backed ones come with the server.
type Registry interface {
	// Register adds d. d.ID must equal d.Key.ID(); Registered is set by
	// the registry when zero. ErrExists if the id is known.
	Register(ctx context.Context, d Device) error
	// Revoke marks the device revoked. Revoking a revoked device is a
	// no-op. ErrNotFound if the id is unknown.
	Revoke(ctx context.Context, id ID) error
	// Lookup returns the device, revoked or not. ErrNotFound if the id is
	// unknown.
	Lookup(ctx context.Context, id ID) (Device, error)
}

// Authenticate checks a device proof made on the connection described by
// cs: the device must be registered (DEVICE_UNKNOWN), not revoked
// (DEVICE_REVOKED), and the proof must verify for this connection
// (CHANNEL_BINDING_FAILED). It returns the device.
func Authenticate(ctx context.Context, reg Registry, cs tls.ConnectionState, p Proof) (Device, error) {
	b, err := Binding(cs)
	if err != nil {
		return Device{}, err
	}
	return AuthenticateBinding(ctx, reg, b, p)
}

// AuthenticateBinding is Authenticate for a binding computed already.
func AuthenticateBinding(ctx context.Context, reg Registry, binding []byte, p Proof) (Device, error) {
	d, err := reg.Lookup(ctx, p.Device)
	if errors.Is(err, ErrNotFound) {
		return Device{}, jsperr.Newf(jsperr.DeviceUnknown, "device %s is not registered", p.Device)
	}
	if err != nil {
		return Device{}, jsperr.Wrap(jsperr.Internal, fmt.Errorf("look up device %s: %w", p.Device, err))
	}
	if !d.Active() {
		return Device{}, jsperr.Newf(jsperr.DeviceRevoked, "device %s of %q was revoked at %s",
			d.ID, d.Owner, d.Revoked.UTC().Format(time.RFC3339))
	}
	if err := VerifyBinding(d.Key, binding, p); err != nil {
		return Device{}, err
	}
	return d, nil
}

// DefaultMaxDevices caps a MemoryRegistry.
const DefaultMaxDevices = 100_000

// MemoryConfig configures a MemoryRegistry.
type MemoryConfig struct {
	// MaxDevices caps registered devices, revoked ones included. Zero
	// means DefaultMaxDevices.
	MaxDevices int
	// Now is the clock. Zero means time.Now.
	Now func() time.Time
}

// MemoryRegistry is an in-memory Registry for tests and single-process
// deployments without storage.
type MemoryRegistry struct {
	cfg MemoryConfig

	mu      sync.RWMutex
	devices map[ID]Device // guarded by mu
}

var _ Registry = (*MemoryRegistry)(nil)

// NewMemoryRegistry returns an empty registry.
func NewMemoryRegistry(cfg MemoryConfig) (*MemoryRegistry, error) {
	if cfg.MaxDevices < 0 {
		return nil, fmt.Errorf("devicekey: MaxDevices %d is negative", cfg.MaxDevices)
	}
	if cfg.MaxDevices == 0 {
		cfg.MaxDevices = DefaultMaxDevices
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &MemoryRegistry{cfg: cfg, devices: map[ID]Device{}}, nil
}

// Register implements Registry.
func (r *MemoryRegistry) Register(ctx context.Context, d Device) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d.ID != d.Key.ID() {
		return fmt.Errorf("devicekey: register: id %s does not match key (%s)", d.ID, d.Key.ID())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.devices[d.ID]; ok {
		return fmt.Errorf("%w: %s", ErrExists, d.ID)
	}
	if len(r.devices) >= r.cfg.MaxDevices {
		return fmt.Errorf("%w: %d devices", ErrFull, len(r.devices))
	}
	if d.Registered.IsZero() {
		d.Registered = r.cfg.Now()
	}
	r.devices[d.ID] = d
	return nil
}

// Revoke implements Registry.
func (r *MemoryRegistry) Revoke(ctx context.Context, id ID) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	d, ok := r.devices[id]
	if !ok {
		return fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if d.Active() {
		d.Revoked = r.cfg.Now()
		r.devices[id] = d
	}
	return nil
}

// Lookup implements Registry.
func (r *MemoryRegistry) Lookup(ctx context.Context, id ID) (Device, error) {
	if err := ctx.Err(); err != nil {
		return Device{}, err
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	d, ok := r.devices[id]
	if !ok {
		return Device{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return d, nil
}

// Len returns the number of devices, revoked ones included.
func (r *MemoryRegistry) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.devices)
}
