package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/jetstreamproto/jsp/server/storage/internal/sqlcommon"
)

// migrate applies the pending migrations of ms in one write transaction.
// BEGIN IMMEDIATE takes the write lock first, so two processes opening one
// file at once apply the migrations once: the second waits, then finds
// nothing pending.
func (s *Store) migrate(ctx context.Context, ms []sqlcommon.Migration) error {
	var applied []sqlcommon.Migration
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    INTEGER NOT NULL PRIMARY KEY,
			name       TEXT    NOT NULL,
			checksum   TEXT    NOT NULL,
			applied_us INTEGER NOT NULL
		)`); err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		have, err := appliedMigrations(ctx, tx)
		if err != nil {
			return err
		}
		pending, err := sqlcommon.Pending(have, ms)
		if err != nil {
			return err
		}
		for _, m := range pending {
			if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
				return fmt.Errorf("apply migration %s: %w", m.Name, err)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, checksum, applied_us) VALUES (?, ?, ?, ?)`,
				m.Version, m.Name, m.Checksum, s.now()); err != nil {
				return fmt.Errorf("record migration %s: %w", m.Name, err)
			}
		}
		applied = pending
		return nil
	})
	if err != nil {
		return fmt.Errorf("storage/sqlite: migrate %s: %w", s.path, err)
	}
	for _, m := range applied {
		s.cfg.Logger.Info("storage: applied migration", "backend", Scheme, "version", m.Version, "name", m.Name)
	}
	return nil
}

func appliedMigrations(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}) ([]sqlcommon.Applied, error) {
	rows, err := q.QueryContext(ctx, `SELECT version, checksum FROM schema_migrations ORDER BY version`)
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	defer rows.Close()
	var have []sqlcommon.Applied
	for rows.Next() {
		var a sqlcommon.Applied
		if err := rows.Scan(&a.Version, &a.Checksum); err != nil {
			return nil, fmt.Errorf("read schema_migrations: %w", err)
		}
		have = append(have, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	return have, nil
}

// SchemaVersion reports the highest applied migration.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	r, err := s.reader()
	if err != nil {
		return 0, err
	}
	var v sql.NullInt64
	if err := r.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("storage/sqlite: schema version: %w", err)
	}
	return int(v.Int64), nil
}
