package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/server/storage/internal/sqlcommon"
)

func scanKV(sc scanner, e *storage.KVEntry) error {
	var (
		version, updated int64
		expires          sql.NullInt64
	)
	if err := sc.Scan(&e.Value, &version, &expires, &updated); err != nil {
		return err
	}
	e.Version, e.Updated = uint64(version), sqlcommon.FromMicros(updated)
	if expires.Valid {
		e.ExpiresAt = sqlcommon.FromMicros(expires.Int64)
	}
	if e.Value == nil {
		e.Value = []byte{}
	}
	return nil
}

// KVGet returns a live entry or ErrNotFound.
func (s *Store) KVGet(ctx context.Context, namespace, key string) (storage.KVEntry, error) {
	if err := sqlcommon.KVKey(namespace, key); err != nil {
		return storage.KVEntry{}, fmt.Errorf("storage/sqlite: kv get: %w", err)
	}
	r, err := s.reader()
	if err != nil {
		return storage.KVEntry{}, err
	}
	e := storage.KVEntry{Namespace: namespace, Key: key}
	err = scanKV(r.QueryRowContext(ctx, `SELECT value, version, expires_us, updated_us FROM kv
		WHERE namespace = ? AND key = ? AND (expires_us IS NULL OR expires_us > ?)`, namespace, key, s.now()), &e)
	if errors.Is(err, sql.ErrNoRows) {
		err = storage.ErrNotFound
	}
	if err != nil {
		return storage.KVEntry{}, fmt.Errorf("storage/sqlite: kv get %s/%s: %w", namespace, key, err)
	}
	return e, nil
}

// kvCond selects how kvWrite treats the current entry.
type kvCond int

const (
	kvAny    kvCond = iota // write unconditionally
	kvAbsent               // write only if no live entry exists
	kvMatch                // write only if the live entry has the expected version
)

// KVPut writes an entry unconditionally.
func (s *Store) KVPut(ctx context.Context, namespace, key string, value []byte, ttl time.Duration) (uint64, error) {
	return s.kvWrite(ctx, namespace, key, value, kvAny, 0, ttl)
}

// KVCompareAndSet writes an entry if its version is expect (0: absent).
func (s *Store) KVCompareAndSet(ctx context.Context, namespace, key string, value []byte, expect uint64, ttl time.Duration) (uint64, error) {
	cond := kvMatch
	if expect == 0 {
		cond = kvAbsent
	}
	return s.kvWrite(ctx, namespace, key, value, cond, expect, ttl)
}

func (s *Store) kvWrite(ctx context.Context, namespace, key string, value []byte, cond kvCond, expect uint64, ttl time.Duration) (uint64, error) {
	if err := sqlcommon.KV(s.cfg, namespace, key, value); err != nil {
		return 0, fmt.Errorf("storage/sqlite: kv put: %w", err)
	}
	if value == nil {
		value = []byte{}
	}
	now := s.cfg.Now()
	at := sqlcommon.Micros(now)
	var expires any
	if exp := sqlcommon.Expiry(now, ttl); !exp.IsZero() {
		expires = sqlcommon.Micros(exp)
	}
	var version int64
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `UPDATE kv_revision SET rev = rev + 1 WHERE id = 1 RETURNING rev`).Scan(&version); err != nil {
			return fmt.Errorf("next revision: %w", err)
		}
		var res sql.Result
		var err error
		switch cond {
		case kvAny:
			res, err = tx.ExecContext(ctx, `INSERT INTO kv (namespace, key, value, version, expires_us, updated_us) VALUES (?, ?, ?, ?, ?, ?)
				ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, version = excluded.version,
					expires_us = excluded.expires_us, updated_us = excluded.updated_us`,
				namespace, key, value, version, expires, at)
		case kvAbsent:
			// An expired entry counts as absent and is replaced.
			res, err = tx.ExecContext(ctx, `INSERT INTO kv (namespace, key, value, version, expires_us, updated_us) VALUES (?, ?, ?, ?, ?, ?)
				ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, version = excluded.version,
					expires_us = excluded.expires_us, updated_us = excluded.updated_us
				WHERE kv.expires_us IS NOT NULL AND kv.expires_us <= ?`,
				namespace, key, value, version, expires, at, at)
		case kvMatch:
			res, err = tx.ExecContext(ctx, `UPDATE kv SET value = ?, version = ?, expires_us = ?, updated_us = ?
				WHERE namespace = ? AND key = ? AND version = ? AND (expires_us IS NULL OR expires_us > ?)`,
				value, version, expires, at, namespace, key, int64(expect), at)
		}
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			if cond == kvAbsent {
				return fmt.Errorf("%w: entry exists", storage.ErrConflict)
			}
			return fmt.Errorf("%w: version is not %d", storage.ErrConflict, expect)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("storage/sqlite: kv put %s/%s: %w", namespace, key, err)
	}
	return uint64(version), nil
}

// KVDelete removes an entry; a missing entry is not an error.
func (s *Store) KVDelete(ctx context.Context, namespace, key string) error {
	if err := sqlcommon.KVKey(namespace, key); err != nil {
		return fmt.Errorf("storage/sqlite: kv delete: %w", err)
	}
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM kv WHERE namespace = ? AND key = ?`, namespace, key)
		return err
	})
	if err != nil {
		return fmt.Errorf("storage/sqlite: kv delete %s/%s: %w", namespace, key, err)
	}
	return nil
}

// KVCompareAndDelete removes a live entry whose version is expect.
func (s *Store) KVCompareAndDelete(ctx context.Context, namespace, key string, expect uint64) error {
	if err := sqlcommon.KVKey(namespace, key); err != nil {
		return fmt.Errorf("storage/sqlite: kv delete: %w", err)
	}
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM kv WHERE namespace = ? AND key = ? AND version = ? AND (expires_us IS NULL OR expires_us > ?)`,
			namespace, key, int64(expect), s.now())
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: version is not %d", storage.ErrConflict, expect)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("storage/sqlite: kv delete %s/%s: %w", namespace, key, err)
	}
	return nil
}

// KVList returns a namespace's live entries ordered by key.
func (s *Store) KVList(ctx context.Context, namespace, after string, limit int) ([]storage.KVEntry, error) {
	if err := sqlcommon.Name("namespace", namespace); err != nil {
		return nil, fmt.Errorf("storage/sqlite: kv list: %w", err)
	}
	r, err := s.reader()
	if err != nil {
		return nil, err
	}
	rows, err := r.QueryContext(ctx, `SELECT key, value, version, expires_us, updated_us FROM kv
		WHERE namespace = ? AND key > ? AND (expires_us IS NULL OR expires_us > ?) ORDER BY key LIMIT ?`,
		namespace, after, s.now(), s.cfg.PageLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("storage/sqlite: kv list %s: %w", namespace, err)
	}
	defer rows.Close()
	var out []storage.KVEntry
	for rows.Next() {
		e := storage.KVEntry{Namespace: namespace}
		var key string
		if err := scanKV(keyScanner{rows, &key}, &e); err != nil {
			return nil, fmt.Errorf("storage/sqlite: kv list %s: %w", namespace, err)
		}
		e.Key = key
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage/sqlite: kv list %s: %w", namespace, err)
	}
	return out, nil
}

// keyScanner prepends the key column to a scanKV scan.
type keyScanner struct {
	rows *sql.Rows
	key  *string
}

func (k keyScanner) Scan(dest ...any) error { return k.rows.Scan(append([]any{k.key}, dest...)...) }
