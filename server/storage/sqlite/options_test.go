package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/server/storage/sqlite"
	"github.com/jetstreamproto/jsp/server/storage/storagetest"
)

// TestOpenByDSNUsesSQLiteConfig opens a store through storage.Open, as
// `jsp server` does, with storage.Config.SQLite set: a CheckpointBytes far
// below the default makes the checkpointer run a PASSIVE checkpoint after a
// burst that the default (16 MiB) would leave in the WAL, and a short
// CheckpointIdle a TRUNCATE once the burst ends. The control store, opened
// with the defaults, runs neither during the test.
func TestOpenByDSNUsesSQLiteConfig(t *testing.T) {
	ctx := context.Background()
	burst := func(t *testing.T, s *sqlite.Store) {
		t.Helper()
		body := make([]byte, 4096)
		for g := range 8 { // ~1 MiB of message rows
			msgs := make([]storage.Message, 32)
			for i := range msgs {
				msgs[i] = storage.Message{Sender: "u", ClientID: fmt.Sprint(g, "-", i), Body: body}
			}
			_, errs := s.AppendMessages(ctx, "c", msgs)
			for _, err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	open := func(t *testing.T, sc storage.SQLiteConfig) *sqlite.Store {
		t.Helper()
		dsn := sqlite.Scheme + ":" + filepath.Join(t.TempDir(), "jsp.db")
		st, err := storage.Open(ctx, dsn, storage.Config{Logger: storagetest.Quiet, SQLite: sc})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		s, ok := st.(*sqlite.Store)
		if !ok {
			t.Fatalf("storage.Open(%q) returned %T", dsn, st)
		}
		return s
	}

	tuned := open(t, storage.SQLiteConfig{CheckpointBytes: 128 << 10, WALLimitBytes: 64 << 20, CheckpointIdle: 50 * time.Millisecond})
	burst(t, tuned)
	deadline := time.Now().Add(10 * time.Second)
	for st := tuned.CheckpointStats(); st.Passive == 0 || st.Truncate == 0; st = tuned.CheckpointStats() {
		if time.Now().After(deadline) {
			t.Fatalf("tuned store: stats %+v, want PASSIVE and TRUNCATE checkpoints", st)
		}
		time.Sleep(10 * time.Millisecond)
	}

	def := open(t, storage.SQLiteConfig{})
	burst(t, def)
	if st := def.CheckpointStats(); st.Passive+st.Truncate+st.Forced != 0 || st.WALBytes < 1<<20 {
		t.Fatalf("default store: stats %+v, want the burst in the WAL and no checkpoint yet", st)
	}
}

// TestOpenByDSNRefusesBadSQLiteConfig checks that storage.Open hands the
// settings to the backend's validation.
func TestOpenByDSNRefusesBadSQLiteConfig(t *testing.T) {
	dsn := sqlite.Scheme + ":" + filepath.Join(t.TempDir(), "jsp.db")
	_, err := storage.Open(context.Background(), dsn, storage.Config{Logger: storagetest.Quiet,
		SQLite: storage.SQLiteConfig{CheckpointBytes: 2 << 20, WALLimitBytes: 1 << 20}})
	if err == nil {
		t.Fatal("opened with WALLimitBytes below CheckpointBytes")
	}
}
