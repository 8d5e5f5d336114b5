package postgres

import (
	"context"
	"testing"

	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/server/storage/internal/sqlcommon"
	"github.com/jetstreamproto/jsp/server/storage/postgres/pgtest"
	"github.com/jetstreamproto/jsp/server/storage/storagetest"
)

func TestMigrations(t *testing.T) {
	ms, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	storagetest.RunMigrations(t, pgtest.DSN, ms, func(ctx context.Context, dsn string, ms []sqlcommon.Migration) (storage.Store, error) {
		return open(ctx, dsn, storage.Config{Logger: storagetest.Quiet}, ms)
	})
}
