package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/server/storage/storagetest"
)

// openWith opens a store on path with the given loop options.
func openWith(t *testing.T, path string, cfg storage.Config, lo loopOptions) *Store {
	t.Helper()
	ms, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Logger == nil {
		cfg.Logger = storagetest.Quiet
	}
	s, err := open(context.Background(), path, cfg, ms, lo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// count returns the rows of table.
func count(t *testing.T, s *Store, table string) int {
	t.Helper()
	var n int
	if err := s.w.QueryRow(`SELECT count(*) FROM ` + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestDedupFilter(t *testing.T) {
	const window = 100
	k := func(i int) claimKey { return claimKey{"u", fmt.Sprint("id", i)} }
	tests := []struct {
		name    string
		add     map[int]int64 // key -> claim time
		off     bool
		now     int64
		present []int // keys that must not be reported absent
		absent  []int // keys that must be reported absent
	}{
		{"empty", nil, false, 0, nil, []int{1, 2, 3}},
		{"added keys stay", map[int]int64{1: 0, 2: 50}, false, 90, []int{1, 2}, []int{3}},
		{"segment kept while its newest key is in the window", map[int]int64{1: 10, 2: 120}, false, 150, []int{1, 2}, []int{3}},
		{"segment dropped when all its keys left the window", map[int]int64{1: 10}, false, 250, nil, []int{1}},
		{"off", nil, true, 0, []int{1, 2}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newDedupFilter(DefaultDedupFilterBytes, window)
			f.off = tt.off
			for i, at := range tt.add {
				f.add(k(i), at)
			}
			for _, i := range tt.present {
				if f.absent(k(i), tt.now) {
					t.Errorf("key %d reported absent at %d", i, tt.now)
				}
			}
			for _, i := range tt.absent {
				if !f.absent(k(i), tt.now) {
					t.Errorf("key %d not reported absent at %d", i, tt.now)
				}
			}
		})
	}
	t.Run("segments grow and stay few", func(t *testing.T) {
		f := newDedupFilter(DefaultDedupFilterBytes, window)
		const keys = 100_000
		for i := range keys {
			f.add(k(i), 1)
		}
		if len(f.segs) > 3 || f.bytes > keys*dedupBitsPerKey/8*4 {
			t.Fatalf("%d segments, %d bytes for %d keys", len(f.segs), f.bytes, keys)
		}
		fp := 0
		for i := keys; i < keys+10_000; i++ {
			if !f.absent(k(i), 2) {
				fp++
			}
		}
		if fp > 200 {
			t.Fatalf("%d false positives in 10,000 keys", fp)
		}
	})
	t.Run("full filter says nothing for a window", func(t *testing.T) {
		f := newDedupFilter(dedupFirstSegment, window)
		full := dedupFirstSegment * 8 / dedupBitsPerKey
		for i := range full {
			f.add(k(i), 1)
		}
		// A full filter answers, with its false-positive rate (about
		// 0.24 % at capacity: 16 bits per key, 4 probes): most unknown
		// keys are absent. A check of one key failed once in CI.
		absent := 0
		for i := -1100; i < -1000; i++ {
			if f.absent(k(i), 2) {
				absent++
			}
		}
		if absent < 90 {
			t.Fatalf("%d of 100 unknown keys absent before the filter filled, want at least 90", absent)
		}
		f.add(k(-2), 5) // no room: not recorded
		if f.absent(k(-2), 6) || f.absent(k(-3), 104) {
			t.Fatal("a key reported absent within a window of an unrecorded one")
		}
		if !f.absent(k(-3), 106) {
			t.Fatal("filter still blind a window after the unrecorded key")
		}
	})
}

// TestClaimLogMerge appends past the merge size and checks that the log
// is merged into message_dedup and every key stays a duplicate, before
// and after a restart, from the log or from message_dedup.
func TestClaimLogMerge(t *testing.T) {
	const merge, msgs = 16, 70
	path := filepath.Join(t.TempDir(), "jsp.db")
	ctx := context.Background()
	lo := loopOptions{opts: Options{ClaimMergeRows: merge}}
	s := openWith(t, path, storage.Config{}, lo)
	seqs := make([]storage.Seq, msgs)
	for i := range msgs {
		batch := []storage.Message{{Sender: "u", ClientID: fmt.Sprint("k", i), Body: []byte(fmt.Sprint(i))}}
		res, errs := s.AppendMessages(ctx, "c", batch)
		if errs[0] != nil {
			t.Fatal(errs[0])
		}
		seqs[i] = res[0].Seq
	}
	if n := count(t, s, "message_claims"); n > merge {
		t.Fatalf("claim log holds %d rows, merge size %d", n, merge)
	}
	if n := count(t, s, "message_dedup"); n < msgs-merge {
		t.Fatalf("message_dedup holds %d rows, want at least %d merged", n, msgs-merge)
	}
	check := func(s *Store, what string) {
		t.Helper()
		for i := range msgs {
			res, err := s.AppendMessage(ctx, "c", storage.Message{Sender: "u", ClientID: fmt.Sprint("k", i), Body: []byte(fmt.Sprint(i))})
			if err != nil || !res.Duplicate || res.Seq != seqs[i] {
				t.Fatalf("%s: resend of k%d = %+v, %v; want duplicate of %d", what, i, res, err, seqs[i])
			}
			if _, err := s.AppendMessage(ctx, "c", storage.Message{Sender: "u", ClientID: fmt.Sprint("k", i), Body: []byte("other")}); err == nil {
				t.Fatalf("%s: reuse of k%d with other content accepted", what, i)
			}
		}
	}
	check(s, "open")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openWith(t, path, storage.Config{}, lo)
	check(s, "reopened")
	info, err := s.ChannelInfo(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	if info.Last != msgs {
		t.Fatalf("last %d after resends, want %d", info.Last, msgs)
	}
}

// TestClaimLogOtherProcess has a second store on the file merge claims
// the first has not read: the first must notice, turn its filter off and
// still find the keys in message_dedup.
func TestClaimLogOtherProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "jsp.db")
	ctx := context.Background()
	a := openWith(t, path, storage.Config{}, loopOptions{})
	b := openWith(t, path, storage.Config{}, loopOptions{opts: Options{ClaimMergeRows: 4}})
	if _, err := a.AppendMessage(ctx, "c", storage.Message{Sender: "u", ClientID: "first"}); err != nil {
		t.Fatal(err)
	}
	want := map[string]storage.Seq{}
	for i := range 12 {
		id := fmt.Sprint("b", i)
		res, err := b.AppendMessage(ctx, "c", storage.Message{Sender: "u", ClientID: id})
		if err != nil {
			t.Fatal(err)
		}
		want[id] = res.Seq
	}
	if n := count(t, b, "message_claims"); n >= 12 {
		t.Fatalf("claim log holds %d rows: b did not merge", n)
	}
	for id, seq := range want {
		res, err := a.AppendMessage(ctx, "c", storage.Message{Sender: "u", ClientID: id})
		if err != nil || !res.Duplicate || res.Seq != seq {
			t.Fatalf("resend of %s on the other store = %+v, %v; want duplicate of %d", id, res, err, seq)
		}
	}
	if !a.claims.filter.off {
		t.Fatal("filter still on after another process merged unread claims")
	}
}

// TestClaimLogWindow checks that a key in the claim log that has left the
// window is free again, and that the new claim is the one remembered.
func TestClaimLogWindow(t *testing.T) {
	clock := storagetest.NewClock()
	cfg := storage.Config{Now: clock.Now, DedupWindow: time.Minute}
	s := openWith(t, filepath.Join(t.TempDir(), "jsp.db"), cfg, loopOptions{})
	ctx := context.Background()
	m := storage.Message{Sender: "u", ClientID: "k", Body: []byte("x")}
	first, err := s.AppendMessage(ctx, "c", m)
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Minute)
	second, err := s.AppendMessage(ctx, "c", m)
	if err != nil || second.Duplicate || second.Seq == first.Seq {
		t.Fatalf("claim after the window = %+v, %v; want a new message", second, err)
	}
	again, err := s.AppendMessage(ctx, "c", m)
	if err != nil || !again.Duplicate || again.Seq != second.Seq {
		t.Fatalf("resend = %+v, %v; want duplicate of %d", again, err, second.Seq)
	}
	// Purge merges the log first, so the expired claim is counted once
	// merged, and the live one survives.
	st, err := s.Purge(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Dedup != 0 {
		t.Fatalf("purge removed %d entries, want 0 (the key was taken over)", st.Dedup)
	}
	if n := count(t, s, "message_claims"); n != 1 {
		t.Fatalf("claim log holds %d rows after purge, want the newest kept", n)
	}
	again, err = s.AppendMessage(ctx, "c", m)
	if err != nil || !again.Duplicate || again.Seq != second.Seq {
		t.Fatalf("resend after purge = %+v, %v; want duplicate of %d", again, err, second.Seq)
	}
}

func TestOptions(t *testing.T) {
	tests := []struct {
		name string
		in   Options
		ok   bool
	}{
		{"zero", Options{}, true},
		{"limit defaults to at least checkpoint", Options{CheckpointBytes: 1 << 30}, true},
		{"negative merge", Options{ClaimMergeRows: -1}, false},
		{"negative checkpoint", Options{CheckpointBytes: -1}, false},
		{"limit below checkpoint", Options{CheckpointBytes: 2 << 20, WALLimitBytes: 1 << 20}, false},
		{"negative idle", Options{CheckpointIdle: -time.Second}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := tt.in.withDefaults()
			err := o.validate()
			if (err == nil) != tt.ok {
				t.Fatalf("validate(%+v) = %v, want ok %v", o, err, tt.ok)
			}
			if tt.ok && (o.ClaimMergeRows == 0 || o.CheckpointBytes == 0 || o.WALLimitBytes < o.CheckpointBytes || o.CheckpointIdle == 0) {
				t.Fatalf("defaults not filled: %+v", o)
			}
		})
	}
	if d := (Options{}).withDefaults(); d.ClaimMergeRows != DefaultClaimMergeRows || d.CheckpointBytes != DefaultCheckpointBytes ||
		d.WALLimitBytes != DefaultWALLimitBytes || d.CheckpointIdle != DefaultCheckpointIdle {
		t.Fatalf("defaults = %+v", d)
	}
}

// TestClaimLogOtherProcessRetakes has another store take over a key that
// left the window here, and merge it before this store reads the log: the
// stale entry held here must not hide the new claim in message_dedup.
func TestClaimLogOtherProcessRetakes(t *testing.T) {
	clock := storagetest.NewClock()
	cfg := storage.Config{Now: clock.Now, DedupWindow: time.Minute}
	path := filepath.Join(t.TempDir(), "jsp.db")
	ctx := context.Background()
	a := openWith(t, path, cfg, loopOptions{})
	b := openWith(t, path, cfg, loopOptions{opts: Options{ClaimMergeRows: 2}})
	m := storage.Message{Sender: "u", ClientID: "k", Body: []byte("x")}
	if _, err := a.AppendMessage(ctx, "c", m); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Minute)
	retaken, err := b.AppendMessage(ctx, "c", m)
	if err != nil || retaken.Duplicate {
		t.Fatalf("take-over on b = %+v, %v", retaken, err)
	}
	for i := range 4 { // past b's merge size
		if _, err := b.AppendMessage(ctx, "c", storage.Message{Sender: "u", ClientID: fmt.Sprint("more", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if n := count(t, b, "message_claims"); n >= 5 {
		t.Fatalf("claim log holds %d rows: b did not merge", n)
	}
	again, err := a.AppendMessage(ctx, "c", m)
	if err != nil || !again.Duplicate || again.Seq != retaken.Seq {
		t.Fatalf("resend on a = %+v, %v; want duplicate of %d", again, err, retaken.Seq)
	}
}
