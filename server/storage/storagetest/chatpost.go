package storagetest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jetstreamproto/jsp/server/storage"
)

func init() {
	chatTests = append(chatTests, test{"PostChatMessage", testPostChatMessage})
}

// testPostChatMessage checks that a post commits the log message and the
// chat row together or not at all, keeps AppendMessage's idempotency, and
// moves the author's read marker and the mentions like PutChatMessage.
func testPostChatMessage(t *testing.T, e *env) {
	s := e.open()
	chatConv(s, t, "g", "group", "alice", "bob")
	const ch = "chat.g"
	post := func(clientID, id, text string, mentions ...string) (storage.AppendResult, error) {
		return s.PostChatMessage(ctx, ch,
			storage.Message{Sender: "alice", ClientID: clientID, Body: []byte("event " + id + " " + text)},
			storage.ChatMessage{Conversation: "g", ID: id, Seq: 999, Author: "alice", Text: text, Mentions: mentions})
	}
	res, err := post("k1", "m1", "hello @bob", "bob")
	must(t, err)
	equal(t, "first seq", res.Seq, storage.Seq(1))
	equal(t, "first duplicate", res.Duplicate, false)
	m, err := s.GetChatMessage(ctx, "g", "m1")
	must(t, err)
	// The row takes the number the log assigned, not m.Seq.
	equal(t, "row seq", m.Seq, storage.Seq(1))
	equal(t, "row text", m.Text, "hello @bob")
	alice, err := s.GetMember(ctx, "g", "alice")
	must(t, err)
	equal(t, "author's read marker", alice.ReadSeq, storage.Seq(1))
	sum, err := s.ListConversations(ctx, storage.ConversationQuery{Member: "bob", Limit: 10})
	must(t, err)
	if len(sum) != 1 || sum[0].Unread != 1 || sum[0].Mentions != 1 {
		t.Fatalf("bob's summary %+v, want 1 unread, 1 mention", sum)
	}

	// A resend: the first attempt's number, nothing stored twice.
	res, err = post("k1", "m1", "hello @bob", "bob")
	must(t, err)
	equal(t, "resend seq", res.Seq, storage.Seq(1))
	equal(t, "resend duplicate", res.Duplicate, true)
	// The client id with another message is a conflict.
	_, err = post("k1", "m1", "something else")
	mustIs(t, err, storage.ErrConflict)

	// The chat row fails (its id exists): the log message is rolled back
	// with it and its number is not used.
	_, err = post("k2", "m1", "same id, new client id")
	mustIs(t, err, storage.ErrConflict)
	// The chat row is invalid: nothing is appended.
	_, err = post("k3", "big", strings.Repeat("x", storage.MaxChatTextLen+1))
	mustIs(t, err, storage.ErrTooLarge)
	_, err = post("k4", "", "no id")
	mustIs(t, err, storage.ErrInvalid)
	msgs, err := s.MessagesAfter(ctx, ch, 0, 10)
	must(t, err)
	equal(t, "log after failed posts", len(msgs), 1)

	res, err = post("k5", "m2", "second")
	must(t, err)
	equal(t, "next seq has no gap", res.Seq, storage.Seq(2))
	rows, err := s.ChatMessagesAfter(ctx, "g", 0, 10)
	must(t, err)
	equal(t, "rows", msgIDs(rows), "m1,m2")
	msgs, err = s.MessagesAfter(ctx, ch, 0, 10)
	must(t, err)
	if len(msgs) != 2 || string(msgs[1].Body) != "event m2 second" || msgs[1].Seq != 2 {
		t.Fatalf("log %+v", msgs)
	}
	// Posts without a client id are not de-duplicated.
	res, err = post("", "m3", "third")
	must(t, err)
	equal(t, "no client id", res.Seq, storage.Seq(3))
}

// BenchPost compares the two ways to store a chat post, one after another
// in one conversation as the chat service's per-conversation lane does:
// TwoCommits appends the log event and then writes the chat row in a
// second transaction (the old path); OneTransaction is PostChatMessage.
func BenchPost(b *testing.B, newDSN NewDSN) {
	body := make([]byte, 300)
	for _, mode := range []string{"TwoCommits", "OneTransaction"} {
		b.Run(mode, func(b *testing.B) {
			s, err := storage.Open(ctx, newDSN(b), storage.Config{Logger: Quiet})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			if _, err := s.CreateConversation(ctx, storage.Conversation{ID: "g", Kind: "group", Creator: "alice"},
				[]storage.ChatMember{{User: "alice", Role: "owner"}, {User: "bob", Role: "member"}}); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := range b.N {
				id := fmt.Sprintf("m%d", i)
				msg := storage.Message{Sender: "alice", ClientID: id, Body: body}
				row := storage.ChatMessage{Conversation: "g", ID: id, Author: "alice", Text: "hello @bob", Mentions: []string{"bob"}}
				if mode == "TwoCommits" {
					res, err := s.AppendMessage(ctx, "chat.g", msg)
					if err != nil {
						b.Fatal(err)
					}
					row.Seq = res.Seq
					err = s.PutChatMessage(ctx, row)
					if err != nil {
						b.Fatal(err)
					}
					continue
				}
				if _, err := s.PostChatMessage(ctx, "chat.g", msg, row); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "posts/s")
		})
	}
}
