package core_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/testutil"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/server/bus/membus"
	"github.com/jetstreamproto/jsp/server/bus/natsbus"
	"github.com/jetstreamproto/jsp/server/core"
	"github.com/jetstreamproto/jsp/server/storage"
	_ "github.com/jetstreamproto/jsp/server/storage/sqlite"
)

func TestMain(m *testing.M) { testutil.VerifyTestMain(m) }

var quiet = slog.New(slog.DiscardHandler)

const testShards = 4

type fixture struct {
	bus    bus.Bus
	store  storage.Store
	core   *core.Core
	client *core.Client
	subj   bus.Subjects
}

func newStore(t testing.TB) storage.Store { return openStore(t, "sqlite::memory:") }

func openStore(t testing.TB, dsn string) storage.Store {
	t.Helper()
	st, err := storage.Open(context.Background(), dsn, storage.Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func newMemBus(t testing.TB) bus.Bus {
	t.Helper()
	b, err := membus.New(membus.Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// startCore creates and starts a core with cfg (closed when the test
// ends) and a client for its bus, subjects and shards.
func startCore(t testing.TB, cfg core.Config) (*core.Core, *core.Client) {
	t.Helper()
	c, err := core.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	cl, err := core.NewClient(cfg.Bus, *cfg.Subjects, cfg.Shards)
	if err != nil {
		t.Fatal(err)
	}
	return c, cl
}

func newFixture(t testing.TB, b bus.Bus) *fixture { return newFixtureDSN(t, b, "sqlite::memory:") }

func newFixtureDSN(t testing.TB, b bus.Bus, dsn string) *fixture {
	t.Helper()
	subj, err := bus.NewSubjects("test")
	if err != nil {
		t.Fatal(err)
	}
	st := openStore(t, dsn)
	c, cl := startCore(t, core.Config{Bus: b, Store: st, Subjects: &subj, Shards: testShards, Logger: quiet, PageSize: 2})
	return &fixture{bus: b, store: st, core: c, client: cl, subj: subj}
}

// events subscribes to a channel subject and returns its events in order.
func (f *fixture) events(t testing.TB, channel string) <-chan core.Event {
	t.Helper()
	subj, err := f.subj.Channel(channel)
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan core.Event, 64)
	sub, err := f.bus.Subscribe(subj, func(m *bus.Msg) {
		ev, err := core.DecodeEvent(m.Data)
		if err != nil {
			t.Errorf("decode event: %v", err)
			return
		}
		if len(ev.Messages) == 0 {
			ch <- ev
			return
		}
		// A run (D26) is delivered here one message at a time.
		for _, msg := range ev.Messages {
			ch <- core.Event{Channel: ev.Channel, Message: msg}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return ch
}

func msg(id, body string) storage.Message {
	return storage.Message{ClientID: id, Sender: "alice", Body: []byte(body)}
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func wantEvent(t *testing.T, ch <-chan core.Event, seq storage.Seq, body string) {
	t.Helper()
	select {
	case ev := <-ch:
		if ev.Message.Seq != seq || string(ev.Message.Body) != body || ev.Message.Time.IsZero() {
			t.Fatalf("event seq %d body %q time %v; want seq %d body %q", ev.Message.Seq, ev.Message.Body, ev.Message.Time, seq, body)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("no event for seq %d", seq)
	}
}

func noEvent(t *testing.T, ch <-chan core.Event) {
	t.Helper()
	select {
	case ev := <-ch:
		t.Fatalf("unexpected event seq %d", ev.Message.Seq)
	case <-time.After(50 * time.Millisecond):
	}
}

func testPublish(t *testing.T, f *fixture) {
	events := f.events(t, "room.1")
	for i, body := range []string{"a", "b", "c"} {
		rep, err := f.client.Publish(ctx(t), "room.1", msg(fmt.Sprint("id", i), body))
		if err != nil {
			t.Fatal(err)
		}
		if want := storage.Seq(i + 1); rep.Seq != want || rep.Duplicate {
			t.Fatalf("publish %d: seq %d dup %v, want %d", i, rep.Seq, rep.Duplicate, want)
		}
		wantEvent(t, events, storage.Seq(i+1), body)
	}
	// A resend (same sender, same client id) is answered with the
	// original number and not published again.
	rep, err := f.client.Publish(ctx(t), "room.1", msg("id1", "b"))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Seq != 2 || !rep.Duplicate {
		t.Fatalf("resend: seq %d dup %v, want 2 true", rep.Seq, rep.Duplicate)
	}
	noEvent(t, events)
	info, err := f.store.ChannelInfo(ctx(t), "room.1")
	if err != nil {
		t.Fatal(err)
	}
	if info.Last != 3 {
		t.Fatalf("stored last %d, want 3", info.Last)
	}
}

func TestPublishMembus(t *testing.T) { testPublish(t, newFixture(t, newMemBus(t))) }

func TestPublishEmbeddedNATS(t *testing.T) {
	b, err := natsbus.Embedded(natsbus.EmbeddedConfig{
		Server: natsbus.ServerConfig{DataDir: t.TempDir(), Logger: quiet},
		Client: natsbus.ClientConfig{Logger: quiet},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	f := newFixture(t, b)
	testPublish(t, f)
	st := f.core.Stats()
	if st.Published != 3 || st.Duplicates != 1 || st.Failed != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestErrors(t *testing.T) {
	f := newFixture(t, newMemBus(t))
	if _, err := f.client.Publish(ctx(t), "room", msg("x", "one")); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, storage.DefaultMaxMessageBytes+1)
	tests := []struct {
		name string
		req  core.Request
		want jsperr.Code
	}{
		{"no channel", core.Request{Op: core.OpPublish, Message: &storage.Message{Sender: "a"}}, jsperr.BadRequest},
		{"unknown op", core.Request{Op: "frobnicate", Channel: "room"}, jsperr.BadRequest},
		{"publish without message", core.Request{Op: core.OpPublish, Channel: "room"}, jsperr.BadRequest},
		{"no sender", core.Request{Op: core.OpPublish, Channel: "room", Message: &storage.Message{Body: []byte("x")}}, jsperr.BadRequest},
		{"reused id", core.Request{Op: core.OpPublish, Channel: "room", Message: &storage.Message{ClientID: "x", Sender: "alice", Body: []byte("two")}}, jsperr.Conflict},
		{"too large", core.Request{Op: core.OpPublish, Channel: "room", Message: &storage.Message{Sender: "alice", Body: big}}, jsperr.MessageTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.client.Do(ctx(t), &tt.req)
			if got := jsperr.CodeOf(err); got != tt.want {
				t.Fatalf("code %v (%v), want %v", got, err, tt.want)
			}
			// The reason names the problem, not the backend.
			if strings.Contains(err.Error(), "sqlite") || strings.Contains(err.Error(), "storage:") {
				t.Fatalf("reason leaks storage details: %v", err)
			}
		})
	}
	// Malformed JSON straight onto the bus.
	rep, err := f.bus.Request(ctx(t), f.subj.CoreCmd(0), bus.Msg{Data: []byte("{")})
	if err != nil {
		t.Fatal(err)
	}
	var r core.Reply
	if err := json.Unmarshal(rep.Data, &r); err != nil || r.Code != jsperr.BadRequest {
		t.Fatalf("malformed request: reply %+v err %v", r, err)
	}
}

func TestNoCore(t *testing.T) {
	b := newMemBus(t)
	subj, _ := bus.NewSubjects("test")
	cl, err := core.NewClient(b, subj, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = cl.Publish(ctx(t), "room", msg("x", "y"))
	if got := jsperr.CodeOf(err); got != jsperr.CircuitOpen || !errors.Is(err, bus.ErrNoResponders) {
		t.Fatalf("code %v err %v, want CIRCUIT_OPEN wrapping no responders", got, err)
	}
}

func seqs(ms []storage.Message) []storage.Seq {
	var out []storage.Seq
	for _, m := range ms {
		out = append(out, m.Seq)
	}
	return out
}

func TestHistoryAndRecover(t *testing.T) {
	f := newFixture(t, newMemBus(t))
	for i := range 5 {
		if _, err := f.client.Publish(ctx(t), "h", msg(fmt.Sprint(i), fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	type call func() (*core.Reply, error)
	tests := []struct {
		name string
		do   call
		want []storage.Seq
		more bool
	}{
		{"after 0 default page", func() (*core.Reply, error) { return f.client.After(ctx(t), "h", 0, 0) }, []storage.Seq{1, 2}, true},
		{"after 3", func() (*core.Reply, error) { return f.client.After(ctx(t), "h", 3, 10) }, []storage.Seq{4, 5}, false},
		{"latest", func() (*core.Reply, error) { return f.client.Before(ctx(t), "h", 0, 3) }, []storage.Seq{3, 4, 5}, true},
		{"before 3", func() (*core.Reply, error) { return f.client.Before(ctx(t), "h", 3, 10) }, []storage.Seq{1, 2}, false},
		{"recover after 2", func() (*core.Reply, error) { return f.client.Recover(ctx(t), "h", 2, 10) }, []storage.Seq{3, 4, 5}, false},
		{"empty channel", func() (*core.Reply, error) { return f.client.After(ctx(t), "none", 0, 10) }, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := tt.do()
			if err != nil {
				t.Fatal(err)
			}
			if got := seqs(rep.Messages); fmt.Sprint(got) != fmt.Sprint(tt.want) || rep.More != tt.more {
				t.Fatalf("seqs %v more %v, want %v %v", got, rep.More, tt.want, tt.more)
			}
		})
	}
	// After trimming, a client that saw only seq 1 cannot recover.
	if _, err := f.store.TrimMessages(ctx(t), "h", 2); err != nil {
		t.Fatal(err)
	}
	rep, err := f.client.Recover(ctx(t), "h", 1, 10)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Recoverable || len(rep.Messages) != 0 || rep.Info == nil || rep.Info.Oldest != 4 {
		t.Fatalf("recover after trim: %+v", rep)
	}
	rep, err = f.client.Recover(ctx(t), "h", 3, 10)
	if err != nil || !rep.Recoverable || fmt.Sprint(seqs(rep.Messages)) != "[4 5]" {
		t.Fatalf("recover after 3: %+v %v", rep, err)
	}
}

// Two cores in one queue group share the shards' requests; every message
// is committed once and the numbers are gapless.
func TestTwoCoresShareWork(t *testing.T) {
	b := newMemBus(t)
	f := newFixture(t, b)
	c2, err := core.New(core.Config{Bus: b, Store: f.store, Subjects: &f.subj, Shards: testShards, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := c2.Start(); err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	const n = 40
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if _, err := f.client.Publish(ctx(t), fmt.Sprint("ch", i%4), msg(fmt.Sprint(i), "x")); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	total := f.core.Stats().Published + c2.Stats().Published
	if total != n {
		t.Fatalf("published %d, want %d", total, n)
	}
	for i := range 4 {
		info, err := f.store.ChannelInfo(ctx(t), fmt.Sprint("ch", i))
		if err != nil || info.Last != n/4 || info.Oldest != 1 {
			t.Fatalf("ch%d: %+v %v", i, info, err)
		}
	}
}

func TestConfig(t *testing.T) {
	b := newMemBus(t)
	st := newStore(t)
	tests := []struct {
		name string
		cfg  core.Config
	}{
		{"no bus", core.Config{Store: st}},
		{"no store", core.Config{Bus: b}},
		{"negative shards", core.Config{Bus: b, Store: st, Shards: -1}},
		{"page over max", core.Config{Bus: b, Store: st, PageSize: 10, MaxPageSize: 5}},
		{"negative purge interval", core.Config{Bus: b, Store: st, PurgeInterval: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := core.New(tt.cfg); err == nil {
				t.Fatal("New accepted a bad config")
			}
		})
	}
	c, err := core.New(core.Config{Bus: b, Store: st, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); !errors.Is(err, core.ErrClosed) {
		t.Fatalf("Start after Close: %v", err)
	}
}
