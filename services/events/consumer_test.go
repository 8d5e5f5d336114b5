package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/testutil"

	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/server/bus/membus"
	"github.com/jetstreamproto/jsp/server/storage"
	_ "github.com/jetstreamproto/jsp/server/storage/sqlite"
)

func TestMain(m *testing.M) { testutil.VerifyTestMain(m) }

var quiet = slog.New(slog.DiscardHandler)

func newLog(t *testing.T) (bus.EventLog, bus.Subjects) {
	t.Helper()
	b, err := membus.New(membus.Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	subj, err := bus.NewSubjects("c1")
	if err != nil {
		t.Fatal(err)
	}
	log, err := OpenLog(context.Background(), b, subj, func(c *bus.EventLogConfig) { c.Memory = true })
	if err != nil {
		t.Fatal(err)
	}
	return log, subj
}

// recorder collects handled events.
type recorder struct {
	mu   sync.Mutex
	got  []Delivered
	fail map[string]int // event id -> failures still to return
	ch   chan struct{}
}

func newRecorder() *recorder { return &recorder{fail: map[string]int{}, ch: make(chan struct{}, 1000)} }

func (r *recorder) handle(_ context.Context, d Delivered) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail[d.Event.ID] > 0 {
		r.fail[d.Event.ID]--
		return errors.New("handler failure")
	}
	r.got = append(r.got, d)
	r.ch <- struct{}{}
	return nil
}

func (r *recorder) wait(t *testing.T, n int) []Delivered {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		r.mu.Lock()
		if len(r.got) >= n {
			out := append([]Delivered(nil), r.got...)
			r.mu.Unlock()
			return out
		}
		r.mu.Unlock()
		select {
		case <-r.ch:
		case <-deadline:
			t.Fatalf("waited for %d events", n)
		}
	}
}

