package storage_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jetstreamproto/jsp/server/storage"
)

// TestOpenRefusesSQLiteConfigElsewhere checks that SQLite settings given
// for a DSN of another backend are refused, naming the DSN without its
// password, before the backend is called: they would do nothing there.
func TestOpenRefusesSQLiteConfigElsewhere(t *testing.T) {
	called := false
	storage.Register("faketest-sqlitecfg", func(context.Context, string, storage.Config) (storage.Store, error) {
		called = true
		return fakeStore{}, nil
	})
	for _, tc := range []struct {
		name string
		cfg  storage.SQLiteConfig
	}{
		{"checkpoint bytes", storage.SQLiteConfig{CheckpointBytes: 1 << 20}},
		{"WAL limit", storage.SQLiteConfig{WALLimitBytes: 1 << 20}},
		{"claim merge rows", storage.SQLiteConfig{ClaimMergeRows: 10}},
		{"checkpoint idle", storage.SQLiteConfig{CheckpointIdle: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := storage.Open(context.Background(), "faketest-sqlitecfg://u:secret@h/db", storage.Config{SQLite: tc.cfg})
			if !errors.Is(err, storage.ErrInvalid) || !strings.Contains(err.Error(), "Config.SQLite") || strings.Contains(err.Error(), "secret") {
				t.Fatalf("err = %v, want ErrInvalid naming Config.SQLite without the password", err)
			}
			if called {
				t.Fatal("backend called with SQLite settings")
			}
		})
	}
	if _, err := storage.Open(context.Background(), "faketest-sqlitecfg://h/db", storage.Config{}); err != nil || !called {
		t.Fatalf("zero SQLite settings: err %v, called %v", err, called)
	}
}

// TestMaxConnsLimit checks the cap on Config.MaxConns.
func TestMaxConnsLimit(t *testing.T) {
	for _, tc := range []struct {
		n  int
		ok bool
	}{{0, true}, {1, true}, {storage.MaxConnsLimit, true}, {storage.MaxConnsLimit + 1, false}, {-1, false}} {
		err := storage.Config{MaxConns: tc.n}.WithDefaults().Validate()
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, storage.ErrInvalid)) {
			t.Errorf("MaxConns %d: err = %v, want ok %v", tc.n, err, tc.ok)
		}
	}
}
