package chat_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/jetstreamproto/jsp/client"
	chatsdk "github.com/jetstreamproto/jsp/client/chat"
	"github.com/jetstreamproto/jsp/services/chatevents"
	"github.com/jetstreamproto/jsp/transport/tlsconf"
)

// connectParallel bounds the clients that connect at once: enough to
// overlap handshakes and round trips, few enough that a loaded 2-core
// machine does not time them out.
const connectParallel = 8

// sharedTLS is one client TLS configuration for every client of a test
// that is not about the transport: its session cache lets each client
// after the first resume TLS 1.3 (no certificate signature to make or
// check), and X25519 alone skips the post-quantum key share that the
// transport tests cover. The pin check still runs on every connection
// (client.Options.Pins).
func sharedTLS() *tls.Config {
	return &tls.Config{
		ClientSessionCache: tls.NewLRUClientSessionCache(128),
		CurvePreferences:   []tls.CurveID{tls.X25519},
	}
}

// dial connects one client as name with the shared TLS configuration and
// provisions its account (whoami).
func (e *env) dial(ctx context.Context, conf *tls.Config, name string) (*user, error) {
	o := client.Options{Pins: []tlsconf.Fingerprint{e.pin}, Logger: quiet(), TLS: conf}
	o.Info.Auth = []byte(name)
	c, err := client.Dial(ctx, e.url, o)
	if err != nil {
		return nil, fmt.Errorf("dial as %s: %w", name, err)
	}
	u := &user{name: name, c: c, chat: chatsdk.New(c)}
	if _, err := u.chat.Me(ctx); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("%s: me: %w", name, err)
	}
	return u, nil
}

// connectAll connects a client per name, connectParallel at a time, and
// returns them in the order of names.
func (e *env) connectAll(t *testing.T, conf *tls.Config, names []string) []*user {
	t.Helper()
	users := make([]*user, len(names))
	errs := make([]error, len(names))
	parallel(len(names), func(i int) {
		users[i], errs[i] = e.dial(ctxT(t), conf, names[i])
	})
	// One cleanup closes them all, in parallel: each close waits for its
	// session to end, and one after another they add up.
	t.Cleanup(func() {
		parallel(len(users), func(i int) {
			if users[i] != nil {
				_ = users[i].c.Close()
			}
		})
	})
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return users
}

// parallel runs f(0..n-1), connectParallel at a time, and waits.
func parallel(n int, f func(i int)) {
	sem := make(chan struct{}, connectParallel)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			f(i)
		})
	}
	wg.Wait()
}

// subscribeAll subscribes every user to conv from since, in parallel.
func subscribeAll(t *testing.T, users []*user, conv string, since uint64) []*inbox {
	t.Helper()
	inboxes := make([]*inbox, len(users))
	errs := make([]error, len(users))
	parallel(len(users), func(i int) {
		b := newInbox()
		if _, err := users[i].chat.Subscribe(ctxT(t), conv, since, b.add); err != nil {
			errs[i] = fmt.Errorf("%s: subscribe %s: %w", users[i].name, conv, err)
			return
		}
		inboxes[i] = b
	})
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return inboxes
}

