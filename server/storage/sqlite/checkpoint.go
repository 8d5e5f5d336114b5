package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"sync/atomic"
	"time"

	sqlitedrv "modernc.org/sqlite"
)

// Checkpoints off the commit path (D41). SQLite's default auto-checkpoint
// runs inside the commit that pushes the WAL past 1,000 pages: that commit
// copies every page of the WAL into the database file and syncs it before
// its appenders are answered, and in the 1x1 fan-out profile the copy was
// a tenth of the server's CPU time on the append loop's goroutine. The
// writer now runs with wal_autocheckpoint off, and a goroutine of the
// store, the checkpointer, checkpoints on a connection of its own:
//
//   - PASSIVE when the WAL has grown by Options.CheckpointBytes since the
//     last complete checkpoint: it copies what no reader still needs and
//     never waits for anyone, so appends go on during it;
//   - TRUNCATE when no commit came for Options.CheckpointIdle: an idle
//     database is left with an empty WAL file.
//
// The growth is counted from the writer connection's own count of pages
// written to the WAL (SQLITE_DBSTATUS_CACHE_WRITE), read after each
// commit. If the WAL still reaches Options.WALLimitBytes (a checkpointer
// that cannot keep up, or readers that hold old snapshots so that PASSIVE
// cannot finish), the append loop itself runs a RESTART checkpoint before
// its next group, which waits for those readers (up to the busy timeout)
// and makes the next commit start the WAL from its beginning; the writer's
// journal_size_limit then cuts the file back to the limit. So the WAL file
// stays within the limit plus one group's pages.

// Checkpoint defaults.
const (
	// DefaultCheckpointBytes is the WAL growth after which the
	// checkpointer runs a PASSIVE checkpoint: 16 MiB, 4,096 pages, four
	// times SQLite's auto-checkpoint, so that a page written by many
	// groups (a channel's counter, the newest leaf of each index) is
	// copied once for all of them.
	DefaultCheckpointBytes int64 = 16 << 20
	// DefaultWALLimitBytes bounds the WAL (see above).
	DefaultWALLimitBytes int64 = 64 << 20
	// DefaultCheckpointIdle is how long without a commit makes the
	// checkpointer empty the WAL.
	DefaultCheckpointIdle = 2 * time.Second
	// checkpointBusyTimeout bounds how long the checkpointer's TRUNCATE
	// waits for readers; the writer waits behind it meanwhile, so it is
	// short.
	checkpointBusyTimeout = 100 * time.Millisecond
)

// checkpointer is the store's background checkpoint goroutine and the
// append loop's account of the WAL's growth.
type checkpointer struct {
	db   *sql.DB       // its own connection
	kick chan struct{} // a commit happened; buffered 1, never blocks the loop
	stop chan struct{}
	done chan struct{}

	pageSize int64
	// walBytes is the bytes written to the WAL since the last complete
	// checkpoint: added by the append loop after each commit, subtracted
	// by a checkpoint for what it found there when it started.
	walBytes atomic.Int64

	passive, truncate, forced atomic.Int64 // checkpoints run, by kind
}

// CheckpointStats counts the checkpoints a store has run.
type CheckpointStats struct {
	// Passive and Truncate are the checkpointer's; Forced are the append
	// loop's, run when the WAL reached Options.WALLimitBytes.
	Passive, Truncate, Forced int64
	// WALBytes is the WAL's growth since the last complete checkpoint,
	// as counted from the writer's pages.
	WALBytes int64
}

// CheckpointStats reports the store's checkpoints; all zero for an
// in-memory database, which has no WAL.
func (s *Store) CheckpointStats() CheckpointStats {
	c := s.ckpt
	if c == nil {
		return CheckpointStats{}
	}
	return CheckpointStats{Passive: c.passive.Load(), Truncate: c.truncate.Load(), Forced: c.forced.Load(), WALBytes: c.walBytes.Load()}
}

