package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/jetstreamproto/jsp/server/storage/internal/sqlcommon"
)

// migrationLock is the advisory lock key that serialises migrations of
// one database across processes ("jspmigr" in ASCII).
const migrationLock int64 = 0x6a73706d696772

// migrate applies the pending migrations of ms in one transaction. DDL is
// transactional in PostgreSQL, so a failed upgrade leaves the previous
// schema intact.
func (s *Store) migrate(ctx context.Context, ms []sqlcommon.Migration) error {
	var applied []sqlcommon.Migration
	err := s.write(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
			return fmt.Errorf("take migration lock: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    INTEGER NOT NULL PRIMARY KEY,
			name       TEXT NOT NULL,
			checksum   TEXT NOT NULL,
			applied_at TIMESTAMPTZ NOT NULL
		)`); err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		rows, err := tx.Query(ctx, `SELECT version, checksum FROM schema_migrations ORDER BY version`)
		if err != nil {
			return fmt.Errorf("read schema_migrations: %w", err)
		}
		have, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (sqlcommon.Applied, error) {
			var a sqlcommon.Applied
			err := r.Scan(&a.Version, &a.Checksum)
			return a, err
		})
		if err != nil {
			return fmt.Errorf("read schema_migrations: %w", err)
		}
		pending, err := sqlcommon.Pending(have, ms)
		if err != nil {
			return err
		}
		for _, m := range pending {
			// No arguments: pgx sends it with the simple protocol, which
			// runs a multi-statement file.
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return fmt.Errorf("apply migration %s: %w", m.Name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES ($1, $2, $3, $4)`,
				m.Version, m.Name, m.Checksum, s.now()); err != nil {
				return fmt.Errorf("record migration %s: %w", m.Name, err)
			}
		}
		applied = pending
		return nil
	})
	if err != nil {
		return fmt.Errorf("storage/postgres: migrate: %w", err)
	}
	for _, m := range applied {
		s.cfg.Logger.Info("storage: applied migration", "backend", "postgres", "version", m.Version, "name", m.Name)
	}
	return nil
}

// SchemaVersion reports the highest applied migration.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	db, err := s.db()
	if err != nil {
		return 0, err
	}
	var v *int
	if err := db.QueryRow(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("storage/postgres: schema version: %w", err)
	}
	if v == nil {
		return 0, nil
	}
	return *v, nil
}
