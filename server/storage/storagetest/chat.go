package storagetest

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/server/storage"
)

func chatConv(s storage.Store, t *testing.T, id, kind string, members ...string) storage.Conversation {
	t.Helper()
	var ms []storage.ChatMember
	for i, u := range members {
		role := "member"
		if i == 0 {
			role = "owner"
		}
		ms = append(ms, storage.ChatMember{User: u, Role: role})
	}
	c, err := s.CreateConversation(ctx, storage.Conversation{ID: id, Kind: kind, Name: id, Creator: members[0]}, ms)
	must(t, err)
	return c
}

func chatMsg(s storage.Store, t *testing.T, conv, id string, seq storage.Seq, author, text string, mentions ...string) {
	t.Helper()
	must(t, s.PutChatMessage(ctx, storage.ChatMessage{Conversation: conv, ID: id, Seq: seq, Author: author, Text: text, Mentions: mentions}))
}

func msgIDs(ms []storage.ChatMessage) string {
	var ids []string
	for _, m := range ms {
		ids = append(ids, m.ID)
	}
	return strings.Join(ids, ",")
}

var chatTests = []test{
	{"Users", func(t *testing.T, e *env) {
		s := e.open()
		u, err := s.PutUser(ctx, storage.ChatUser{ID: "alice", DisplayName: "Alice", Admin: true})
		must(t, err)
		equal(t, "created", u.Created.Equal(e.clock.Now()), true)
		_, err = s.PutUser(ctx, storage.ChatUser{ID: "alice"})
		mustIs(t, err, storage.ErrConflict)
		_, err = s.PutUser(ctx, storage.ChatUser{ID: "bob"})
		must(t, err)
		_, err = s.PutUser(ctx, storage.ChatUser{})
		mustIs(t, err, storage.ErrInvalid)
		must(t, s.SetUserDisabled(ctx, "bob", true))
		mustIs(t, s.SetUserDisabled(ctx, "carol", true), storage.ErrNotFound)
		got, err := s.GetUser(ctx, "bob")
		must(t, err)
		equal(t, "disabled", got.Disabled, true)
		got, err = s.GetUser(ctx, "alice")
		must(t, err)
		if got.DisplayName != "Alice" || !got.Admin || got.Disabled {
			t.Fatalf("alice = %+v", got)
		}
		_, err = s.GetUser(ctx, "carol")
		mustIs(t, err, storage.ErrNotFound)
		page, err := s.ListUsers(ctx, "", 1)
		must(t, err)
		equal(t, "page", len(page), 1)
		page, err = s.ListUsers(ctx, page[0].ID, 10)
		must(t, err)
		if len(page) != 1 || page[0].ID != "bob" {
			t.Fatalf("second page = %+v", page)
		}
	}},
	{"ConversationsAndDirectKey", func(t *testing.T, e *env) {
		s := e.open()
		c := chatConv(s, t, "c1", "channel", "alice", "bob")
		equal(t, "kind", c.Kind, "channel")
		_, err := s.CreateConversation(ctx, storage.Conversation{ID: "c1", Kind: "group"}, nil)
		mustIs(t, err, storage.ErrConflict)
		_, err = s.CreateConversation(ctx, storage.Conversation{ID: "x", Kind: "nope"}, nil)
		mustIs(t, err, storage.ErrInvalid)
		_, err = s.CreateConversation(ctx, storage.Conversation{ID: "d1", Kind: "direct", DirectKey: "alice\x1fbob"},
			[]storage.ChatMember{{User: "alice", Role: "member"}, {User: "bob", Role: "member"}})
		must(t, err)
		// Exactly one direct chat per pair.
		_, err = s.CreateConversation(ctx, storage.Conversation{ID: "d2", Kind: "direct", DirectKey: "alice\x1fbob"}, nil)
		mustIs(t, err, storage.ErrConflict)
		d, err := s.DirectConversation(ctx, "alice\x1fbob")
		must(t, err)
		equal(t, "direct id", d.ID, "d1")
		_, err = s.DirectConversation(ctx, "alice\x1fcarol")
		mustIs(t, err, storage.ErrNotFound)

		c.Name, c.Topic, c.Archived, c.Overrides = "general", "news", true, map[string]string{"post": "member"}
		must(t, s.UpdateConversation(ctx, c))
		got, err := s.GetConversation(ctx, "c1")
		must(t, err)
		if got.Name != "general" || got.Topic != "news" || !got.Archived || got.Overrides["post"] != "member" {
			t.Fatalf("updated = %+v", got)
		}
		mustIs(t, s.UpdateConversation(ctx, storage.Conversation{ID: "zz", Kind: "group"}), storage.ErrNotFound)
		_, err = s.GetConversation(ctx, "zz")
		mustIs(t, err, storage.ErrNotFound)

		chans, err := s.ListConversations(ctx, storage.ConversationQuery{Kind: "channel", Limit: 10})
		must(t, err)
		if len(chans) != 1 || chans[0].ID != "c1" {
			t.Fatalf("channels = %+v", chans)
		}
		mine, err := s.ListConversations(ctx, storage.ConversationQuery{Member: "bob", Limit: 10})
		must(t, err)
		if len(mine) != 2 || mine[0].ID != "c1" || mine[1].ID != "d1" || mine[0].Role != "member" {
			t.Fatalf("bob's conversations = %+v", mine)
		}
	}},
	{"MembersAndReadMarkers", func(t *testing.T, e *env) {
		s := e.open()
		chatConv(s, t, "g", "group", "alice")
		created, err := s.PutMember(ctx, storage.ChatMember{Conversation: "g", User: "bob", Role: "guest"})
		must(t, err)
		equal(t, "created", created, true)
		created, err = s.PutMember(ctx, storage.ChatMember{Conversation: "g", User: "bob", Role: "admin"})
		must(t, err)
		equal(t, "created again", created, false)
		m, err := s.GetMember(ctx, "g", "bob")
		must(t, err)
		equal(t, "role", m.Role, "admin")
		_, err = s.PutMember(ctx, storage.ChatMember{Conversation: "nope", User: "bob", Role: "member"})
		mustIs(t, err, storage.ErrNotFound)
		ms, err := s.Members(ctx, "g", "", 10)
		must(t, err)
		if len(ms) != 2 || ms[0].User != "alice" || ms[0].Role != "owner" {
			t.Fatalf("members = %+v", ms)
		}
		seq, err := s.SetReadSeq(ctx, "g", "bob", 5)
		must(t, err)
		equal(t, "read", seq, storage.Seq(5))
		seq, err = s.SetReadSeq(ctx, "g", "bob", 3)
		must(t, err)
		equal(t, "read never goes back", seq, storage.Seq(5))
		_, err = s.SetReadSeq(ctx, "g", "carol", 3)
		mustIs(t, err, storage.ErrNotFound)
		must(t, s.RemoveMember(ctx, "g", "bob"))
		mustIs(t, s.RemoveMember(ctx, "g", "bob"), storage.ErrNotFound)
		_, err = s.GetMember(ctx, "g", "bob")
		mustIs(t, err, storage.ErrNotFound)
	}},
	{"MessagesEditsDeletes", func(t *testing.T, e *env) {
		s := e.open()
		chatConv(s, t, "g", "group", "alice", "bob")
		for i := 1; i <= 5; i++ {
			chatMsg(s, t, "g", "m"+string(rune('0'+i)), storage.Seq(i*2), "alice", "text", "bob")
		}
		err := s.PutChatMessage(ctx, storage.ChatMessage{Conversation: "g", ID: "m1", Seq: 99, Author: "a", Text: "x"})
		mustIs(t, err, storage.ErrConflict)
		err = s.PutChatMessage(ctx, storage.ChatMessage{Conversation: "g", ID: "big", Seq: 100, Author: "a", Text: strings.Repeat("x", storage.MaxChatTextLen+1)})
		mustIs(t, err, storage.ErrTooLarge)

		after, err := s.ChatMessagesAfter(ctx, "g", 2, 2)
		must(t, err)
		equal(t, "after", msgIDs(after), "m2,m3")
		before, err := s.ChatMessagesBefore(ctx, "g", 0, 2)
		must(t, err)
		equal(t, "newest", msgIDs(before), "m4,m5")
		before, err = s.ChatMessagesBefore(ctx, "g", 8, 10)
		must(t, err)
		equal(t, "before 8", msgIDs(before), "m1,m2,m3")

		// Unread and mentions for bob.
		sum, err := s.ListConversations(ctx, storage.ConversationQuery{Member: "bob", Limit: 10})
		must(t, err)
		if sum[0].Unread != 5 || sum[0].Mentions != 5 {
			t.Fatalf("bob summary = %+v", sum[0])
		}
		_, err = s.SetReadSeq(ctx, "g", "bob", 6)
		must(t, err)
		sum, err = s.ListConversations(ctx, storage.ConversationQuery{Member: "bob", Limit: 10})
		must(t, err)
		if sum[0].Unread != 2 || sum[0].Mentions != 2 {
			t.Fatalf("bob summary after read = %+v", sum[0])
		}

		at := e.clock.Now().Add(time.Minute)
		m, err := s.EditChatMessage(ctx, "g", "m1", "alice", "second", 11, at)
		must(t, err)
		if m.Text != "second" || !m.Edited || !m.Updated.Equal(at) {
			t.Fatalf("edited = %+v", m)
		}
		_, err = s.EditChatMessage(ctx, "g", "m1", "alice", "third", 12, at)
		must(t, err)
		edits, err := s.ChatEdits(ctx, "g", "m1")
		must(t, err)
		if len(edits) != 2 || edits[0].Text != "text" || edits[1].Text != "second" || edits[1].LogSeq != 12 {
			t.Fatalf("edits = %+v", edits)
		}
		_, err = s.EditChatMessage(ctx, "g", "nope", "alice", "x", 13, at)
		mustIs(t, err, storage.ErrNotFound)

		_, _, err = s.AddReaction(ctx, "g", "m1", "bob", "👍", at)
		must(t, err)
		old, seqs, err := s.DeleteChatMessage(ctx, "g", "m1", at)
		must(t, err)
		if old.Text != "third" || !reflect.DeepEqual(seqs, []storage.Seq{11, 12}) {
			t.Fatalf("deleted %+v seqs %v", old, seqs)
		}
		_, _, err = s.DeleteChatMessage(ctx, "g", "m1", at)
		mustIs(t, err, storage.ErrConflict)
		_, err = s.EditChatMessage(ctx, "g", "m1", "alice", "again", 14, at)
		mustIs(t, err, storage.ErrConflict)
		_, _, err = s.AddReaction(ctx, "g", "m1", "bob", "👍", at)
		mustIs(t, err, storage.ErrConflict)
		tomb, err := s.GetChatMessage(ctx, "g", "m1")
		must(t, err)
		if !tomb.Deleted || tomb.Text != "" || len(tomb.Mentions) != 0 || tomb.Seq != 2 {
			t.Fatalf("tombstone = %+v", tomb)
		}
		edits, err = s.ChatEdits(ctx, "g", "m1")
		must(t, err)
		equal(t, "edits after delete", len(edits), 0)
		r, err := s.Reactions(ctx, "g", []string{"m1"})
		must(t, err)
		equal(t, "reactions after delete", len(r), 0)
		// The tombstone keeps its place in history.
		all, err := s.ChatMessagesAfter(ctx, "g", 0, 10)
		must(t, err)
		equal(t, "history", msgIDs(all), "m1,m2,m3,m4,m5")
	}},
	{"Reactions", func(t *testing.T, e *env) {
		s := e.open()
		chatConv(s, t, "g", "group", "alice", "bob")
		chatMsg(s, t, "g", "m1", 1, "alice", "hi")
		chatMsg(s, t, "g", "m2", 2, "alice", "ho")
		at := e.clock.Now()
		steps := []struct {
			user, emoji string
			add         bool
			count       int
			changed     bool
		}{
			{"alice", "👍", true, 1, true},
			{"bob", "👍", true, 2, true},
			{"bob", "👍", true, 2, false}, // one per user per emoji
			{"bob", "🎉", true, 1, true},
			{"alice", "👍", false, 1, true},
			{"alice", "👍", false, 1, false},
		}
		for i, st := range steps {
			var (
				n       int
				changed bool
				err     error
			)
			if st.add {
				n, changed, err = s.AddReaction(ctx, "g", "m1", st.user, st.emoji, at)
			} else {
				n, changed, err = s.RemoveReaction(ctx, "g", "m1", st.user, st.emoji)
			}
			must(t, err)
			if n != st.count || changed != st.changed {
				t.Fatalf("step %d: count %d changed %v, want %d %v", i, n, changed, st.count, st.changed)
			}
		}
		_, _, err := s.AddReaction(ctx, "g", "nope", "bob", "👍", at)
		mustIs(t, err, storage.ErrNotFound)
		rs, err := s.Reactions(ctx, "g", []string{"m1", "m2"})
		must(t, err)
		want := []storage.ReactionCount{
			{MessageID: "m1", Emoji: "👍", Count: 1, Users: []string{"bob"}},
			{MessageID: "m1", Emoji: "🎉", Count: 1, Users: []string{"bob"}},
		}
		if len(rs) != 2 {
			t.Fatalf("reactions = %+v", rs)
		}
		// Emoji order is the database's byte order; compare as a set.
		for _, w := range want {
			found := false
			for _, r := range rs {
				found = found || reflect.DeepEqual(r, w)
			}
			if !found {
				t.Fatalf("reactions %+v lack %+v", rs, w)
			}
		}
	}},
	{"RedactMessage", func(t *testing.T, e *env) {
		s := e.open()
		res, err := s.AppendMessage(ctx, "chat", msg("alice", "k1", "secret"))
		must(t, err)
		must(t, s.RedactMessage(ctx, "chat", res.Seq, []byte("gone")))
		got, err := s.MessagesAfter(ctx, "chat", 0, 10)
		must(t, err)
		if len(got) != 1 || string(got[0].Body) != "gone" || got[0].Seq != res.Seq {
			t.Fatalf("log after redact = %+v", got)
		}
		mustIs(t, s.RedactMessage(ctx, "chat", res.Seq+1, nil), storage.ErrNotFound)
		mustIs(t, s.RedactMessage(ctx, "other", 1, nil), storage.ErrNotFound)
	}},
}