func publishN(t *testing.T, p *Publisher, typ string, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if _, _, err := p.Publish(context.Background(), Event{Type: typ, ID: fmt.Sprintf("%s-%d", typ, i), Conversation: "room"}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestPublishSubjectAndDedup(t *testing.T) {
	log, subj := newLog(t)
	p := NewPublisher(log, PublisherConfig{Now: func() time.Time { return t0 }})
	ev, seq, err := p.Publish(context.Background(), Event{Type: "message.created", Conversation: "room"})
	if err != nil {
		t.Fatal(err)
	}
	if len(ev.ID) != 32 || !ev.Time.Equal(t0) || seq != 1 {
		t.Fatalf("published %+v at %d", ev, seq)
	}
	// The same id within the duplicate window is stored once.
	if _, seq2, err := p.Publish(context.Background(), ev); err != nil || seq2 != 1 {
		t.Fatalf("republish: seq %d err %v", seq2, err)
	}
	want, err := Subject(subj, "message.created")
	if err != nil || want != "jsp.c1.events.message_2Ecreated" {
		t.Fatalf("Subject = %q, %v", want, err)
	}
	var seen []bus.Event
	err = log.Replay(context.Background(), bus.ReplayOptions{}, func(e bus.Event) error { seen = append(seen, e); return nil })
	if err != nil || len(seen) != 1 {
		t.Fatalf("replay: %d events, %v", len(seen), err)
	}
	if seen[0].Msg.Subject != want || seen[0].Msg.Header.Get(HeaderType) != "message.created" || seen[0].Msg.Header.Get(bus.HeaderMsgID) != ev.ID {
		t.Fatalf("stored %+v", seen[0].Msg)
	}
	if _, _, err := p.Publish(context.Background(), Event{Type: "Bad"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("invalid type published: %v", err)
	}
}

func TestConsumerDurableAndFiltered(t *testing.T) {
	log, _ := newLog(t)
	ctx := context.Background()
	p := NewPublisher(log, PublisherConfig{})
	cursors := &MemCursors{}
	publishN(t, p, "message.created", 0, 5)
	publishN(t, p, "reaction.added", 0, 3)

	rec := newRecorder()
	rec.fail["message.created-2"] = 2 // retried in place, order kept
	c, err := Consume(ctx, log, ConsumerConfig{Name: "hooks", Filters: []string{"message.*"}, Handler: rec.handle,
		Cursors: cursors, RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	got := rec.wait(t, 5)
	for i, d := range got {
		if want := fmt.Sprintf("message.created-%d", i); d.Event.ID != want || d.Seq != uint64(i+1) {
			t.Fatalf("event %d = %s at %d, want %s at %d", i, d.Event.ID, d.Seq, want, i+1)
		}
	}
	// Follow: a later event arrives without a restart.
	publishN(t, p, "message.created", 5, 1)
	rec.wait(t, 6)
	c.Stop()
	c.Stop()
	if pos, _ := cursors.Load(ctx, "hooks"); pos != 9 {
		t.Fatalf("cursor = %d, want 9 (filtered events advance it too)", pos)
	}
	if h, s := c.Stats(); h != 6 || s != 0 {
		t.Fatalf("stats handled %d skipped %d", h, s)
	}

	// A restarted consumer resumes after the cursor.
	publishN(t, p, "message.created", 6, 2)
	rec2 := newRecorder()
	c2, err := Consume(ctx, log, ConsumerConfig{Name: "hooks", Filters: []string{"message.*"}, Handler: rec2.handle,
		Cursors: cursors, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	got = rec2.wait(t, 2)
	c2.Stop()
	if len(got) != 2 || got[0].Event.ID != "message.created-6" || got[1].Event.ID != "message.created-7" {
		t.Fatalf("after restart got %v", got)
	}
}

func TestConsumerSkipsMalformedAndPoison(t *testing.T) {
	log, _ := newLog(t)
	ctx := context.Background()
	p := NewPublisher(log, PublisherConfig{})
	publishN(t, p, "message.created", 0, 1)
	if _, err := log.Append(ctx, "message.created", bus.Msg{Data: []byte("not json")}); err != nil {
		t.Fatal(err)
	}
	publishN(t, p, "message.created", 1, 2)

	rec := newRecorder()
	rec.fail["message.created-1"] = 1000 // poison: never succeeds
	var mu sync.Mutex
	var skipped []uint64
	c, err := Consume(ctx, log, ConsumerConfig{Name: "x", Handler: rec.handle, Cursors: &MemCursors{},
		RetryMin: time.Millisecond, RetryMax: time.Millisecond, MaxAttempts: 3, Logger: quiet,
		OnSkip: func(seq uint64, err error) { mu.Lock(); skipped = append(skipped, seq); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	got := rec.wait(t, 2)
	c.Stop()
	if got[0].Event.ID != "message.created-0" || got[1].Event.ID != "message.created-2" {
		t.Fatalf("got %s, %s", got[0].Event.ID, got[1].Event.ID)
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(skipped) != "[2 3]" {
		t.Fatalf("skipped %v, want [2 3]", skipped)
	}
}

func TestStorageCursors(t *testing.T) {
	ctx := context.Background()
	s, err := storage.Open(ctx, "sqlite::memory:", storage.Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cs := StorageCursors(s)
	if pos, err := cs.Load(ctx, "hooks"); err != nil || pos != 0 {
		t.Fatalf("empty cursor = %d, %v", pos, err)
	}
	if err := cs.Save(ctx, "hooks", 42); err != nil {
		t.Fatal(err)
	}
	if pos, err := cs.Load(ctx, "hooks"); err != nil || pos != 42 {
		t.Fatalf("cursor = %d, %v", pos, err)
	}
	if _, err := s.KVPut(ctx, CursorNamespace, "bad", []byte("x"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.Load(ctx, "bad"); err == nil {
		t.Fatal("garbage cursor loaded")
	}
}

func TestConsumerConfigValidate(t *testing.T) {
	log, _ := newLog(t)
	h := func(context.Context, Delivered) error { return nil }
	for name, cfg := range map[string]ConsumerConfig{
		"no name":     {Handler: h, Cursors: &MemCursors{}},
		"no handler":  {Name: "x", Cursors: &MemCursors{}},
		"no cursors":  {Name: "x", Handler: h},
		"bad filter":  {Name: "x", Handler: h, Cursors: &MemCursors{}, Filters: []string{"*.x"}},
		"bad retries": {Name: "x", Handler: h, Cursors: &MemCursors{}, RetryMin: time.Second, RetryMax: time.Millisecond},
	} {
		if c, err := Consume(context.Background(), log, cfg); err == nil {
			c.Stop()
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestCursorWritesAreBatched: with a clock that stands still the cursor is
// written only on Stop; with SaveEvery < 0 after every event.
func TestCursorWritesAreBatched(t *testing.T) {
	log, _ := newLog(t)
	ctx := context.Background()
	publishN(t, NewPublisher(log, PublisherConfig{}), "message.created", 0, 5)
	for _, tc := range []struct {
		name      string
		saveEvery time.Duration
		before    uint64
	}{
		{"batched", time.Hour, 0},
		{"every event", -1, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cursors := &MemCursors{}
			rec := newRecorder()
			c, err := Consume(ctx, log, ConsumerConfig{Name: "x", Handler: rec.handle, Cursors: cursors, Logger: quiet,
				SaveEvery: tc.saveEvery, Now: func() time.Time { return t0 }})
			if err != nil {
				t.Fatal(err)
			}
			rec.wait(t, 5)
			deadline := time.Now().Add(5 * time.Second)
			for c.Position() < 5 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			if pos, _ := cursors.Load(ctx, "x"); pos != tc.before {
				t.Errorf("cursor before Stop = %d, want %d", pos, tc.before)
			}
			c.Stop()
			if pos, _ := cursors.Load(ctx, "x"); pos != 5 {
				t.Errorf("cursor after Stop = %d, want 5", pos)
			}
		})
	}
}
