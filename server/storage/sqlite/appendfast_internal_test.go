package sqlite

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/server/storage/internal/sqlcommon"
)

// TestAppendGroup runs the same groups through the fast path
// (appendGroup) and the savepoint path and checks that both give the same
// answers and leave the same channel counters: duplicates and conflicts
// take no number, several channels are numbered independently, and a
// channel that does not exist yet sends the group to the savepoint path.
func TestAppendGroup(t *testing.T) {
	type msg struct {
		channel, id, body string
	}
	type want struct {
		seq  storage.Seq
		dup  bool
		fail bool // ErrConflict
	}
	tests := []struct {
		name   string
		group  []msg
		want   []want
		fastOK bool
		last   map[string]int64
	}{
		{
			name:   "in order",
			group:  []msg{{"c", "a1", "x"}, {"c", "a2", "y"}, {"d", "a3", "z"}, {"c", "", "no id"}},
			want:   []want{{seq: 2}, {seq: 3}, {seq: 2}, {seq: 4}},
			fastOK: true,
			last:   map[string]int64{"c": 4, "d": 2},
		},
		{
			name:   "duplicates and conflicts take no number",
			group:  []msg{{"c", "old", "x"}, {"c", "b1", "y"}, {"c", "b1", "y"}, {"c", "b1", "other"}, {"d", "b1", "y"}, {"c", "b2", "z"}},
			want:   []want{{seq: 1, dup: true}, {seq: 2}, {seq: 2, dup: true}, {fail: true}, {fail: true}, {seq: 3}},
			fastOK: true,
			last:   map[string]int64{"c": 3, "d": 1},
		},
		{
			name:   "new channel",
			group:  []msg{{"c", "n1", "x"}, {"fresh", "n2", "y"}},
			want:   []want{{seq: 2}, {seq: 1}},
			fastOK: false,
			last:   map[string]int64{"c": 2, "fresh": 1},
		},
	}
	for _, tt := range tests {
		for _, fast := range []bool{true, false} {
			name := tt.name + "/savepoint"
			if fast {
				name = tt.name + "/fast"
			}
			t.Run(name, func(t *testing.T) {
				s := openTest(t, filepath.Join(t.TempDir(), "jsp.db"))
				ctx := context.Background()
				for _, ch := range []string{"c", "d"} {
					id := "old"
					if ch == "d" {
						id = "oldd"
					}
					if _, err := s.AppendMessage(ctx, ch, storage.Message{Sender: "u", ClientID: id, Body: []byte("x")}); err != nil {
						t.Fatal(err)
					}
				}
				batch := make([]*appendReq, len(tt.group))
				for i, m := range tt.group {
					r := &appendReq{ctx: ctx, channel: m.channel, m: storage.Message{Sender: "u", ClientID: m.id, Body: []byte(m.body)}}
					h, d, err := sqlcommon.Message(s.cfg, r.channel, r.m)
					if err != nil {
						t.Fatal(err)
					}
					r.headers, r.digest = h, d
					batch[i] = r
				}
				resps := make([]appendResp, len(batch))
				tx, err := s.w.BeginTx(ctx, nil)
				if err != nil {
					t.Fatal(err)
				}
				now := s.cfg.Now()
				if fast {
					_, ok := s.appendGroup(ctx, tx, batch, now, resps)
					if ok != tt.fastOK {
						t.Fatalf("fast path ok = %v, want %v", ok, tt.fastOK)
					}
					if !ok {
						_ = tx.Rollback()
						return
					}
				} else {
					for i, r := range batch {
						resps[i].err = s.appendSavepoint(ctx, tx, r, now, &resps[i].res)
					}
				}
				if err := tx.Commit(); err != nil {
					t.Fatal(err)
				}
				for i, w := range tt.want {
					r := resps[i]
					if w.fail {
						if !errors.Is(r.err, storage.ErrConflict) {
							t.Fatalf("message %d: err %v, want a conflict", i, r.err)
						}
						continue
					}
					if r.err != nil || r.res.Seq != w.seq || r.res.Duplicate != w.dup {
						t.Fatalf("message %d: %+v, %v; want seq %d dup %v", i, r.res, r.err, w.seq, w.dup)
					}
				}
				for ch, last := range tt.last {
					var got int64
					if err := s.w.QueryRowContext(ctx, `SELECT last_seq FROM channels WHERE name = ?`, ch).Scan(&got); err != nil {
						t.Fatal(err)
					}
					if got != last {
						t.Fatalf("channel %s: last_seq %d, want %d", ch, got, last)
					}
					var n int64
					if err := s.w.QueryRowContext(ctx, `SELECT count(*) FROM messages m JOIN channels c ON c.id = m.channel_id WHERE c.name = ?`, ch).Scan(&n); err != nil {
						t.Fatal(err)
					}
					if n != last {
						t.Fatalf("channel %s: %d messages, want %d", ch, n, last)
					}
				}
			})
		}
	}
}
