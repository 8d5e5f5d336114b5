package main

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/jetstreamproto/jsp/client"
	chatsdk "github.com/jetstreamproto/jsp/client/chat"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/security/token"
	"github.com/jetstreamproto/jsp/server/gateway"
	"github.com/jetstreamproto/jsp/services/chatevents"
	"github.com/jetstreamproto/jsp/services/events"
	"github.com/jetstreamproto/jsp/services/push"
	"github.com/jetstreamproto/jsp/services/push/webpush"
	"github.com/jetstreamproto/jsp/services/webhook"
)

// receiver records the requests of a webhook or a push service.
type receiver struct {
	mu   sync.Mutex
	reqs map[string][]recorded // by path; guarded by mu
	srv  *httptest.Server
}

type recorded struct {
	header http.Header
	body   []byte
}

// newReceiver starts a receiver answering status; the caller closes srv
// (before the goroutine leak check runs).
func newReceiver(status int) *receiver {
	r := &receiver{reqs: map[string][]recorded{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(io.LimitReader(req.Body, events.MaxEventBytes))
		r.mu.Lock()
		r.reqs[req.URL.Path] = append(r.reqs[req.URL.Path], recorded{req.Header.Clone(), b})
		r.mu.Unlock()
		w.WriteHeader(status)
	}))
	return r
}

func (r *receiver) get(path string) []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded(nil), r.reqs[path]...)
}

