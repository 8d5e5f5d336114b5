package core_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/server/core"
	"github.com/jetstreamproto/jsp/server/storage"
)

// TestCoreCodecs: a core answers each request in the request's encoding
// and publishes events in its Config.Codec, and a client sends in its
// own, so nodes of either setting work together (rolling upgrades,
// docs/operations.md).
func TestCoreCodecs(t *testing.T) {
	for _, tc := range []struct {
		name        string
		core        core.Codec
		client      core.Codec
		wantEvent   byte // first byte of the event payload
		wantReplyJS bool
	}{
		{"binary everywhere", core.CodecBinary, core.CodecBinary, 0x01, false},
		{"json core, binary client", core.CodecJSON, core.CodecBinary, '{', false},
		{"binary core, json client", core.CodecBinary, core.CodecJSON, 0x01, true},
		{"json everywhere", core.CodecJSON, core.CodecJSON, '{', true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newMemBus(t)
			subj, err := bus.NewSubjects("test")
			if err != nil {
				t.Fatal(err)
			}
			_, cl := startCore(t, core.Config{Bus: b, Store: newStore(t), Subjects: &subj, Shards: testShards, Logger: quiet, Codec: tc.core})
			cl = cl.WithCodec(tc.client)
			chSubj, err := subj.Channel("room")
			if err != nil {
				t.Fatal(err)
			}
			raw := make(chan []byte, 8)
			sub, err := b.Subscribe(chSubj, func(m *bus.Msg) { raw <- m.Data })
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = sub.Unsubscribe() })

			ctx := context.Background()
			msg := storage.Message{ClientID: "1", Sender: "alice", Body: []byte("hi"), Headers: map[string]string{"k": "v"}}
			rep, err := cl.Publish(ctx, "room", msg)
			if err != nil || rep.Seq != 1 {
				t.Fatalf("publish: %+v, %v", rep, err)
			}
			res, err := cl.PublishMany(ctx, "room", []storage.Message{{ClientID: "2", Sender: "alice", Body: []byte("a")}, {ClientID: "1", Sender: "alice", Body: []byte("hi"), Headers: map[string]string{"k": "v"}}})
			if err != nil || len(res) != 2 || res[0].Seq != 2 || !res[1].Duplicate || res[1].Seq != 1 {
				t.Fatalf("publish many: %+v, %v", res, err)
			}
			page, err := cl.After(ctx, "room", 0, 10)
			if err != nil || len(page.Messages) != 2 || string(page.Messages[0].Body) != "hi" || page.Messages[0].Headers["k"] != "v" {
				t.Fatalf("history: %+v, %v", page, err)
			}
			for want := storage.Seq(1); want <= 2; want++ {
				select {
				case data := <-raw:
					if data[0] != tc.wantEvent {
						t.Fatalf("event encoded as %q, want %q", data[0], tc.wantEvent)
					}
					ev, err := core.DecodeEvent(data)
					if err != nil || ev.Message.Seq != want || ev.Message.Sender != "alice" {
						t.Fatalf("event %+v, %v", ev, err)
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("no event %d", want)
				}
			}

			// The reply's encoding is the request's, whatever the core's.
			req := &core.Request{Op: core.OpHistory, Channel: "room", After: 0, Limit: 1}
			data, err := tc.client.EncodeRequest(req)
			if err != nil {
				t.Fatal(err)
			}
			m, err := b.Request(ctx, subj.CoreCmd(bus.ShardOf("room", testShards)), bus.Msg{Data: data})
			if err != nil {
				t.Fatal(err)
			}
			if gotJS := json.Valid(m.Data); gotJS != tc.wantReplyJS || core.IsBinary(m.Data) == tc.wantReplyJS {
				t.Fatalf("reply %q: JSON %v, want %v", m.Data, gotJS, tc.wantReplyJS)
			}
		})
	}
}

// TestCoreConfigCodec: an unknown codec or a negative codec limit is
// refused.
func TestCoreConfigCodec(t *testing.T) {
	for _, cfg := range []core.Config{
		{Codec: core.CodecJSON + 1},
		{CodecLimits: core.CodecLimits{MaxHeaders: -1}},
	} {
		cfg.Bus, cfg.Store = newMemBus(t), newStore(t)
		if _, err := core.New(cfg); err == nil {
			t.Errorf("config %+v accepted", cfg)
		}
	}
}
