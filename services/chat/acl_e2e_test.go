package chat_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/client"
	chatsdk "github.com/jetstreamproto/jsp/client/chat"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/server/core"
	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/services/chat/chatproto"
	"github.com/jetstreamproto/jsp/services/chatevents"
)

// TestDenials runs every denied action of the permission rules against a
// real server: each must fail with its code and change nothing.
func TestDenials(t *testing.T) {
	e := newEnv(t, backends[0].dsn(t))
	ctx := ctxT(t)
	alice, bob, carol, gus, mallory := e.connect("alice"), e.connect("bob"), e.connect("carol"), e.connect("gus"), e.connect("mallory")
	// alice owns a private group with bob (member), carol (member) and gus
	// (guest); guests may not post there; mallory is an outsider.
	g, err := alice.chat.Create(ctx, chatevents.KindGroup, "private", "", "bob", "carol")
	must(t, err)
	must(t, alice.chat.Invite(ctx, g.ID, "gus", chatsdk.RoleGuest))
	must(t, alice.chat.Configure(ctx, g.ID, map[string]string{"post": "member"}))
	p, err := alice.chat.Post(ctx, g.ID, "alice's words")
	must(t, err)
	// carol leaves; she may not react any more.
	must(t, carol.chat.Leave(ctx, g.ID))

	tests := []struct {
		name string
		do   func(ctx context.Context) error
		code jsperr.Code
	}{
		{"non-member reads a private group", func(ctx context.Context) error {
			_, err := mallory.chat.Get(ctx, g.ID)
			return err
		}, jsperr.NotAMember},
		{"non-member lists its members", func(ctx context.Context) error {
			_, err := mallory.chat.Members(ctx, g.ID)
			return err
		}, jsperr.NotAMember},
		{"non-member subscribes", func(ctx context.Context) error {
			_, err := mallory.chat.Subscribe(ctx, g.ID, 0, func(chatsdk.Event) {})
			return err
		}, jsperr.NotAMember},
		{"non-member recovers (subscribe since)", func(ctx context.Context) error {
			_, err := mallory.chat.Subscribe(ctx, g.ID, 1, func(chatsdk.Event) {})
			return err
		}, jsperr.NotAMember},
		{"non-member fetches history", func(ctx context.Context) error {
			_, err := mallory.chat.History(g.ID, 10).Older(ctx)
			return err
		}, jsperr.NotAMember},
		{"non-member posts", func(ctx context.Context) error {
			_, err := mallory.chat.Post(ctx, g.ID, "hi")
			return err
		}, jsperr.NotAMember},
		{"non-member joins a private group", func(ctx context.Context) error {
			_, err := mallory.chat.Join(ctx, g.ID)
			return err
		}, jsperr.Forbidden},
		{"guest posts where guests may not", func(ctx context.Context) error {
			_, err := gus.chat.Post(ctx, g.ID, "guest here")
			return err
		}, jsperr.Forbidden},
		{"member edits someone else's message", func(ctx context.Context) error {
			_, err := bob.chat.Edit(ctx, g.ID, p.ID, "bob was here")
			return err
		}, jsperr.Forbidden},
		{"member deletes someone else's message", func(ctx context.Context) error {
			_, err := bob.chat.Delete(ctx, g.ID, p.ID)
			return err
		}, jsperr.Forbidden},
		{"reacting after leaving", func(ctx context.Context) error {
			_, err := carol.chat.React(ctx, g.ID, p.ID, "👍")
			return err
		}, jsperr.NotAMember},
		{"guest invites", func(ctx context.Context) error {
			return gus.chat.Invite(ctx, g.ID, "mallory", "")
		}, jsperr.Forbidden},
		{"member invites as admin", func(ctx context.Context) error {
			return bob.chat.Invite(ctx, g.ID, "mallory", chatsdk.RoleAdmin)
		}, jsperr.Forbidden},
		{"non-member invites", func(ctx context.Context) error {
			return mallory.chat.Invite(ctx, g.ID, "mallory", "")
		}, jsperr.NotAMember},
		{"member kicks", func(ctx context.Context) error {
			return bob.chat.Kick(ctx, g.ID, "gus")
		}, jsperr.Forbidden},
		{"member renames", func(ctx context.Context) error {
			return bob.chat.Rename(ctx, g.ID, "bob's")
		}, jsperr.Forbidden},
		{"member archives", func(ctx context.Context) error {
			return bob.chat.Archive(ctx, g.ID, true)
		}, jsperr.Forbidden},
		{"member promotes himself", func(ctx context.Context) error {
			return bob.chat.SetRole(ctx, g.ID, "bob", chatsdk.RoleOwner)
		}, jsperr.Forbidden},
		{"member changes overrides", func(ctx context.Context) error {
			return bob.chat.Configure(ctx, g.ID, map[string]string{"post": "guest"})
		}, jsperr.Forbidden},
		{"last owner leaves", func(ctx context.Context) error {
			return alice.chat.Leave(ctx, g.ID)
		}, jsperr.Conflict},
		{"non-admin adds a user", func(ctx context.Context) error {
			_, err := bob.chat.AddUser(ctx, "eve", "Eve", false)
			return err
		}, jsperr.Forbidden},
		{"PUBLISH straight to a conversation channel (core hook)", func(ctx context.Context) error {
			_, err := coreAs(t, e, "alice").Publish(ctx, chatproto.Channel(g.ID), storage.Message{ClientID: "x", Sender: "alice", Body: []byte("bypass")})
			return err
		}, jsperr.Forbidden},
		{"history straight from the core by a non-member", func(ctx context.Context) error {
			_, err := coreAs(t, e, "mallory").After(ctx, chatproto.Channel(g.ID), 0, 10)
			return err
		}, jsperr.NotAMember},
		{"recover straight from the core anonymously", func(ctx context.Context) error {
			_, err := coreAs(t, e, "").Recover(ctx, chatproto.Channel(g.ID), 0, 10)
			return err
		}, jsperr.Unauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantCode(t, tt.name, tt.do(ctxT(t)), tt.code)
		})
	}
	// A client's PUBLISH is refused in the core as well (asynchronously,
	// as an ERROR the SDK logs): the log does not grow.
	before, err := e.store.ChannelInfo(ctx, chatproto.Channel(g.ID))
	must(t, err)
	must(t, alice.c.Publish(ctx, chatproto.Channel(g.ID), []byte("bypass")))
	_, err = alice.chat.Get(ctx, g.ID) // a round trip after the PUBLISH
	must(t, err)
	after, err := e.store.ChannelInfo(ctx, chatproto.Channel(g.ID))
	must(t, err)
	if after.Last != before.Last {
		t.Fatalf("PUBLISH to a conversation committed: last seq %d -> %d", before.Last, after.Last)
	}
	// Nothing changed: one message, unedited.
	items, err := alice.chat.History(g.ID, 50).All(ctx)
	must(t, err)
	if len(items) != 1 || items[0].Message.Text != "alice's words" || items[0].Message.Edited || len(items[0].Reactions) != 0 {
		t.Fatalf("history after the denials = %+v", items)
	}
}

