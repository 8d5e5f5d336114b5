package voice

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/server/core"
	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/services/voice/voiceproto"
	"github.com/jetstreamproto/jsp/wire"
)

type fakeHost struct {
	mu     sync.Mutex
	events []voiceproto.Event
	drops  map[string][]string // channel -> users dropped
}

func (h *fakeHost) Ephemeral(channel string, msg storage.Message) error {
	env, _, err := wire.ParseEnvelope(msg.Body)
	if err != nil {
		return err
	}
	ev, err := voiceproto.DecodeEvent(env.Body)
	if err != nil {
		return err
	}
	h.mu.Lock()
	h.events = append(h.events, ev)
	h.mu.Unlock()
	return nil
}

func (h *fakeHost) Drop(channel string, users ...string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.drops == nil {
		h.drops = map[string][]string{}
	}
	h.drops[channel] = append(h.drops[channel], users...)
	return nil
}

func (h *fakeHost) dropped(channel string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.drops[channel])
}

func (h *fakeHost) types() []voiceproto.EventType {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []voiceproto.EventType
	for _, e := range h.events {
		out = append(out, e.Type)
	}
	return out
}

func call(t *testing.T, s *Service, id core.Identity, r voiceproto.Request) (voiceproto.Response, error) {
	t.Helper()
	b, err := s.HandleCommand(context.Background(), id, voiceproto.Marshal(r))
	if err != nil {
		return voiceproto.Response{}, err
	}
	resp, err := voiceproto.DecodeResponse(b)
	if err != nil {
		t.Fatal(err)
	}
	return resp, nil
}

func ident(user, sess string) core.Identity { return core.Identity{User: user, Session: sess} }

func wantCode(t *testing.T, err error, c jsperr.Code) {
	t.Helper()
	if got := jsperr.CodeOf(err); got != c {
		t.Fatalf("code %v (%v), want %v", got, err, c)
	}
}

