// Package voice is the voice/video rooms service (spec/JSP-voice.md). It
// runs in the core as the core service "voice": gateways forward the
// room COMMANDs with the caller's identity, and the service keeps the
// rooms, their participants and tracks, decides permissions and publishes
// the room events on the room's channel (voice.<room>) as ephemeral
// events (push model; nothing is stored, a rejoining client lists the
// room instead).
//
// Media never passes through the core. The flow of a call:
//
//	client ─COMMAND voice {join room}─► gateway ─► core: voice.join
//	   ◄── REPLY {room, participant} ; EVENT participant.joined to members
//	client ─COMMAND voice {publish track}─► core: track.published
//	client ─COMMAND voice.media {publish, flows}─► gateway (local):
//	   gateway ─COMMAND voice {grant publish}─► core: allowed?
//	   flows bound to the room's forwarder at that gateway (server/gateway)
//
// A participant is one session (its id is the session id), so one user
// may join from several devices. Room state lives in this core's memory:
// the commands of a room are routed by the room id, so one core shard
// owns a room. A gateway that loses a session sends leave on its behalf.
//
// Goroutines: none; HandleCommand runs on the core's handler goroutine.
package voice

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/server/core"
	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/services/voice/voiceproto"
	"github.com/jetstreamproto/jsp/wire"
)

// Host is what the service needs from its core; *core.Core implements it.
type Host interface {
	// Ephemeral publishes msg live on channel without storing it.
	Ephemeral(channel string, msg storage.Message) error
	// Drop ends the local subscriptions of users on channel.
	Drop(channel string, users ...string) error
}

var _ Host = (*core.Core)(nil)