// startCheckpointer opens the checkpointer's connection and starts it.
func (s *Store) startCheckpointer(ctx context.Context) error {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", checkpointBusyTimeout.Milliseconds()))
	db, err := sql.Open("sqlite", s.path+"?"+q.Encode())
	if err != nil {
		return fmt.Errorf("storage/sqlite: open checkpointer %s: %w", s.path, err)
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxIdleTime(0)
	var pageSize int64
	if err := s.w.QueryRowContext(ctx, `PRAGMA page_size`).Scan(&pageSize); err != nil {
		db.Close()
		return fmt.Errorf("storage/sqlite: read page size of %s: %w", s.path, err)
	}
	c := &checkpointer{db: db, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}), pageSize: pageSize}
	s.ckpt = c
	if s.loop.noCheckpointer {
		close(c.done)
		return nil
	}
	go s.runCheckpointer()
	return nil
}

// stopCheckpointer ends the checkpointer and closes its connection; the
// append loop has stopped, so nothing kicks it any more.
func (s *Store) stopCheckpointer() error {
	c := s.ckpt
	if c == nil {
		return nil
	}
	close(c.stop)
	<-c.done
	return c.db.Close()
}

// runCheckpointer is the checkpointer: started by open, stopped by Close.
func (s *Store) runCheckpointer() {
	c := s.ckpt
	defer close(c.done)
	idle := time.NewTimer(s.opts.CheckpointIdle)
	defer idle.Stop()
	dirty := false // commits since the last TRUNCATE
	for {
		select {
		case <-c.stop:
			return
		case <-c.kick:
			dirty = true
			idle.Reset(s.opts.CheckpointIdle)
			if c.walBytes.Load() >= s.opts.CheckpointBytes {
				s.checkpoint(c.db, "PASSIVE", &c.passive)
			}
		case <-idle.C:
			if dirty && s.checkpoint(c.db, "TRUNCATE", &c.truncate) {
				dirty = false
			}
		}
	}
}

// checkpoint runs one checkpoint of mode on db and reports whether it
// copied the whole WAL; it then takes what it found off walBytes.
func (s *Store) checkpoint(db *sql.DB, mode string, count *atomic.Int64) bool {
	c := s.ckpt
	before := c.walBytes.Load()
	var busy, log, done int64
	err := db.QueryRowContext(context.Background(), `PRAGMA wal_checkpoint(`+mode+`)`).Scan(&busy, &log, &done)
	if err != nil {
		s.cfg.Logger.Warn("storage: checkpoint", "backend", Scheme, "path", s.path, "mode", mode, "err", err)
		return false
	}
	count.Add(1)
	if busy != 0 || log != done {
		return false
	}
	// The checkpointer and a forced checkpoint on the loop may both
	// finish with the same growth counted: never go below zero.
	for v := c.walBytes.Add(-before); v < 0; v = c.walBytes.Load() {
		if c.walBytes.CompareAndSwap(v, 0) {
			break
		}
	}
	return true
}

// noteCommit adds the pages the writer's last commit wrote to the WAL to
// walBytes, wakes the checkpointer, and checkpoints on the loop when the
// WAL has reached its limit. It runs on the append loop after each commit.
func (s *Store) noteCommit(ctx context.Context) {
	c := s.ckpt
	if c == nil {
		return
	}
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return
	}
	var pages int
	err = conn.Raw(func(dc any) error {
		st, ok := dc.(sqlitedrv.DBStatus)
		if !ok {
			return fmt.Errorf("driver connection %T has no status counters", dc)
		}
		var err error
		pages, _, err = st.Status(sqlitedrv.DBStatusCacheWrite, true)
		return err
	})
	conn.Close()
	if err != nil {
		s.cfg.Logger.Warn("storage: read WAL page count", "backend", Scheme, "path", s.path, "err", err)
		return
	}
	if c.walBytes.Add(int64(pages)*c.pageSize) >= s.opts.WALLimitBytes {
		s.checkpoint(s.w, "RESTART", &c.forced)
	}
	select {
	case c.kick <- struct{}{}:
	default:
	}
}
