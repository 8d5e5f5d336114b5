package all_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"

	"github.com/jetstreamproto/jsp/server/storage"
	_ "github.com/jetstreamproto/jsp/server/storage/all"
)

func TestBackendsRegistered(t *testing.T) {
	got := storage.Backends()
	for _, want := range []string{"postgres", "postgresql", "sqlite"} {
		if !slices.Contains(got, want) {
			t.Errorf("backend %q not registered (have %v)", want, got)
		}
	}
}

func TestOpenPicksBackend(t *testing.T) {
	ctx := context.Background()
	for _, dsn := range []string{"sqlite::memory:", "sqlite:" + filepath.Join(t.TempDir(), "x.db"), "SQLite::memory:"} {
		s, err := storage.Open(ctx, dsn, storage.Config{})
		if err != nil {
			t.Fatalf("open %s: %v", dsn, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// A malformed postgres DSN fails in the postgres backend's parser,
	// before any connection attempt.
	_, err := storage.Open(ctx, "postgres://%zz", storage.Config{})
	if !errors.Is(err, storage.ErrInvalid) {
		t.Fatalf("open malformed postgres DSN: %v, want ErrInvalid", err)
	}
}
