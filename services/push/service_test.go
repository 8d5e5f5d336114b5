package push_test

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/server/core"
	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/services/push"
)

func browserSub(t *testing.T, endpoint string) push.BrowserSubscription {
	t.Helper()
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var s push.BrowserSubscription
	s.Endpoint = endpoint
	s.Keys.P256dh = base64.RawURLEncoding.EncodeToString(k.PublicKey().Bytes())
	// Padded base64url, as some browsers send it.
	s.Keys.Auth = base64.URLEncoding.EncodeToString([]byte("0123456789abcdef"))
	return s
}

// TestServiceCommands covers the notification commands: the VAPID key,
// subscribe (validation and the per-user limit), settings (default,
// set, membership check) and unsubscribe.
func TestServiceCommands(t *testing.T) {
	ctx := context.Background()
	st, err := storage.Open(ctx, "sqlite::memory:", storage.Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	vapid := []byte{4, 1, 2, 3}
	svc, err := push.NewService(push.ServiceConfig{Store: st, VAPIDPublicKey: vapid, MaxSubscriptions: 2,
		Member: func(_ context.Context, conv, user string) error {
			if conv != "general" {
				return jsperr.Newf(jsperr.NotAMember, "%s not in %s", user, conv)
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	bob := core.Identity{User: "bob"}
	do := func(id core.Identity, req push.Request) (push.Reply, error) {
		b, _ := json.Marshal(req)
		out, err := svc.HandleCommand(ctx, id, b)
		if err != nil {
			return push.Reply{}, err
		}
		var rep push.Reply
		if err := json.Unmarshal(out, &rep); err != nil {
			t.Fatal(err)
		}
		return rep, nil
	}

	rep, err := do(bob, push.Request{Op: push.OpVAPIDKey})
	if err != nil || rep.VAPIDKey != base64.RawURLEncoding.EncodeToString(vapid) {
		t.Fatalf("vapid key %q %v", rep.VAPIDKey, err)
	}
	good := browserSub(t, "https://push.example.test/s/1")
	badKey, badAuth, badURL, httpURL := good, good, good, good
	badKey.Keys.P256dh = base64.RawURLEncoding.EncodeToString(make([]byte, 65))
	badAuth.Keys.Auth = "AAAA"
	badURL.Endpoint = "/relative"
	httpURL.Endpoint = "http://push.example.test/s/1"
	long := good
	long.Endpoint = "https://push.example.test/" + strings.Repeat("a", push.MaxEndpointLen)
	for name, tc := range map[string]struct {
		id   core.Identity
		req  push.Request
		code jsperr.Code
	}{
		"anonymous":       {core.Identity{}, push.Request{Op: push.OpVAPIDKey}, jsperr.Unauthenticated},
		"unknown op":      {bob, push.Request{Op: "push.nope"}, jsperr.BadRequest},
		"no subscription": {bob, push.Request{Op: push.OpSubscribe}, jsperr.PushSubscriptionInvalid},
		"key off curve":   {bob, push.Request{Op: push.OpSubscribe, Subscription: &badKey}, jsperr.PushSubscriptionInvalid},
		"short auth":      {bob, push.Request{Op: push.OpSubscribe, Subscription: &badAuth}, jsperr.PushSubscriptionInvalid},
		"relative URL":    {bob, push.Request{Op: push.OpSubscribe, Subscription: &badURL}, jsperr.PushSubscriptionInvalid},
		"http endpoint":   {bob, push.Request{Op: push.OpSubscribe, Subscription: &httpURL}, jsperr.PushSubscriptionInvalid},
		"long endpoint":   {bob, push.Request{Op: push.OpSubscribe, Subscription: &long}, jsperr.PushSubscriptionInvalid},
		"not a member":    {bob, push.Request{Op: push.OpSettingsGet, Conversation: "secret"}, jsperr.NotAMember},
		"no conversation": {bob, push.Request{Op: push.OpSettingsGet}, jsperr.BadRequest},
		"bad level":       {bob, push.Request{Op: push.OpSettingsSet, Conversation: "general", Level: "loud"}, jsperr.BadRequest},
		"unsubscribe unknown": {bob, push.Request{Op: push.OpUnsubscribe,
			Subscription: &push.BrowserSubscription{Endpoint: "https://x.test/none"}}, jsperr.NotFound},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := do(tc.id, tc.req); jsperr.CodeOf(err) != tc.code {
				t.Fatalf("err %v, want %v", err, tc.code)
			}
		})
	}
	if _, err := svc.HandleCommand(ctx, bob, []byte(strings.Repeat(" ", push.MaxRequestBytes+1))); jsperr.CodeOf(err) != jsperr.BadRequest {
		t.Fatalf("oversize command: %v", err)
	}

	for i, ep := range []string{"https://push.example.test/s/1", "https://push.example.test/s/2"} {
		s := browserSub(t, ep)
		if _, err := do(bob, push.Request{Op: push.OpSubscribe, Subscription: &s}); err != nil {
			t.Fatalf("subscribe %d: %v", i, err)
		}
	}
	// Re-subscribing a known endpoint replaces it; a third one is over
	// the limit.
	again, third := browserSub(t, "https://push.example.test/s/1"), browserSub(t, "https://push.example.test/s/3")
	if _, err := do(bob, push.Request{Op: push.OpSubscribe, Subscription: &again}); err != nil {
		t.Fatalf("re-subscribe: %v", err)
	}
	if _, err := do(bob, push.Request{Op: push.OpSubscribe, Subscription: &third}); jsperr.CodeOf(err) != jsperr.LimitExceeded {
		t.Fatalf("third subscription: %v", err)
	}
	subs, err := st.ListPushSubscriptions(ctx, "bob")
	if err != nil || len(subs) != 2 || len(subs[0].P256dh) != 65 || len(subs[0].Auth) != 16 {
		t.Fatalf("stored %+v %v", subs, err)
	}
	if _, err := do(bob, push.Request{Op: push.OpUnsubscribe, Subscription: &push.BrowserSubscription{Endpoint: "https://push.example.test/s/2"}}); err != nil {
		t.Fatal(err)
	}
	if subs, _ := st.ListPushSubscriptions(ctx, "bob"); len(subs) != 1 {
		t.Fatalf("after unsubscribe: %d", len(subs))
	}

	rep, err = do(bob, push.Request{Op: push.OpSettingsGet, Conversation: "general"})
	if err != nil || rep.Setting == nil || rep.Setting.Level != storage.NotifyAll {
		t.Fatalf("default setting %+v %v", rep.Setting, err)
	}
	if _, err := do(bob, push.Request{Op: push.OpSettingsSet, Conversation: "general", Level: storage.NotifyMentions, WhenOnline: true}); err != nil {
		t.Fatal(err)
	}
	rep, err = do(bob, push.Request{Op: push.OpSettingsGet, Conversation: "general"})
	if err != nil || rep.Setting.Level != storage.NotifyMentions || !rep.Setting.WhenOnline {
		t.Fatalf("setting %+v %v", rep.Setting, err)
	}
}
