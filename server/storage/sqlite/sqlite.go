// Package sqlite is the embedded storage backend: a [storage.Store] in one
// SQLite file, through the pure-Go modernc.org/sqlite driver (no cgo, so
// the jsp binary stays statically linked and cross-compiles).
//
// It registers the DSN scheme "sqlite": "sqlite:PATH" opens (creating) the
// file at PATH, "sqlite::memory:" a private in-memory database.
//
// Connections. The file runs in WAL mode with synchronous=FULL (a commit is
// on disk before AppendMessage returns, as the server acknowledges only
// durable messages), foreign keys on and a busy timeout for locks held by
// other processes. The store keeps two pools:
//
//   - one writer connection. SQLite admits one writer at a time whatever
//     the number of connections; with several, writers would contend on the
//     file lock and sleep in the busy handler, and two deferred
//     transactions that both upgrade to writing can fail with SQLITE_BUSY
//     at once. A single connection turns contention into an orderly queue
//     in database/sql, and every write transaction starts with BEGIN
//     IMMEDIATE so it holds the write lock from its first statement. The
//     per-channel sequence counter is then serialised for free.
//   - a read pool of Config.MaxConns connections, opened query-only. In WAL
//     mode readers see the last committed snapshot and neither block the
//     writer nor wait for it, so history and recovery reads scale with the
//     pool.
//
// Appends are group-committed (appends.go): one goroutine owned by the
// store takes every AppendMessage waiting and commits them in one
// transaction, so concurrent appenders share an fsync; each still returns
// only after its commit.
//
// Each group's messages and idempotency claims are inserted with
// multi-row statements (rows.go); claims go to an append-only claim log
// that the loop keeps in memory and merges into message_dedup in key order
// every few thousand rows, and a Bloom filter answers "never claimed" for
// fresh client ids without a B-tree seek (claims.go, dedupfilter.go, D41).
// Checkpoints run on a goroutine and connection of their own, never inside
// a commit, and the WAL is bounded (checkpoint.go).
//
// An in-memory database exists per connection, so "sqlite::memory:" uses
// the writer connection for reads too.
//
// The schema is versioned: migrations/NNNN_*.sql are embedded and applied
// at open, all pending ones in one transaction, recorded in
// schema_migrations.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	// The driver registers itself with database/sql as "sqlite"; its
	// error type and codes tell a busy database apart.
	sqlitedrv "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/server/storage/internal/sqlcommon"
)

// Scheme is the DSN scheme this backend registers.
const Scheme = "sqlite"

// MemoryPath is the path of a private in-memory database.
const MemoryPath = ":memory:"

//go:embed migrations/*.sql
var migrationFS embed.FS

func init() {
	storage.Register(Scheme, func(ctx context.Context, dsn string, cfg storage.Config) (storage.Store, error) {
		// storage.Open matched the scheme case-insensitively; the path is
		// everything after "sqlite:".
		return Open(ctx, dsn[len(Scheme)+1:], cfg)
	})
}

// Migrations returns the embedded schema migrations, in order.
func Migrations() ([]sqlcommon.Migration, error) {
	return sqlcommon.LoadMigrations(migrationFS, "migrations")
}

