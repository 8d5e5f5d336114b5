package storagetest

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/server/storage/internal/sqlcommon"
)

// OpenWith opens the database at dsn applying the given migrations instead
// of the backend's full list: the backend's unexported open, exposed by its
// internal test.
type OpenWith func(ctx context.Context, dsn string, ms []sqlcommon.Migration) (storage.Store, error)

// RunMigrations tests a backend's migration runner with its real
// migrations: idempotent reopen, upgrade from the previous version with
// data kept, refusal of a newer or edited schema, atomic upgrades and
// concurrent first opens.
func RunMigrations(t *testing.T, newDSN NewDSN, all []sqlcommon.Migration, openWith OpenWith) {
	n := len(all)
	if n < 2 {
		t.Fatalf("need at least two migrations to test an upgrade, have %d", n)
	}
	openT := func(t *testing.T, dsn string, ms []sqlcommon.Migration) storage.Store {
		t.Helper()
		s, err := openWith(ctx, dsn, ms)
		must(t, err)
		t.Cleanup(func() { s.Close() })
		return s
	}
	version := func(t *testing.T, s storage.Store, want int) {
		t.Helper()
		v, err := s.SchemaVersion(ctx)
		must(t, err)
		equal(t, "schema version", v, want)
	}

	t.Run("OpenTwice", func(t *testing.T) {
		dsn := newDSN(t)
		s := openT(t, dsn, all)
		version(t, s, n)
		must(t, s.Close())
		version(t, openT(t, dsn, all), n)
	})
	t.Run("UpgradeFromPrevious", func(t *testing.T) {
		dsn := newDSN(t)
		old := openT(t, dsn, all[:n-1])
		version(t, old, n-1)
		// Sessions and messages exist since before the last migration.
		_, err := old.UpsertSession(ctx, sess("s1", "alice", "gw1"))
		must(t, err)
		_, err = old.AppendMessage(ctx, "c", msg("alice", "k1", "m1"))
		must(t, err)
		must(t, old.Close())

		s := openT(t, dsn, all)
		version(t, s, n)
		got, err := s.MessagesAfter(ctx, "c", 0, 10)
		must(t, err)
		equal(t, "messages kept", seqs(t, got), "1")
		dup, err := s.AppendMessage(ctx, "c", msg("alice", "k1", "m1"))
		must(t, err)
		equal(t, "dedup kept", dup.Duplicate, true)
		_, err = s.GetSession(ctx, "s1")
		must(t, err)
		_, err = s.KVPut(ctx, "n", "k", []byte("v"), 0)
		must(t, err)
	})
	t.Run("RefuseNewer", func(t *testing.T) {
		dsn := newDSN(t)
		must(t, openT(t, dsn, all).Close())
		_, err := openWith(ctx, dsn, all[:n-1])
		mustIs(t, err, storage.ErrSchemaTooNew)
	})
	t.Run("RefuseEdited", func(t *testing.T) {
		dsn := newDSN(t)
		must(t, openT(t, dsn, all).Close())
		edited := slices.Clone(all)
		edited[0].SQL += "\n-- edited\n"
		edited[0].Checksum = "0000"
		_, err := openWith(ctx, dsn, edited)
		mustIs(t, err, storage.ErrSchemaMismatch)
	})
	t.Run("AtomicUpgrade", func(t *testing.T) {
		dsn := newDSN(t)
		bad := append(slices.Clone(all), sqlcommon.Migration{
			Version: n + 1, Name: "broken.sql", Checksum: "1111",
			SQL: "CREATE TABLE broken_marker (a INTEGER);\nTHIS IS NOT SQL;",
		})
		if _, err := openWith(ctx, dsn, bad); err == nil {
			t.Fatal("open with a broken migration succeeded")
		}
		// Nothing of the failed run was kept: had the known migrations
		// been committed, opening at the previous version would fail as
		// too new.
		version(t, openT(t, dsn, all[:n-1]), n-1)
	})
	t.Run("ConcurrentOpen", func(t *testing.T) {
		dsn := newDSN(t)
		const openers = 4
		var wg sync.WaitGroup
		errs := make([]error, openers)
		for i := range openers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := openWith(ctx, dsn, all)
				if err == nil {
					err = s.Close()
				}
				errs[i] = err
			}()
		}
		wg.Wait()
		for _, err := range errs {
			must(t, err)
		}
		version(t, openT(t, dsn, all), n)
	})
}
