package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/server/storage/sqlite"
)

// TestAppendRuns checks that several channels' runs appended in one call
// keep each channel's order and numbering, answer every message in its
// place, and fail an invalid message alone.
func TestAppendRuns(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "jsp.db"), storage.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// Channel "b" exists already: its numbers continue from 1.
	if _, err := st.AppendMessage(ctx, "b", storage.Message{ClientID: "pre", Sender: "s", Body: []byte("p")}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		channel string
		n       int
		bad     int // index of an invalid message, or -1
		first   storage.Seq
	}{
		{"a", 3, -1, 1},
		{"b", 200, 7, 2}, // over one hand-over group (128)
		{"c", 1, -1, 1},
		{"a", 2, 0, 4}, // a second run of "a" follows the first
	}
	runs := make([]storage.ChannelRun, len(tests))
	for k, tc := range tests {
		runs[k].Channel = tc.channel
		for i := range tc.n {
			m := storage.Message{ClientID: fmt.Sprint(k, "-", i), Sender: "s", Body: []byte(fmt.Sprint(i))}
			if i == tc.bad {
				m.Sender = "" // invalid: no sender
			}
			runs[k].Messages = append(runs[k].Messages, m)
		}
	}
	res, errs := st.AppendRuns(ctx, runs)
	for k, tc := range tests {
		want := tc.first
		for i := range tc.n {
			if i == tc.bad {
				if errs[k][i] == nil {
					t.Fatalf("run %d message %d: invalid message accepted", k, i)
				}
				continue
			}
			if errs[k][i] != nil {
				t.Fatalf("run %d message %d: %v", k, i, errs[k][i])
			}
			if res[k][i].Seq != want {
				t.Fatalf("run %d (%s) message %d: seq %d, want %d", k, tc.channel, i, res[k][i].Seq, want)
			}
			want++
		}
	}
	for ch, n := range map[string]int{"a": 4, "b": 200, "c": 1} {
		got, err := st.MessagesAfter(ctx, ch, 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != n {
			t.Fatalf("channel %s: %d messages stored, want %d", ch, len(got), n)
		}
	}
}
