package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/server/storage/internal/sqlcommon"
)

const deviceCols = `id, public_key, owner, name, registered_us, revoked_us`

func scanDevice(sc scanner) (storage.Device, error) {
	var (
		d          storage.Device
		registered int64
		revoked    sql.NullInt64
	)
	if err := sc.Scan(&d.ID, &d.PublicKey, &d.Owner, &d.Name, &registered, &revoked); err != nil {
		return storage.Device{}, err
	}
	d.Registered = sqlcommon.FromMicros(registered)
	if revoked.Valid {
		d.Revoked = sqlcommon.FromMicros(revoked.Int64)
	}
	return d, nil
}

// RegisterDevice stores a device; see storage.DeviceStore.
func (s *Store) RegisterDevice(ctx context.Context, d storage.Device) (storage.Device, error) {
	if err := sqlcommon.Device(d); err != nil {
		return storage.Device{}, fmt.Errorf("storage/sqlite: register device: %w", err)
	}
	registered := s.now()
	if !d.Registered.IsZero() {
		registered = sqlcommon.Micros(d.Registered)
	}
	var out storage.Device
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		// DO NOTHING returns no row for an existing id: a revoked id never
		// comes back.
		row := tx.QueryRowContext(ctx, `INSERT INTO devices (`+deviceCols+`)
			VALUES (?, ?, ?, ?, ?, NULL) ON CONFLICT (id) DO NOTHING RETURNING `+deviceCols,
			d.ID, d.PublicKey, d.Owner, d.Name, registered)
		var err error
		out, err = scanDevice(row)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: device %q is already registered", storage.ErrConflict, d.ID)
		}
		return err
	})
	if err != nil {
		return storage.Device{}, fmt.Errorf("storage/sqlite: register device %q: %w", d.ID, err)
	}
	return out, nil
}

// GetDevice returns one device or ErrNotFound.
func (s *Store) GetDevice(ctx context.Context, id string) (storage.Device, error) {
	return getByID(ctx, s, "devices", deviceCols, "device", id, scanDevice)
}

// ListDevices returns devices ordered by ID.
func (s *Store) ListDevices(ctx context.Context, q storage.DeviceQuery) ([]storage.Device, error) {
	if err := sqlcommon.DeviceQuery(q); err != nil {
		return nil, fmt.Errorf("storage/sqlite: list devices: %w", err)
	}
	r, err := s.reader()
	if err != nil {
		return nil, err
	}
	query := `SELECT ` + deviceCols + ` FROM devices WHERE id > ?`
	args := []any{q.After}
	if q.Owner != "" {
		query += ` AND owner = ?`
		args = append(args, q.Owner)
	}
	if !q.IncludeRevoked {
		query += ` AND revoked_us IS NULL`
	}
	query += ` ORDER BY id LIMIT ?`
	args = append(args, s.cfg.PageLimit(q.Limit))
	rows, err := r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("storage/sqlite: list devices: %w", err)
	}
	defer rows.Close()
	var out []storage.Device
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, fmt.Errorf("storage/sqlite: list devices: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage/sqlite: list devices: %w", err)
	}
	return out, nil
}

// RevokeDevice marks a device revoked, keeping the first revocation time.
func (s *Store) RevokeDevice(ctx context.Context, id string) (storage.Device, error) {
	if err := sqlcommon.Name("device id", id); err != nil {
		return storage.Device{}, fmt.Errorf("storage/sqlite: revoke device: %w", err)
	}
	var out storage.Device
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		row := tx.QueryRowContext(ctx, `UPDATE devices SET revoked_us = COALESCE(revoked_us, ?) WHERE id = ? RETURNING `+deviceCols, s.now(), id)
		var err error
		out, err = scanDevice(row)
		if errors.Is(err, sql.ErrNoRows) {
			return storage.ErrNotFound
		}
		return err
	})
	if err != nil {
		return storage.Device{}, fmt.Errorf("storage/sqlite: revoke device %q: %w", id, err)
	}
	return out, nil
}
