package auth

import (
	"context"
	"errors"
	"fmt"

	"github.com/jetstreamproto/jsp/security/devicekey"
	"github.com/jetstreamproto/jsp/server/storage"
)

// StoreDevices is the device-key registry kept in storage (the devices
// table of every backend): the one registry the gateways of a cluster
// share, so a device revoked through any of them is refused by all, and
// their periodic device check (one heartbeat) disconnects its sessions.
// It implements devicekey.Registry and gateway.DeviceLister.
type StoreDevices struct {
	store storage.DeviceStore
}

// NewStoreDevices returns the registry over st.
func NewStoreDevices(st storage.DeviceStore) (*StoreDevices, error) {
	if st == nil {
		return nil, errors.New("auth: device registry without a store")
	}
	return &StoreDevices{store: st}, nil
}

var _ devicekey.Registry = (*StoreDevices)(nil)

// fromStorage converts a stored device; a stored row that does not hold a
// valid key is reported, never trusted.
func fromStorage(d storage.Device) (devicekey.Device, error) {
	var key devicekey.PublicKey
	if len(d.PublicKey) != len(key) {
		return devicekey.Device{}, fmt.Errorf("auth: stored device %s has a %d-byte key", d.ID, len(d.PublicKey))
	}
	copy(key[:], d.PublicKey)
	if key.ID().String() != d.ID {
		return devicekey.Device{}, fmt.Errorf("auth: stored device %s does not match its key", d.ID)
	}
	return devicekey.Device{ID: key.ID(), Key: key, Owner: d.Owner, Name: d.Name, Registered: d.Registered, Revoked: d.Revoked}, nil
}

// mapErr turns storage sentinels into registry sentinels, keeping both
// in the chain.
func mapErr(err error) error {
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return fmt.Errorf("%w: %w", devicekey.ErrNotFound, err)
	case errors.Is(err, storage.ErrConflict):
		return fmt.Errorf("%w: %w", devicekey.ErrExists, err)
	}
	return err
}

// Register implements devicekey.Registry.
func (r *StoreDevices) Register(ctx context.Context, d devicekey.Device) error {
	if d.ID != d.Key.ID() {
		return fmt.Errorf("auth: register device %s: id does not match the key %s", d.ID, d.Key.ID())
	}
	_, err := r.store.RegisterDevice(ctx, storage.Device{
		ID: d.ID.String(), PublicKey: d.Key[:], Owner: d.Owner, Name: d.Name, Registered: d.Registered,
	})
	if err != nil {
		return fmt.Errorf("auth: register device %s: %w", d.ID, mapErr(err))
	}
	return nil
}

// Revoke implements devicekey.Registry.
func (r *StoreDevices) Revoke(ctx context.Context, id devicekey.ID) error {
	if _, err := r.store.RevokeDevice(ctx, id.String()); err != nil {
		return fmt.Errorf("auth: revoke device %s: %w", id, mapErr(err))
	}
	return nil
}

// Lookup implements devicekey.Registry.
func (r *StoreDevices) Lookup(ctx context.Context, id devicekey.ID) (devicekey.Device, error) {
	d, err := r.store.GetDevice(ctx, id.String())
	if err != nil {
		return devicekey.Device{}, fmt.Errorf("auth: look up device %s: %w", id, mapErr(err))
	}
	return fromStorage(d)
}

// ListDevices lists active and revoked devices ordered by id, of one
// owner or (owner "") of everyone, after the id given, up to limit.
func (r *StoreDevices) ListDevices(ctx context.Context, owner, after string, limit int) ([]devicekey.Device, error) {
	ds, err := r.store.ListDevices(ctx, storage.DeviceQuery{Owner: owner, After: after, Limit: limit, IncludeRevoked: true})
	if err != nil {
		return nil, fmt.Errorf("auth: list devices: %w", mapErr(err))
	}
	out := make([]devicekey.Device, 0, len(ds))
	for _, d := range ds {
		dev, err := fromStorage(d)
		if err != nil {
			return nil, err
		}
		out = append(out, dev)
	}
	return out, nil
}