// identClient is a core client whose requests carry one identity: what a
// compromised or buggy gateway could send, to check the core's own hook.
type identClient struct {
	c  *core.Client
	id *core.Identity
}

// coreAs returns a core client for user (anonymous for "").
func coreAs(t testing.TB, e *env, user string) identClient {
	subj, err := bus.NewSubjects(core.DefaultCluster)
	must(t, err)
	c, err := core.NewClient(e.bus, subj, 0)
	must(t, err)
	ic := identClient{c: c}
	if user != "" {
		ic.id = &core.Identity{User: user}
	}
	return ic
}

func (ic identClient) ctx(ctx context.Context) context.Context {
	if ic.id == nil {
		return ctx
	}
	return core.WithIdentity(ctx, *ic.id)
}

func (ic identClient) Publish(ctx context.Context, ch string, m storage.Message) (*core.Reply, error) {
	return ic.c.Publish(ic.ctx(ctx), ch, m)
}

func (ic identClient) After(ctx context.Context, ch string, after storage.Seq, limit int) (*core.Reply, error) {
	return ic.c.After(ic.ctx(ctx), ch, after, limit)
}

func (ic identClient) Recover(ctx context.Context, ch string, after storage.Seq, limit int) (*core.Reply, error) {
	return ic.c.Recover(ic.ctx(ctx), ch, after, limit)
}

