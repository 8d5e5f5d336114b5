package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/jetstreamproto/jsp/server/config"
	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/server/storage/sqlite"
)

// TestStoreDefaultsMatchBackends checks that the storage keys' defaults
// are the storage package's and the SQLite backend's: server/config
// writes the SQLite ones down as numbers, as it may not import the
// driver.
func TestStoreDefaultsMatchBackends(t *testing.T) {
	d := config.Default().Storage
	for _, tc := range []struct {
		key       string
		got, want any
	}{
		{"storage.dedup_window", d.DedupWindow, storage.DefaultDedupWindow},
		{"storage.max_conns", d.MaxConns, storage.DefaultMaxConns},
		{"storage.sqlite.busy_timeout", d.SQLiteBusyTimeout, storage.DefaultBusyTimeout},
		{"storage.sqlite.checkpoint_bytes", int64(d.SQLiteCheckpointBytes), sqlite.DefaultCheckpointBytes},
		{"storage.sqlite.wal_limit_bytes", int64(d.SQLiteWALLimitBytes), sqlite.DefaultWALLimitBytes},
		{"storage.sqlite.checkpoint_idle", d.SQLiteCheckpointIdle, sqlite.DefaultCheckpointIdle},
		{"storage.sqlite.claim_merge_rows", d.SQLiteClaimMergeRows, sqlite.DefaultClaimMergeRows},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: config default %v, backend default %v", tc.key, tc.got, tc.want)
		}
	}
}

