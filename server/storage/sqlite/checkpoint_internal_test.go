package sqlite

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/server/storage"
)

// appendBurst appends groups of 32 messages with bodies of size bytes and
// calls after (if set) after each group.
func appendBurst(t *testing.T, s *Store, groups, size int, after func()) {
	t.Helper()
	ctx := context.Background()
	body := make([]byte, size)
	for g := range groups {
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
		if after != nil {
			after()
		}
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestCommitDoesNotCheckpoint writes well past SQLite's auto-checkpoint
// size (1,000 pages) with the checkpointer stopped: no commit may copy the
// WAL into the database file, which therefore keeps its size, and a
// checkpoint afterwards does copy it.
func TestCommitDoesNotCheckpoint(t *testing.T) {
	path := filepath.Join(t.TempDir(), "jsp.db")
	s := openWith(t, path, storage.Config{}, loopOptions{noCheckpointer: true})
	var mode int
	if err := s.w.QueryRow(`PRAGMA wal_autocheckpoint`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != 0 {
		t.Fatalf("writer wal_autocheckpoint = %d, want 0", mode)
	}
	before := fileSize(t, path)
	appendBurst(t, s, 40, 4096, nil) // ~5 MiB: 1,300 pages
	if got := fileSize(t, path); got != before {
		t.Fatalf("database file grew from %d to %d bytes: a commit checkpointed", before, got)
	}
	if wal := fileSize(t, path+"-wal"); wal < 4<<20 {
		t.Fatalf("WAL is %d bytes, want the burst in it", wal)
	}
	if st := s.CheckpointStats(); st.WALBytes < 4<<20 || st.Passive+st.Truncate+st.Forced != 0 {
		t.Fatalf("stats %+v, want the burst counted and no checkpoint", st)
	}
	if !s.checkpoint(s.ckpt.db, "PASSIVE", &s.ckpt.passive) {
		t.Fatal("checkpoint did not finish")
	}
	if got := fileSize(t, path); got <= before {
		t.Fatalf("database file %d bytes after the checkpoint, want it above %d", got, before)
	}
	if st := s.CheckpointStats(); st.WALBytes != 0 || st.Passive != 1 {
		t.Fatalf("stats after the checkpoint %+v", st)
	}
}

// TestCheckpointer checks that the background checkpointer checkpoints a
// WAL that has grown past CheckpointBytes, and empties it once idle.
func TestCheckpointer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "jsp.db")
	s := openWith(t, path, storage.Config{}, loopOptions{opts: Options{
		CheckpointBytes: 256 << 10,
		CheckpointIdle:  50 * time.Millisecond,
	}})
	appendBurst(t, s, 10, 4096, nil) // ~1.3 MiB
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := s.CheckpointStats()
		if st.Passive > 0 && st.Truncate > 0 && fileSize(t, path+"-wal") == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("checkpointer: stats %+v, WAL %d bytes; want PASSIVE and TRUNCATE checkpoints and an empty WAL", st, fileSize(t, path+"-wal"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st := s.CheckpointStats(); st.Forced != 0 {
		t.Fatalf("stats %+v: the loop had to checkpoint", st)
	}
}

// TestWALLimit writes a burst with the checkpointer stopped: the append
// loop must keep the WAL file within WALLimitBytes plus one group.
func TestWALLimit(t *testing.T) {
	const limit, group = 512 << 10, 32 * 4096 * 2 // a group's pages, with room for index pages
	path := filepath.Join(t.TempDir(), "jsp.db")
	s := openWith(t, path, storage.Config{}, loopOptions{noCheckpointer: true, opts: Options{
		CheckpointBytes: 128 << 10,
		WALLimitBytes:   limit,
	}})
	var peak int64
	appendBurst(t, s, 30, 4096, func() { peak = max(peak, fileSize(t, path+"-wal")) }) // ~4 MiB
	if peak > limit+group {
		t.Fatalf("WAL reached %d bytes, limit %d plus a group %d", peak, limit, group)
	}
	if st := s.CheckpointStats(); st.Forced == 0 {
		t.Fatalf("stats %+v: want checkpoints forced by the limit", st)
	}
}