// Config configures the service. Host is required; zero fields take the
// documented defaults.
type Config struct {
	// Host publishes the room events. Required.
	Host Host
	// MaxRooms caps the rooms. Default voiceproto.DefaultMaxRooms.
	MaxRooms int
	// MaxParticipants caps the participants of a room. Default
	// voiceproto.DefaultMaxParticipants.
	MaxParticipants int
	// MaxTracks caps the tracks of one participant. Default
	// voiceproto.DefaultMaxTracks.
	MaxTracks int
	// MaxFrameBytes is the frame limit announced to joiners. Default
	// voiceproto.DefaultMaxFrameBytes.
	MaxFrameBytes int
	// NoAutoCreate makes join fail with ROOM_NOT_FOUND for a room nobody
	// created; by default the first join creates it.
	NoAutoCreate bool
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Rand is the source of event ids. Default crypto/rand.Reader.
	Rand io.Reader
	// Logger receives structured logs. Default slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	def := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	def(&c.MaxRooms, voiceproto.DefaultMaxRooms)
	def(&c.MaxParticipants, voiceproto.DefaultMaxParticipants)
	def(&c.MaxTracks, voiceproto.DefaultMaxTracks)
	def(&c.MaxFrameBytes, voiceproto.DefaultMaxFrameBytes)
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Rand == nil {
		c.Rand = rand.Reader
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

func (c *Config) validate() error {
	switch {
	case c.Host == nil:
		return errors.New("voice: Config.Host is required")
	case c.MaxRooms < 0, c.MaxParticipants < 0, c.MaxTracks < 0, c.MaxFrameBytes < 0:
		return errors.New("voice: negative limit in config")
	}
	return nil
}

// DefaultPermissions is the weakest role allowed each action when the
// room's creator set nothing else.
var DefaultPermissions = map[voiceproto.Action]voiceproto.Role{
	voiceproto.ActPublish:    voiceproto.RoleMember,
	voiceproto.ActSubscribe:  voiceproto.RoleMember,
	voiceproto.ActMuteOthers: voiceproto.RoleOwner,
	voiceproto.ActEnd:        voiceproto.RoleOwner,
}

type room struct {
	id    string
	owner string // user id
	perms map[voiceproto.Action]voiceproto.Role
	parts map[string]*voiceproto.Participant // by participant id
	order []string                           // join order
}

// Service is the rooms service.
type Service struct {
	cfg Config
	log *slog.Logger

	mu    sync.Mutex
	rooms map[string]*room // guarded by mu
}

var _ core.Service = (*Service)(nil)

// New returns the service.
func New(cfg Config) (*Service, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	return &Service{cfg: cfg, log: cfg.Logger.With("component", "voice"), rooms: map[string]*room{}}, nil
}

// Register adds the service to a core registry under voiceproto.Service.
func (s *Service) Register(r *core.Registry) error { return r.Register(voiceproto.Service, s) }

// Setup creates the service for core c and registers it in reg; call it
// before c.Start. cfg.Host defaults to c.
func Setup(c *core.Core, reg *core.Registry, cfg Config) (*Service, error) {
	if cfg.Host == nil {
		cfg.Host = c
	}
	s, err := New(cfg)
	if err != nil {
		return nil, err
	}
	if err := s.Register(reg); err != nil {
		return nil, err
	}
	return s, nil
}

// participantID is who a session is in rooms: its session id, so that one
// user may be in a room from two devices.
func participantID(id core.Identity) string {
	if id.Session != "" {
		return id.Session
	}
	return id.User
}

func isGateway(id core.Identity) bool { return slices.Contains(id.Scopes, voiceproto.GatewayScope) }

// HandleCommand implements core.Service.
func (s *Service) HandleCommand(ctx context.Context, id core.Identity, body []byte) ([]byte, error) {
	req, err := voiceproto.DecodeRequest(body)
	if err != nil {
		return nil, err
	}
	if id.Anonymous() {
		return nil, jsperr.New(jsperr.Unauthenticated, "voice needs an authenticated user")
	}
	var (
		resp voiceproto.Response
		evs  []voiceproto.Event
	)
	var members []string
	s.mu.Lock()
	if req.Op == voiceproto.OpEnd {
		members = s.usersLocked(req.Room)
	}
	resp, evs, err = s.handleLocked(id, &req)
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	for _, ev := range evs {
		s.emit(ev)
	}
	if req.Op == voiceproto.OpEnd {
		s.dropMembers(req.Room, members)
	}
	return voiceproto.Marshal(resp), nil
}

// usersLocked returns the users with a participant in room.
func (s *Service) usersLocked(room string) []string {
	r := s.rooms[room]
	if r == nil {
		return nil
	}
	var out []string
	for _, pid := range r.order {
		if u := r.parts[pid].User; !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	return out
}

// dropMembers ends the event subscriptions of an ended room's members at
// once (Host.Drop): the room is gone, so nothing more arrives on its
// channel, and a subscription kept open would let a rejoin under the
// same name see the next room's events without joining it. The drop
// follows the ended event on the same channel, so members get that
// event first (spec/JSP-voice.md §4); their gateways end the members'
// media in the room too.
func (s *Service) dropMembers(room string, users []string) {
	if len(users) == 0 {
		return
	}
	if err := s.cfg.Host.Drop(voiceproto.Channel(room), users...); err != nil {
		s.log.Warn("voice: members of an ended room not dropped", "room", room, "err", err)
	}
}

func (s *Service) handleLocked(id core.Identity, req *voiceproto.Request) (voiceproto.Response, []voiceproto.Event, error) {
	now := s.cfg.Now().UnixMilli()
	ev := func(t voiceproto.EventType, p *voiceproto.Participant, tr *voiceproto.Track) voiceproto.Event {
		return voiceproto.Event{Type: t, Room: req.Room, Time: now, Actor: participantID(id), Participant: p, Track: tr}
	}
	if req.Op == voiceproto.OpCreate {
		return s.createLocked(id, req)
	}
	if req.Op == voiceproto.OpSpeakers {
		if !isGateway(id) {
			return voiceproto.Response{}, nil, jsperr.New(jsperr.Forbidden, "voice: speakers are reported by gateways")
		}
		if s.rooms[req.Room] == nil {
			return voiceproto.Response{}, nil, jsperr.Newf(jsperr.RoomNotFound, "voice: no room %q", req.Room)
		}
		e := ev(voiceproto.EvSpeakers, nil, nil)
		e.Speakers, e.Actor = req.Speakers, ""
		return voiceproto.Response{}, []voiceproto.Event{e}, nil
	}
	r := s.rooms[req.Room]
	if r == nil && req.Op == voiceproto.OpJoin && !s.cfg.NoAutoCreate {
		if _, _, err := s.createLocked(id, req); err != nil {
			return voiceproto.Response{}, nil, err
		}
		r = s.rooms[req.Room]
	}
	if r == nil {
		return voiceproto.Response{}, nil, jsperr.Newf(jsperr.RoomNotFound, "voice: no room %q", req.Room)
	}
	pid := participantID(id)
	if req.Op == voiceproto.OpJoin {
		if p := r.parts[pid]; p != nil {
			return voiceproto.Response{Room: r.view(), Participant: clone(p), MaxFrameBytes: s.cfg.MaxFrameBytes}, nil, nil
		}
		if len(r.parts) >= s.cfg.MaxParticipants {
			return voiceproto.Response{}, nil, jsperr.Newf(jsperr.RoomFull, "voice: room %q has %d participants", r.id, len(r.parts))
		}
		role := voiceproto.RoleMember
		if id.User == r.owner || slices.Contains(id.Scopes, voiceproto.AdminScope) {
			role = voiceproto.RoleOwner
		}
		p := &voiceproto.Participant{ID: pid, User: id.User, Role: role}
		r.parts[pid] = p
		r.order = append(r.order, pid)
		return voiceproto.Response{Room: r.view(), Participant: clone(p), MaxFrameBytes: s.cfg.MaxFrameBytes},
			[]voiceproto.Event{ev(voiceproto.EvJoined, clone(p), nil)}, nil
	}
	if req.Op == voiceproto.OpGrant {
		return s.grantLocked(r, pid, req)
	}
	p := r.parts[pid]
	if p == nil {
		return voiceproto.Response{}, nil, jsperr.Newf(jsperr.NotInRoom, "voice: not in room %q", r.id)
	}
	switch req.Op {
	case voiceproto.OpLeave:
		s.removeLocked(r, pid)
		evs := []voiceproto.Event{ev(voiceproto.EvLeft, clone(p), nil)}
		if len(r.parts) == 0 {
			delete(s.rooms, r.id)
		}
		return voiceproto.Response{}, evs, nil
	case voiceproto.OpList:
		return voiceproto.Response{Room: r.view(), Participant: clone(p)}, nil, nil
	case voiceproto.OpEnd:
		if err := r.allow(p, voiceproto.ActEnd); err != nil {
			return voiceproto.Response{}, nil, err
		}
		delete(s.rooms, r.id)
		return voiceproto.Response{}, []voiceproto.Event{ev(voiceproto.EvEnded, nil, nil)}, nil
	case voiceproto.OpPublish:
		if err := r.allow(p, voiceproto.ActPublish); err != nil {
			return voiceproto.Response{}, nil, err
		}
		if req.Track == "" || req.Kind == "" || req.Codec == "" {
			return voiceproto.Response{}, nil, jsperr.New(jsperr.BadRequest, "voice: publish needs track, kind and codec")
		}
		if req.Kind == voiceproto.KindAudio && len(req.Layers) > 1 {
			return voiceproto.Response{}, nil, jsperr.New(jsperr.BadRequest, "voice: audio has one layer")
		}
		tid := pid + "/" + req.Track
		for _, t := range p.Tracks {
			if t.ID == tid {
				return voiceproto.Response{}, nil, jsperr.Newf(jsperr.TrackExists, "voice: track %q exists", tid)
			}
		}
		if len(p.Tracks) >= s.cfg.MaxTracks {
			return voiceproto.Response{}, nil, jsperr.Newf(jsperr.TooManyRoomTracks, "voice: %d tracks published, limit %d", len(p.Tracks), s.cfg.MaxTracks)
		}
		t := voiceproto.Track{ID: tid, Participant: pid, Name: req.Track, Kind: req.Kind, Codec: req.Codec,
			Layers: slices.Clone(req.Layers), Muted: req.Muted != nil && *req.Muted}
		p.Tracks = append(p.Tracks, t)
		return voiceproto.Response{Track: &t}, []voiceproto.Event{ev(voiceproto.EvPublished, nil, &t)}, nil
	case voiceproto.OpUnpublish:
		i := slices.IndexFunc(p.Tracks, func(t voiceproto.Track) bool { return t.ID == req.Track })
		if i < 0 {
			return voiceproto.Response{}, nil, jsperr.Newf(jsperr.TrackNotFound, "voice: no own track %q", req.Track)
		}
		t := p.Tracks[i]
		p.Tracks = slices.Delete(p.Tracks, i, i+1)
		return voiceproto.Response{}, []voiceproto.Event{ev(voiceproto.EvUnpublished, nil, &t)}, nil
	case voiceproto.OpMute:
		if req.Muted == nil {
			return voiceproto.Response{}, nil, jsperr.New(jsperr.BadRequest, "voice: mute needs muted")
		}
		owner, t := r.track(req.Track)
		if t == nil {
			return voiceproto.Response{}, nil, jsperr.Newf(jsperr.TrackNotFound, "voice: no track %q", req.Track)
		}
		if owner != p {
			if err := r.allow(p, voiceproto.ActMuteOthers); err != nil {
				return voiceproto.Response{}, nil, err
			}
			if !*req.Muted {
				// Only the publisher unmutes: muting others is a privacy
				// decision that may only make a participant quieter.
				return voiceproto.Response{}, nil, jsperr.New(jsperr.Forbidden, "voice: only the publisher unmutes a track")
			}
		}
		t.Muted = *req.Muted
		c := *t
		return voiceproto.Response{Track: &c}, []voiceproto.Event{ev(voiceproto.EvMuted, nil, &c)}, nil
	case voiceproto.OpQuality:
		if req.Quality == "" {
			return voiceproto.Response{}, nil, jsperr.New(jsperr.BadRequest, "voice: quality needs quality")
		}
		if p.Quality == req.Quality {
			return voiceproto.Response{}, nil, nil
		}
		p.Quality = req.Quality
		e := ev(voiceproto.EvQuality, nil, nil)
		e.Quality = req.Quality
		return voiceproto.Response{}, []voiceproto.Event{e}, nil
	}
	return voiceproto.Response{}, nil, jsperr.Newf(jsperr.BadRequest, "voice: unknown op %q", req.Op)
}

func (s *Service) createLocked(id core.Identity, req *voiceproto.Request) (voiceproto.Response, []voiceproto.Event, error) {
	if s.rooms[req.Room] != nil {
		return voiceproto.Response{}, nil, jsperr.Newf(jsperr.RoomExists, "voice: room %q exists", req.Room)
	}
	if len(s.rooms) >= s.cfg.MaxRooms {
		return voiceproto.Response{}, nil, jsperr.Newf(jsperr.QueueFull, "voice: %d rooms, limit %d", len(s.rooms), s.cfg.MaxRooms)
	}
	perms := map[voiceproto.Action]voiceproto.Role{}
	for a, r := range DefaultPermissions {
		perms[a] = r
	}
	for a, r := range req.Permissions {
		perms[a] = r
	}
	r := &room{id: req.Room, owner: id.User, perms: perms, parts: map[string]*voiceproto.Participant{}}
	s.rooms[req.Room] = r
	return voiceproto.Response{Room: r.view()}, nil, nil
}

// grantLocked answers a gateway's question: may the session publish its
// track, or subscribe to a track, in the room? The reply carries the
// track.
func (s *Service) grantLocked(r *room, pid string, req *voiceproto.Request) (voiceproto.Response, []voiceproto.Event, error) {
	p := r.parts[pid]
	if p == nil {
		return voiceproto.Response{}, nil, jsperr.Newf(jsperr.NotInRoom, "voice: not in room %q", r.id)
	}
	owner, t := r.track(req.Track)
	if t == nil {
		return voiceproto.Response{}, nil, jsperr.Newf(jsperr.TrackNotFound, "voice: no track %q", req.Track)
	}
	switch req.Action {
	case voiceproto.ActPublish:
		if owner != p {
			return voiceproto.Response{}, nil, jsperr.Newf(jsperr.Forbidden, "voice: track %q is not yours", req.Track)
		}
		if err := r.allow(p, voiceproto.ActPublish); err != nil {
			return voiceproto.Response{}, nil, err
		}
	case voiceproto.ActSubscribe:
		if err := r.allow(p, voiceproto.ActSubscribe); err != nil {
			return voiceproto.Response{}, nil, err
		}
	default:
		return voiceproto.Response{}, nil, jsperr.Newf(jsperr.BadRequest, "voice: grant of %q", req.Action)
	}
	c := *t
	return voiceproto.Response{Track: &c}, nil, nil
}

func (s *Service) removeLocked(r *room, pid string) {
	delete(r.parts, pid)
	r.order = slices.DeleteFunc(r.order, func(x string) bool { return x == pid })
}

// allow checks a room permission (spec/JSP-voice.md §5).
func (r *room) allow(p *voiceproto.Participant, a voiceproto.Action) error {
	need := r.perms[a]
	if need == voiceproto.RoleOwner && p.Role != voiceproto.RoleOwner {
		return jsperr.Newf(jsperr.Forbidden, "voice: %s needs the room owner", a)
	}
	return nil
}

func (r *room) track(id string) (*voiceproto.Participant, *voiceproto.Track) {
	for _, pid := range r.order {
		p := r.parts[pid]
		for i := range p.Tracks {
			if p.Tracks[i].ID == id {
				return p, &p.Tracks[i]
			}
		}
	}
	return nil, nil
}

func (r *room) view() *voiceproto.Room {
	v := &voiceproto.Room{ID: r.id, Owner: r.owner, Permissions: map[voiceproto.Action]voiceproto.Role{}}
	for a, role := range r.perms {
		v.Permissions[a] = role
	}
	for _, pid := range r.order {
		v.Participants = append(v.Participants, *clone(r.parts[pid]))
	}
	return v
}

func clone(p *voiceproto.Participant) *voiceproto.Participant {
	c := *p
	c.Tracks = slices.Clone(p.Tracks)
	return &c
}

// Member reports whether user has a participant in room (the
// authorization hook's question for subscriptions to voice.<room>).
func (s *Service) Member(room, user string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rooms[room]
	if r == nil {
		return false
	}
	for _, p := range r.parts {
		if p.User == user {
			return true
		}
	}
	return false
}

// Authorize implements core.Authorizer for room channels: subscribing to
// voice.<room> (and its empty history) needs a participant in the room; PUBLISH is refused, as
// room events come from the service only. Other channels pass.
func (s *Service) Authorize(_ context.Context, id core.Identity, a core.Action) error {
	if a.Op == core.OpCommand {
		if a.Service == voiceproto.Service && id.Anonymous() {
			return jsperr.New(jsperr.Unauthenticated, "voice needs an authenticated user")
		}
		return nil
	}
	room, ok := voiceproto.RoomOf(a.Channel)
	if !ok {
		return nil
	}
	switch a.Op {
	case core.OpPublish:
		return jsperr.New(jsperr.Forbidden, "voice: room channels are written by the rooms service only")
	case core.OpSubscribe, core.OpRecover, core.OpHistory:
		// Room events are ephemeral: history and recovery find nothing,
		// but a subscription asks for its position first.
		if id.Anonymous() || !s.Member(room, id.User) {
			return jsperr.Newf(jsperr.NotInRoom, "voice: join room %q before subscribing", room)
		}
		return nil
	}
	return jsperr.Newf(jsperr.Forbidden, "voice: operation %s on a room channel", a.Op)
}

var _ core.Authorizer = (*Service)(nil)

// emit publishes ev to the room's members as an ephemeral EVENT envelope
// (JSP §5.8) on voice.<room>.
func (s *Service) emit(ev voiceproto.Event) {
	id := make([]byte, 16)
	if _, err := io.ReadFull(s.cfg.Rand, id); err != nil {
		s.log.Warn("voice: event id", "err", err)
		return
	}
	env := &wire.Envelope{
		ID:        id,
		Route:     wire.Route{Kind: wire.RouteChannel, Name: voiceproto.Channel(ev.Room)},
		Kind:      wire.KindEvent,
		Class:     protocol.ClassChat,
		Timestamp: uint64(ev.Time),
		Sender:    ev.Actor,
		Headers:   map[string]string{"type": string(ev.Type)},
		Body:      voiceproto.Marshal(ev),
	}
	if err := s.cfg.Host.Ephemeral(voiceproto.Channel(ev.Room), storage.Message{Sender: ev.Actor, Body: env.Append(nil)}); err != nil {
		s.log.Warn("voice: event not published", "type", string(ev.Type), "room", ev.Room, "err", fmt.Errorf("%w", err), "id", hex.EncodeToString(id))
	}
}