// TestStoreConfigSources reads the storage keys from defaults, a file,
// the environment and flags, in that order of precedence, into the
// storage.Config that `jsp server` opens its store with, and checks that
// each bad value is refused naming its key and where it came from.
func TestStoreConfigSources(t *testing.T) {
	const sqliteDSN = "sqlite:/var/lib/jsp/jsp.db"
	defSQLite := storage.SQLiteConfig{
		ClaimMergeRows:  sqlite.DefaultClaimMergeRows,
		CheckpointBytes: sqlite.DefaultCheckpointBytes,
		WALLimitBytes:   sqlite.DefaultWALLimitBytes,
		CheckpointIdle:  sqlite.DefaultCheckpointIdle,
	}
	def := storage.Config{DedupWindow: storage.DefaultDedupWindow, MaxConns: storage.DefaultMaxConns, BusyTimeout: storage.DefaultBusyTimeout, SQLite: defSQLite}
	with := func(f func(*storage.Config)) storage.Config {
		c := def
		f(&c)
		return c
	}
	for _, tc := range []struct {
		name    string
		file    string   // jsp.toml content; "" for none
		env     []string // NAME=value
		args    []string
		dsn     string // "" for sqliteDSN, as when --db is not given
		want    storage.Config
		origins map[string]string // key: origin
		err     string            // non-empty: the error must contain it
	}{
		{name: "defaults", want: def, origins: map[string]string{"storage.sqlite.checkpoint_bytes": "default", "storage.dedup_window": "default"}},
		{
			name: "file table",
			file: "[storage]\ndedup_window = \"1h\"\n\n[storage.sqlite]\ncheckpoint_bytes = 1_048_576\nwal_limit_bytes = 4194304\ncheckpoint_idle = \"500ms\"\nclaim_merge_rows = 100\nbusy_timeout = \"1s\"\n",
			want: storage.Config{DedupWindow: time.Hour, MaxConns: storage.DefaultMaxConns, BusyTimeout: time.Second,
				SQLite: storage.SQLiteConfig{ClaimMergeRows: 100, CheckpointBytes: 1 << 20, WALLimitBytes: 4 << 20, CheckpointIdle: 500 * time.Millisecond}},
			origins: map[string]string{"storage.dedup_window": "file:2", "storage.sqlite.checkpoint_bytes": "file:5", "storage.sqlite.busy_timeout": "file:9"},
		},
		{
			name:    "file dotted key",
			file:    "[storage]\nsqlite.checkpoint_idle = \"250ms\"\n",
			want:    with(func(c *storage.Config) { c.SQLite.CheckpointIdle = 250 * time.Millisecond }),
			origins: map[string]string{"storage.sqlite.checkpoint_idle": "file:2"},
		},
		{
			name:    "env over file",
			file:    "[storage.sqlite]\ncheckpoint_bytes = 1048576\n",
			env:     []string{"JSP_STORAGE_SQLITE_CHECKPOINT_BYTES=2097152", "JSP_STORAGE_MAX_CONNS=8"},
			want:    with(func(c *storage.Config) { c.SQLite.CheckpointBytes = 2 << 20; c.MaxConns = 8 }),
			origins: map[string]string{"storage.sqlite.checkpoint_bytes": "env JSP_STORAGE_SQLITE_CHECKPOINT_BYTES", "storage.max_conns": "env JSP_STORAGE_MAX_CONNS"},
		},
		{
			name: "flag over env and file",
			file: "[storage.sqlite]\ncheckpoint_bytes = 1048576\nwal_limit_bytes = 8388608\n",
			env:  []string{"JSP_STORAGE_SQLITE_CHECKPOINT_BYTES=2097152"},
			args: []string{"--sqlite-checkpoint-bytes", "3145728", "--dedup-window", "2h", "--sqlite-checkpoint-idle", "5s"},
			want: with(func(c *storage.Config) {
				c.SQLite = storage.SQLiteConfig{ClaimMergeRows: sqlite.DefaultClaimMergeRows, CheckpointBytes: 3 << 20, WALLimitBytes: 8 << 20, CheckpointIdle: 5 * time.Second}
				c.DedupWindow = 2 * time.Hour
			}),
			origins: map[string]string{"storage.sqlite.checkpoint_bytes": "flag --sqlite-checkpoint-bytes", "storage.sqlite.wal_limit_bytes": "file:3"},
		},
		{
			name: "postgres takes the generic keys only",
			args: []string{"--db-max-conns", "16"},
			dsn:  "postgres://jsp@db/jsp",
			want: storage.Config{DedupWindow: storage.DefaultDedupWindow, MaxConns: 16},
		},
		{
			name: "sqlite key with postgres",
			file: "[storage.sqlite]\nwal_limit_bytes = 134217728\n",
			dsn:  "postgres://jsp:secret@db/jsp",
			err:  "storage.sqlite.wal_limit_bytes (file:2) applies to a sqlite: database only, and storage.db is postgres://jsp:xxxxx@db/jsp",
		},
		{name: "sqlite flag with postgres", args: []string{"--sqlite-busy-timeout", "1s"}, dsn: "postgres://db/jsp", err: "storage.sqlite.busy_timeout (flag --sqlite-busy-timeout) applies to a sqlite: database only"},
		{name: "negative in file", file: "[storage.sqlite]\n\ncheckpoint_bytes = -1\n", err: "jsp.toml:3: storage.sqlite.checkpoint_bytes: want a non-negative integer"},
		{name: "string for bytes", file: "[storage.sqlite]\nwal_limit_bytes = \"64MiB\"\n", err: "jsp.toml:2: storage.sqlite.wal_limit_bytes: want a number"},
		{name: "unknown key in table", file: "[storage.sqlite]\ncheckpoint = 1\n", err: "jsp.toml:2: unknown key storage.sqlite.checkpoint"},
		{name: "unknown table", file: "[storage.postgres]\nx = 1\n", err: "jsp.toml:1: unknown section [storage.postgres]"},
		{name: "set twice, table and dotted", file: "[storage]\nsqlite.claim_merge_rows = 5\n[storage.sqlite]\nclaim_merge_rows = 6\n", err: "jsp.toml:4: storage.sqlite.claim_merge_rows: set twice (first on line 2)"},
		{name: "negative env", env: []string{"JSP_STORAGE_SQLITE_CHECKPOINT_IDLE=-1s"}, err: "JSP_STORAGE_SQLITE_CHECKPOINT_IDLE: storage.sqlite.checkpoint_idle: negative duration"},
		{name: "negative flag", args: []string{"--sqlite-wal-limit-bytes=-5"}, err: "--sqlite-wal-limit-bytes: storage.sqlite.wal_limit_bytes: want a non-negative integer"},
		{name: "zero env", env: []string{"JSP_STORAGE_SQLITE_CLAIM_MERGE_ROWS=0"}, err: "storage.sqlite.claim_merge_rows = 0 (env JSP_STORAGE_SQLITE_CLAIM_MERGE_ROWS): want a positive value"},
		{name: "zero file", file: "[storage]\ndedup_window = \"0s\"\n", err: "storage.dedup_window = 0s (file:2): want a positive value"},
		{name: "zero flag", args: []string{"--db-max-conns", "0"}, err: "storage.max_conns = 0 (flag --db-max-conns): want a positive value"},
		{name: "too many conns", args: []string{"--db-max-conns", "5000"}, err: "storage.max_conns = 5000 (flag --db-max-conns): want at most 4096"},
		{
			name: "WAL limit below the default checkpoint",
			args: []string{"--sqlite-wal-limit-bytes", "1048576"},
			err:  "storage.sqlite.wal_limit_bytes = 1048576 (flag --sqlite-wal-limit-bytes) is below storage.sqlite.checkpoint_bytes = 16777216 (default)",
		},
		{
			name: "WAL limit below checkpoint from the environment",
			file: "[storage.sqlite]\nwal_limit_bytes = 8388608\n",
			env:  []string{"JSP_STORAGE_SQLITE_CHECKPOINT_BYTES=9000000"},
			err:  "storage.sqlite.wal_limit_bytes = 8388608 (file:2) is below storage.sqlite.checkpoint_bytes = 9000000 (env JSP_STORAGE_SQLITE_CHECKPOINT_BYTES)",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := &cobra.Command{Use: "server"}
			var ops opsFlags
			var sf storeFlags
			var db string
			addOpsFlags(cmd, &ops)
			addStoreFlags(cmd.Flags(), &sf)
			cmd.Flags().StringVar(&db, "db", "", "database DSN")
			args := tc.args
			if tc.dsn != "" {
				args = append(args, "--db", tc.dsn)
			}
			if tc.file != "" {
				path := filepath.Join(t.TempDir(), "jsp.toml")
				if err := os.WriteFile(path, []byte(tc.file), 0o600); err != nil {
					t.Fatal(err)
				}
				args = append(args, "--config", path)
			}
			err := cmd.ParseFlags(args)
			var l *config.Loaded
			if err == nil {
				l, err = applyConfig(cmd, tc.env)
			}
			dsn := db
			if dsn == "" {
				dsn = sqliteDSN
			}
			if err == nil {
				err = sf.validate(dsn, l.Origins)
			}
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			// storage.Config holds a func, so its settings are compared.
			type settings struct {
				dedup, busy time.Duration
				conns       int
				sqlite      storage.SQLiteConfig
			}
			view := func(c storage.Config) settings { return settings{c.DedupWindow, c.BusyTimeout, c.MaxConns, c.SQLite} }
			if got := view(sf.config(nil, dsn)); got != view(tc.want) {
				t.Errorf("storage.Config settings = %+v,\nwant %+v", got, view(tc.want))
			}
			for key, want := range tc.origins {
				if l.Origins[key] != want {
					t.Errorf("origin of %s = %q, want %q", key, l.Origins[key], want)
				}
			}
		})
	}
}

