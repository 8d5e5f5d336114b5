package gateway

import (
	"bytes"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/server/bus/membus"
	"github.com/jetstreamproto/jsp/server/core"
	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/session"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/wire"
)

// echoOnly hides a bus's no-echo connections: the gateway then takes its
// own live events back from the bus, as before D44.
type echoOnly struct{ bus.Bus }

// liveBuses are the buses the live-channel cluster tests run on.
func liveBuses() []struct {
	name   string
	open   func(t *testing.T) bus.Bus
	noEcho bool
} {
	mem := func(t *testing.T) *membus.Bus {
		b, err := membus.New(membus.Config{Logger: testLogger()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		return b
	}
	return []struct {
		name   string
		open   func(t *testing.T) bus.Bus
		noEcho bool
	}{
		{"embedded NATS", func(t *testing.T) bus.Bus { return embeddedBus(t) }, true},
		{"membus", func(t *testing.T) bus.Bus { return mem(t) }, true},
		{"membus with echo", func(t *testing.T) bus.Bus { return echoOnly{mem(t)} }, false},
	}
}

// liveEnvelope is a live PUBLISH of body with id.
func liveEnvelope(channel, id, body string) *wire.Envelope {
	return &wire.Envelope{ID: []byte(id), Route: wire.Route{Kind: wire.RouteChannel, Name: channel},
		Class: protocol.ClassChat, Timestamp: 1_700_000_000_000, Body: []byte(body)}
}

// wantLiveEvents receives EVENTs of channel until it has len(bodies),
// checks them against bodies in order (no number, sender set) and returns
// them; ACKs are skipped.
func wantLiveEvents(t *testing.T, s *session.Session, channel string, bodies []string) []*wire.Envelope {
	t.Helper()
	var got []*wire.Envelope
	for len(got) < len(bodies) {
		in, err := s.Recv(ctxT(t))
		if err != nil {
			t.Fatalf("after %d of %d events: %v", len(got), len(bodies), err)
		}
		switch in.Type {
		case wire.FrameEvent:
			got = append(got, in.Envelope)
		case wire.FrameAck:
		default:
			t.Fatalf("received %s, want EVENT", in.Type)
		}
	}
	for i, ev := range got {
		if ev.Seq != 0 || string(ev.Body) != bodies[i] || ev.Route.Name != channel || ev.Sender == "" {
			t.Fatalf("event %d: seq %d body %q route %v sender %q; want no seq, body %q", i, ev.Seq, ev.Body, ev.Route, ev.Sender, bodies[i])
		}
	}
	return got
}

// waitAcks receives until n ids are acknowledged and returns them in the
// order acknowledged; an ERROR fails the test.
func waitAcks(t *testing.T, s *session.Session, n int) [][]byte {
	t.Helper()
	var ids [][]byte
	for len(ids) < n {
		in, err := s.Recv(ctxT(t))
		if err != nil {
			t.Fatalf("after %d of %d ACKs: %v", len(ids), n, err)
		}
		switch m := in.Message.(type) {
		case *wire.Ack:
			ids = append(ids, m.IDs...)
		case *wire.ErrorMessage:
			t.Fatalf("ERROR %v for %q", m.Code, m.Ref)
		}
	}
	return ids
}

// Two gateways with live channels on one bus: a burst of live PUBLISHes
// on gateway A reaches a subscriber on A once and a subscriber on B once,
// in order and alike, and is acknowledged in order; a PUBLISH on B
// reaches both once as well. With no-echo connections and without.
func TestLiveTwoGateways(t *testing.T) {
	for _, tb := range liveBuses() {
		t.Run(tb.name, func(t *testing.T) {
			f := newClusterFixture(t, tb.open(t))
			cfg := func(node string) Config {
				return Config{Bus: f.bus, Sessions: f.store, NodeID: node, LiveChannels: []string{"typing.*"}}
			}
			ga, gb := startGateway(t, cfg("gw-a")), startGateway(t, cfg("gw-b"))
			if ga.cluster.noEcho != tb.noEcho {
				t.Fatalf("gateway uses a no-echo connection: %v, want %v", ga.cluster.noEcho, tb.noEcho)
			}
			const ch = "typing.room"
			subA, subB := ga.dial(t, transport.KindMem), gb.dial(t, transport.KindMem)
			subscribe(t, subA, ch)
			subscribe(t, subB, ch)
			pubA, pubB := ga.dial(t, transport.KindMem), gb.dial(t, transport.KindMem)
			// The permission first, so that the burst is not held
			// behind its question.
			if err := publishAcked(t, pubA, ch, "first", "b first"); err != nil {
				t.Fatal(err)
			}
			const n = 40
			bodies := []string{"b first"}
			var sent [][]byte
			for i := range n {
				env := liveEnvelope(ch, fmt.Sprint("id", i), fmt.Sprint("b", i))
				if err := pubA.SendEnvelope(wire.FramePublish, env); err != nil {
					t.Fatal(err)
				}
				sent = append(sent, env.ID)
				bodies = append(bodies, string(env.Body))
			}
			if got := waitAcks(t, pubA, n); !slices.EqualFunc(got, sent, bytes.Equal) {
				t.Fatalf("ACKs %q, want %q", got, sent)
			}
			onA := wantLiveEvents(t, subA, ch, bodies)
			onB := wantLiveEvents(t, subB, ch, bodies)
			for i := range onA {
				if onA[i].Sender != onB[i].Sender || !bytes.Equal(onA[i].ID, onB[i].ID) || onA[i].Timestamp != onB[i].Timestamp {
					t.Fatalf("event %d differs: on A %+v, on B %+v", i, onA[i], onB[i])
				}
			}
			if err := publishAcked(t, pubB, ch, "from-b", "from b"); err != nil {
				t.Fatal(err)
			}
			wantLiveEvents(t, subA, ch, []string{"from b"})
			wantLiveEvents(t, subB, ch, []string{"from b"})
			noMoreEvents(t, subA)
			noMoreEvents(t, subB)
		})
	}
}

// fanOutLive puts each channel's PUBLISHes of a batch on the bus as one
// event, a run in their order, and acknowledges the batch with one ACK in
// order of arrival.
func TestLiveRuns(t *testing.T) {
	for _, tb := range liveBuses() {
		t.Run(tb.name, func(t *testing.T) {
			f := newClusterFixture(t, tb.open(t))
			g := startGateway(t, Config{Bus: f.bus, Sessions: f.store, NodeID: "gw-runs", LiveChannels: []string{"typing.*"}})
			pub := g.dial(t, transport.KindMem)
			// The gateway has one session: the publisher's host.
			var h *host
			waitFor(t, "the publisher's host", func() bool {
				g.mu.Lock()
				defer g.mu.Unlock()
				for x := range g.hosts {
					h = x
				}
				return h != nil
			})
			var mu sync.Mutex
			runs := map[string][][]string{} // channel: each event's bodies
			ready := map[string]bool{}      // channel: a marker arrived
			for _, ch := range []string{"typing.x", "typing.y"} {
				subj, err := g.cluster.subj.Channel(ch)
				if err != nil {
					t.Fatal(err)
				}
				sub, err := f.bus.Subscribe(subj, func(m *bus.Msg) {
					ev, err := core.DecodeEvent(m.Data)
					if err != nil || !ev.Ephemeral {
						t.Errorf("bad live event on %s: %+v, %v", ch, ev, err)
						return
					}
					if ev.Message.Sender == "marker" {
						mu.Lock()
						ready[ch] = true
						mu.Unlock()
						return
					}
					msgs := ev.Messages
					if len(msgs) == 0 {
						msgs = []storage.Message{ev.Message}
					}
					var bodies []string
					for _, m := range msgs {
						env, err := storedEnvelope(&m)
						if err != nil {
							t.Error(err)
							return
						}
						bodies = append(bodies, string(env.Body))
					}
					mu.Lock()
					runs[ch] = append(runs[ch], bodies)
					mu.Unlock()
				})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = sub.Unsubscribe() })
			}
			// A subscription reaches NATS asynchronously: markers go
			// out until both are in place.
			waitFor(t, "the bus-side subscriptions", func() bool {
				for _, ch := range []string{"typing.x", "typing.y"} {
					subj, _ := g.cluster.subj.Channel(ch)
					data, err := g.cluster.codec.EncodeEvent(&core.Event{Channel: ch, Ephemeral: true, Message: storage.Message{Sender: "marker"}})
					if err != nil {
						t.Fatal(err)
					}
					if err := f.bus.Publish(subj, bus.Msg{Data: data}); err != nil {
						t.Fatal(err)
					}
				}
				time.Sleep(5 * time.Millisecond)
				mu.Lock()
				defer mu.Unlock()
				return ready["typing.x"] && ready["typing.y"]
			})
			// Markers still on their way are skipped by the handler.
			batch := []*wire.Envelope{
				liveEnvelope("typing.x", "1", "x1"),
				liveEnvelope("typing.y", "2", "y1"),
				liveEnvelope("typing.x", "3", "x2"),
				liveEnvelope("typing.x", "4", "x3"),
				liveEnvelope("typing.y", "5", "y2"),
			}
			h.fanOutLive(batch)
			in := recvType(t, pub, wire.FrameAck)
			want := [][]byte{[]byte("1"), []byte("2"), []byte("3"), []byte("4"), []byte("5")}
			if ids := in.Message.(*wire.Ack).IDs; !slices.EqualFunc(ids, want, bytes.Equal) {
				t.Fatalf("ACK %q, want one ACK of %q", ids, want)
			}
			waitFor(t, "a live event per channel", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(runs["typing.x"]) > 0 && len(runs["typing.y"]) > 0
			})
			time.Sleep(20 * time.Millisecond) // room for a wrong second event
			mu.Lock()
			defer mu.Unlock()
			if got := fmt.Sprint(runs); got != "map[typing.x:[[x1 x2 x3]] typing.y:[[y1 y2]]]" {
				t.Fatalf("bus events %s, want one run per channel", got)
			}
		})
	}
}
