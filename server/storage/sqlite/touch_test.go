package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/server/storage/sqlite"
)

// TestTouchSessions checks that TouchSessions moves LastSeen of the open
// sessions given, over more than one transaction, and skips closed and
// unknown ones.
func TestTouchSessions(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1_700_000_000, 0)
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "jsp.db"), storage.Config{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var ids []string
	for i := range 600 { // over one transaction's batch
		id := fmt.Sprint("s", i)
		if _, err := st.UpsertSession(ctx, storage.Session{ID: id, UserID: "u", Gateway: "gw", Transport: "ws"}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := st.CloseSession(ctx, "s7"); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Minute)
	if err := st.TouchSessions(ctx, append(ids, "unknown")); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"s0", "s511", "s512", "s599", "s7"} {
		got, err := st.GetSession(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		want := now
		if id == "s7" {
			want = now.Add(-time.Minute) // closed: not touched
		}
		if !got.LastSeen.Equal(want) {
			t.Fatalf("%s: last seen %v, want %v", id, got.LastSeen, want)
		}
	}
	if err := st.TouchSessions(ctx, []string{""}); err == nil {
		t.Fatal("empty session id accepted")
	}
}