// waitN waits until path received n requests.
func (r *receiver) waitN(t *testing.T, path string, n int) []recorded {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if got := r.get(path); len(got) >= n {
			return got
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s received %d requests, want %d", path, len(r.get(path)), n)
	return nil
}

// browser is one Web Push subscriber: its key pair and auth secret.
type browser struct {
	key  *ecdh.PrivateKey
	auth []byte
	sub  chatsdk.PushSubscription
}

func newBrowser(t *testing.T, endpoint string) *browser {
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b := &browser{key: k, auth: make([]byte, 16)}
	_, _ = rand.Read(b.auth)
	b.sub.Endpoint = endpoint
	b.sub.Keys.P256dh = base64.RawURLEncoding.EncodeToString(k.PublicKey().Bytes())
	b.sub.Keys.Auth = base64.RawURLEncoding.EncodeToString(b.auth)
	return b
}

// open decrypts one push request after checking its VAPID key.
func (b *browser) open(t *testing.T, r recorded, vapid []byte) push.Payload {
	t.Helper()
	if h := r.header.Get("Authorization"); !strings.HasPrefix(h, "vapid t=") ||
		!strings.HasSuffix(h, "k="+base64.RawURLEncoding.EncodeToString(vapid)) {
		t.Fatalf("Authorization %q does not carry the server's VAPID key", h)
	}
	if ce := r.header.Get("Content-Encoding"); ce != "aes128gcm" {
		t.Fatalf("Content-Encoding %q", ce)
	}
	plain, err := webpush.Decrypt(b.key, b.auth, r.body)
	if err != nil {
		t.Fatalf("decrypt: %v", err)
	}
	var p push.Payload
	if err := json.Unmarshal(plain, &p); err != nil {
		t.Fatalf("notification %q: %v", plain, err)
	}
	return p
}

// TestEventsEndToEnd runs `jsp server` in-process (gateway, core,
// embedded NATS, SQLite) with a webhook receiver and a local push
// service: alice, an administrator, registers a webhook; bob (mentions
// only) and carol (muted) subscribe to Web Push and go offline; alice
// posts through the SDK. The webhook gets message.created signed, bob's
// endpoint gets decryptable notifications for the mentions, carol's gets
// nothing.
func TestEventsEndToEnd(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	hooks := newReceiver(http.StatusNoContent)
	defer hooks.srv.Close()
	pushSvc := newReceiver(http.StatusCreated)
	defer pushSvc.srv.Close()
	dir := t.TempDir()
	keyFile, key := writeTokenKey(t, dir)
	f := serverFlags{dataDir: dir, quic: "off", tcp: "127.0.0.1:0", ws: "off", wsPath: "/jsp",
		drainGrace: 100 * time.Millisecond, maxSessions: 10, maxConnsPerIP: 10, logLevel: "error",
		authMode: "anonymous", tokenKeys: []string{keyFile}, audience: "events-test", maxHandshakesPerIP: 8,
		node: nodeFlags{role: roleAll, cluster: "jsp", db: defaultDSN(dir),
			events: eventsFlags{vapidSubject: "mailto:ops@example.test", pushAllowHTTP: true}}}
	cfg, err := f.config(io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	out := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runNode(ctx, f.node, cfg, out, nil) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server: %v", err)
		}
	}()
	banner := waitOutput(t, out, "SPKI pin")
	addr, _ := bannerTarget(t, banner, "jsp+tcp")
	pin := regexp.MustCompile(`SPKI pin +(\S+)`).FindStringSubmatch(banner)[1]

	sign := func(user string, scopes ...string) string {
		tok, err := token.Sign(key, token.Claims{Audience: "events-test", Subject: user, Scopes: scopes,
			NotBefore: time.Now().Add(-time.Minute), Expiry: time.Now().Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	dial := func(user string, scopes ...string) (*client.Client, *chatsdk.Client) {
		tok := sign(user, scopes...)
		df := dialFlags{pins: []string{pin}, timeout: 10 * time.Second, logLevel: "error"}
		o, err := df.options(io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		o.Info.Auth = []byte(tok)
		c, err := client.Dial(ctx, "jsp+tcp://"+addr, o)
		if err != nil {
			t.Fatal(err)
		}
		x := chatsdk.New(c)
		if _, err := x.Me(ctx); err != nil {
			t.Fatal(err)
		}
		return c, x
	}
	ac, alice := dial("alice", webhook.AdminScope)
	defer ac.Close()
	bc, bob := dial("bob")
	cc, carol := dial("carol")

	// Webhooks are admin only.
	const secret = "0123456789abcdef-secret"
	if _, err := bob.CreateWebhook(ctx, "w0", hooks.srv.URL+"/bob", secret, []string{"*"}); jsperr.CodeOf(err) != jsperr.Forbidden {
		t.Fatalf("bob creates a webhook: %v, want FORBIDDEN", err)
	}
	if _, err := alice.CreateWebhook(ctx, "w1", hooks.srv.URL+"/hook", secret, []string{"message.*"}); err != nil {
		t.Fatal(err)
	}
	if ws, err := alice.ListWebhooks(ctx, "", 0); err != nil || len(ws) != 1 || ws[0].ID != "w1" || ws[0].Secret != "" {
		t.Fatalf("list webhooks: %+v %v", ws, err)
	}

	conv, err := alice.Create(ctx, chatevents.KindGroup, "team", "", "bob", "carol")
	if err != nil {
		t.Fatal(err)
	}
	vapid, err := bob.VAPIDKey(ctx)
	if err != nil || len(vapid) != 65 {
		t.Fatalf("VAPID key %x: %v", vapid, err)
	}
	bobB, carolB := newBrowser(t, pushSvc.srv.URL+"/bob"), newBrowser(t, pushSvc.srv.URL+"/carol")
	if err := bob.PushSubscribe(ctx, bobB.sub); err != nil {
		t.Fatal(err)
	}
	if err := carol.PushSubscribe(ctx, carolB.sub); err != nil {
		t.Fatal(err)
	}
	bad := bobB.sub
	bad.Keys.Auth = "AAAA"
	if err := bob.PushSubscribe(ctx, bad); jsperr.CodeOf(err) != jsperr.PushSubscriptionInvalid {
		t.Fatalf("bad subscription: %v", err)
	}
	if s, err := bob.NotifySettings(ctx, conv.ID); err != nil || s.Level != chatsdk.NotifyAll {
		t.Fatalf("default setting %+v %v", s, err)
	}
	if err := bob.SetNotifySettings(ctx, conv.ID, chatsdk.NotifyMentions, false); err != nil {
		t.Fatal(err)
	}
	if err := carol.SetNotifySettings(ctx, conv.ID, chatsdk.NotifyMuted, false); err != nil {
		t.Fatal(err)
	}
	if s, err := carol.NotifySettings(ctx, conv.ID); err != nil || s.Level != chatsdk.NotifyMuted {
		t.Fatalf("carol's setting %+v %v", s, err)
	}
	if err := alice.SetNotifySettings(ctx, "no-such-conversation", chatsdk.NotifyMuted, false); jsperr.CodeOf(err) != jsperr.NotAMember {
		t.Fatalf("setting outside a conversation: %v", err)
	}

	// bob and carol go offline.
	_ = bc.Close()
	_ = cc.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ps, err := alice.Presence(ctx, "bob", "carol")
		if err == nil && len(ps) == 2 && ps[0].Status == "offline" && ps[1].Status == "offline" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("presence %+v %v", ps, err)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Not a mention: bob (mentions only) and carol (muted) get nothing.
	if _, err := alice.Post(ctx, conv.ID, "good morning"); err != nil {
		t.Fatal(err)
	}
	p1, err := alice.Post(ctx, conv.ID, "hi @bob, ship it")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Post(ctx, conv.ID, "@channel standup"); err != nil {
		t.Fatal(err)
	}

	got := hooks.waitN(t, "/hook", 3)
	for i, r := range got[:3] {
		if err := webhook.Verify([]byte(secret), r.header.Get("Jsp-Signature"), r.body, time.Now(), 0); err != nil {
			t.Fatalf("webhook %d signature: %v", i, err)
		}
		ev, err := chatevents.DecodeLogged(r.body)
		if err != nil {
			t.Fatalf("webhook %d body: %v", i, err)
		}
		if ev.Type != chatevents.MessageCreated || r.header.Get("Jsp-Event-Type") != "message.created" || ev.Conversation != conv.ID {
			t.Fatalf("webhook %d: %s %s", i, ev.Type, ev.Conversation)
		}
		if i == 1 && (ev.Message == nil || ev.Message.Text != "hi @bob, ship it" || ev.Message.ID != p1.ID ||
			len(ev.Message.Mentions) != 1 || ev.Message.Mentions[0] != "bob") {
			t.Fatalf("webhook message %+v", ev.Message)
		}
	}

	// The push consumer decides the recipients of each event in log
	// order and enqueues their sends, so once bob's second notification
	// is in, any send to carol was enqueued before it; workers run
	// concurrently, so the wait for its arrival is bounded but not exact.
	bobGot := pushSvc.waitN(t, "/bob", 2)
	for range 25 {
		if len(pushSvc.get("/carol")) != 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	n1, n2 := bobB.open(t, bobGot[0], vapid), bobB.open(t, bobGot[1], vapid)
	// Concurrent workers may deliver the two sends in either order.
	if n1.Text == "@channel standup" {
		n1, n2 = n2, n1
		bobGot[0], bobGot[1] = bobGot[1], bobGot[0]
	}
	if n1.Type != "message.created" || n1.Conversation != conv.ID || n1.Actor != "alice" || n1.Text != "hi @bob, ship it" || !n1.Mentioned {
		t.Fatalf("bob's first notification %+v", n1)
	}
	if n2.Text != "@channel standup" || !n2.Mentioned {
		t.Fatalf("bob's second notification %+v", n2)
	}
	if u := bobGot[0].header.Get("Urgency"); u != "high" {
		t.Fatalf("mention urgency %q", u)
	}
	if n := len(pushSvc.get("/carol")); n != 0 {
		t.Fatalf("muted carol got %d notifications", n)
	}
	if n := len(pushSvc.get("/bob")); n != 2 {
		t.Fatalf("bob got %d notifications, want 2", n)
	}
	if dl, err := alice.DeadLetters(ctx, "", 0, 0); err != nil || len(dl) != 0 {
		t.Fatalf("dead letters %+v %v", dl, err)
	}
	// The CLI: jsp admin webhook list and delete.
	cli := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		cmd := newAdminCmd()
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		cmd.SetArgs(append(args, "--token", sign("root", webhook.AdminScope), "--pin", pin))
		if err := cmd.ExecuteContext(ctx); err != nil {
			t.Fatalf("jsp admin %s: %v\n%s", strings.Join(args, " "), err, out.String())
		}
		return out.String()
	}
	url := "jsp+tcp://" + addr
	if got := cli("webhook", "list", url); !strings.Contains(got, "w1  "+hooks.srv.URL+"/hook  message.*  enabled") {
		t.Fatalf("webhook list:\n%s", got)
	}
	if got := cli("webhook", "create", url, "w2", hooks.srv.URL+"/two", "--event", "member.*"); !regexp.MustCompile(`secret [0-9a-f]{64} \(shown once\)`).MatchString(got) {
		t.Fatalf("webhook create:\n%s", got)
	}
	if got := cli("webhook", "dead-letters", url); strings.Count(got, "\n") != 1 {
		t.Fatalf("dead letters:\n%s", got)
	}
	cli("webhook", "delete", url, "w2")
	if err := alice.DeleteWebhook(ctx, "w1"); err != nil {
		t.Fatal(err)
	}
	if ws, err := alice.ListWebhooks(ctx, "", 0); err != nil || len(ws) != 0 {
		t.Fatalf("webhooks after delete: %+v %v", ws, err)
	}
}

// TestAdminScopeMatchesGateway keeps the webhook commands' scope the
// gateway's admin scope.
func TestAdminScopeMatchesGateway(t *testing.T) {
	if webhook.AdminScope != gateway.AdminScope {
		t.Fatalf("webhook.AdminScope %q, gateway.AdminScope %q", webhook.AdminScope, gateway.AdminScope)
	}
}