// TestRemovedMemberStopsReceiving kicks a subscribed member: the member
// gets nothing committed after the removal and cannot subscribe again.
func TestRemovedMemberStopsReceiving(t *testing.T) {
	e := newEnv(t, backends[0].dsn(t))
	ctx := ctxT(t)
	alice, bob, carol := e.connect("alice"), e.connect("bob"), e.connect("carol")
	g, err := alice.chat.Create(ctx, chatevents.KindGroup, "g", "", "bob", "carol")
	must(t, err)
	bin := bob.subscribe(t, g.ID, 0)
	cin := carol.subscribe(t, g.ID, 0)
	_, err = alice.chat.Post(ctx, g.ID, "before")
	must(t, err)
	bin.wait(t, "the post before the kick", func(evs []chatsdk.Event) bool { return count(evs, chatevents.MessageCreated) == 1 })
	must(t, alice.chat.Kick(ctx, g.ID, "bob"))
	_, err = alice.chat.Post(ctx, g.ID, "after")
	must(t, err)
	_, err = alice.chat.Post(ctx, g.ID, "after, again")
	must(t, err)
	// carol, still a member, sees both later posts; by then bob would have
	// seen them too if he were still subscribed.
	cin.wait(t, "posts after the kick", func(evs []chatsdk.Event) bool { return count(evs, chatevents.MessageCreated) == 3 })
	time.Sleep(100 * time.Millisecond)
	for _, ev := range bin.snapshot() {
		if ev.Type == chatevents.MessageCreated && strings.HasPrefix(ev.Message.Text, "after") {
			t.Fatalf("removed member received %q", ev.Message.Text)
		}
	}
	_, err = bob.chat.Subscribe(ctx, g.ID, 0, func(chatsdk.Event) {})
	wantCode(t, "resubscribe after removal", err, jsperr.NotAMember)
	_, err = bob.chat.History(g.ID, 10).Older(ctx)
	wantCode(t, "history after removal", err, jsperr.NotAMember)
}

