package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/server/storage/internal/sqlcommon"
)

// KVGet returns a live entry or ErrNotFound.
func (s *Store) KVGet(ctx context.Context, namespace, key string) (storage.KVEntry, error) {
	if err := sqlcommon.KVKey(namespace, key); err != nil {
		return storage.KVEntry{}, fmt.Errorf("storage/postgres: kv get: %w", err)
	}
	db, err := s.db()
	if err != nil {
		return storage.KVEntry{}, err
	}
	e := storage.KVEntry{Namespace: namespace, Key: key}
	var (
		version int64
		expires *time.Time
		updated time.Time
	)
	err = db.QueryRow(ctx, `SELECT value, version, expires_at, updated_at FROM kv
		WHERE namespace = $1 AND key = $2 AND (expires_at IS NULL OR expires_at > $3)`, namespace, key, s.now()).
		Scan(&e.Value, &version, &expires, &updated)
	if errors.Is(err, pgx.ErrNoRows) {
		err = storage.ErrNotFound
	}
	if err != nil {
		return storage.KVEntry{}, fmt.Errorf("storage/postgres: kv get %s/%s: %w", namespace, key, err)
	}
	e.Version, e.ExpiresAt, e.Updated = uint64(version), utcPtr(expires), utc(updated)
	if e.Value == nil {
		e.Value = []byte{}
	}
	return e, nil
}

// KVPut writes an entry unconditionally.
func (s *Store) KVPut(ctx context.Context, namespace, key string, value []byte, ttl time.Duration) (uint64, error) {
	return s.kvWrite(ctx, namespace, key, value, ttl, `INSERT INTO kv (namespace, key, value, version, expires_at, updated_at)
		VALUES ($1, $2, $3, nextval('kv_revision'), $4, $5)
		ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, version = excluded.version,
			expires_at = excluded.expires_at, updated_at = excluded.updated_at
		RETURNING version`)
}

// KVCompareAndSet writes an entry if its version is expect (0: absent).
func (s *Store) KVCompareAndSet(ctx context.Context, namespace, key string, value []byte, expect uint64, ttl time.Duration) (uint64, error) {
	if expect == 0 {
		// An expired entry counts as absent and is replaced.
		return s.kvWrite(ctx, namespace, key, value, ttl, `INSERT INTO kv (namespace, key, value, version, expires_at, updated_at)
			VALUES ($1, $2, $3, nextval('kv_revision'), $4, $5)
			ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, version = excluded.version,
				expires_at = excluded.expires_at, updated_at = excluded.updated_at
			WHERE kv.expires_at IS NOT NULL AND kv.expires_at <= $5
			RETURNING version`)
	}
	return s.kvWrite(ctx, namespace, key, value, ttl, `UPDATE kv SET value = $3, version = nextval('kv_revision'),
			expires_at = $4, updated_at = $5
		WHERE namespace = $1 AND key = $2 AND version = $6 AND (expires_at IS NULL OR expires_at > $5)
		RETURNING version`, int64(expect))
}

// kvWrite runs one write statement taking (namespace, key, value, expiry,
// now, extra...) and returning the new version; no row back is a failed
// condition. Each statement is atomic on its own, so no transaction is
// needed; a failed condition may consume a revision number, which only
// leaves a gap in versions.
func (s *Store) kvWrite(ctx context.Context, namespace, key string, value []byte, ttl time.Duration, query string, extra ...any) (uint64, error) {
	if err := sqlcommon.KV(s.cfg, namespace, key, value); err != nil {
		return 0, fmt.Errorf("storage/postgres: kv put: %w", err)
	}
	if value == nil {
		value = []byte{}
	}
	db, err := s.db()
	if err != nil {
		return 0, err
	}
	now := s.now()
	args := append([]any{namespace, key, value, nullTime(sqlcommon.Expiry(now, ttl)), now}, extra...)
	var version int64
	err = db.QueryRow(ctx, query, args...).Scan(&version)
	if errors.Is(err, pgx.ErrNoRows) {
		err = fmt.Errorf("%w: version condition failed", storage.ErrConflict)
	}
	if err != nil {
		return 0, fmt.Errorf("storage/postgres: kv put %s/%s: %w", namespace, key, err)
	}
	return uint64(version), nil
}

// KVDelete removes an entry; a missing entry is not an error.
func (s *Store) KVDelete(ctx context.Context, namespace, key string) error {
	if err := sqlcommon.KVKey(namespace, key); err != nil {
		return fmt.Errorf("storage/postgres: kv delete: %w", err)
	}
	_, err := s.exec(ctx, "kv delete "+namespace+"/"+key, `DELETE FROM kv WHERE namespace = $1 AND key = $2`, namespace, key)
	return err
}

// KVCompareAndDelete removes a live entry whose version is expect.
func (s *Store) KVCompareAndDelete(ctx context.Context, namespace, key string, expect uint64) error {
	if err := sqlcommon.KVKey(namespace, key); err != nil {
		return fmt.Errorf("storage/postgres: kv delete: %w", err)
	}
	n, err := s.exec(ctx, "kv delete "+namespace+"/"+key,
		`DELETE FROM kv WHERE namespace = $1 AND key = $2 AND version = $3 AND (expires_at IS NULL OR expires_at > $4)`,
		namespace, key, int64(expect), s.now())
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("storage/postgres: kv delete %s/%s: %w: version is not %d", namespace, key, storage.ErrConflict, expect)
	}
	return nil
}

// KVList returns a namespace's live entries ordered by key.
func (s *Store) KVList(ctx context.Context, namespace, after string, limit int) ([]storage.KVEntry, error) {
	if err := sqlcommon.Name("namespace", namespace); err != nil {
		return nil, fmt.Errorf("storage/postgres: kv list: %w", err)
	}
	db, err := s.db()
	if err != nil {
		return nil, err
	}
	rows, err := db.Query(ctx, `SELECT key, value, version, expires_at, updated_at FROM kv
		WHERE namespace = $1 AND key > $2 AND (expires_at IS NULL OR expires_at > $3) ORDER BY key LIMIT $4`,
		namespace, after, s.now(), s.cfg.PageLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("storage/postgres: kv list %s: %w", namespace, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (storage.KVEntry, error) {
		e := storage.KVEntry{Namespace: namespace}
		var (
			version int64
			expires *time.Time
			updated time.Time
		)
		if err := r.Scan(&e.Key, &e.Value, &version, &expires, &updated); err != nil {
			return e, err
		}
		e.Version, e.ExpiresAt, e.Updated = uint64(version), utcPtr(expires), utc(updated)
		if e.Value == nil {
			e.Value = []byte{}
		}
		return e, nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage/postgres: kv list %s: %w", namespace, err)
	}
	return out, nil
}
