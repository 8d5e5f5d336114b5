package webhook

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/server/core"
)

func command(t *testing.T, c *Commands, id core.Identity, req Request) (Reply, error) {
	t.Helper()
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.HandleCommand(context.Background(), id, b)
	if err != nil {
		return Reply{}, err
	}
	var rep Reply
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatal(err)
	}
	return rep, nil
}

// TestCommands runs every admin command: scope checks, create with a
// generated secret, list, a dead letter after MaxAttempts failures, its
// redelivery, and delete.
func TestCommands(t *testing.T) {
	f := newFixture(t)
	s := f.start(t)
	defer s.Stop()
	c := &Commands{Store: f.store, Service: s}
	admin := core.Identity{User: "root", Scopes: []string{AdminScope}}

	refusals := []struct {
		name string
		id   core.Identity
		body string
		code jsperr.Code
	}{
		{"anonymous", core.Identity{}, `{"op":"webhook.list"}`, jsperr.Unauthenticated},
		{"no admin scope", core.Identity{User: "bob", Scopes: []string{"chat"}}, `{"op":"webhook.list"}`, jsperr.Forbidden},
		{"not JSON", admin, `{`, jsperr.BadRequest},
		{"unknown op", admin, `{"op":"webhook.nope"}`, jsperr.BadRequest},
		{"limit over max", admin, `{"op":"webhook.list","limit":100000}`, jsperr.BadRequest},
		{"oversize", admin, `{"op":"webhook.list","id":"` + strings.Repeat("x", MaxCommandBytes) + `"}`, jsperr.BadRequest},
		{"short secret", admin, `{"op":"webhook.create","id":"w","url":"http://x","secret":"short","events":["*"]}`, jsperr.WebhookInvalid},
		{"bad filter", admin, `{"op":"webhook.create","id":"w","url":"http://x","events":["Message"]}`, jsperr.WebhookInvalid},
		{"delete unknown", admin, `{"op":"webhook.delete","id":"nope"}`, jsperr.NotFound},
		{"redeliver unknown", admin, `{"op":"webhook.redeliver","dead_letter":99}`, jsperr.NotFound},
		{"bad cursor", admin, `{"op":"webhook.dead_letters","after":"x"}`, jsperr.BadRequest},
	}
	for _, r := range refusals {
		t.Run(r.name, func(t *testing.T) {
			_, err := c.HandleCommand(context.Background(), r.id, []byte(r.body))
			if jsperr.CodeOf(err) != r.code {
				t.Fatalf("err %v, want %v", err, r.code)
			}
		})
	}

	// The receiver fails the first MaxAttempts (3) requests.
	rcv := newReceiver(t, "", func(n int) int {
		if n <= 3 {
			return 500
		}
		return 200
	})
	rep, err := command(t, c, admin, Request{Op: OpCreate, ID: "w1", URL: rcv.srv.URL, Events: []string{"message.*"}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Webhook == nil || len(rep.Webhook.Secret) != 2*GeneratedSecretLen {
		t.Fatalf("create: %+v", rep.Webhook)
	}
	rcv.mu.Lock()
	rcv.secret = []byte(rep.Webhook.Secret)
	rcv.mu.Unlock()
	rep, err = command(t, c, admin, Request{Op: OpList})
	if err != nil || len(rep.Webhooks) != 1 || rep.Webhooks[0].Secret != "" || rep.Webhooks[0].URL != rcv.srv.URL {
		t.Fatalf("list: %+v %v", rep.Webhooks, err)
	}

	f.publish(t, "message.created", 1, 1)
	var dls []DeadLetterInfo
	waitFor(t, "a dead letter", func() bool {
		rep, err := command(t, c, admin, Request{Op: OpDeadLetters, ID: "w1"})
		if err != nil {
			t.Fatal(err)
		}
		dls = rep.DeadLetters
		return len(dls) == 1
	})
	if d := dls[0]; d.EventID != "ev-1" || d.EventType != "message.created" || d.Attempts != 3 || len(d.Body) == 0 {
		t.Fatalf("dead letter %+v", d)
	}
	if _, err := command(t, c, admin, Request{Op: OpRedeliver, DeadLetter: dls[0].ID}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the redelivery", func() bool {
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		return rcv.ok["ev-1"] == 1
	})
	if _, _, _, bad := rcv.counts(); len(bad) != 0 {
		t.Fatalf("bad requests: %v", bad)
	}
	rep, err = command(t, c, admin, Request{Op: OpDeadLetters})
	if err != nil || len(rep.DeadLetters) != 0 {
		t.Fatalf("dead letters after redelivery: %+v %v", rep.DeadLetters, err)
	}
	if _, err := command(t, c, admin, Request{Op: OpDelete, ID: "w1"}); err != nil {
		t.Fatal(err)
	}
	if rep, err := command(t, c, admin, Request{Op: OpList}); err != nil || len(rep.Webhooks) != 0 {
		t.Fatalf("list after delete: %+v %v", rep.Webhooks, err)
	}
}