func TestRoomLifecycle(t *testing.T) {
	h := &fakeHost{}
	s, err := New(Config{Host: h})
	if err != nil {
		t.Fatal(err)
	}
	alice, bob := ident("alice", "s1"), ident("bob", "s2")
	if _, err := call(t, s, alice, voiceproto.Request{Op: voiceproto.OpJoin, Room: "r"}); err != nil {
		t.Fatal(err)
	}
	resp, err := call(t, s, bob, voiceproto.Request{Op: voiceproto.OpJoin, Room: "r"})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Room.Participants) != 2 || resp.Participant.Role != voiceproto.RoleMember || resp.MaxFrameBytes != voiceproto.DefaultMaxFrameBytes {
		t.Fatalf("join: %+v", resp)
	}
	tr, err := call(t, s, alice, voiceproto.Request{Op: voiceproto.OpPublish, Room: "r", Track: "mic", Kind: voiceproto.KindAudio, Codec: "opus"})
	if err != nil {
		t.Fatal(err)
	}
	if tr.Track.ID != "s1/mic" {
		t.Fatalf("track id %q", tr.Track.ID)
	}
	_, err = call(t, s, alice, voiceproto.Request{Op: voiceproto.OpPublish, Room: "r", Track: "mic", Kind: voiceproto.KindAudio, Codec: "opus"})
	wantCode(t, err, jsperr.TrackExists)
	// Grants: bob may subscribe, not publish alice's track.
	if _, err := call(t, s, bob, voiceproto.Request{Op: voiceproto.OpGrant, Room: "r", Track: "s1/mic", Action: voiceproto.ActSubscribe}); err != nil {
		t.Fatal(err)
	}
	_, err = call(t, s, bob, voiceproto.Request{Op: voiceproto.OpGrant, Room: "r", Track: "s1/mic", Action: voiceproto.ActPublish})
	wantCode(t, err, jsperr.Forbidden)
	_, err = call(t, s, ident("carol", "s3"), voiceproto.Request{Op: voiceproto.OpGrant, Room: "r", Track: "s1/mic", Action: voiceproto.ActSubscribe})
	wantCode(t, err, jsperr.NotInRoom)
	// Mute others: bob is a member, alice the owner.
	yes, no := true, false
	_, err = call(t, s, bob, voiceproto.Request{Op: voiceproto.OpMute, Room: "r", Track: "s1/mic", Muted: &yes})
	wantCode(t, err, jsperr.Forbidden)
	if _, err := call(t, s, alice, voiceproto.Request{Op: voiceproto.OpMute, Room: "r", Track: "s1/mic", Muted: &yes}); err != nil {
		t.Fatal(err)
	}
	if _, err := call(t, s, alice, voiceproto.Request{Op: voiceproto.OpMute, Room: "r", Track: "s1/mic", Muted: &no}); err != nil {
		t.Fatal(err)
	}
	_, err = call(t, s, bob, voiceproto.Request{Op: voiceproto.OpEnd, Room: "r"})
	wantCode(t, err, jsperr.Forbidden)
	if _, err := call(t, s, bob, voiceproto.Request{Op: voiceproto.OpQuality, Room: "r", Quality: "poor"}); err != nil {
		t.Fatal(err)
	}
	if _, err := call(t, s, bob, voiceproto.Request{Op: voiceproto.OpLeave, Room: "r"}); err != nil {
		t.Fatal(err)
	}
	_, err = call(t, s, bob, voiceproto.Request{Op: voiceproto.OpSpeakers, Room: "r"})
	wantCode(t, err, jsperr.Forbidden)
	gw := core.Identity{User: "gw", Scopes: []string{voiceproto.GatewayScope}}
	if _, err := call(t, s, gw, voiceproto.Request{Op: voiceproto.OpSpeakers, Room: "r", Speakers: []voiceproto.Speaker{{Participant: "s1", Level: 0.5}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := call(t, s, alice, voiceproto.Request{Op: voiceproto.OpEnd, Room: "r"}); err != nil {
		t.Fatal(err)
	}
	_, err = call(t, s, alice, voiceproto.Request{Op: voiceproto.OpList, Room: "r"})
	wantCode(t, err, jsperr.RoomNotFound)
	want := []voiceproto.EventType{voiceproto.EvJoined, voiceproto.EvJoined, voiceproto.EvPublished, voiceproto.EvMuted,
		voiceproto.EvMuted, voiceproto.EvQuality, voiceproto.EvLeft, voiceproto.EvSpeakers, voiceproto.EvEnded}
	got := h.types()
	if len(got) != len(want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("events %v, want %v", got, want)
		}
	}
}

func TestLimits(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		run  func(s *Service) error
		code jsperr.Code
	}{
		{"participants", Config{MaxParticipants: 2}, func(s *Service) error {
			for i, u := range []string{"a", "b", "c"} {
				if _, err := call(t, s, ident(u, u), voiceproto.Request{Op: voiceproto.OpJoin, Room: "r"}); err != nil {
					if i == 2 {
						return err
					}
					t.Fatal(err)
				}
			}
			return nil
		}, jsperr.RoomFull},
		{"tracks", Config{MaxTracks: 1}, func(s *Service) error {
			id := ident("a", "a")
			call(t, s, id, voiceproto.Request{Op: voiceproto.OpJoin, Room: "r"})
			call(t, s, id, voiceproto.Request{Op: voiceproto.OpPublish, Room: "r", Track: "x", Kind: voiceproto.KindAudio, Codec: "opus"})
			_, err := call(t, s, id, voiceproto.Request{Op: voiceproto.OpPublish, Room: "r", Track: "y", Kind: voiceproto.KindAudio, Codec: "opus"})
			return err
		}, jsperr.TooManyRoomTracks},
		{"rooms", Config{MaxRooms: 1}, func(s *Service) error {
			call(t, s, ident("a", "a"), voiceproto.Request{Op: voiceproto.OpCreate, Room: "r1"})
			_, err := call(t, s, ident("a", "a"), voiceproto.Request{Op: voiceproto.OpCreate, Room: "r2"})
			return err
		}, jsperr.QueueFull},
		{"no auto create", Config{NoAutoCreate: true}, func(s *Service) error {
			_, err := call(t, s, ident("a", "a"), voiceproto.Request{Op: voiceproto.OpJoin, Room: "r"})
			return err
		}, jsperr.RoomNotFound},
		{"anonymous", Config{}, func(s *Service) error {
			_, err := call(t, s, core.Identity{}, voiceproto.Request{Op: voiceproto.OpJoin, Room: "r"})
			return err
		}, jsperr.Unauthenticated},
		{"bad room id", Config{}, func(s *Service) error {
			_, err := call(t, s, ident("a", "a"), voiceproto.Request{Op: voiceproto.OpJoin, Room: "a b"})
			return err
		}, jsperr.BadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Host = &fakeHost{}
			s, err := New(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			wantCode(t, tt.run(s), tt.code)
		})
	}
}