// Store is the SQLite implementation of storage.Store.
type Store struct {
	cfg  storage.Config
	path string

	w *sql.DB // the one writer connection
	r *sql.DB // the read pool; == w for an in-memory database

	st stmts // prepared statements (stmts.go)

	opts   Options
	claims *claims // the claim log's copy; the append loop's (claims.go)
	// claimLog is whether the schema has the claim log (migration 0007);
	// a database opened at an earlier schema, as the migration tests do,
	// claims in message_dedup directly.
	claimLog bool
	ckpt     *checkpointer // nil for an in-memory database (checkpoint.go)

	// Chat implements storage.ChatStore (chat.go).
	*sqlcommon.Chat

	// The append loop (appends.go): appends carries requests to it, stop
	// ends it, appendsDone closes when it has returned.
	appends     chan *appendReq
	stop        chan struct{}
	appendsDone chan struct{}
	loop        loopOptions

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

var _ storage.Store = (*Store)(nil)

// Open opens (creating) the database at path, or an in-memory database for
// MemoryPath, and applies pending migrations. The config's zero fields take
// their defaults; cfg.SQLite holds the backend's own settings (Options).
func Open(ctx context.Context, path string, cfg storage.Config) (*Store, error) {
	return OpenWith(ctx, path, cfg, Options(cfg.SQLite))
}

// OpenWith is Open with the backend's own settings given as opts, which
// replace cfg.SQLite.
func OpenWith(ctx context.Context, path string, cfg storage.Config, opts Options) (*Store, error) {
	ms, err := Migrations()
	if err != nil {
		return nil, err
	}
	return open(ctx, path, cfg, ms, loopOptions{opts: opts})
}

// Options are the SQLite backend's own settings (D41). Zero fields take
// the defaults named. Its fields are those of storage.SQLiteConfig, so
// that storage.Open carries them (Options(cfg.SQLite)); `jsp server` sets
// them from the storage.sqlite.* configuration keys.
type Options struct {
	// ClaimMergeRows is how many rows the claim log holds before it is
	// merged into message_dedup (claims.go); default DefaultClaimMergeRows.
	ClaimMergeRows int
	// CheckpointBytes is the WAL growth after which the checkpointer runs
	// a PASSIVE checkpoint (checkpoint.go); default DefaultCheckpointBytes.
	CheckpointBytes int64
	// WALLimitBytes bounds the WAL: reaching it makes the append loop
	// checkpoint before its next group, and the file is cut back to it
	// when the WAL restarts; default DefaultWALLimitBytes. It must not be
	// below CheckpointBytes.
	WALLimitBytes int64
	// CheckpointIdle is how long without a commit makes the checkpointer
	// empty the WAL; default DefaultCheckpointIdle.
	CheckpointIdle time.Duration
}

// withDefaults fills the zero fields of o.
func (o Options) withDefaults() Options {
	if o.ClaimMergeRows == 0 {
		o.ClaimMergeRows = DefaultClaimMergeRows
	}
	if o.CheckpointBytes == 0 {
		o.CheckpointBytes = DefaultCheckpointBytes
	}
	if o.WALLimitBytes == 0 {
		o.WALLimitBytes = max(DefaultWALLimitBytes, o.CheckpointBytes)
	}
	if o.CheckpointIdle == 0 {
		o.CheckpointIdle = DefaultCheckpointIdle
	}
	return o
}

// validate checks o after withDefaults.
func (o Options) validate() error {
	switch {
	case o.ClaimMergeRows < 0:
		return fmt.Errorf("%w: sqlite options: negative ClaimMergeRows %d", storage.ErrInvalid, o.ClaimMergeRows)
	case o.CheckpointBytes < 0:
		return fmt.Errorf("%w: sqlite options: negative CheckpointBytes %d", storage.ErrInvalid, o.CheckpointBytes)
	case o.WALLimitBytes < o.CheckpointBytes:
		return fmt.Errorf("%w: sqlite options: WALLimitBytes %d below CheckpointBytes %d", storage.ErrInvalid, o.WALLimitBytes, o.CheckpointBytes)
	case o.CheckpointIdle < 0:
		return fmt.Errorf("%w: sqlite options: negative CheckpointIdle %v", storage.ErrInvalid, o.CheckpointIdle)
	}
	return nil
}

// loopOptions are test knobs of the append loop.
type loopOptions struct {
	opts           Options   // the backend's settings
	noCheckpointer bool      // count WAL growth but start no checkpointer
	noClaimLog     bool      // claim in message_dedup directly, as before 0007
	maxBatch       int       // zero: maxAppendBatch
	onBatch        func(int) // called with each group's size
	onSubmit       func()    // called before a request is handed to the loop
}

// open is Open with an explicit migration list, so that tests can open a
// database at an older schema version, and append loop knobs.
func open(ctx context.Context, path string, cfg storage.Config, ms []sqlcommon.Migration, lo loopOptions) (*Store, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	opts := lo.opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if path == "" || strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("%w: sqlite path %q is empty or contains '?'", storage.ErrInvalid, path)
	}
	memory := path == MemoryPath
	if !memory {
		if dir := filepath.Dir(path); dir != "." {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, fmt.Errorf("storage/sqlite: create directory for %s: %w", path, err)
			}
		}
	}
	busy := fmt.Sprintf("busy_timeout(%d)", cfg.BusyTimeout.Milliseconds())

	wq := url.Values{}
	wq.Set("_txlock", "immediate")
	wq.Add("_pragma", busy)
	wq.Add("_pragma", "foreign_keys(1)")
	if !memory {
		wq.Add("_pragma", "journal_mode(WAL)")
		wq.Add("_pragma", "synchronous(FULL)")
		// Checkpoints are the checkpointer's (checkpoint.go), never a
		// commit's; a WAL that restarts is cut back to the limit.
		wq.Add("_pragma", "wal_autocheckpoint(0)")
		wq.Add("_pragma", fmt.Sprintf("journal_size_limit(%d)", opts.WALLimitBytes))
	}
	w, err := sql.Open("sqlite", path+"?"+wq.Encode())
	if err != nil {
		return nil, fmt.Errorf("storage/sqlite: open writer %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	// Never close the idle writer: for an in-memory database that would
	// drop the data, and for a file it saves reopening per write.
	w.SetMaxIdleConns(1)
	w.SetConnMaxIdleTime(0)
	w.SetConnMaxLifetime(0)
	s := &Store{cfg: cfg, path: path, w: w, r: w, opts: opts, claims: newClaims()}
	s.Chat = sqlcommon.NewChat(chatDB{s}, cfg.Now, "storage/sqlite")
	// Touch the writer first: it switches the file to WAL before a reader
	// opens it.
	if err := pingWriter(ctx, w, cfg.BusyTimeout); err != nil {
		w.Close()
		return nil, fmt.Errorf("storage/sqlite: open %s: %w", path, err)
	}
	if !memory {
		rq := url.Values{}
		rq.Add("_pragma", busy)
		rq.Add("_pragma", "foreign_keys(1)")
		rq.Add("_pragma", "query_only(1)")
		r, err := sql.Open("sqlite", path+"?"+rq.Encode())
		if err != nil {
			w.Close()
			return nil, fmt.Errorf("storage/sqlite: open readers %s: %w", path, err)
		}
		r.SetMaxOpenConns(cfg.MaxConns)
		r.SetMaxIdleConns(cfg.MaxConns)
		s.r = r
	}
	if err := s.migrate(ctx, ms); err != nil {
		s.closeDBs()
		return nil, err
	}
	if err := s.w.QueryRowContext(ctx, `SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'message_claims'`).Scan(&s.claimLog); err != nil {
		s.closeDBs()
		return nil, fmt.Errorf("storage/sqlite: open %s: look for the claim log: %w", path, err)
	}
	s.claimLog = s.claimLog && !lo.noClaimLog
	s.claims.direct = !s.claimLog
	if s.claimLog {
		now := s.now()
		window := s.cfg.DedupWindow.Microseconds()
		s.claims.filter = newDedupFilter(DefaultDedupFilterBytes, window)
		// Log rows below the log's first were merged into message_dedup,
		// which the filter is loaded from next: they count as read.
		var last, first sql.NullInt64
		if err := s.w.QueryRowContext(ctx, `SELECT max(id), min(id) FROM message_claims`).Scan(&last, &first); err != nil {
			s.closeDBs()
			return nil, fmt.Errorf("storage/sqlite: open %s: read claim log position: %w", path, err)
		}
		s.claims.seen = last.Int64
		if first.Valid {
			s.claims.seen = first.Int64 - 1
		}
		if err := s.loadDedupFilter(ctx, now-window); err != nil {
			s.closeDBs()
			return nil, err
		}
	}
	if err := s.prepare(ctx); err != nil {
		s.closeDBs()
		return nil, err
	}

	s.appends = make(chan *appendReq)
	s.stop = make(chan struct{})
	s.appendsDone = make(chan struct{})
	s.loop = lo
	if s.loop.maxBatch == 0 {
		s.loop.maxBatch = maxAppendBatch
	}
	if !memory {
		if err := s.startCheckpointer(ctx); err != nil {
			s.closeDBs()
			return nil, err
		}
	}
	go s.runAppends()
	return s, nil
}

// Close stops the append loop, after it has committed and answered the
// group in progress, then closes both pools. Appends not yet taken by the
// loop fail with ErrClosed. Close is idempotent.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		close(s.stop)
		<-s.appendsDone
		s.closeErr = errors.Join(s.stopCheckpointer(), s.closeDBs())
	})
	return s.closeErr
}

