package chat_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	chatsdk "github.com/jetstreamproto/jsp/client/chat"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/services/chatevents"
)

// forEachBackend runs f against a fresh server on every storage backend.
func forEachBackend(t *testing.T, f func(t *testing.T, e *env)) {
	for _, b := range backends {
		if b.name == "sqlite-memory" {
			continue // the file and the server backends are what deployments use
		}
		if b.name == "postgres" && testing.Short() {
			continue // -short: SQLite only; make test runs both
		}
		t.Run(b.name, func(t *testing.T) {
			// The backends' servers are independent: running them side
			// by side overlaps their waits for commits and round trips.
			t.Parallel()
			f(t, newEnv(t, b.dsn(t)))
		})
	}
}

func wantCode(t testing.TB, what string, err error, code jsperr.Code) {
	t.Helper()
	if got := jsperr.CodeOf(err); got != code {
		t.Fatalf("%s: error %v (code %s), want %s", what, err, got, code)
	}
}

func TestDirectChat(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := ctxT(t)
		alice, bob := e.connect("alice"), e.connect("bob")
		p, err := alice.chat.SendDirect(ctx, "bob", "hi bob")
		must(t, err)
		dm := p.Event.Conversation
		convs, err := bob.chat.List(ctx)
		must(t, err)
		if len(convs) != 1 || convs[0].ID != dm || convs[0].Kind != chatevents.KindDirect || convs[0].Unread != 1 {
			t.Fatalf("bob's conversations = %+v", convs)
		}
		// Exactly one direct chat per pair, whoever writes first.
		p2, err := bob.chat.SendDirect(ctx, "alice", "hi alice")
		must(t, err)
		if p2.Event.Conversation != dm {
			t.Fatalf("bob's direct chat %s, alice's %s", p2.Event.Conversation, dm)
		}
		in := bob.subscribe(t, dm, 0)
		_, err = alice.chat.Post(ctx, dm, "live @bob")
		must(t, err)
		evs := in.wait(t, "alice's live message", func(evs []chatsdk.Event) bool { return count(evs, chatevents.MessageCreated) == 1 })
		m := evs[len(evs)-1].Message
		if m.Text != "live @bob" || m.Author != "alice" || !slices.Equal(m.Mentions, []string{"bob"}) {
			t.Fatalf("live message = %+v", m)
		}
		// A third user cannot read it.
		carol := e.connect("carol")
		_, _, _, err = carol.chat.RawPage(ctx, dm, nil, true, 10)
		wantCode(t, "carol reads the direct chat", err, jsperr.NotAMember)
		err = carol.chat.Invite(ctx, dm, "carol", "")
		wantCode(t, "carol invites herself to a direct chat", err, jsperr.NotAMember)
		err = alice.chat.Invite(ctx, dm, "carol", "")
		wantCode(t, "invite into a direct chat", err, jsperr.Forbidden)
	})
}

func TestPublicChannel(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := ctxT(t)
		alice, bob := e.connect("alice"), e.connect("bob")
		ch, err := alice.chat.Create(ctx, chatevents.KindChannel, "general", "everything")
		must(t, err)
		pub, err := bob.chat.PublicChannels(ctx)
		must(t, err)
		if len(pub) != 1 || pub[0].ID != ch.ID || pub[0].Role != "" {
			t.Fatalf("public channels = %+v", pub)
		}
		// Not a member yet: no events, no history.
		_, err = bob.chat.Subscribe(ctx, ch.ID, 0, func(chatsdk.Event) {})
		wantCode(t, "subscribe before joining", err, jsperr.NotAMember)
		_, err = bob.chat.Post(ctx, ch.ID, "hello?")
		wantCode(t, "post before joining", err, jsperr.NotAMember)
		_, err = bob.chat.Join(ctx, ch.ID)
		must(t, err)
		in := bob.subscribe(t, ch.ID, 0)
		ain := alice.subscribe(t, ch.ID, 0)
		_, err = alice.chat.Post(ctx, ch.ID, "welcome @bob")
		must(t, err)
		must(t, alice.chat.SetTopic(ctx, ch.ID, "news"))
		in.wait(t, "post and topic", func(evs []chatsdk.Event) bool {
			return count(evs, chatevents.MessageCreated) == 1 && count(evs, chatevents.ConversationUpdated) == 1
		})
		// Typing is live only: it arrives with seq 0 and is never stored.
		must(t, bob.chat.Typing(ctx, ch.ID, true))
		ain.wait(t, "typing", func(evs []chatsdk.Event) bool {
			for _, e := range evs {
				if e.Type == chatevents.Typing && e.Actor == "bob" && e.Seq == 0 {
					return true
				}
			}
			return false
		})
		info, err := e.store.ChannelInfo(ctx, "chat."+ch.ID)
		must(t, err)
		log, err := e.store.MessagesAfter(ctx, "chat."+ch.ID, 0, 100)
		must(t, err)
		if len(log) != int(info.Last) {
			t.Fatalf("log has %d entries, last seq %d", len(log), info.Last)
		}
		for _, m := range log {
			if strings.Contains(string(m.Body), "typing") {
				t.Fatalf("typing stored at seq %d", m.Seq)
			}
		}
		// Mentions mark unread state.
		convs, err := bob.chat.List(ctx)
		must(t, err)
		if len(convs) != 1 || convs[0].Mentions != 1 || convs[0].Unread != 1 {
			t.Fatalf("bob's list = %+v", convs)
		}
		_, err = bob.chat.MarkRead(ctx, ch.ID, convs[0].LastSeq)
		must(t, err)
		convs, err = bob.chat.List(ctx)
		must(t, err)
		if convs[0].Mentions != 0 || convs[0].Unread != 0 {
			t.Fatalf("bob's list after reading = %+v", convs)
		}
		ain.wait(t, "read marker", func(evs []chatsdk.Event) bool { return count(evs, chatevents.ReadUpdated) == 1 })
	})
}

