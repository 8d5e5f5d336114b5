// Package postgres is the storage backend for deployments that outgrow one
// machine: a [storage.Store] in PostgreSQL through pgx and its connection
// pool.
//
// It registers the DSN schemes "postgres" and "postgresql"; the DSN is a
// libpq URL ("postgres://user:pw@host:5432/db?sslmode=verify-full"), and
// pool settings such as pool_max_conns may be added to it. Without
// pool_max_conns the pool holds Config.MaxConns connections.
//
// Sequence numbers. AppendMessage runs one READ COMMITTED transaction:
// UPDATE channels SET last_seq = last_seq + 1 ... RETURNING takes the
// channel row's lock, so concurrent appenders to one channel queue on it
// and each reads the number its predecessor committed; the message insert
// follows in the same transaction, and a rollback undoes the increment.
// Numbers are thus gapless and strictly increasing in commit order, with no
// table locks and no SERIALIZABLE retries. Appenders to different channels
// do not wait for each other.
//
// The idempotency claim is an INSERT ... ON CONFLICT into message_dedup in
// the same transaction: a second appender of the same (sender, client id)
// waits on the unique index until the first commits, then finds its row
// and returns the original number.
//
// The schema is versioned: migrations/NNNN_*.sql are embedded and applied
// at open, all pending ones in one transaction under an advisory lock, so
// several servers starting at once migrate once. Tables go to the first
// schema of the connection's search_path.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/server/storage/internal/sqlcommon"
)

// Schemes are the DSN schemes this backend registers.
var Schemes = []string{"postgres", "postgresql"}

//go:embed migrations/*.sql
var migrationFS embed.FS

func init() {
	for _, s := range Schemes {
		storage.Register(s, func(ctx context.Context, dsn string, cfg storage.Config) (storage.Store, error) {
			return Open(ctx, dsn, cfg)
		})
	}
}

// Migrations returns the embedded schema migrations, in order.
func Migrations() ([]sqlcommon.Migration, error) {
	return sqlcommon.LoadMigrations(migrationFS, "migrations")
}

// Store is the PostgreSQL implementation of storage.Store.
type Store struct {
	cfg  storage.Config
	pool *pgxpool.Pool

	// Chat implements storage.ChatStore (chat.go).
	*sqlcommon.Chat

	closed    atomic.Bool
	closeOnce sync.Once
}

var _ storage.Store = (*Store)(nil)

// Open connects to the database a DSN names and applies pending
// migrations. The config's zero fields take their defaults.
func Open(ctx context.Context, dsn string, cfg storage.Config) (*Store, error) {
	ms, err := Migrations()
	if err != nil {
		return nil, err
	}
	return open(ctx, dsn, cfg, ms)
}

// open is Open with an explicit migration list, so that tests can open a
// database at an older schema version.
func open(ctx context.Context, dsn string, cfg storage.Config, ms []sqlcommon.Migration) (*Store, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	pc, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("%w: storage/postgres: parse DSN: %v", storage.ErrInvalid, err)
	}
	if !strings.Contains(dsn, "pool_max_conns") {
		pc.MaxConns = int32(cfg.MaxConns)
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("storage/postgres: connect: %w", err)
	}
	s := &Store{cfg: cfg, pool: pool}
	s.Chat = sqlcommon.NewChat(chatDB{s}, cfg.Now, "storage/postgres")
	if err := s.migrate(ctx, ms); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the pool, waiting for connections in use to be released.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.pool.Close()
	})
	return nil
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.check(); err != nil {
		return err
	}
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("storage/postgres: ping: %w", err)
	}
	return nil
}

// check fails with ErrClosed after Close.
func (s *Store) check() error {
	if s.closed.Load() {
		return storage.ErrClosed
	}
	return nil
}

// db returns the pool after checking that the store is open.
func (s *Store) db() (*pgxpool.Pool, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	return s.pool, nil
}

// errSkipCommit makes write roll back without failing.
var errSkipCommit = errors.New("skip commit")

// write runs fn in a READ COMMITTED transaction and commits when fn
// returns nil. errSkipCommit from fn rolls back and returns nil.
func (s *Store) write(ctx context.Context, fn func(tx pgx.Tx) error) error {
	if err := s.check(); err != nil {
		return err
	}
	err := pgx.BeginFunc(ctx, s.pool, fn)
	if errors.Is(err, errSkipCommit) {
		return nil
	}
	return err
}

// now is the store's clock, normalised to stored precision.
func (s *Store) now() time.Time { return sqlcommon.Time(s.cfg.Now()) }

// nullTime maps the zero time to SQL NULL.
func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return sqlcommon.Time(t)
}

// utc returns a scanned timestamp in UTC (pgx returns local time).
func utc(t time.Time) time.Time { return t.UTC() }

// utcPtr returns a nullable scanned timestamp in UTC, zero for NULL.
func utcPtr(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// Purge deletes expired de-duplication and key/value rows.
func (s *Store) Purge(ctx context.Context) (storage.PurgeStats, error) {
	var st storage.PurgeStats
	now := s.now()
	err := s.write(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM message_dedup WHERE at < $1`, sqlcommon.Time(now.Add(-s.cfg.DedupWindow)))
		if err != nil {
			return err
		}
		st.Dedup = tag.RowsAffected()
		tag, err = tx.Exec(ctx, `DELETE FROM kv WHERE expires_at IS NOT NULL AND expires_at <= $1`, now)
		if err != nil {
			return err
		}
		st.KV = tag.RowsAffected()
		return nil
	})
	if err != nil {
		return storage.PurgeStats{}, fmt.Errorf("storage/postgres: purge: %w", err)
	}
	return st, nil
}
