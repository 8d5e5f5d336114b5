package core_test

import (
	"fmt"
	"testing"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/security/breaker"
	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/server/core"
	"github.com/jetstreamproto/jsp/server/storage"
)

// TestPublishMany checks a multi-message publish: results and events in
// the order sent, a duplicate and an invalid message answered alone.
func TestPublishMany(t *testing.T) {
	for _, guarded := range []bool{false, true} {
		t.Run(fmt.Sprint("guarded=", guarded), func(t *testing.T) {
			f := newFixture(t, newMemBus(t))
			if guarded {
				f = guardedFixture(t)
			}
			events := f.events(t, "room")
			if _, err := f.client.Publish(ctx(t), "room", msg("first", "0")); err != nil {
				t.Fatal(err)
			}
			wantEvent(t, events, 1, "0")
			msgs := []storage.Message{msg("a", "1"), msg("first", "0"), msg("b", "2"), {ClientID: "bad"}, msg("c", "3")}
			res, err := f.client.PublishMany(ctx(t), "room", msgs)
			if err != nil {
				t.Fatal(err)
			}
			want := []core.PublishResult{{Seq: 2}, {Seq: 1, Duplicate: true}, {Seq: 3}, {Code: jsperr.BadRequest}, {Seq: 4}}
			for i, w := range want {
				got := res[i]
				if got.Code != w.Code || got.Seq != w.Seq || got.Duplicate != w.Duplicate {
					t.Fatalf("result %d = %+v, want %+v", i, got, w)
				}
			}
			wantEvent(t, events, 2, "1")
			wantEvent(t, events, 3, "2")
			wantEvent(t, events, 4, "3")
			noEvent(t, events)
			st := f.core.Stats()
			if st.Published != 4 || st.Duplicates != 1 || st.Failed != 1 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

// TestPublishManyLimit checks MaxPublishBatch: its default, and that a
// request over it is refused whole.
func TestPublishManyLimit(t *testing.T) {
	f := newFixture(t, newMemBus(t))
	msgs := make([]storage.Message, core.DefaultMaxPublishBatch+1)
	for i := range msgs {
		msgs[i] = msg(fmt.Sprint(i), "x")
	}
	if _, err := f.client.PublishMany(ctx(t), "room", msgs); jsperr.CodeOf(err) != jsperr.BadRequest {
		t.Fatalf("publish of %d messages: %v, want BAD_REQUEST", len(msgs), err)
	}
	res, err := f.client.PublishMany(ctx(t), "room", msgs[:core.DefaultMaxPublishBatch])
	if err != nil {
		t.Fatal(err)
	}
	if last := res[len(res)-1]; last.Seq != core.DefaultMaxPublishBatch {
		t.Fatalf("last result %+v", last)
	}
	if _, err := core.New(core.Config{Bus: f.bus, Store: f.store, MaxPublishBatch: -1}); err == nil {
		t.Fatal("negative MaxPublishBatch accepted")
	}
}

func guardedFixture(t *testing.T) *fixture {
	t.Helper()
	b := newMemBus(t)
	subj, err := bus.NewSubjects("test")
	if err != nil {
		t.Fatal(err)
	}
	g, err := core.GuardStore(newStore(t), breaker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	c, cl := startCore(t, core.Config{Bus: b, Store: g, Subjects: &subj, Shards: testShards, Logger: quiet})
	return &fixture{bus: b, store: g, core: c, client: cl, subj: subj}
}