// TestHistoryPagination reads the history in pages in both directions and
// checks it against what is stored: every message exactly once, in order,
// tombstones in place, edits applied.
func TestHistoryPagination(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := ctxT(t)
		alice, bob := e.connect("alice"), e.connect("bob")
		g, err := alice.chat.Create(ctx, chatevents.KindGroup, "g", "", "bob")
		must(t, err)
		other, err := alice.chat.Create(ctx, chatevents.KindGroup, "other", "")
		must(t, err)
		const n = 23
		var ids []string
		for i := range n {
			p, err := alice.chat.Post(ctx, g.ID, fmt.Sprintf("m%02d", i))
			must(t, err)
			ids = append(ids, p.ID)
		}
		deleted := map[string]bool{ids[3]: true, ids[10]: true, ids[22]: true}
		for id := range deleted {
			_, err := alice.chat.Delete(ctx, g.ID, id)
			must(t, err)
		}
		_, err = alice.chat.Edit(ctx, g.ID, ids[5], "m05 edited")
		must(t, err)
		_, err = bob.chat.React(ctx, g.ID, ids[6], "🎉")
		must(t, err)
		check := func(items []chatsdk.HistoryItem) {
			t.Helper()
			if len(items) != n {
				t.Fatalf("history has %d messages, want %d", len(items), n)
			}
			for i, it := range items {
				m := it.Message
				switch {
				case m.ID != ids[i]:
					t.Fatalf("item %d is %s, want %s", i, m.ID, ids[i])
				case i > 0 && m.Seq <= items[i-1].Message.Seq:
					t.Fatalf("item %d seq %d not after %d", i, m.Seq, items[i-1].Message.Seq)
				case deleted[m.ID] && (!m.Deleted || m.Text != ""):
					t.Fatalf("item %d should be a tombstone: %+v", i, m)
				case i == 5 && (m.Text != "m05 edited" || !m.Edited):
					t.Fatalf("item 5 = %+v", m)
				case !deleted[m.ID] && i != 5 && m.Text != fmt.Sprintf("m%02d", i):
					t.Fatalf("item %d text %q", i, m.Text)
				case i == 6 && (len(it.Reactions) != 1 || it.Reactions[0].Count != 1 || it.Reactions[0].Users[0] != "bob"):
					t.Fatalf("item 6 reactions %+v", it.Reactions)
				}
			}
		}
		// Backward from the newest, pages of 7.
		all, err := bob.chat.History(g.ID, 7).All(ctx)
		must(t, err)
		check(all)
		// Forward from the oldest page.
		h := bob.chat.History(g.ID, 7)
		var fwd []chatsdk.HistoryItem
		for {
			page, err := h.Older(ctx)
			must(t, err)
			if len(page) == 0 {
				break
			}
		}
		// h now stands at the start; walk forward from its first cursor.
		prev, _ := h.Cursors()
		cursor := prev
		first := true
		for {
			items, _, next, err := bob.chat.RawPage(ctx, g.ID, cursor, false, 7)
			must(t, err)
			if first {
				// The start cursor points at the oldest message; include it.
				first = false
				oldest, _, _, err := bob.chat.RawPage(ctx, g.ID, cursor, true, 1)
				must(t, err)
				if len(oldest) != 0 {
					t.Fatalf("messages before the oldest: %+v", oldest)
				}
			}
			if len(items) == 0 {
				break
			}
			fwd = append(fwd, items...)
			cursor = next
		}
		first1, _, _, err := bob.chat.RawPage(ctx, g.ID, nil, true, n)
		must(t, err)
		fwd = append([]chatsdk.HistoryItem{first1[0]}, fwd...)
		check(fwd)

		// Cursors are authenticated: forged, altered or foreign ones fail.
		_, _, good, err := bob.chat.RawPage(ctx, g.ID, nil, true, 5)
		must(t, err)
		forged := slices.Clone(good)
		forged[5] ^= 1 // another seq, same MAC
		_, ownNext, _, err := alice.chat.RawPage(ctx, other.ID, nil, true, 5)
		must(t, err)
		for name, c := range map[string][]byte{
			"forged seq":         forged,
			"truncated":          good[:len(good)-1],
			"garbage":            []byte("not a cursor at all, really"),
			"other conversation": ownNext,
		} {
			_, _, _, err := alice.chat.RawPage(ctx, g.ID, c, true, 5)
			wantCode(t, "cursor "+name, err, jsperr.InvalidCursor)
		}
		// Edit history is kept.
		edits, err := bob.chat.Edits(ctx, g.ID, ids[5])
		must(t, err)
		if len(edits) != 1 || edits[0].Text != "m05" || edits[0].Editor != "alice" {
			t.Fatalf("edits = %+v", edits)
		}
		// Deleted content is gone from storage: the chat row and every log
		// entry.
		log, err := e.store.MessagesAfter(ctx, "chat."+g.ID, 0, 1000)
		must(t, err)
		for _, m := range log {
			if strings.Contains(string(m.Body), "m03") || strings.Contains(string(m.Body), "m10") || strings.Contains(string(m.Body), "m22") {
				t.Fatalf("log seq %d still holds deleted text", m.Seq)
			}
		}
		row, err := e.store.GetChatMessage(ctx, g.ID, ids[3])
		must(t, err)
		if row.Text != "" || !row.Deleted {
			t.Fatalf("stored tombstone = %+v", row)
		}
	})
}

