package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/server/storage/storagetest"
)

func openTest(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(context.Background(), path, storage.Config{Logger: storagetest.Quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConnectionSettings(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "sub", "dir", "jsp.db"))
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		db    string
		query string
		want  string
	}{
		{"writer journal", "w", "PRAGMA journal_mode", "wal"},
		{"reader journal", "r", "PRAGMA journal_mode", "wal"},
		{"writer synchronous FULL", "w", "PRAGMA synchronous", "2"},
		{"writer foreign keys", "w", "PRAGMA foreign_keys", "1"},
		{"reader foreign keys", "r", "PRAGMA foreign_keys", "1"},
		{"writer busy timeout", "w", "PRAGMA busy_timeout", fmt.Sprint(storage.DefaultBusyTimeout.Milliseconds())},
		{"reader query only", "r", "PRAGMA query_only", "1"},
		{"writer writable", "w", "PRAGMA query_only", "0"},
	} {
		db := s.w
		if tc.db == "r" {
			db = s.r
		}
		var got string
		if err := db.QueryRowContext(ctx, tc.query).Scan(&got); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got != tc.want {
			t.Errorf("%s: %s = %s, want %s", tc.name, tc.query, got, tc.want)
		}
	}
	if s.w.Stats().MaxOpenConnections != 1 {
		t.Errorf("writer pool allows %d connections, want 1", s.w.Stats().MaxOpenConnections)
	}
	if got := s.r.Stats().MaxOpenConnections; got != storage.DefaultMaxConns {
		t.Errorf("read pool allows %d connections, want %d", got, storage.DefaultMaxConns)
	}
	// The read pool cannot write.
	if _, err := s.r.ExecContext(ctx, `INSERT INTO kv_revision (id, rev) VALUES (2, 0)`); err == nil {
		t.Error("read pool accepted a write")
	}
}

func TestMemory(t *testing.T) {
	s := openTest(t, MemoryPath)
	if s.r != s.w {
		t.Fatal("in-memory store must read through its writer connection")
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				if _, err := s.AppendMessage(ctx, "c", storage.Message{Sender: "u", ClientID: fmt.Sprint(w, "-", i)}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	msgs, err := s.MessagesAfter(ctx, "c", 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range msgs {
		if m.Seq != storage.Seq(i+1) {
			t.Fatalf("message %d has seq %d", i, m.Seq)
		}
	}
	if len(msgs) != 40 {
		t.Fatalf("read %d messages, want 40", len(msgs))
	}
	// Each in-memory store is private.
	other := openTest(t, MemoryPath)
	info, err := other.ChannelInfo(ctx, "c")
	if err != nil || info.Last != 0 {
		t.Fatalf("second in-memory store sees %+v, %v", info, err)
	}
}

func TestBadPath(t *testing.T) {
	for _, p := range []string{"", "a?b"} {
		if _, err := Open(context.Background(), p, storage.Config{}); err == nil {
			t.Errorf("Open(%q) succeeded", p)
		}
	}
}
