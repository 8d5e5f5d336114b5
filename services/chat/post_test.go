package chat_test

import (
	"testing"

	chatsdk "github.com/jetstreamproto/jsp/client/chat"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/services/acl"
	"github.com/jetstreamproto/jsp/services/chatevents"
)

// TestPostOneTransaction checks a post end to end on every backend: the
// log event and the chat row share one sequence number, a resend with the
// same client id returns the first post without storing or delivering
// anything, and the client id with another text is refused.
func TestPostOneTransaction(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := ctxT(t)
		alice, bob := e.connect("alice"), e.connect("bob")
		g, err := alice.chat.Create(ctx, chatevents.KindGroup, "g", "", "bob")
		must(t, err)
		in := bob.subscribe(t, g.ID, 0)
		p1, err := alice.chat.Post(ctx, g.ID, "once", chatsdk.ClientID("k1"))
		must(t, err)
		p2, err := alice.chat.Post(ctx, g.ID, "once", chatsdk.ClientID("k1"))
		must(t, err)
		if p2.ID != p1.ID || p2.Seq != p1.Seq {
			t.Fatalf("resend answered %s #%d, first post %s #%d", p2.ID, p2.Seq, p1.ID, p1.Seq)
		}
		_, err = alice.chat.Post(ctx, g.ID, "another text", chatsdk.ClientID("k1"))
		wantCode(t, "client id reused for another text", err, jsperr.Conflict)
		p3, err := alice.chat.Post(ctx, g.ID, "next")
		must(t, err)
		if p3.Seq != p1.Seq+1 {
			t.Fatalf("next post #%d after #%d: the refused ones used numbers", p3.Seq, p1.Seq)
		}
		evs := in.wait(t, "two posts", func(evs []chatsdk.Event) bool { return count(evs, chatevents.MessageCreated) == 2 })
		if n := count(evs, chatevents.MessageCreated); n != 2 {
			t.Fatalf("bob got %d posts, want 2", n)
		}
		// The row and the log event of each post have the same number.
		for _, p := range []chatsdk.Posted{p1, p3} {
			row, err := e.store.GetChatMessage(ctx, g.ID, p.ID)
			must(t, err)
			logged, err := e.store.MessagesAfter(ctx, acl.Channel(g.ID), row.Seq-1, 1)
			must(t, err)
			if uint64(row.Seq) != p.Seq || len(logged) != 1 || uint64(logged[0].Seq) != p.Seq {
				t.Fatalf("post %s #%d: row #%d, log %+v", p.ID, p.Seq, row.Seq, logged)
			}
		}
		// The author's read marker moved with the post.
		m, err := e.store.GetMember(ctx, g.ID, "alice")
		must(t, err)
		if uint64(m.ReadSeq) != p3.Seq {
			t.Fatalf("alice's read marker #%d, want #%d", m.ReadSeq, p3.Seq)
		}
	})
}