// TestGroup50 runs a 50-member group with every member a connected SDK
// client: every change (posts, a reply, reactions and a removed
// reaction, an edit, a deletion) reaches each of the 40 online members
// exactly once, and the 10 members who went offline before the changes
// catch up on all of them when they reconnect (recovery from the log,
// deleted content never recovered).
func TestGroup50(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := ctxT(t)
		const n, away = 50, 10
		names := make([]string, n)
		for i := range names {
			names[i] = fmt.Sprintf("u%02d", i)
		}
		conf := sharedTLS()
		users := e.connectAll(t, conf, names)
		owner := users[0]
		conv, err := owner.chat.Create(ctx, chatevents.KindGroup, "fifty", "load", names[1:]...)
		must(t, err)
		ms, err := owner.chat.Members(ctx, conv.ID)
		must(t, err)
		if len(ms) != n {
			t.Fatalf("%d members, want %d", len(ms), n)
		}
		inboxes := subscribeAll(t, users, conv.ID, 0)

		// A first post reaches all 50; then 10 members go offline, each
		// remembering the last seq it saw.
		m0, err := owner.chat.Post(ctx, conv.ID, "before")
		must(t, err)
		waitAll(t, users, inboxes, "the first post", func(evs []chatsdk.Event) bool {
			return count(evs, chatevents.MessageCreated) == 1
		})
		for _, u := range users[n-away:] {
			must(t, u.c.Close())
		}
		online, onlineIn := users[:n-away], inboxes[:n-away]

		// The changes, by several members.
		var posts []chatsdk.Posted
		for i := 1; i <= 5; i++ {
			var opts []chatsdk.PostOption
			if i == 2 {
				opts = append(opts, chatsdk.ReplyTo(posts[0].ID))
			}
			p, err := users[i*3].chat.Post(ctx, conv.ID, fmt.Sprintf("post %d @u%02d", i, i), opts...)
			must(t, err)
			posts = append(posts, p)
		}
		for _, u := range users[4:7] {
			_, err := u.chat.React(ctx, conv.ID, posts[0].ID, "👍")
			must(t, err)
		}
		cnt, err := users[4].chat.Unreact(ctx, conv.ID, posts[0].ID, "👍")
		must(t, err)
		if cnt != 2 {
			t.Fatalf("count after one removal %d, want 2", cnt)
		}
		_, err = users[3].chat.Edit(ctx, conv.ID, posts[0].ID, "post 1, edited")
		must(t, err)
		_, err = users[6].chat.Delete(ctx, conv.ID, posts[1].ID)
		must(t, err)
		done := func(evs []chatsdk.Event) bool {
			return count(evs, chatevents.MessageCreated) >= 5 && count(evs, chatevents.ReactionAdded) == 3 &&
				count(evs, chatevents.ReactionRemoved) == 1 && count(evs, chatevents.MessageEdited) == 1 &&
				count(evs, chatevents.MessageDeleted) == 1
		}
		// recovered: the events came from the log after the deletion, so
		// the deleted post's content must be gone from all of them.
		check := func(who string, evs []chatsdk.Event, created int, recovered bool) error {
			if got := count(evs, chatevents.MessageCreated); got != created {
				return fmt.Errorf("%s: %d posts, want %d", who, got, created)
			}
			seen := map[string]bool{}
			for _, ev := range evs {
				if seen[ev.ID] {
					return fmt.Errorf("%s: event %s (%s) delivered twice", who, ev.ID, ev.Type)
				}
				seen[ev.ID] = true
				switch {
				case ev.Type == chatevents.MessageDeleted && (ev.Message.Text != "" || !ev.Message.Deleted):
					return fmt.Errorf("%s: tombstone carries %+v", who, ev.Message)
				case recovered && ev.Message != nil && ev.Message.ID == posts[1].ID && ev.Message.Text != "":
					return fmt.Errorf("%s: deleted content %q reached it", who, ev.Message.Text)
				case ev.Type == chatevents.ReactionRemoved && ev.Reaction.Count != 2:
					return fmt.Errorf("%s: count after removal %d, want 2", who, ev.Reaction.Count)
				}
			}
			return nil
		}
		evs := waitAll(t, online, onlineIn, "the changes", done)
		for i, u := range online {
			if err := check(u.name, evs[i], 6, false); err != nil {
				t.Error(err)
			}
		}

		// The offline members reconnect and recover everything after the
		// last seq they saw (the first post).
		back := e.connectAll(t, conf, names[n-away:])
		backIn := subscribeAll(t, back, conv.ID, m0.Seq)
		evs = waitAll(t, back, backIn, "recovery", done)
		for i, u := range back {
			if err := check(u.name, evs[i], 5, true); err != nil {
				t.Error(err)
			}
		}
	})
}

// waitAll waits until pred holds for every inbox and returns each one's
// events.
func waitAll(t *testing.T, users []*user, inboxes []*inbox, what string, pred func([]chatsdk.Event) bool) [][]chatsdk.Event {
	t.Helper()
	out := make([][]chatsdk.Event, len(inboxes))
	for i, in := range inboxes {
		out[i] = in.wait(t, what+" at "+users[i].name, pred)
	}
	return out
}