// TestServerStorageKeys runs jsp server itself: --print-config shows the
// storage keys with their origins under their tables, and a bad value
// stops the server before it opens anything, naming the key.
func TestServerStorageKeys(t *testing.T) {
	t.Setenv("JSP_STORAGE_SQLITE_WAL_LIMIT_BYTES", "33554432")
	cmd := newServerCmd()
	var b strings.Builder
	cmd.SetOut(&b)
	cmd.SetArgs([]string{"--print-config", "--sqlite-checkpoint-bytes", "8388608"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"[storage]\n",
		`dedup_window = "24h0m0s"  # default`,
		"max_conns = 4  # default",
		"\n[storage.sqlite]\n",
		"checkpoint_bytes = 8388608  # flag --sqlite-checkpoint-bytes",
		"wal_limit_bytes = 33554432  # env JSP_STORAGE_SQLITE_WAL_LIMIT_BYTES",
		`checkpoint_idle = "2s"  # default`,
		"claim_merge_rows = 8192  # default",
		`busy_timeout = "5s"  # default`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("print-config lacks %q:\n%s", want, out)
		}
	}
	if i, j := strings.Index(out, "[storage.sqlite]"), strings.Index(out, "[gateway]"); i < 0 || j < i || strings.Count(out, "[storage]") != 1 {
		t.Errorf("tables out of order:\n%s", out)
	}
	back := config.NewLoaded()
	if err := back.Parse("printed", []byte(out)); err != nil || back.Storage.SQLiteCheckpointBytes != 8<<20 {
		t.Fatalf("printed config reads back: %v, checkpoint_bytes %d", err, back.Storage.SQLiteCheckpointBytes)
	}

	cmd = newServerCmd()
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	cmd.SetArgs([]string{"--data-dir", t.TempDir(), "--quic", "off", "--tcp", "off", "--ws", "off", "--log-level", "error", "--sqlite-checkpoint-bytes", "67108864"})
	err := cmd.Execute()
	want := "storage.sqlite.wal_limit_bytes = 33554432 (env JSP_STORAGE_SQLITE_WAL_LIMIT_BYTES) is below storage.sqlite.checkpoint_bytes = 67108864 (flag --sqlite-checkpoint-bytes)"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v, want %q", err, want)
	}
}
