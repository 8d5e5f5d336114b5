package sqlite

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/server/storage/internal/sqlcommon"
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

// TestGroupCommit holds the writer connection while appends queue up, then
// checks that the loop commits them in groups no larger than its cap, with
// gapless numbers.
func TestGroupCommit(t *testing.T) {
	const appenders, maxBatch = 10, 3
	var (
		mu        sync.Mutex
		sizes     []int
		submitted atomic.Int32
	)
	ms, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	s, err := open(context.Background(), filepath.Join(t.TempDir(), "jsp.db"), storage.Config{Logger: storagetest.Quiet}, ms, loopOptions{
		maxBatch: maxBatch,
		onBatch: func(n int) {
			mu.Lock()
			sizes = append(sizes, n)
			mu.Unlock()
		},
		onSubmit: func() { submitted.Add(1) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()

	// Holding the single writer connection blocks the loop in BeginTx.
	hold, err := s.w.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	results := make([]storage.AppendResult, appenders)
	errs := make([]error, appenders)
	for i := range appenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = s.AppendMessage(ctx, "c", storage.Message{Sender: "u", ClientID: fmt.Sprint(i)})
		}()
	}
	// Wait until every appender has submitted and the loop has taken the
	// first one; give the rest a moment to block on the hand-over.
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		started := len(sizes)
		mu.Unlock()
		if started == 1 && submitted.Load() == appenders {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("appenders did not queue: %d submitted, %d groups", submitted.Load(), started)
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	hold.Close()
	wg.Wait()

	seen := map[storage.Seq]bool{}
	for i := range appenders {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		seen[results[i].Seq] = true
	}
	for seq := storage.Seq(1); seq <= appenders; seq++ {
		if !seen[seq] {
			t.Fatalf("seq %d missing from %v", seq, results)
		}
	}
	total := 0
	for _, n := range sizes {
		if n > maxBatch {
			t.Fatalf("group of %d above cap %d (groups %v)", n, maxBatch, sizes)
		}
		total += n
	}
	if total != appenders || len(sizes) == appenders {
		t.Fatalf("groups %v: want %d appends in fewer than %d groups", sizes, appenders, appenders)
	}
}

// TestGroupMembersFailAlone checks that a failing or duplicate message in a
// group does not affect its neighbours.
func TestGroupMembersFailAlone(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "jsp.db"))
	ctx := context.Background()
	if _, err := s.AppendMessage(ctx, "c", storage.Message{Sender: "u", ClientID: "dup", Body: []byte("a")}); err != nil {
		t.Fatal(err)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := s.cfg.Now()
	reqs := []*appendReq{
		{ctx: ctx, channel: "c", m: storage.Message{Sender: "u", ClientID: "dup", Body: []byte("a")}},
		{ctx: ctx, channel: "c", m: storage.Message{Sender: "u", ClientID: "dup", Body: []byte("changed")}},
		{ctx: ctx, channel: "c", m: storage.Message{Sender: "u", ClientID: "new"}},
	}
	var res [3]storage.AppendResult
	var errs [3]error
	for i, r := range reqs {
		h, d, err := sqlcommon.Message(s.cfg, r.channel, r.m)
		if err != nil {
			t.Fatal(err)
		}
		r.headers, r.digest = h, d
		errs[i] = s.appendSavepoint(ctx, tx, r, now, &res[i])
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if errs[0] != nil || !res[0].Duplicate || res[0].Seq != 1 {
		t.Fatalf("duplicate: %+v, %v", res[0], errs[0])
	}
	if !errors.Is(errs[1], storage.ErrConflict) {
		t.Fatalf("reused key: %v", errs[1])
	}
	// The rolled-back members returned their numbers: the new message
	// gets 2.
	if errs[2] != nil || res[2].Seq != 2 {
		t.Fatalf("new message: %+v, %v", res[2], errs[2])
	}
}

// TestWritesJoinGroupCommit checks that writes other than appends (here
// session records) join the append loop's group commits, and that one
// failing write rolls back alone.
func TestWritesJoinGroupCommit(t *testing.T) {
	const writers = 8
	var (
		mu        sync.Mutex
		sizes     []int
		submitted atomic.Int32
	)
	ms, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	s, err := open(context.Background(), filepath.Join(t.TempDir(), "jsp.db"), storage.Config{Logger: storagetest.Quiet}, ms, loopOptions{
		maxBatch: 64,
		onBatch: func(n int) {
			mu.Lock()
			sizes = append(sizes, n)
			mu.Unlock()
		},
		onSubmit: func() { submitted.Add(1) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	// Session "taken" belongs to mallory; bob's upsert of it must fail.
	if _, err := s.UpsertSession(ctx, storage.Session{ID: "taken", UserID: "mallory", Gateway: "g", Transport: "tcp"}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	sizes = nil
	mu.Unlock()
	submitted.Store(0)

	hold, err := s.w.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, writers+1)
	for i := range writers + 1 {
		wg.Go(func() {
			switch {
			case i == writers:
				_, errs[i] = s.UpsertSession(ctx, storage.Session{ID: "taken", UserID: "bob", Gateway: "g", Transport: "tcp"})
			case i%2 == 0:
				_, errs[i] = s.UpsertSession(ctx, storage.Session{ID: fmt.Sprint("s", i), UserID: "u", Gateway: "g", Transport: "tcp"})
			default:
				_, errs[i] = s.AppendMessage(ctx, "c", storage.Message{Sender: "u", ClientID: fmt.Sprint(i)})
			}
		})
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		started := len(sizes)
		mu.Unlock()
		if started == 1 && submitted.Load() == writers+1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("writers did not queue: %d submitted, %d groups", submitted.Load(), started)
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	hold.Close()
	wg.Wait()

	for i, err := range errs {
		if i == writers {
			if !errors.Is(err, storage.ErrConflict) {
				t.Errorf("upsert of another user's session: %v, want ErrConflict", err)
			}
			continue
		}
		if err != nil {
			t.Errorf("writer %d: %v", i, err)
		}
	}
	for i := 0; i < writers; i += 2 {
		got, err := s.GetSession(ctx, fmt.Sprint("s", i))
		if err != nil || got.UserID != "u" {
			t.Errorf("session s%d after the group: %+v, %v", i, got, err)
		}
	}
	if got, err := s.GetSession(ctx, "taken"); err != nil || got.UserID != "mallory" {
		t.Errorf("session taken: %+v, %v", got, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(sizes) >= writers+1 {
		t.Errorf("groups %v: want %d writes in fewer groups", sizes, writers+1)
	}
}
