package storage

import (
	"context"
	"time"
)

// Device is a registered device key (the device-key registry of JSP
// §7.4's client authentication, managed through the admin commands). The
// store keeps it as plain data; package server/auth adapts it to
// security/devicekey.
type Device struct {
	// ID is the key's id: lower-case hex, unique. Required.
	ID string
	// PublicKey is the raw Ed25519 public key (32 bytes). Required.
	PublicKey []byte
	// Owner is the user the device acts for. Required.
	Owner string
	// Name is a label for people, possibly empty.
	Name string
	// Registered is when the device was registered; set by the store
	// when zero.
	Registered time.Time
	// Revoked is when the device was revoked; zero while it is active.
	Revoked time.Time
}

// Active reports whether the device has not been revoked.
func (d Device) Active() bool { return d.Revoked.IsZero() }

// DeviceQuery selects devices for ListDevices.
type DeviceQuery struct {
	// Owner, when set, lists one user's devices.
	Owner string
	// IncludeRevoked also lists revoked devices.
	IncludeRevoked bool
	// After is a cursor: only devices whose ID sorts after it are listed.
	After string
	// Limit caps the page; zero means Config.DefaultPageSize and values
	// above Config.MaxPageSize are clamped.
	Limit int
}

// DeviceStore is the device-key registry. A revoked device stays stored
// (revoked) so that its id can never be registered again: a device whose
// key was revoked makes a new key.
type DeviceStore interface {
	// RegisterDevice stores d and returns it as stored. An id that exists,
	// revoked or not, fails with ErrConflict.
	RegisterDevice(ctx context.Context, d Device) (Device, error)
	// GetDevice returns one device, revoked or not, or ErrNotFound.
	GetDevice(ctx context.Context, id string) (Device, error)
	// ListDevices returns devices ordered by ID.
	ListDevices(ctx context.Context, q DeviceQuery) ([]Device, error)
	// RevokeDevice marks a device revoked now and returns it. Revoking a
	// revoked device keeps its first revocation time; an unknown id fails
	// with ErrNotFound.
	RevokeDevice(ctx context.Context, id string) (Device, error)
}
