package gateway

import (
	"context"
	"encoding/hex"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/reliability/mediapkt"
	"github.com/jetstreamproto/jsp/server/core"
	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/services/voice/voiceproto"
	"github.com/jetstreamproto/jsp/session"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/wire"
)

// grantAll is a rooms service that grants every media binding of one
// audio track and answers its other ops with an empty reply.
type grantAll struct{ track voiceproto.Track }

func (g grantAll) HandleCommand(_ context.Context, _ core.Identity, body []byte) ([]byte, error) {
	req, err := voiceproto.DecodeRequest(body)
	if err != nil {
		return nil, err
	}
	if req.Op == voiceproto.OpGrant {
		if req.Track != g.track.ID {
			return nil, jsperr.Newf(jsperr.TrackNotFound, "no track %q", req.Track)
		}
		tr := g.track
		return voiceproto.Marshal(voiceproto.Response{Track: &tr}), nil
	}
	return voiceproto.Marshal(voiceproto.Response{}), nil
}

// mediaBind sends one voice.media command and fails the test unless it is
// granted.
func mediaBind(t *testing.T, s *session.Session, id string, req voiceproto.Request) {
	t.Helper()
	env := &wire.Envelope{ID: []byte(id), Route: wire.Route{Kind: wire.RouteService, Name: voiceproto.MediaService},
		Kind: wire.KindCommand, Class: protocol.ClassChat, Body: voiceproto.Marshal(req)}
	if err := s.SendEnvelope(wire.FrameCommand, env); err != nil {
		t.Fatal(err)
	}
	if in := recvType(t, s, wire.FrameReply); in.Envelope.ErrCode != jsperr.NoError {
		t.Fatalf("%s %s: %v %s", req.Op, req.Track, in.Envelope.ErrCode, in.Envelope.ErrReason)
	}
}

// TestMediaSubscribeBeforePublish: the rooms service announces a track
// before its publisher binds its flows at the gateway, so a subscriber
// may bind first; the gateway then relays the track as if it were
// published elsewhere. When the publisher's binding arrives and replaces
// the relay, the subscription follows the track and gets its packets.
// (A subscription left on the dropped relay got nothing: `jsp call`
// recorded 0 frames when the subscriber won that race.)
func TestMediaSubscribeBeforePublish(t *testing.T) {
	for _, kind := range []transport.Kind{transport.KindMem, transport.KindTCP} {
		t.Run(string(kind), func(t *testing.T) {
			b := embeddedBus(t)
			st, err := storage.Open(context.Background(), "sqlite:"+t.TempDir()+"/jsp.db", storage.Config{Logger: testLogger()})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = st.Close() })
			reg := core.NewRegistry()
			track := voiceproto.Track{ID: "p1/mic", Participant: "p1", Name: "mic", Kind: voiceproto.KindAudio, Codec: "opus"}
			if err := reg.Register(voiceproto.Service, grantAll{track: track}); err != nil {
				t.Fatal(err)
			}
			c, err := core.New(core.Config{Bus: b, Store: st, Logger: testLogger(), Services: reg})
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.Close() })
			cfg := Config{Bus: b, Sessions: st}
			if kind == transport.KindTCP {
				cfg.TCPAddr = "127.0.0.1:0"
			}
			g := startGateway(t, cfg)
			sub, pub := g.dial(t, kind), g.dial(t, kind)

			const flow = session.FirstMediaFlow
			mediaBind(t, sub, "s1", voiceproto.Request{Op: voiceproto.MediaSubscribe, Room: "r", Track: track.ID, Flows: []uint64{uint64(flow)}})
			mediaBind(t, pub, "p1", voiceproto.Request{Op: voiceproto.MediaPublish, Room: "r", Track: track.ID, Flows: []uint64{uint64(flow)}})

			ctx := ctxT(t)
			got := make(chan session.FlowDatagram, 1)
			go func() {
				rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
				defer cancel()
				d, err := sub.ReceiveFlow(rctx)
				if err == nil {
					got <- d
				}
				close(got)
			}()
			// 20 ms audio packets until one arrives; the receiver gives
			// up after 3 s.
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for seq := mediapkt.Seq(100); ; seq++ {
				h := mediapkt.Header{Flags: mediapkt.FlagEndOfFrame, Seq: seq, Timestamp: 960 * uint32(seq)}
				pkt, err := mediapkt.AppendPacket(nil, &h, []byte{0xF8, 1, 2, 3})
				if err != nil {
					t.Fatal(err)
				}
				if err := pub.SendFlow(flow, pkt, protocol.ClassMedia); err != nil {
					t.Fatal(err)
				}
				select {
				case d, ok := <-got:
					if !ok {
						t.Fatal("the subscriber got no packet of the track published after its subscription")
					}
					if d.Flow != flow {
						t.Fatalf("packet on flow %d, want %d", d.Flow, flow)
					}
					checkMoved(t, g.Gateway, hex.EncodeToString(sub.ID()), flow)
					// The moved binding is the subscription: unsubscribing
					// finds it.
					mediaBind(t, sub, "s2", voiceproto.Request{Op: voiceproto.MediaUnsubscribe, Room: "r", Track: track.ID})
					return
				case <-tick.C:
				}
			}
		})
	}
}

// checkMoved asserts that the session's subscription on flow is bound to
// the publisher's (local) track, counted once there.
func checkMoved(t *testing.T, g *Gateway, sessionID string, flow wire.FlowID) {
	t.Helper()
	g.mu.Lock()
	var h *host
	for x := range g.hosts {
		if x.id == sessionID {
			h = x
		}
	}
	g.mu.Unlock()
	if h == nil {
		t.Fatalf("no host of session %q", sessionID)
	}
	g.media.mu.Lock()
	defer g.media.mu.Unlock()
	h.media.mu.Lock()
	defer h.media.mu.Unlock()
	df := h.media.downs[flow]
	switch {
	case df == nil:
		t.Fatal("subscription unbound")
	case !df.t.local || df.d.Track() != df.t.tr:
		t.Fatalf("subscription on track local=%v, DownTrack of its track %v", df.t.local, df.d.Track() == df.t.tr)
	case df.t.subs != 1:
		t.Fatalf("track counts %d subscriptions, want 1", df.t.subs)
	}
}
