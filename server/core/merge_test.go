package core_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/server/core"
	"github.com/jetstreamproto/jsp/server/storage"
)

// batchStore counts AppendMessages calls and blocks the first until
// released.
type batchStore struct {
	storage.Store
	ba interface {
		AppendMessages(ctx context.Context, channel string, msgs []storage.Message) ([]storage.AppendResult, []error)
	}
	entered chan struct{}
	release chan struct{}

	mu    sync.Mutex
	calls []int // messages per call
}

func (b *batchStore) AppendMessages(ctx context.Context, channel string, msgs []storage.Message) ([]storage.AppendResult, []error) {
	b.mu.Lock()
	b.calls = append(b.calls, len(msgs))
	first := len(b.calls) == 1
	b.mu.Unlock()
	if first {
		b.entered <- struct{}{}
		<-b.release
	}
	return b.ba.AppendMessages(ctx, channel, msgs)
}

// TestMergedPublishes checks that publish requests of one channel queued
// back to back on a lane are appended as one run, and that each request
// is answered as if served alone: one-message and multi-message forms,
// a duplicate, an invalid message and a request over the batch limit,
// with sequence numbers and events in queue order.
func TestMergedPublishes(t *testing.T) {
	b := newMemBus(t)
	subj, err := bus.NewSubjects("test")
	if err != nil {
		t.Fatal(err)
	}
	inner := newStore(t)
	ba, ok := inner.(interface {
		AppendMessages(ctx context.Context, channel string, msgs []storage.Message) ([]storage.AppendResult, []error)
	})
	if !ok {
		t.Skip("store without AppendMessages")
	}
	bs := &batchStore{Store: inner, ba: ba, entered: make(chan struct{}, 1), release: make(chan struct{})}
	c, cl := startCore(t, core.Config{Bus: b, Store: bs, Subjects: &subj, Shards: 1, Workers: 1, Logger: quiet, MaxPublishBatch: 4})
	f := &fixture{bus: b, subj: subj}
	events := f.events(t, "hot")

	// The first request holds the lane inside the store.
	firstDone := make(chan error, 1)
	go func() {
		_, err := cl.PublishMany(ctx(t), "hot", []storage.Message{msg("p0", "0"), msg("p1", "1")})
		firstDone <- err
	}()
	<-bs.entered

	// Queued behind it, one at a time so their queue order is known.
	type answer struct {
		one  *core.Reply
		many []core.PublishResult
		err  error
	}
	answers := make([]chan answer, 5)
	for i := range answers {
		answers[i] = make(chan answer, 1)
	}
	send := []func() answer{
		func() answer { r, err := cl.Publish(ctx(t), "hot", msg("q0", "2")); return answer{one: r, err: err} },
		func() answer {
			r, err := cl.PublishMany(ctx(t), "hot", []storage.Message{msg("q1", "3"), msg("p0", "0"), {ClientID: "bad"}, msg("q2", "4")})
			return answer{many: r, err: err}
		},
		func() answer {
			r, err := cl.PublishMany(ctx(t), "hot", []storage.Message{msg("x1", "x"), msg("x2", "x"), msg("x3", "x"), msg("x4", "x"), msg("x5", "x")})
			return answer{many: r, err: err}
		},
		func() answer { r, err := cl.Publish(ctx(t), "hot", msg("q3", "5")); return answer{one: r, err: err} },
		func() answer { r, err := cl.Publish(ctx(t), "hot", msg("q2", "4")); return answer{one: r, err: err} },
	}
	for i, fn := range send {
		go func() { answers[i] <- fn() }()
		deadline := time.Now().Add(10 * time.Second)
		for core.LaneQueued(c, "hot") != i+1 {
			if time.Now().After(deadline) {
				t.Fatalf("request %d not queued", i)
			}
			time.Sleep(time.Millisecond)
		}
	}
	close(bs.release)
	if err := <-firstDone; err != nil {
		t.Fatal(err)
	}
	a := <-answers[0]
	if a.err != nil || a.one.Seq != 3 || a.one.Duplicate {
		t.Fatalf("q0: %+v %v", a.one, a.err)
	}
	a = <-answers[1]
	if a.err != nil {
		t.Fatal(a.err)
	}
	want := []core.PublishResult{{Seq: 4}, {Seq: 1, Duplicate: true}, {Code: jsperr.BadRequest}, {Seq: 5}}
	for i, w := range want {
		if g := a.many[i]; g.Code != w.Code || g.Seq != w.Seq || g.Duplicate != w.Duplicate {
			t.Fatalf("result %d = %+v, want %+v", i, g, w)
		}
	}
	if a = <-answers[2]; jsperr.CodeOf(a.err) != jsperr.BadRequest {
		t.Fatalf("request over MaxPublishBatch: %v", a.err)
	}
	if a = <-answers[3]; a.err != nil || a.one.Seq != 6 {
		t.Fatalf("q3: %+v %v", a.one, a.err)
	}
	if a = <-answers[4]; a.err != nil || a.one.Seq != 5 || !a.one.Duplicate {
		t.Fatalf("q2 again: %+v %v", a.one, a.err)
	}
	for i, body := range []string{"0", "1", "2", "3", "4", "5"} {
		wantEvent(t, events, storage.Seq(i+1), body)
	}
	noEvent(t, events)
	bs.mu.Lock()
	calls := fmt.Sprint(bs.calls)
	bs.mu.Unlock()
	// The first request, then everything queued behind it in one run
	// (q0 1 + q1 4 + q3 1 + q2 1; the refused request adds nothing).
	if calls != "[2 7]" {
		t.Fatalf("AppendMessages calls %s, want [2 7]", calls)
	}
}