// TestBadInput sends malformed and out-of-limit requests: each gets its
// named error, and the conversation is unaffected.
func TestBadInput(t *testing.T) {
	e := newEnv(t, backends[0].dsn(t))
	ctx := ctxT(t)
	alice := e.connect("alice")
	g, err := alice.chat.Create(ctx, chatevents.KindGroup, "g", "")
	must(t, err)
	p, err := alice.chat.Post(ctx, g.ID, "keep me")
	must(t, err)
	gone, err := alice.chat.Post(ctx, g.ID, "delete me")
	must(t, err)
	_, err = alice.chat.Delete(ctx, g.ID, gone.ID)
	must(t, err)
	raw := func(body []byte) error {
		_, err := alice.c.CommandWithHeaders(ctx, chatproto.Service, body, nil)
		return err
	}
	tests := []struct {
		name string
		do   func() error
		code jsperr.Code
	}{
		{"oversized message", func() error {
			_, err := alice.chat.Post(ctx, g.ID, strings.Repeat("x", 8001))
			return err
		}, jsperr.TextTooLong},
		{"oversized edit", func() error {
			_, err := alice.chat.Edit(ctx, g.ID, p.ID, strings.Repeat("é", 4001))
			return err
		}, jsperr.TextTooLong},
		{"oversized name", func() error { return alice.chat.Rename(ctx, g.ID, strings.Repeat("n", 81)) }, jsperr.TextTooLong},
		{"unknown conversation", func() error {
			_, err := alice.chat.Post(ctx, "no-such-conversation", "hi")
			return err
		}, jsperr.ConversationNotFound},
		{"unknown message", func() error {
			_, err := alice.chat.Edit(ctx, g.ID, "no-such-message", "x")
			return err
		}, jsperr.ChatMessageNotFound},
		{"editing a deleted message", func() error {
			_, err := alice.chat.Edit(ctx, g.ID, gone.ID, "resurrect")
			return err
		}, jsperr.MessageDeleted},
		{"deleting a deleted message", func() error {
			_, err := alice.chat.Delete(ctx, g.ID, gone.ID)
			return err
		}, jsperr.MessageDeleted},
		{"reacting to a deleted message", func() error {
			_, err := alice.chat.React(ctx, g.ID, gone.ID, "👍")
			return err
		}, jsperr.MessageDeleted},
		{"reaction that is text", func() error {
			_, err := alice.chat.React(ctx, g.ID, p.ID, "lol")
			return err
		}, jsperr.InvalidEmoji},
		{"reaction over the emoji limit", func() error {
			_, err := alice.chat.React(ctx, g.ID, p.ID, strings.Repeat("😀", 9))
			return err
		}, jsperr.InvalidEmoji},
		{"reaction with whitespace", func() error {
			_, err := alice.chat.React(ctx, g.ID, p.ID, "👍 ")
			return err
		}, jsperr.InvalidEmoji},
		{"empty reaction", func() error {
			_, err := alice.chat.React(ctx, g.ID, p.ID, "")
			return err
		}, jsperr.InvalidEmoji},
		{"attachment without hash", func() error {
			_, err := alice.chat.Post(ctx, g.ID, "file", chatsdk.Attach(chatsdk.Attachment{ID: "f1", Name: "a", Size: 3, SHA256: "nope"}))
			return err
		}, jsperr.AttachmentInvalid},
		{"attachment over the size limit", func() error {
			_, err := alice.chat.Post(ctx, g.ID, "file", chatsdk.Attach(chatsdk.Attachment{ID: "f1", Name: "a", Size: 1 << 40, SHA256: strings.Repeat("ab", 32)}))
			return err
		}, jsperr.AttachmentInvalid},
		{"read marker beyond the log", func() error {
			_, err := alice.chat.MarkRead(ctx, g.ID, 1<<40)
			return err
		}, jsperr.BadRequest},
		{"body that is not CBOR", func() error { return raw([]byte{0xff, 0x00}) }, jsperr.BadRequest},
		{"body without op", func() error { return raw((&chatproto.Request{Conversation: g.ID}).Marshal()) }, jsperr.BadRequest},
		{"unknown op", func() error { return raw((&chatproto.Request{Op: "msg.explode"}).Marshal()) }, jsperr.BadRequest},
		{"unknown role", func() error { return alice.chat.Invite(ctx, g.ID, "alice", "emperor") }, jsperr.BadRequest},
		{"bad override", func() error { return alice.chat.Configure(ctx, g.ID, map[string]string{"read": "owner"}) }, jsperr.BadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { wantCode(t, tt.name, tt.do(), tt.code) })
	}
	items, err := alice.chat.History(g.ID, 50).All(ctx)
	must(t, err)
	if len(items) != 2 || items[0].Message.Text != "keep me" || items[0].Message.Edited || !items[1].Message.Deleted {
		t.Fatalf("history after bad input = %+v", items)
	}
	// An anonymous session gets nothing at all.
	o := client.Options{Pins: e.clientPins(), Logger: quiet()}
	anon, err := client.Dial(ctx, e.url, o)
	must(t, err)
	defer anon.Close()
	_, err = chatsdk.New(anon).Me(ctx)
	wantCode(t, "anonymous chat", err, jsperr.Unauthenticated)
	// A disabled user is refused.
	root := e.connect("root")
	_, err = root.chat.DisableUser(ctx, "alice", false)
	must(t, err)
	_, err = alice.chat.Post(ctx, g.ID, "still here?")
	wantCode(t, "disabled user", err, jsperr.UserDisabled)
}