func TestDefaults(t *testing.T) {
	s, err := New(Config{Host: &fakeHost{}})
	if err != nil {
		t.Fatal(err)
	}
	if s.cfg.MaxParticipants != voiceproto.DefaultMaxParticipants || s.cfg.MaxTracks != voiceproto.DefaultMaxTracks ||
		s.cfg.MaxRooms != voiceproto.DefaultMaxRooms || s.cfg.MaxFrameBytes != voiceproto.DefaultMaxFrameBytes {
		t.Fatalf("defaults %+v", s.cfg)
	}
	if _, err := New(Config{}); err == nil {
		t.Fatal("no host accepted")
	}
	if _, err := New(Config{Host: &fakeHost{}, MaxTracks: -1}); err == nil {
		t.Fatal("negative limit accepted")
	}
}

func TestAuthorize(t *testing.T) {
	s, _ := New(Config{Host: &fakeHost{}})
	call(t, s, ident("a", "s1"), voiceproto.Request{Op: voiceproto.OpJoin, Room: "r"})
	ctx := context.Background()
	if err := s.Authorize(ctx, ident("a", "x"), core.Action{Op: core.OpSubscribe, Channel: "voice.r"}); err != nil {
		t.Fatal(err)
	}
	wantCode(t, s.Authorize(ctx, ident("b", "x"), core.Action{Op: core.OpSubscribe, Channel: "voice.r"}), jsperr.NotInRoom)
	wantCode(t, s.Authorize(ctx, ident("a", "x"), core.Action{Op: core.OpPublish, Channel: "voice.r"}), jsperr.Forbidden)
	if err := s.Authorize(ctx, ident("b", "x"), core.Action{Op: core.OpSubscribe, Channel: "other"}); err != nil {
		t.Fatal(err)
	}
}

// TestEndDropsSubscriptions: ending a room drops every member's event
// subscription on its channel at once, after the ended event; a refused
// end drops nothing.
func TestEndDropsSubscriptions(t *testing.T) {
	h := &fakeHost{}
	s, err := New(Config{Host: h})
	if err != nil {
		t.Fatal(err)
	}
	alice, bob, bob2 := ident("alice", "s1"), ident("bob", "s2"), ident("bob", "s3")
	for _, id := range []core.Identity{alice, bob, bob2} {
		if _, err := call(t, s, id, voiceproto.Request{Op: voiceproto.OpJoin, Room: "r"}); err != nil {
			t.Fatal(err)
		}
	}
	_, err = call(t, s, bob, voiceproto.Request{Op: voiceproto.OpEnd, Room: "r"})
	wantCode(t, err, jsperr.Forbidden)
	if d := h.dropped(voiceproto.Channel("r")); len(d) != 0 {
		t.Fatalf("refused end dropped %v", d)
	}
	if _, err := call(t, s, alice, voiceproto.Request{Op: voiceproto.OpEnd, Room: "r"}); err != nil {
		t.Fatal(err)
	}
	d := h.dropped(voiceproto.Channel("r"))
	slices.Sort(d)
	if !slices.Equal(d, []string{"alice", "bob"}) {
		t.Fatalf("dropped %v", d)
	}
	if ty := h.types(); ty[len(ty)-1] != voiceproto.EvEnded {
		t.Fatalf("events %v", ty)
	}
	// The members are no longer members: resubscribing is refused.
	err = s.Authorize(context.Background(), bob, core.Action{Op: core.OpSubscribe, Channel: voiceproto.Channel("r")})
	wantCode(t, err, jsperr.NotInRoom)
}