// closeDBs closes both pools.
func (s *Store) closeDBs() error {
	errs := []error{s.closeStmts()}
	if s.r != s.w {
		errs = append(errs, s.r.Close())
	}
	errs = append(errs, s.w.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("storage/sqlite: close %s: %w", s.path, err)
	}
	return nil
}

// Ping checks both pools.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.check(); err != nil {
		return err
	}
	if err := s.w.PingContext(ctx); err != nil {
		return fmt.Errorf("storage/sqlite: ping writer: %w", err)
	}
	if err := s.r.PingContext(ctx); err != nil {
		return fmt.Errorf("storage/sqlite: ping readers: %w", err)
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

// write runs fn in a write transaction and returns after its commit.
// Once the store is open, fn joins the append loop's next group commit
// under a savepoint of its own (appends.go): concurrent writes share one
// transaction and one fsync, and fn's changes roll back alone when it
// fails. fn runs statements with the ctx it is given (the loop's), never
// the caller's: a cancellation interrupts the shared connection and could
// abort a neighbour's statement. A caller whose ctx ends before its turn
// is skipped; one whose ctx ends while it waits gets ctx's error, and its
// write may still commit.
func (s *Store) write(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) error {
	if s.appends == nil {
		return s.writeDirect(ctx, fn)
	}
	_, err := s.submitAppend(ctx, &appendReq{ctx: ctx, fn: fn})
	return err
}

// writeDirect runs fn in a transaction of its own on the writer
// connection: for the migrations, which run before the append loop.
func (s *Store) writeDirect(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) error {
	if err := s.check(); err != nil {
		return err
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(ctx, tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// reader returns the read pool after checking that the store is open.
func (s *Store) reader() (*sql.DB, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	return s.r, nil
}

// now is the store's clock, normalised to stored precision.
func (s *Store) now() int64 { return sqlcommon.Micros(s.cfg.Now()) }

// Purge deletes expired de-duplication and key/value rows.
func (s *Store) Purge(ctx context.Context) (storage.PurgeStats, error) {
	var st storage.PurgeStats
	now := s.cfg.Now()
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		// Expired entries of the claim log are counted once merged.
		if err := s.mergeClaims(ctx, tx); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM message_dedup WHERE at_us < ?`, sqlcommon.Micros(now.Add(-s.cfg.DedupWindow)))
		if err != nil {
			return err
		}
		st.Dedup, _ = res.RowsAffected()
		if s.claimLog {
			// Counted above once merged; retired so no merge brings
			// them back.
			if _, err := tx.ExecContext(ctx, claimStatements["claimRetire"], sqlcommon.Micros(now.Add(-s.cfg.DedupWindow))); err != nil {
				return err
			}
		}
		res, err = tx.ExecContext(ctx, `DELETE FROM kv WHERE expires_us IS NOT NULL AND expires_us <= ?`, sqlcommon.Micros(now))
		if err != nil {
			return err
		}
		st.KV, _ = res.RowsAffected()
		return nil
	})
	if err != nil {
		return storage.PurgeStats{}, fmt.Errorf("storage/sqlite: purge: %w", err)
	}
	return st, nil
}

// pingWriter opens the writer's first connection, which applies the
// pragmas. Switching a new file to WAL takes an exclusive lock, and SQLite
// answers SQLITE_BUSY at once, without its busy handler, when another
// process or Store opening the same file at the same moment holds a lock
// (several gateways or cores starting together); the open is retried
// until busyTimeout has passed.
func pingWriter(ctx context.Context, w *sql.DB, busyTimeout time.Duration) error {
	deadline := time.Now().Add(busyTimeout)
	for wait := time.Millisecond; ; wait = min(2*wait, 50*time.Millisecond) {
		err := w.PingContext(ctx)
		var se *sqlitedrv.Error
		if err == nil || !errors.As(err, &se) || se.Code()&0xff != sqlite3.SQLITE_BUSY || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

// getByID reads the row of table whose id is id, with cols and scan; a
// missing row is storage.ErrNotFound, wrapped with what was read.
func getByID[T any](ctx context.Context, s *Store, table, cols, what, id string, scan func(scanner) (T, error)) (T, error) {
	var zero T
	r, err := s.reader()
	if err != nil {
		return zero, err
	}
	out, err := scan(r.QueryRowContext(ctx, `SELECT `+cols+` FROM `+table+` WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		err = storage.ErrNotFound
	}
	if err != nil {
		return zero, fmt.Errorf("storage/sqlite: get %s %q: %w", what, id, err)
	}
	return out, nil
}
