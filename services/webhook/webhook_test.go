package webhook

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/testutil"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/server/bus/membus"
	"github.com/jetstreamproto/jsp/server/storage"
	_ "github.com/jetstreamproto/jsp/server/storage/sqlite"
	"github.com/jetstreamproto/jsp/services/events"
)

func TestMain(m *testing.M) { testutil.VerifyTestMain(m) }

var quiet = slog.New(slog.DiscardHandler)

// receiver is an httptest server playing one webhook endpoint.
type receiver struct {
	srv    *httptest.Server
	secret []byte

	mu       sync.Mutex
	requests int
	ok       map[string]int // event id -> 2xx answers
	bad      []string       // signature failures

	inFlight, maxInFlight atomic.Int32
}

// mode decides the answer to the n-th request (from 1); 0 means hang
// until the client gives up.
func newReceiver(t *testing.T, secret string, mode func(n int) int) *receiver {
	r := &receiver{secret: []byte(secret), ok: map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		cur := r.inFlight.Add(1)
		defer r.inFlight.Add(-1)
		for {
			m := r.maxInFlight.Load()
			if cur <= m || r.maxInFlight.CompareAndSwap(m, cur) {
				break
			}
		}
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.requests++
		n := r.requests
		if err := Verify(r.secret, req.Header.Get(HeaderSignature), body, time.Now(), 0); err != nil {
			r.bad = append(r.bad, err.Error())
		}
		r.mu.Unlock()
		status := mode(n)
		if status == 0 {
			<-req.Context().Done() // hang until the sender times out
			return
		}
		if status == http.StatusOK {
			ev, err := events.Decode(body)
			r.mu.Lock()
			if err != nil || ev.ID != req.Header.Get(HeaderEventID) || ev.Type != req.Header.Get(HeaderEventType) {
				r.bad = append(r.bad, fmt.Sprintf("body/header mismatch: %v", err))
			}
			r.ok[ev.ID]++
			r.mu.Unlock()
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) counts() (requests, unique, total int, bad []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range r.ok {
		total += n
	}
	return r.requests, len(r.ok), total, append([]string(nil), r.bad...)
}

type fixture struct {
	bus     *membus.Bus
	subj    bus.Subjects
	log     bus.EventLog
	store   storage.Store
	cursors *events.MemCursors
	pub     *events.Publisher
	client  *http.Client
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	b, err := membus.New(membus.Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	subj, _ := bus.NewSubjects("c1")
	log, err := events.OpenLog(ctx, b, subj, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := storage.Open(ctx, "sqlite::memory:", storage.Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	client := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone(),
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	t.Cleanup(client.CloseIdleConnections)
	return &fixture{bus: b, subj: subj, log: log, store: st, cursors: &events.MemCursors{},
		pub: events.NewPublisher(log, events.PublisherConfig{}), client: client}
}

func (f *fixture) register(t *testing.T, id, url, secret string, types ...string) {
	t.Helper()
	if _, err := Register(context.Background(), f.store, storage.Webhook{ID: id, URL: url, Secret: []byte(secret), EventTypes: types}); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) start(t *testing.T) *Service {
	t.Helper()
	s, err := Start(context.Background(), Config{
		Store: f.store, Bus: f.bus, Subjects: f.subj, Log: f.log, Cursors: f.cursors, HTTPClient: f.client,
		Timeout: 200 * time.Millisecond, MaxAttempts: 3, RetryMin: 5 * time.Millisecond, RetryMax: 20 * time.Millisecond,
		PerEndpoint: 2, Workers: 8, Reload: time.Millisecond, Logger: quiet,
		Queue: func(q *bus.WorkQueueConfig) {
			// AckWait below a hanging delivery's whole retry sequence
			// (3 x 200 ms): only the keep-alive stops a redelivery.
			q.AckWait = 300 * time.Millisecond
			q.Backoff = []time.Duration{20 * time.Millisecond}
			q.MaxDeliver = 100000
			q.Memory = true
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (f *fixture) publish(t *testing.T, typ string, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if _, _, err := f.pub.Publish(context.Background(), events.Event{Type: typ, ID: fmt.Sprintf("ev-%d", i),
			Conversation: "room", Actor: "alice", Payload: []byte(`{"text":"hello"}`)}); err != nil {
			t.Fatal(err)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (f *fixture) deadLetters(t *testing.T, webhook string) []storage.DeadLetter {
	t.Helper()
	dl, err := f.store.ListDeadLetters(context.Background(), webhook, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return dl
}

// TestIsolationRetriesDeadLetters: a hanging receiver, one that always
// answers 500 and one that fails its first requests run next to a healthy
// one; the healthy one gets everything while the hanging one is still
// retrying, every failure is retried exactly MaxAttempts times, and every
// event ends delivered or as a dead letter.
func TestIsolationRetriesDeadLetters(t *testing.T) {
	const nEvents, attempts = 10, 3
	const flakyFailures = attempts - 1 // even all on one delivery leave it a last attempt
	f := newFixture(t)
	ok := newReceiver(t, "secret-ok-0123456789", func(int) int { return http.StatusOK })
	hang := newReceiver(t, "secret-hang-0123456789", func(int) int { return 0 })
	fail := newReceiver(t, "secret-500-0123456789", func(int) int { return http.StatusInternalServerError })
	flaky := newReceiver(t, "secret-flaky-0123456789", func(n int) int {
		if n <= flakyFailures {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	other := newReceiver(t, "secret-other-0123456789", func(int) int { return http.StatusOK })
	f.register(t, "hang", hang.srv.URL, "secret-hang-0123456789", "message.*")
	f.register(t, "fail", fail.srv.URL, "secret-500-0123456789", "*")
	f.register(t, "flaky", flaky.srv.URL, "secret-flaky-0123456789", "message.created")
	f.register(t, "ok", ok.srv.URL, "secret-ok-0123456789", "message.created")
	f.register(t, "other", other.srv.URL, "secret-other-0123456789", "reaction.added")

	s := f.start(t)
	defer s.Stop()
	f.publish(t, "message.created", 0, nEvents)

	waitFor(t, "healthy receiver", func() bool { _, u, _, _ := ok.counts(); return u == nEvents })
	hangReq, _, _, _ := hang.counts()
	if hangReq >= nEvents*attempts {
		t.Errorf("healthy receiver finished only after the hanging one had all %d attempts", hangReq)
	}
	waitFor(t, "dead letters", func() bool { return len(f.deadLetters(t, "")) >= 2*nEvents })
	waitFor(t, "flaky receiver", func() bool { _, u, _, _ := flaky.counts(); return u == nEvents })

	for _, tc := range []struct {
		name                  string
		r                     *receiver
		requests, unique, oks int
	}{
		{"ok", ok, nEvents, nEvents, nEvents},
		{"hang", hang, nEvents * attempts, 0, 0},
		{"fail", fail, nEvents * attempts, 0, 0},
		{"flaky", flaky, nEvents + flakyFailures, nEvents, nEvents},
		{"other", other, 0, 0, 0},
	} {
		req, uniq, total, bad := tc.r.counts()
		if req != tc.requests || uniq != tc.unique || total != tc.oks || len(bad) != 0 {
			t.Errorf("%s: %d requests, %d nEvents acknowledged (%d total), bad %v; want %d, %d, %d",
				tc.name, req, uniq, total, bad, tc.requests, tc.unique, tc.oks)
		}
	}
	// The receiver counts a request until its handler returns, which is
	// when the server notices the client gave up on it: a moment after the
	// client's slot is free and its next attempt may already be arriving.
	// So it may see one more than PerEndpoint, never two more.
	if m := hang.maxInFlight.Load(); m > 2+1 {
		t.Errorf("hanging receiver saw %d concurrent requests, PerEndpoint is 2 (+1 for cancellation lag)", m)
	}
	for _, tc := range []struct{ hook, errText string }{{"hang", "deadline exceeded"}, {"fail", "status 500"}} {
		dls := f.deadLetters(t, tc.hook)
		if len(dls) != nEvents {
			t.Fatalf("%s: %d dead letters, want %d", tc.hook, len(dls), nEvents)
		}
		for _, d := range dls {
			if d.Attempts != attempts || !strings.Contains(d.LastError, tc.errText) || d.EventType != "message.created" {
				t.Errorf("%s dead letter %+v", tc.hook, d)
			}
			if _, err := events.Decode(d.Payload); err != nil {
				t.Errorf("%s dead letter payload: %v", tc.hook, err)
			}
		}
	}
	st := s.Stats()
	if st.Delivered != 2*nEvents || st.DeadLettered != 2*nEvents || st.Enqueued != 4*nEvents ||
		st.Attempts != uint64(nEvents+nEvents*attempts*2+nEvents+flakyFailures) {
		t.Errorf("stats %+v", st)
	}

	// Redelivering a dead letter after the receiver recovered delivers it.
	dl := f.deadLetters(t, "fail")[0]
	f.register(t, "fail", ok.srv.URL, "secret-ok-0123456789", "*")
	if err := s.Redeliver(context.Background(), dl); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "redelivery", func() bool { _, _, total, _ := ok.counts(); return total == nEvents+1 })
	if n := len(f.deadLetters(t, "fail")); n != nEvents-1 {
		t.Errorf("%d dead letters left after a redelivery, want %d", n, nEvents-1)
	}
}

// TestRestartResumes: a stopped service resumes from its cursor; events
// published meanwhile are delivered. Delivery is at least once: a request
// answered just as the stop cut off its queue acknowledgement is sent
// again, so a repeat is allowed, never a missing event or a replay of the
// whole first batch.
func TestRestartResumes(t *testing.T) {
	f := newFixture(t)
	ok := newReceiver(t, "secret-ok-0123456789", func(int) int { return http.StatusOK })
	f.register(t, "ok", ok.srv.URL, "secret-ok-0123456789", "*")
	s := f.start(t)
	f.publish(t, "message.created", 0, 5)
	waitFor(t, "first batch", func() bool { _, u, _, _ := ok.counts(); return u == 5 })
	s.Stop()
	f.publish(t, "message.edited", 5, 5)
	s = f.start(t)
	defer s.Stop()
	waitFor(t, "second batch", func() bool { _, u, _, _ := ok.counts(); return u == 10 })
	if req, uniq, _, _ := ok.counts(); uniq != 10 || req < 10 || req > 12 {
		t.Fatalf("%d requests for %d events, want 10 events in 10 to 12 requests", req, uniq)
	}
}

// TestDeletedWebhookDropsJobs: jobs of a deleted webhook are dropped, not
// retried.
func TestDeletedWebhookDropsJobs(t *testing.T) {
	f := newFixture(t)
	s := f.start(t)
	defer s.Stop()
	if err := s.Enqueue(context.Background(), "gone", "ev-1", "message.created", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "drop", func() bool { return s.Stats().Dropped == 1 })
}

func TestRegisterValidates(t *testing.T) {
	f := newFixture(t)
	for name, w := range map[string]storage.Webhook{
		"short secret": {ID: "w", URL: "https://a.test/", Secret: []byte("short"), EventTypes: []string{"*"}},
		"bad filter":   {ID: "w", URL: "https://a.test/", Secret: []byte("0123456789abcdef"), EventTypes: []string{"Message"}},
		"bad url":      {ID: "w", URL: "mailto:x", Secret: []byte("0123456789abcdef"), EventTypes: []string{"*"}},
		"no filter":    {ID: "w", URL: "https://a.test/", Secret: []byte("0123456789abcdef")},
	} {
		_, err := Register(context.Background(), f.store, w)
		if jsperr.CodeOf(err) != jsperr.WebhookInvalid {
			t.Errorf("%s: err = %v, want WEBHOOK_INVALID", name, err)
		}
	}
	if _, err := Start(context.Background(), Config{}); err == nil {
		t.Error("empty config accepted")
	}
	_, err := Start(context.Background(), Config{Store: f.store, Bus: f.bus, Subjects: f.subj, Log: f.log,
		Cursors: f.cursors, RetryMin: time.Second, RetryMax: time.Millisecond})
	if err == nil || errors.Is(err, context.Canceled) {
		t.Errorf("RetryMax < RetryMin: %v", err)
	}
}
