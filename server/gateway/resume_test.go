package gateway

import (
	"bytes"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/server/bus/membus"
	"github.com/jetstreamproto/jsp/server/core"
	"github.com/jetstreamproto/jsp/session"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/wire"
)

// resumeFixture is a bus-mode gateway with a clock the test moves.
type resumeFixture struct {
	f      *clusterFixture
	g      *testGateway
	offset atomic.Int64 // added to time.Now, ns
}

func newResumeFixture(t *testing.T, rc ResumeConfig) *resumeFixture {
	t.Helper()
	b, err := membus.New(membus.Config{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	rf := &resumeFixture{f: newClusterFixture(t, b)}
	now := func() time.Time { return time.Now().Add(time.Duration(rf.offset.Load())) }
	rf.g = startGateway(t, Config{Bus: b, Resume: rc, Now: now})
	return rf
}

// dialResume opens a session that asks to resume prev with token.
func (rf *resumeFixture) dialResume(t *testing.T, id, token []byte) (*session.Session, error) {
	t.Helper()
	conn := rf.g.dialConn(t, transport.KindMem)
	s, err := session.Dial(ctxT(t), conn, session.ClientInfo{Resume: &wire.Resume{SessionID: id, Token: token}},
		session.Config{Logger: testLogger()})
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, nil
}

// cut drops s's transport the way a network failure does: the gateway
// sees the connection end with an error, not a goodbye.
func (rf *resumeFixture) cut(t *testing.T, s *session.Session, detached int) {
	t.Helper()
	_ = s.Conn().CloseWithError(jsperr.TransportClosed, "network cut")
	_ = s.Close()
	waitFor(t, "detached session", func() bool { return rf.g.resumes.detachedCount() == detached })
}

func ackCursor(t *testing.T, s *session.Session, channel string, seq uint64) {
	t.Helper()
	if err := s.Send(&wire.Ack{Cursors: []wire.Cursor{{Channel: channel, Seq: seq}}}); err != nil {
		t.Fatal(err)
	}
}

// A session whose transport dropped is resumed with its token: same id,
// new token, its subscriptions continue, the events after its ACK cursor
// are replayed in order and live delivery follows without gap or
// duplicate; the old token is then spent.
func TestResumeReplaysFromCursor(t *testing.T) {
	rf := newResumeFixture(t, ResumeConfig{})
	pub := rf.g.dial(t, transport.KindMem)
	sub := rf.g.dial(t, transport.KindMem)
	subscribe(t, sub, "r")
	subscribe(t, sub, "quiet")
	for i := 1; i <= 2; i++ {
		if err := publishAcked(t, pub, "r", fmt.Sprint("a", i), fmt.Sprint("m", i)); err != nil {
			t.Fatal(err)
		}
	}
	wantEvents(t, sub, "r", 1, "m1", "m2")
	// The client processed 1 only: 2 is replayed again after the resume.
	ackCursor(t, sub, "r", 1)
	waitFor(t, "ack cursor", func() bool {
		for h := range rf.g.hostsSnapshot() {
			if h.id == fmt.Sprintf("%x", sub.ID()) {
				h.cmu.Lock()
				defer h.cmu.Unlock()
				return h.acked["r"] == 1
			}
		}
		return false
	})
	id, tok := sub.ID(), sub.ResumeToken()
	if len(tok) != session.ResumeTokenLen {
		t.Fatalf("WELCOME token %x", tok)
	}
	rf.cut(t, sub, 1)

	// Missed while detached: 3 and 4 on r, 1 on quiet.
	for i := 3; i <= 4; i++ {
		if err := publishAcked(t, pub, "r", fmt.Sprint("a", i), fmt.Sprint("m", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := publishAcked(t, pub, "quiet", "q1", "q1"); err != nil {
		t.Fatal(err)
	}

	res, err := rf.dialResume(t, id, tok)
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	if !res.Resumed() || !bytes.Equal(res.ID(), id) || bytes.Equal(res.ResumeToken(), tok) || len(res.ResumeToken()) == 0 {
		t.Fatalf("resumed %v id %x token rotated %v", res.Resumed(), res.ID(), !bytes.Equal(res.ResumeToken(), tok))
	}
	got := map[string][]uint64{}
	for len(got["r"]) < 3 || len(got["quiet"]) < 1 {
		in, err := res.Recv(ctxT(t))
		if err != nil {
			t.Fatalf("after %v: %v", got, err)
		}
		if in.Type != wire.FrameEvent {
			t.Fatalf("received %s after %v", in.Type, got)
		}
		got[in.Envelope.Route.Name] = append(got[in.Envelope.Route.Name], in.Envelope.Seq)
	}
	if fmt.Sprint(got["r"]) != "[2 3 4]" || fmt.Sprint(got["quiet"]) != "[1]" {
		t.Fatalf("replayed %v", got)
	}
	if err := publishAcked(t, pub, "r", "a5", "m5"); err != nil {
		t.Fatal(err)
	}
	wantEvents(t, res, "r", 5, "m5")
	noMoreEvents(t, res)

	// The token was single-use.
	if _, err := rf.dialResume(t, id, tok); jsperr.CodeOf(err) != jsperr.SessionNotFound {
		t.Fatalf("second resume with the same token: %v, want SESSION_NOT_FOUND", err)
	}
}

// Every failed resume is SESSION_NOT_FOUND: unknown id, wrong token,
// expired window, evicted by MaxDetached.
func TestResumeRefused(t *testing.T) {
	rf := newResumeFixture(t, ResumeConfig{Window: time.Minute, MaxDetached: 1})
	a := rf.g.dial(t, transport.KindMem)
	subscribe(t, a, "x")
	aid, atok := a.ID(), a.ResumeToken()
	rf.cut(t, a, 1)

	tests := []struct {
		name      string
		id, token []byte
	}{
		{"unknown id", []byte("nope"), atok},
		{"wrong token", aid, bytes.Repeat([]byte{1}, session.ResumeTokenLen)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := rf.dialResume(t, tt.id, tt.token); jsperr.CodeOf(err) != jsperr.SessionNotFound {
				t.Fatalf("got %v, want SESSION_NOT_FOUND", err)
			}
		})
	}
	// A failed guess does not spend the session: the right token works.
	s, err := rf.dialResume(t, aid, atok)
	if err != nil || !s.Resumed() {
		t.Fatalf("resume after failed guesses: %v", err)
	}
	aid, atok = s.ID(), s.ResumeToken()
	rf.cut(t, s, 1)

	// A second detached session evicts the first (MaxDetached 1).
	b := rf.g.dial(t, transport.KindMem)
	bid, btok := b.ID(), b.ResumeToken()
	rf.cut(t, b, 1)
	waitFor(t, "eviction", func() bool { return rf.g.resumes.evicted.Load() == 1 })
	if _, err := rf.dialResume(t, aid, atok); jsperr.CodeOf(err) != jsperr.SessionNotFound {
		t.Fatalf("evicted session: %v, want SESSION_NOT_FOUND", err)
	}
	// After the window, b is gone too.
	rf.offset.Store(int64(2 * time.Minute))
	if _, err := rf.dialResume(t, bid, btok); jsperr.CodeOf(err) != jsperr.SessionNotFound {
		t.Fatalf("expired session: %v, want SESSION_NOT_FOUND", err)
	}
	if rf.g.resumes.evicted.Load() != 1 || rf.g.resumes.expired.Load() != 1 || rf.g.resumes.detachedCount() != 0 {
		t.Fatalf("evicted %d expired %d kept %d", rf.g.resumes.evicted.Load(), rf.g.resumes.expired.Load(), rf.g.resumes.detachedCount())
	}
}

// A session closed on purpose (NO_ERROR) is not kept.
func TestResumeNotAfterGoodbye(t *testing.T) {
	rf := newResumeFixture(t, ResumeConfig{})
	s := rf.g.dial(t, transport.KindMem)
	id, tok := s.ID(), s.ResumeToken()
	_ = s.Close()
	waitFor(t, "session end", func() bool { return len(rf.g.hostsSnapshot()) == 0 })
	if _, err := rf.dialResume(t, id, tok); jsperr.CodeOf(err) != jsperr.SessionNotFound {
		t.Fatalf("resume after Close: %v, want SESSION_NOT_FOUND", err)
	}
}

// A resume of a session whose old transport the gateway still serves
// closes the old one and takes its state over.
func TestResumeTakesOverLiveSession(t *testing.T) {
	rf := newResumeFixture(t, ResumeConfig{})
	pub := rf.g.dial(t, transport.KindMem)
	old := rf.g.dial(t, transport.KindMem)
	subscribe(t, old, "r")
	res, err := rf.dialResume(t, old.ID(), old.ResumeToken())
	if err != nil || !res.Resumed() {
		t.Fatalf("takeover: %v", err)
	}
	if err := publishAcked(t, pub, "r", "a1", "m1"); err != nil {
		t.Fatal(err)
	}
	wantEvents(t, res, "r", 1, "m1")
	<-old.Context().Done()
}

// Events missed while detached that were trimmed cannot be replayed:
// RECOVERY_IMPOSSIBLE names the channel and live delivery continues.
func TestResumeRecoveryImpossible(t *testing.T) {
	rf := newResumeFixture(t, ResumeConfig{})
	pub := rf.g.dial(t, transport.KindMem)
	sub := rf.g.dial(t, transport.KindMem)
	subscribe(t, sub, "r")
	waitFor(t, "subscription start", func() bool {
		for h := range rf.g.hostsSnapshot() {
			h.cmu.Lock()
			_, ok := h.base["r"]
			h.cmu.Unlock()
			if ok {
				return true
			}
		}
		return false
	})
	id, tok := sub.ID(), sub.ResumeToken()
	rf.cut(t, sub, 1)
	for i := 1; i <= 4; i++ {
		if err := publishAcked(t, pub, "r", fmt.Sprint("a", i), fmt.Sprint("m", i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := rf.f.store.TrimMessages(ctxT(t), "r", 1); err != nil {
		t.Fatal(err)
	}
	res, err := rf.dialResume(t, id, tok)
	if err != nil {
		t.Fatal(err)
	}
	wantRecoveryImpossible(t, res, "r", true)
	if err := publishAcked(t, pub, "r", "a5", "m5"); err != nil {
		t.Fatal(err)
	}
	wantEvents(t, res, "r", 5, "m5")
	if rf.g.resumes.impossible.Load() != 1 {
		t.Fatalf("recovery impossible count %d", rf.g.resumes.impossible.Load())
	}
}

func TestResumeConfig(t *testing.T) {
	tests := []struct {
		name string
		rc   ResumeConfig
		ok   bool
	}{
		{"zero is defaults", ResumeConfig{}, true},
		{"negative window", ResumeConfig{Window: -1}, false},
		{"negative max detached", ResumeConfig{MaxDetached: -1}, false},
		{"negative max bytes", ResumeConfig{MaxBytes: -1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.rc.validate(); (err == nil) != tt.ok {
				t.Fatalf("validate: %v", err)
			}
		})
	}
	var rc ResumeConfig
	rc.setDefaults()
	if rc.Window != DefaultResumeWindow || rc.MaxDetached != DefaultMaxDetached || rc.MaxBytes != DefaultMaxDetachedBytes {
		t.Fatalf("defaults %+v", rc)
	}
}

// MaxBytes bounds the detached state: a session with more channel state
// than the budget is not kept.
func TestResumeStoreMaxBytes(t *testing.T) {
	s := newResumeStore(ResumeConfig{Window: time.Minute, MaxDetached: 10, MaxBytes: 1000}, time.Now)
	for i := range 3 {
		h := &host{id: fmt.Sprint("s", i)}
		s.mu.Lock()
		s.entries[h.id] = &resumeEntry{id: h.id, live: h, gone: make(chan struct{})}
		s.mu.Unlock()
		cursors := map[string]cursor{}
		for j := range 2 {
			cursors[fmt.Sprintf("channel-%d-%d", i, j)] = cursor{seq: 1, known: true}
		}
		s.detach(h, cursors, true)
	}
	// Each entry is 256 + 2*(11+48) = 374 bytes: two fit in 1000.
	if n := s.detachedCount(); n != 2 || s.evicted.Load() != 1 {
		t.Fatalf("kept %d evicted %d", n, s.evicted.Load())
	}
	if _, ok := s.entries["s0"]; ok {
		t.Fatal("the oldest entry was kept")
	}
}

// hostsSnapshot returns the gateway's established sessions.
func (g *Gateway) hostsSnapshot() map[*host]struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make(map[*host]struct{}, len(g.hosts))
	for h := range g.hosts {
		out[h] = struct{}{}
	}
	return out
}

// A cursor beyond what was sent is clamped (JSP §5.6): a client cannot
// make a resume skip events it never received. A SUBSCRIBE with since
// beyond the head replays nothing and is acknowledged.
func TestResumeCursorBeyondHead(t *testing.T) {
	rf := newResumeFixture(t, ResumeConfig{})
	pub := rf.g.dial(t, transport.KindMem)
	sub := rf.g.dial(t, transport.KindMem)
	subscribe(t, sub, "r")
	if err := publishAcked(t, pub, "r", "a1", "m1"); err != nil {
		t.Fatal(err)
	}
	wantEvents(t, sub, "r", 1, "m1")
	ackCursor(t, sub, "r", 1000)
	ackCursor(t, sub, "not-subscribed", 5)
	waitFor(t, "clamped cursor", func() bool {
		for h := range rf.g.hostsSnapshot() {
			h.cmu.Lock()
			a, ok := h.acked["r"]
			_, other := h.acked["not-subscribed"]
			h.cmu.Unlock()
			if ok && !other {
				return a == 1
			}
		}
		return false
	})
	id, tok := sub.ID(), sub.ResumeToken()
	rf.cut(t, sub, 1)
	for i := 2; i <= 3; i++ {
		if err := publishAcked(t, pub, "r", fmt.Sprint("a", i), fmt.Sprint("m", i)); err != nil {
			t.Fatal(err)
		}
	}
	res, err := rf.dialResume(t, id, tok)
	if err != nil {
		t.Fatal(err)
	}
	wantEvents(t, res, "r", 2, "m2", "m3")

	ahead := rf.g.dial(t, transport.KindMem)
	subscribeSince(t, ahead, "r", 1000)
	recvType(t, ahead, wire.FrameAck)
	noMoreEvents(t, ahead)
}

// A resumed subscription that cannot be re-established (here: no core
// answers its authorization) is still carried into the next detached
// state, so a later resume replays what the channel got meanwhile instead
// of silently dropping the subscription the client believes it has.
func TestResumeKeepsFailedSubscription(t *testing.T) {
	rf := newResumeFixture(t, ResumeConfig{})
	pub := rf.g.dial(t, transport.KindMem)
	sub := rf.g.dial(t, transport.KindMem)
	subscribe(t, sub, "r")
	if err := publishAcked(t, pub, "r", "a1", "m1"); err != nil {
		t.Fatal(err)
	}
	wantEvents(t, sub, "r", 1, "m1")
	ackCursor(t, sub, "r", 1)
	waitFor(t, "ack cursor", func() bool {
		for h := range rf.g.hostsSnapshot() {
			if h.id == fmt.Sprintf("%x", sub.ID()) {
				h.cmu.Lock()
				defer h.cmu.Unlock()
				return h.acked["r"] == 1
			}
		}
		return false
	})
	id, tok := sub.ID(), sub.ResumeToken()
	rf.cut(t, sub, 1)

	// No core: the resumed subscription's authorization fails.
	if err := rf.f.core.Close(); err != nil {
		t.Fatal(err)
	}
	mid, err := rf.dialResume(t, id, tok)
	if err != nil || !mid.Resumed() {
		t.Fatalf("first resume: %v", err)
	}
	tok = mid.ResumeToken()
	waitFor(t, "resumed session attached", func() bool { return rf.g.resumes.detachedCount() == 0 })
	rf.cut(t, mid, 1)

	// A core again; the channel moves on while the session is detached.
	c, err := core.New(core.Config{Bus: rf.f.bus, Store: rf.f.store, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	for i := 2; i <= 3; i++ {
		if err := publishAcked(t, pub, "r", fmt.Sprint("a", i), fmt.Sprint("m", i)); err != nil {
			t.Fatal(err)
		}
	}
	res, err := rf.dialResume(t, id, tok)
	if err != nil || !res.Resumed() {
		t.Fatalf("second resume: %v", err)
	}
	wantEvents(t, res, "r", 2, "m2", "m3")
}