// TestInternalEvents checks the typed events on the bus's event log.
func TestInternalEvents(t *testing.T) {
	e := newEnv(t, backends[0].dsn(t))
	ctx := ctxT(t)
	alice := e.connect("alice")
	e.connect("bob")
	g, err := alice.chat.Create(ctx, chatevents.KindGroup, "g", "", "bob")
	must(t, err)
	p, err := alice.chat.Post(ctx, g.ID, "hello @bob")
	must(t, err)
	_, err = alice.chat.React(ctx, g.ID, p.ID, "👍")
	must(t, err)
	_, err = alice.chat.Edit(ctx, g.ID, p.ID, "hello again")
	must(t, err)
	_, err = alice.chat.Unreact(ctx, g.ID, p.ID, "👍")
	must(t, err)
	must(t, alice.chat.SetRole(ctx, g.ID, "bob", chatsdk.RoleAdmin))
	must(t, alice.chat.Kick(ctx, g.ID, "bob"))
	_, err = alice.chat.Delete(ctx, g.ID, p.ID)
	must(t, err)
	subj, _ := bus.NewSubjects("jsp")
	log, err := e.bus.EventLog(ctx, subj.EventLog())
	must(t, err)
	var got []chatevents.Type
	must(t, log.Replay(ctx, bus.ReplayOptions{}, func(ev bus.Event) error {
		ce, err := chatevents.DecodeLogged(ev.Msg.Data)
		if err != nil {
			return err
		}
		if ce.Seq == 0 && ce.Type != chatevents.ReadUpdated {
			t.Errorf("%s without seq", ce.Type)
		}
		if ce.Type == chatevents.MessageCreated && !slices.Equal(ce.Members, []string{"alice", "bob"}) {
			t.Errorf("message.created members %v", ce.Members)
		}
		got = append(got, ce.Type)
		return nil
	}))
	want := []chatevents.Type{chatevents.ConversationCreated, chatevents.MessageCreated, chatevents.ReactionAdded,
		chatevents.MessageEdited, chatevents.ReactionRemoved, chatevents.MemberRoleChanged, chatevents.MemberLeft, chatevents.MessageDeleted}
	if !slices.Equal(got, want) {
		t.Fatalf("event log %v, want %v", got, want)
	}
}
