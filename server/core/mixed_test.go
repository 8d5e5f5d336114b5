package core_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/server/core"
	"github.com/jetstreamproto/jsp/server/storage"
)

// runsStore records the channels of each AppendRuns call and blocks the
// first append of any kind until released.
type runsStore struct {
	storage.Store
	ra interface {
		AppendRuns(ctx context.Context, runs []storage.ChannelRun) ([][]storage.AppendResult, [][]error)
	}
	entered chan struct{}
	release chan struct{}

	mu    sync.Mutex
	calls []string // per call: channel:messages ...
	held  bool
}

// hold blocks the store's first append until release.
func (r *runsStore) hold() {
	r.mu.Lock()
	first := !r.held
	r.held = true
	r.mu.Unlock()
	if first {
		r.entered <- struct{}{}
		<-r.release
	}
}

func (r *runsStore) AppendMessage(ctx context.Context, channel string, m storage.Message) (storage.AppendResult, error) {
	r.hold()
	return r.Store.AppendMessage(ctx, channel, m)
}

func (r *runsStore) AppendRuns(ctx context.Context, runs []storage.ChannelRun) ([][]storage.AppendResult, [][]error) {
	desc := ""
	for _, run := range runs {
		desc += fmt.Sprintf(" %s:%d", run.Channel, len(run.Messages))
	}
	r.mu.Lock()
	r.calls = append(r.calls, desc)
	r.mu.Unlock()
	r.hold()
	return r.ra.AppendRuns(ctx, runs)
}

// TestMergedChannels checks that the publishes of several channels queued
// on one lane are appended with one store call while the lane's previous
// commit runs (D36): with publishes spread over many channels, a lane that
// merged only one channel's requests paid one commit per channel, and the
// store's group commit carried at most one request per lane. Each channel
// keeps its order and numbering, and each request its own answer.
func TestMergedChannels(t *testing.T) {
	b := newMemBus(t)
	subj, err := bus.NewSubjects("test")
	if err != nil {
		t.Fatal(err)
	}
	inner := newStore(t)
	ra, ok := inner.(interface {
		AppendRuns(ctx context.Context, runs []storage.ChannelRun) ([][]storage.AppendResult, [][]error)
	})
	if !ok {
		t.Skip("store without AppendRuns")
	}
	rs := &runsStore{Store: inner, ra: ra, entered: make(chan struct{}, 1), release: make(chan struct{})}
	c, cl := startCore(t, core.Config{Bus: b, Store: rs, Subjects: &subj, Shards: 1, Workers: 1, Logger: quiet})
	f := &fixture{bus: b, subj: subj}
	events := map[string]<-chan core.Event{}
	for _, ch := range []string{"c0", "c1", "c2", "c3"} {
		events[ch] = f.events(t, ch)
	}

	// The first request holds the only lane inside the store; it is a
	// one-message request, which the lane serves alone.
	firstDone := make(chan error, 1)
	go func() {
		_, err := cl.Publish(ctx(t), "c0", msg("a", "c0-1"))
		firstDone <- err
	}()
	<-rs.entered

	type send struct {
		channel string
		msgs    []storage.Message
	}
	sends := []send{
		{"c1", []storage.Message{msg("b", "c1-1")}},
		{"c2", []storage.Message{msg("c", "c2-1"), msg("d", "c2-2")}},
		{"c3", []storage.Message{msg("e", "c3-1")}},
		{"c1", []storage.Message{msg("f", "c1-2")}},
		{"c0", []storage.Message{msg("g", "c0-2")}},
	}
	answers := make([]chan []core.PublishResult, len(sends))
	for i, s := range sends {
		answers[i] = make(chan []core.PublishResult, 1)
		go func() {
			res, err := cl.PublishMany(ctx(t), s.channel, s.msgs)
			if err != nil {
				t.Errorf("publish to %s: %v", s.channel, err)
			}
			answers[i] <- res
		}()
		deadline := time.Now().Add(10 * time.Second)
		for core.LaneQueued(c, s.channel) != i+1 {
			if time.Now().After(deadline) {
				t.Fatalf("request %d not queued", i)
			}
			time.Sleep(time.Millisecond)
		}
	}
	close(rs.release)
	if err := <-firstDone; err != nil {
		t.Fatal(err)
	}
	wantSeqs := [][]storage.Seq{{1}, {1, 2}, {1}, {2}, {2}}
	for i, w := range wantSeqs {
		res := <-answers[i]
		if len(res) != len(w) {
			t.Fatalf("request %d: %d results, want %d", i, len(res), len(w))
		}
		for j, seq := range w {
			if res[j].Seq != seq || res[j].Duplicate {
				t.Fatalf("request %d result %d = %+v, want seq %d", i, j, res[j], seq)
			}
		}
	}
	for ch, bodies := range map[string][]string{"c0": {"c0-1", "c0-2"}, "c1": {"c1-1", "c1-2"}, "c2": {"c2-1", "c2-2"}, "c3": {"c3-1"}} {
		for i, body := range bodies {
			wantEvent(t, events[ch], storage.Seq(i+1), body)
		}
		noEvent(t, events[ch])
	}
	rs.mu.Lock()
	calls := fmt.Sprint(rs.calls)
	rs.mu.Unlock()
	// The first request alone (AppendMessage), then every channel queued
	// behind it in one call, each channel's messages together in queue
	// order.
	if want := "[ c1:2 c2:2 c3:1 c0:1]"; calls != want {
		t.Fatalf("AppendRuns calls %s, want %s", calls, want)
	}
}
