package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/server/storage/sqlite"
)

// TestAppendMessagesOrder checks that a batch commits in the order given,
// with per-message duplicates and failures, while another writer appends
// to the same channel concurrently.
func TestAppendMessagesOrder(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "jsp.db"), storage.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.AppendMessage(ctx, "c", storage.Message{ClientID: "dup", Sender: "a", Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		for i := range 20 {
			if _, err := st.AppendMessage(ctx, "c", storage.Message{ClientID: fmt.Sprint("other", i), Sender: "b", Body: []byte("y")}); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	var msgs []storage.Message
	for i := range 50 {
		msgs = append(msgs, storage.Message{ClientID: fmt.Sprint("m", i), Sender: "a", Body: []byte(fmt.Sprint(i))})
	}
	msgs[10] = storage.Message{ClientID: "dup", Sender: "a", Body: []byte("x")}
	msgs[20] = storage.Message{ClientID: "bad"} // no sender: invalid
	res, errs := st.AppendMessages(ctx, "c", msgs)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var last storage.Seq
	for i := range msgs {
		switch i {
		case 10:
			if errs[i] != nil || !res[i].Duplicate || res[i].Seq != 1 {
				t.Fatalf("duplicate: res %+v err %v", res[i], errs[i])
			}
			continue
		case 20:
			if errs[i] == nil {
				t.Fatalf("invalid message accepted: %+v", res[i])
			}
			continue
		}
		if errs[i] != nil {
			t.Fatalf("message %d: %v", i, errs[i])
		}
		if res[i].Seq <= last {
			t.Fatalf("message %d: seq %d after %d", i, res[i].Seq, last)
		}
		last = res[i].Seq
	}
	got, err := st.MessagesAfter(ctx, "c", 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1+20+48 {
		t.Fatalf("%d messages stored, want %d", len(got), 69)
	}
}

// TestAppendMessagesCancelled checks that nothing is handed over once the
// context has ended.
func TestAppendMessagesCancelled(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "jsp.db"), storage.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, errs := st.AppendMessages(ctx, "c", []storage.Message{{ClientID: "1", Sender: "a", Body: []byte("x")}, {ClientID: "2", Sender: "a", Body: []byte("x")}})
	for i, err := range errs {
		if err == nil {
			t.Fatalf("message %d appended after cancel", i)
		}
	}
	info, err := st.ChannelInfo(context.Background(), "c")
	if err == nil && info.Last != 0 {
		t.Fatalf("channel has seq %d after a cancelled batch", info.Last)
	}
}
