package push_test

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/server/bus/membus"
	"github.com/jetstreamproto/jsp/server/storage"
	_ "github.com/jetstreamproto/jsp/server/storage/sqlite"
	"github.com/jetstreamproto/jsp/services/events"
	"github.com/jetstreamproto/jsp/services/push"
	"github.com/jetstreamproto/jsp/services/push/webpush"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.DiscardHandler)

// device is one browser: a push service endpoint on a shared local
// server, and the keys to decrypt what arrives there.
type device struct {
	ua   *ecdh.PrivateKey
	auth []byte
	got  []push.Payload
	errs []string
}

// browsers is a local push service that decrypts each message with the
// subscriber's private key, as the browser would.
type browsers struct {
	srv     *httptest.Server
	mu      sync.Mutex
	devices map[string]*device // path -> device
	gone    map[string]bool    // path -> answer 410
	fail    map[string]int     // path -> 503 answers still to give
}

func newBrowsers(t *testing.T) *browsers {
	b := &browsers{devices: map[string]*device{}, gone: map[string]bool{}, fail: map[string]int{}}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.gone[r.URL.Path] {
			w.WriteHeader(http.StatusGone)
			return
		}
		if b.fail[r.URL.Path] > 0 {
			b.fail[r.URL.Path]--
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		d := b.devices[r.URL.Path]
		if d == nil {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		if !strings.HasPrefix(r.Header.Get("Authorization"), "vapid t=") || r.Header.Get("Content-Encoding") != "aes128gcm" {
			d.errs = append(d.errs, "missing vapid or encoding")
		}
		plain, err := webpush.Decrypt(d.ua, d.auth, body)
		if err != nil {
			d.errs = append(d.errs, err.Error())
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		var p push.Payload
		if err := json.Unmarshal(plain, &p); err != nil {
			d.errs = append(d.errs, err.Error())
		}
		d.got = append(d.got, p)
		w.WriteHeader(http.StatusCreated)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

// subscribe registers a device for user and stores its subscription.
func (b *browsers) subscribe(t *testing.T, st storage.Store, user string) *device {
	t.Helper()
	ua, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	d := &device{ua: ua, auth: make([]byte, webpush.AuthLen)}
	rand.Read(d.auth)
	path := "/sub/" + user
	b.mu.Lock()
	b.devices[path] = d
	b.mu.Unlock()
	if err := st.PutPushSubscription(context.Background(), storage.PushSubscription{UserID: user, Endpoint: b.srv.URL + path,
		P256dh: ua.PublicKey().Bytes(), Auth: d.auth}); err != nil {
		t.Fatal(err)
	}
	return d
}

func (b *browsers) received(d *device) ([]push.Payload, []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(d.got), slices.Clone(d.errs)
}

type presence map[string]bool

func (p presence) Online(_ context.Context, u string) (bool, error) { return p[u], nil }

type members []string

func (m members) Members(context.Context, string) ([]string, error) { return m, nil }

// phone is the fake for a phone push service (APNs/FCM): those are not
// reachable from a test, so only their interface is exercised.
type phone struct {
	mu  sync.Mutex
	got []push.Subscription
}

func (p *phone) Send(_ context.Context, s push.Subscription, _ push.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.got = append(p.got, s)
	return nil
}

type fixture struct {
	st       storage.Store
	browsers *browsers
	phone    *phone
	n        *push.Notifier
	devices  map[string]*device
}

// newFixture sets up room "general" with:
//
//	alice  actor
//	bob    offline, default (all)
//	carol  online, default: no push
//	dave   offline, mentions only
//	erin   offline, muted
//	frank  online, all + WhenOnline
//	gina   offline, subscription gone (410)
//	ivan   offline, phone subscription (fcm)
func newFixture(t *testing.T) *fixture { return newFixtureQueue(t, nil) }

func newFixtureQueue(t *testing.T, q bus.WorkQueue) *fixture {
	ctx := context.Background()
	st, err := storage.Open(ctx, "sqlite::memory:", storage.Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{st: st, browsers: newBrowsers(t), phone: &phone{}, devices: map[string]*device{}}
	for _, u := range []string{"alice", "bob", "carol", "dave", "erin", "frank", "gina"} {
		f.devices[u] = f.browsers.subscribe(t, st, u)
	}
	f.browsers.gone["/sub/gina"] = true
	if err := st.PutPushSubscription(ctx, storage.PushSubscription{UserID: "ivan", Endpoint: "https://fcm.test/tok1", Provider: "fcm"}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []storage.NotifySetting{
		{UserID: "dave", Conversation: "general", Level: storage.NotifyMentions},
		{UserID: "erin", Conversation: "general", Level: storage.NotifyNone},
		{UserID: "frank", Conversation: "general", Level: storage.NotifyAll, WhenOnline: true},
		{UserID: "bob", Conversation: "other", Level: storage.NotifyNone}, // another room's setting
	} {
		if err := st.PutNotifySetting(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	key, err := webpush.GenerateVAPIDKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	wp, err := webpush.New(webpush.Config{VAPIDKey: key, Subject: "mailto:ops@example.test", AllowHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(wp.CloseIdleConnections)
	f.n, err = push.NewNotifier(push.NotifierConfig{
		Store: st, Presence: presence{"carol": true, "frank": true},
		Members:   members{"alice", "bob", "carol", "dave", "erin", "frank", "gina", "ivan"},
		Providers: map[string]push.Provider{push.ProviderWebPush: wp, "fcm": f.phone}, Logger: quiet, Queue: q,
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestNotifyRecipientsAndDelivery(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		notice  push.Notice
		want    []string
		removed int
	}{
		{"plain message", push.Notice{Type: "message.created", EventID: "e1", Conversation: "general", Actor: "alice", Text: "hello"},
			[]string{"bob", "frank", "gina", "ivan"}, 1},
		{"mention of dave", push.Notice{Type: "message.created", EventID: "e2", Conversation: "general", Actor: "alice", Text: "hi @dave", Mentions: []string{"dave"}},
			[]string{"bob", "dave", "frank", "gina", "ivan"}, 0},
		{"@channel", push.Notice{Type: "message.created", EventID: "e3", Conversation: "general", Actor: "bob", Text: "@channel lunch", MentionChannel: true},
			[]string{"alice", "dave", "frank", "gina", "ivan"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := f.n.Notify(ctx, tc.notice)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(res.Recipients, tc.want) {
				t.Fatalf("recipients %v, want %v", res.Recipients, tc.want)
			}
			if res.Removed != tc.removed || res.Failed != 0 {
				t.Fatalf("result %+v", res)
			}
		})
	}
	// What each browser decrypted.
	for u, want := range map[string][]string{
		"alice": {"e3"}, "bob": {"e1", "e2"}, "carol": nil, "dave": {"e2", "e3"}, "erin": nil, "frank": {"e1", "e2", "e3"}, "gina": nil,
	} {
		got, errs := f.browsers.received(f.devices[u])
		var ids []string
		for _, p := range got {
			ids = append(ids, p.EventID)
			if p.Conversation != "general" || p.Type != "message.created" {
				t.Errorf("%s got %+v", u, p)
			}
		}
		if !slices.Equal(ids, want) || len(errs) > 0 {
			t.Errorf("%s received %v (errors %v), want %v", u, ids, errs, want)
		}
	}
	got, _ := f.browsers.received(f.devices["dave"])
	if !got[0].Mentioned || got[0].Text != "hi @dave" {
		t.Errorf("dave's mention: %+v", got[0])
	}
	// Gina's subscription answered 410 and was removed: later notices
	// skip it.
	if subs, _ := f.st.ListPushSubscriptions(ctx, "gina"); len(subs) != 0 {
		t.Errorf("gone subscription kept: %v", subs)
	}
	f.phone.mu.Lock()
	if len(f.phone.got) != 3 || f.phone.got[0].Endpoint != "https://fcm.test/tok1" {
		t.Errorf("phone provider got %v", f.phone.got)
	}
	f.phone.mu.Unlock()
}

func TestPreviewIsCapped(t *testing.T) {
	f := newFixture(t)
	text := strings.Repeat("é", push.DefaultMaxPreview) // 2 bytes each
	if _, err := f.n.Notify(context.Background(), push.Notice{Type: "message.created", Conversation: "general", Actor: "alice", Text: text}); err != nil {
		t.Fatal(err)
	}
	got, _ := f.browsers.received(f.devices["bob"])
	if len(got) != 1 || len(got[0].Text) != push.DefaultMaxPreview || !strings.HasPrefix(text, got[0].Text) {
		t.Fatalf("preview of %d bytes", len(got[0].Text))
	}
}

// TestHandleEventFromLog runs the notifier as a durable event consumer.
func TestHandleEventFromLog(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	b, err := membus.New(membus.Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	subj, _ := bus.NewSubjects("c1")
	log, err := events.OpenLog(ctx, b, subj, nil)
	if err != nil {
		t.Fatal(err)
	}
	pub := events.NewPublisher(log, events.PublisherConfig{})
	for _, ev := range []events.Event{
		{Type: "reaction.added", Conversation: "general", Actor: "alice"}, // not a notifying type
		{Type: "message.created", ID: "m1", Conversation: "general", Actor: "alice",
			Payload: json.RawMessage(`{"text":"ping @dave","mentions":["dave"]}`)},
		{Type: "message.created", ID: "m2", Conversation: "general", Actor: "alice", Payload: json.RawMessage(`{"mentions":"not a list"}`)},
	} {
		if _, _, err := pub.Publish(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	c, err := events.Consume(ctx, log, events.ConsumerConfig{Name: "push", Handler: f.n.HandleEvent, Cursors: &events.MemCursors{}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for c.Position() < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	c.Stop()
	got, _ := f.browsers.received(f.devices["dave"])
	if len(got) != 1 || got[0].EventID != "m1" || !got[0].Mentioned {
		t.Fatalf("dave got %+v", got)
	}
	if got, _ := f.browsers.received(f.devices["bob"]); len(got) != 1 {
		t.Fatalf("bob got %d notifications, want 1", len(got))
	}
}

func TestNewNotifierValidates(t *testing.T) {
	if _, err := push.NewNotifier(push.NotifierConfig{}); err == nil {
		t.Error("empty config accepted")
	}
	st, err := storage.Open(context.Background(), "sqlite::memory:", storage.Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_, err = push.NewNotifier(push.NotifierConfig{Store: st, Presence: presence{}, Members: members{},
		Providers: map[string]push.Provider{"x": &phone{}}, Types: []string{"Bad"}})
	if err == nil {
		t.Error("bad type filter accepted")
	}
	if _, err := push.NoticeFromEvent(events.Event{Type: "message.created", ID: "x"}); err == nil {
		t.Error("event without conversation accepted")
	}
	if !errors.Is(push.Gone("https://x", 410), push.ErrGone) {
		t.Error("Gone does not wrap ErrGone")
	}
}

// TestQueuedDelivery sends through the push work queue: a push service
// that answers 503 twice is retried, a gone subscription is removed, and a
// repeated notice (the event consumer is at least once) is sent once.
func TestQueuedDelivery(t *testing.T) {
	ctx := context.Background()
	b, err := membus.New(membus.Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	subj, _ := bus.NewSubjects("c1")
	q, err := push.OpenQueue(ctx, b, subj, func(c *bus.WorkQueueConfig) { c.Backoff = []time.Duration{10 * time.Millisecond} })
	if err != nil {
		t.Fatal(err)
	}
	f := newFixtureQueue(t, q)
	f.browsers.mu.Lock()
	f.browsers.fail["/sub/bob"] = 2
	f.browsers.mu.Unlock()
	workers, err := f.n.StartWorkers(ctx, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer workers.Stop()
	notice := push.Notice{Type: "message.created", EventID: "q1", Conversation: "general", Actor: "alice", Text: "queued"}
	for i := range 2 {
		res, err := f.n.Notify(ctx, notice)
		if err != nil {
			t.Fatal(err)
		}
		// bob, frank, gina, ivan; the repeat may find gina's gone
		// subscription already removed.
		if i == 0 && res.Queued != 4 || res.Queued < 3 || res.Sent != 0 {
			t.Fatalf("notice %d: result %+v", i, res)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		bob, _ := f.browsers.received(f.devices["bob"])
		frank, _ := f.browsers.received(f.devices["frank"])
		subs, _ := f.st.ListPushSubscriptions(ctx, "gina")
		f.phone.mu.Lock()
		phone := len(f.phone.got)
		f.phone.mu.Unlock()
		if len(bob) == 1 && len(frank) == 1 && len(subs) == 0 && phone == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bob %d, frank %d notifications, gina %d subscriptions", len(bob), len(frank), len(subs))
		}
		time.Sleep(5 * time.Millisecond)
	}
	// A duplicate job would be taken at once by an idle worker; give it
	// the time to show.
	time.Sleep(200 * time.Millisecond)
	workers.Stop()
	if got, _ := f.browsers.received(f.devices["bob"]); len(got) != 1 || got[0].Text != "queued" {
		t.Fatalf("bob got %+v", got)
	}
	if got, _ := f.browsers.received(f.devices["frank"]); len(got) != 1 {
		t.Fatalf("frank got %d notifications for one notice sent twice", len(got))
	}
}
