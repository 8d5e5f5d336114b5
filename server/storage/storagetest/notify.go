package storagetest

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/server/storage"
)

func deepEqual(t testing.TB, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

func hook(id string, types ...string) storage.Webhook {
	return storage.Webhook{ID: id, URL: "https://example.test/hooks/" + id, Secret: []byte("secret-" + id), EventTypes: types}
}

var notifyTests = []test{
	{"WebhookPutGetList", func(t *testing.T, e *env) {
		s := e.open()
		_, err := s.GetWebhook(ctx, "w1")
		mustIs(t, err, storage.ErrNotFound)
		created := e.clock.Now()
		w1, err := s.PutWebhook(ctx, hook("w1", "message.created", "reaction.*"))
		must(t, err)
		want := hook("w1", "message.created", "reaction.*")
		want.Created, want.Updated = created, created
		deepEqual(t, "put", w1, want)
		got, err := s.GetWebhook(ctx, "w1")
		must(t, err)
		deepEqual(t, "get", got, want)

		// Replacing keeps Created and moves Updated.
		e.clock.Advance(time.Minute)
		upd := hook("w1", "*")
		upd.URL, upd.Disabled = "http://127.0.0.1:9/x", true
		got, err = s.PutWebhook(ctx, upd)
		must(t, err)
		upd.Created, upd.Updated = created, e.clock.Now()
		deepEqual(t, "replaced", got, upd)

		for _, id := range []string{"w3", "w2"} {
			_, err := s.PutWebhook(ctx, hook(id, "*"))
			must(t, err)
		}
		page, err := s.ListWebhooks(ctx, "", 2)
		must(t, err)
		equal(t, "page 1", len(page), 2)
		equal(t, "page 1 ids", page[0].ID+","+page[1].ID, "w1,w2")
		page, err = s.ListWebhooks(ctx, "w2", 0)
		must(t, err)
		equal(t, "page 2", len(page), 1)
		equal(t, "page 2 id", page[0].ID, "w3")
	}},
	{"WebhookInvalid", func(t *testing.T, e *env) {
		s := e.open()
		for name, w := range map[string]storage.Webhook{
			"no id":        {URL: "https://a.test/", Secret: []byte("k"), EventTypes: []string{"*"}},
			"no url":       {ID: "w", Secret: []byte("k"), EventTypes: []string{"*"}},
			"relative url": {ID: "w", URL: "/hooks", Secret: []byte("k"), EventTypes: []string{"*"}},
			"ftp url":      {ID: "w", URL: "ftp://a.test/", Secret: []byte("k"), EventTypes: []string{"*"}},
			"long url":     {ID: "w", URL: "https://a.test/" + strings.Repeat("x", storage.MaxWebhookURLLen), Secret: []byte("k"), EventTypes: []string{"*"}},
			"no secret":    {ID: "w", URL: "https://a.test/", EventTypes: []string{"*"}},
			"long secret":  {ID: "w", URL: "https://a.test/", Secret: make([]byte, storage.MaxWebhookSecretLen+1), EventTypes: []string{"*"}},
			"no filter":    {ID: "w", URL: "https://a.test/", Secret: []byte("k")},
			"empty type":   {ID: "w", URL: "https://a.test/", Secret: []byte("k"), EventTypes: []string{""}},
			"many types":   {ID: "w", URL: "https://a.test/", Secret: []byte("k"), EventTypes: make([]string, storage.MaxWebhookEventTypes+1)},
		} {
			_, err := s.PutWebhook(ctx, w)
			if !errors.Is(err, storage.ErrInvalid) {
				t.Errorf("%s: err = %v, want ErrInvalid", name, err)
			}
		}
	}},
	{"DeadLetters", func(t *testing.T, e *env) {
		s := e.open()
		for _, id := range []string{"a", "b"} {
			_, err := s.PutWebhook(ctx, hook(id, "*"))
			must(t, err)
		}
		var ids []storage.DeadLetterID
		for i, w := range []string{"a", "b", "a"} {
			id, err := s.AddDeadLetter(ctx, storage.DeadLetter{
				WebhookID: w, EventID: "ev" + string(rune('1'+i)), EventType: "message.created",
				Payload: []byte(`{"n":1}`), Attempts: 8, LastError: "status 500",
			})
			must(t, err)
			ids = append(ids, id)
		}
		if !(ids[0] < ids[1] && ids[1] < ids[2]) {
			t.Fatalf("ids not increasing: %v", ids)
		}
		all, err := s.ListDeadLetters(ctx, "", 0, 0)
		must(t, err)
		equal(t, "all", len(all), 3)
		want := storage.DeadLetter{ID: ids[0], WebhookID: "a", EventID: "ev1", EventType: "message.created",
			Payload: []byte(`{"n":1}`), Attempts: 8, LastError: "status 500", Time: e.clock.Now()}
		deepEqual(t, "first", all[0], want)
		onlyA, err := s.ListDeadLetters(ctx, "a", 0, 0)
		must(t, err)
		equal(t, "a's", len(onlyA), 2)
		after, err := s.ListDeadLetters(ctx, "a", ids[0], 0)
		must(t, err)
		equal(t, "a's after first", len(after), 1)
		equal(t, "a's after first id", after[0].ID, ids[2])

		must(t, s.DeleteDeadLetter(ctx, ids[0]))
		mustIs(t, s.DeleteDeadLetter(ctx, ids[0]), storage.ErrNotFound)

		// Deleting a webhook removes its dead letters.
		must(t, s.DeleteWebhook(ctx, "a"))
		mustIs(t, s.DeleteWebhook(ctx, "a"), storage.ErrNotFound)
		all, err = s.ListDeadLetters(ctx, "", 0, 0)
		must(t, err)
		equal(t, "after delete", len(all), 1)
		equal(t, "left", all[0].WebhookID, "b")

		_, err = s.AddDeadLetter(ctx, storage.DeadLetter{WebhookID: "b", EventID: "x", EventType: "t",
			Payload: make([]byte, storage.MaxDeadLetterBytes+1)})
		mustIs(t, err, storage.ErrTooLarge)
		_, err = s.AddDeadLetter(ctx, storage.DeadLetter{WebhookID: "b", EventType: "t"})
		mustIs(t, err, storage.ErrInvalid)
	}},
	{"PushSubscriptions", func(t *testing.T, e *env) {
		s := e.open()
		sub := storage.PushSubscription{UserID: "alice", Endpoint: "https://push.test/b", P256dh: []byte{4, 1, 2}, Auth: []byte{9, 9}}
		must(t, s.PutPushSubscription(ctx, sub))
		must(t, s.PutPushSubscription(ctx, storage.PushSubscription{UserID: "alice", Endpoint: "https://push.test/a", Provider: "fcm"}))
		must(t, s.PutPushSubscription(ctx, storage.PushSubscription{UserID: "bob", Endpoint: "https://push.test/a"}))
		// Replacing updates the keys.
		sub.Auth = []byte{7}
		must(t, s.PutPushSubscription(ctx, sub))
		got, err := s.ListPushSubscriptions(ctx, "alice")
		must(t, err)
		now := e.clock.Now()
		deepEqual(t, "alice", got, []storage.PushSubscription{
			{UserID: "alice", Endpoint: "https://push.test/a", P256dh: []byte{}, Auth: []byte{}, Provider: "fcm", Created: now},
			{UserID: "alice", Endpoint: "https://push.test/b", P256dh: []byte{4, 1, 2}, Auth: []byte{7}, Provider: "webpush", Created: now},
		})
		must(t, s.DeletePushSubscription(ctx, "alice", "https://push.test/a"))
		mustIs(t, s.DeletePushSubscription(ctx, "alice", "https://push.test/a"), storage.ErrNotFound)
		got, err = s.ListPushSubscriptions(ctx, "alice")
		must(t, err)
		equal(t, "after delete", len(got), 1)
		got, err = s.ListPushSubscriptions(ctx, "bob")
		must(t, err)
		equal(t, "bob", len(got), 1)
		mustIs(t, s.PutPushSubscription(ctx, storage.PushSubscription{UserID: "alice", Endpoint: "not a url"}), storage.ErrInvalid)
		mustIs(t, s.PutPushSubscription(ctx, storage.PushSubscription{UserID: "alice", Endpoint: "https://push.test/c",
			P256dh: make([]byte, storage.MaxPushKeyLen+1)}), storage.ErrInvalid)
	}},
	{"NotifySettings", func(t *testing.T, e *env) {
		s := e.open()
		_, err := s.GetNotifySetting(ctx, "alice", "room")
		mustIs(t, err, storage.ErrNotFound)
		must(t, s.PutNotifySetting(ctx, storage.NotifySetting{UserID: "alice", Conversation: "room", Level: storage.NotifyMentions}))
		e.clock.Advance(time.Second)
		must(t, s.PutNotifySetting(ctx, storage.NotifySetting{UserID: "alice", Conversation: "room", Level: storage.NotifyNone, WhenOnline: true}))
		got, err := s.GetNotifySetting(ctx, "alice", "room")
		must(t, err)
		equal(t, "setting", got, storage.NotifySetting{UserID: "alice", Conversation: "room", Level: storage.NotifyNone,
			WhenOnline: true, Updated: e.clock.Now()})
		_, err = s.GetNotifySetting(ctx, "alice", "other")
		mustIs(t, err, storage.ErrNotFound)
		mustIs(t, s.PutNotifySetting(ctx, storage.NotifySetting{UserID: "alice", Conversation: "room", Level: "loud"}), storage.ErrInvalid)
		mustIs(t, s.PutNotifySetting(ctx, storage.NotifySetting{UserID: "alice", Level: storage.NotifyAll}), storage.ErrInvalid)
	}},
}
