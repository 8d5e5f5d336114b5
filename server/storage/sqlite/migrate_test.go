package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/server/storage/internal/sqlcommon"
	"github.com/jetstreamproto/jsp/server/storage/storagetest"
)

func TestMigrations(t *testing.T) {
	ms, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	newPath := func(t testing.TB) string { return filepath.Join(t.TempDir(), "jsp.db") }
	storagetest.RunMigrations(t, newPath, ms, func(ctx context.Context, path string, ms []sqlcommon.Migration) (storage.Store, error) {
		return open(ctx, path, storage.Config{Logger: storagetest.Quiet}, ms, loopOptions{})
	})
}
