package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/server/storage/internal/sqlcommon"
)

const deviceCols = `id, public_key, owner, name, registered, revoked`

func scanDevice(row pgx.Row) (storage.Device, error) {
	var (
		d       storage.Device
		revoked *time.Time
	)
	if err := row.Scan(&d.ID, &d.PublicKey, &d.Owner, &d.Name, &d.Registered, &revoked); err != nil {
		return storage.Device{}, err
	}
	d.Registered = d.Registered.UTC()
	if revoked != nil {
		d.Revoked = revoked.UTC()
	}
	return d, nil
}

// RegisterDevice stores a device; see storage.DeviceStore.
func (s *Store) RegisterDevice(ctx context.Context, d storage.Device) (storage.Device, error) {
	if err := sqlcommon.Device(d); err != nil {
		return storage.Device{}, fmt.Errorf("storage/postgres: register device: %w", err)
	}
	registered := s.now()
	if !d.Registered.IsZero() {
		registered = sqlcommon.Time(d.Registered)
	}
	db, err := s.db()
	if err != nil {
		return storage.Device{}, err
	}
	// DO NOTHING returns no row for an existing id: a revoked id never
	// comes back.
	out, err := scanDevice(db.QueryRow(ctx, `INSERT INTO devices (`+deviceCols+`)
		VALUES ($1, $2, $3, $4, $5, NULL) ON CONFLICT (id) DO NOTHING RETURNING `+deviceCols,
		d.ID, d.PublicKey, d.Owner, d.Name, registered))
	if errors.Is(err, pgx.ErrNoRows) {
		err = fmt.Errorf("%w: device %q is already registered", storage.ErrConflict, d.ID)
	}
	if err != nil {
		return storage.Device{}, fmt.Errorf("storage/postgres: register device %q: %w", d.ID, err)
	}
	return out, nil
}

// GetDevice returns one device or ErrNotFound.
func (s *Store) GetDevice(ctx context.Context, id string) (storage.Device, error) {
	db, err := s.db()
	if err != nil {
		return storage.Device{}, err
	}
	out, err := scanDevice(db.QueryRow(ctx, `SELECT `+deviceCols+` FROM devices WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		err = storage.ErrNotFound
	}
	if err != nil {
		return storage.Device{}, fmt.Errorf("storage/postgres: get device %q: %w", id, err)
	}
	return out, nil
}

// ListDevices returns devices ordered by ID.
func (s *Store) ListDevices(ctx context.Context, q storage.DeviceQuery) ([]storage.Device, error) {
	if err := sqlcommon.DeviceQuery(q); err != nil {
		return nil, fmt.Errorf("storage/postgres: list devices: %w", err)
	}
	db, err := s.db()
	if err != nil {
		return nil, err
	}
	query := `SELECT ` + deviceCols + ` FROM devices WHERE id > $1`
	args := []any{q.After}
	if q.Owner != "" {
		args = append(args, q.Owner)
		query += ` AND owner = $` + strconv.Itoa(len(args))
	}
	if !q.IncludeRevoked {
		query += ` AND revoked IS NULL`
	}
	args = append(args, s.cfg.PageLimit(q.Limit))
	query += ` ORDER BY id LIMIT $` + strconv.Itoa(len(args))
	rows, err := db.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("storage/postgres: list devices: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (storage.Device, error) { return scanDevice(r) })
	if err != nil {
		return nil, fmt.Errorf("storage/postgres: list devices: %w", err)
	}
	return out, nil
}

// RevokeDevice marks a device revoked, keeping the first revocation time.
func (s *Store) RevokeDevice(ctx context.Context, id string) (storage.Device, error) {
	if err := sqlcommon.Name("device id", id); err != nil {
		return storage.Device{}, fmt.Errorf("storage/postgres: revoke device: %w", err)
	}
	db, err := s.db()
	if err != nil {
		return storage.Device{}, err
	}
	out, err := scanDevice(db.QueryRow(ctx, `UPDATE devices SET revoked = COALESCE(revoked, $1) WHERE id = $2 RETURNING `+deviceCols, s.now(), id))
	if errors.Is(err, pgx.ErrNoRows) {
		err = storage.ErrNotFound
	}
	if err != nil {
		return storage.Device{}, fmt.Errorf("storage/postgres: revoke device %q: %w", id, err)
	}
	return out, nil
}
