package main

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/jetstreamproto/jsp/server/config"
	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/server/storage/sqlite"
)

// storeFlags are the `jsp server` flags that tune the store: the
// storage.* keys besides the DSN, and the storage.sqlite.* keys of the
// SQLite backend (docs/decisions.md D41).
type storeFlags struct {
	dedupWindow     time.Duration
	maxConns        int
	busyTimeout     time.Duration
	checkpointBytes int
	walLimitBytes   int
	checkpointIdle  time.Duration
	claimMergeRows  int
}

// sqliteKeyPrefix starts the names of the keys that apply to a sqlite:
// database only.
const sqliteKeyPrefix = "storage.sqlite."

// addStoreFlags registers the flags of storeFlags.
func addStoreFlags(fl *pflag.FlagSet, s *storeFlags) {
	d := config.Default().Storage
	fl.DurationVar(&s.dedupWindow, "dedup-window", d.DedupWindow, "how long a message's (sender, client id) is remembered so that a resent PUBLISH is not stored twice")
	fl.IntVar(&s.maxConns, "db-max-conns", d.MaxConns, "SQLite: read connections (writes use one); PostgreSQL: pool size unless the DSN sets pool_max_conns")
	fl.DurationVar(&s.busyTimeout, "sqlite-busy-timeout", d.SQLiteBusyTimeout, "how long SQLite waits for a lock held by another process")
	fl.IntVar(&s.checkpointBytes, "sqlite-checkpoint-bytes", d.SQLiteCheckpointBytes, "WAL growth in bytes after which a background PASSIVE checkpoint runs")
	fl.IntVar(&s.walLimitBytes, "sqlite-wal-limit-bytes", d.SQLiteWALLimitBytes, "bound of the SQLite WAL file in bytes, at least --sqlite-checkpoint-bytes")
	fl.DurationVar(&s.checkpointIdle, "sqlite-checkpoint-idle", d.SQLiteCheckpointIdle, "how long without a commit makes the checkpointer empty the WAL file")
	fl.IntVar(&s.claimMergeRows, "sqlite-claim-merge-rows", d.SQLiteClaimMergeRows, "rows of the idempotency claim log merged into the de-duplication table at once")
}

// validate checks the values against each other and against the database
// dsn names; origins (config.Loaded.Origins, nil in tests that set the
// fields directly) say where each came from, so that an error names the
// key and its source. Negative values never get here: config.Set refuses
// them from every source.
func (s *storeFlags) validate(dsn string, origins map[string]config.Origin) error {
	// ref names a key with its value and origin:
	// "storage.sqlite.wal_limit_bytes = 1000 (env JSP_...)".
	ref := func(key string, value any) string {
		o := origins[key]
		if o == "" {
			o = "flag --" + keyFlag(key)
		}
		return fmt.Sprintf("%s = %v (%s)", key, value, o)
	}
	type check struct {
		key      string
		value    any
		positive bool
	}
	positive := func(cs ...check) error {
		for _, c := range cs {
			if !c.positive {
				return fmt.Errorf("%s: want a positive value", ref(c.key, c.value))
			}
		}
		return nil
	}
	if err := positive(
		check{"storage.dedup_window", s.dedupWindow, s.dedupWindow > 0},
		check{"storage.max_conns", s.maxConns, s.maxConns > 0},
	); err != nil {
		return err
	}
	if s.maxConns > storage.MaxConnsLimit {
		return fmt.Errorf("%s: want at most %d", ref("storage.max_conns", s.maxConns), storage.MaxConnsLimit)
	}
	scheme, err := storage.Scheme(dsn)
	if err != nil {
		return fmt.Errorf("--db: %w", err)
	}
	if scheme != sqlite.Scheme {
		// A storage.sqlite.* key set for another database would do
		// nothing: say so rather than let it look applied.
		for _, k := range config.Keys() {
			if o := origins[k.Name]; strings.HasPrefix(k.Name, sqliteKeyPrefix) && o != "" && o != "default" {
				return fmt.Errorf("%s (%s) applies to a sqlite: database only, and storage.db is %s", k.Name, o, storage.Redact(dsn))
			}
		}
		return nil
	}
	if err := positive(
		check{"storage.sqlite.busy_timeout", s.busyTimeout, s.busyTimeout > 0},
		check{"storage.sqlite.checkpoint_bytes", s.checkpointBytes, s.checkpointBytes > 0},
		check{"storage.sqlite.wal_limit_bytes", s.walLimitBytes, s.walLimitBytes > 0},
		check{"storage.sqlite.checkpoint_idle", s.checkpointIdle, s.checkpointIdle > 0},
		check{"storage.sqlite.claim_merge_rows", s.claimMergeRows, s.claimMergeRows > 0},
	); err != nil {
		return err
	}
	if s.walLimitBytes < s.checkpointBytes {
		return fmt.Errorf("%s is below %s: the WAL would reach its limit before a checkpoint is due",
			ref("storage.sqlite.wal_limit_bytes", s.walLimitBytes), ref("storage.sqlite.checkpoint_bytes", s.checkpointBytes))
	}
	return nil
}

// keyFlag is the flag of a configuration key.
func keyFlag(key string) string {
	for _, k := range config.Keys() {
		if k.Name == key {
			return k.Flag
		}
	}
	return ""
}

// config is the storage.Config of the database dsn names: the SQLite
// settings only for a sqlite: DSN, as storage.Open refuses them for any
// other.
func (s *storeFlags) config(log *slog.Logger, dsn string) storage.Config {
	c := storage.Config{Logger: log, DedupWindow: s.dedupWindow, MaxConns: s.maxConns}
	if scheme, _ := storage.Scheme(dsn); scheme == sqlite.Scheme {
		c.BusyTimeout = s.busyTimeout
		c.SQLite = storage.SQLiteConfig{
			ClaimMergeRows:  s.claimMergeRows,
			CheckpointBytes: int64(s.checkpointBytes),
			WALLimitBytes:   int64(s.walLimitBytes),
			CheckpointIdle:  s.checkpointIdle,
		}
	}
	return c
}
