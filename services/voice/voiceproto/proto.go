// Package voiceproto is the wire format of the voice/video rooms service
// (spec/JSP-voice.md): the COMMAND bodies the SDK sends to the core service
// "voice" and to the gateway's media service "voice.media", their replies,
// and the room events delivered on the room's channel (voice.<room>).
//
// Bodies are JSON objects (spec/JSP-voice.md §3): the rooms service is
// low-rate signalling, and JSON keeps it readable from any SDK. Decoders
// cap the body size before parsing and validate every field against the
// limits of §6.
package voiceproto

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/jetstreamproto/jsp/jsperr"
)

// Service names.
const (
	// Service is the core service that owns rooms, participants and
	// tracks.
	Service = "voice"
	// MediaService is the gateway-local service that binds a session's
	// media flows to tracks of the room's forwarder.
	MediaService = "voice.media"
	// ChannelPrefix starts the channel of every room.
	ChannelPrefix = "voice."
	// NotifyKeyFrame is the "type" header of the NOTIFY a gateway sends a
	// publisher when its subscribers need a key frame (headers "track"
	// and "layer").
	NotifyKeyFrame = "voice.keyframe"
	// NotifyLayers is the "type" header of the NOTIFY a gateway sends a
	// publisher when the layers of its video track that someone watches
	// change (dynacast, JSP §13.15): headers "track" and "layers", the
	// watched layers as a decimal bit mask (bit i: layer i). The
	// publisher stops sending the other layers until a later NOTIFY
	// names them again, and resumes with a key frame.
	NotifyLayers = "voice.layers"
	// GatewayScope is the scope of the identity a gateway uses for its
	// own reports (active speakers).
	GatewayScope = "voice:gateway"
	// AdminScope makes a user an administrator of every room.
	AdminScope = "voice:admin"
)

// Limits (spec/JSP-voice.md §6). The service's Config overrides the room
// and participant limits; the protocol limits are fixed.
const (
	// MaxBodyBytes caps a command body.
	MaxBodyBytes = 64 << 10
	// MaxIDBytes caps a room id, a track name and a codec name.
	MaxIDBytes = 128
	// MaxLayers caps a track's simulcast layers.
	MaxLayers = 3
	// DefaultMaxParticipants caps the participants of one room.
	DefaultMaxParticipants = 100
	// DefaultMaxTracks caps the tracks one participant publishes.
	DefaultMaxTracks = 4
	// DefaultMaxRooms caps the rooms one core holds.
	DefaultMaxRooms = 10_000
	// DefaultMaxFrameBytes caps one encoded frame a publisher writes
	// (a 4K key frame fits; larger frames are refused by the SDK and
	// dropped by receivers).
	DefaultMaxFrameBytes = 1 << 20
	// MaxSpeakers caps the active speakers one report lists.
	MaxSpeakers = 16
)

// Op is a command operation.
type Op string

// Operations of the core service "voice".
const (
	OpCreate    Op = "create"    // create a room (caller becomes its owner)
	OpJoin      Op = "join"      // join (creates the room if it does not exist and AutoCreate is on)
	OpLeave     Op = "leave"     // leave
	OpList      Op = "list"      // list participants and their tracks
	OpEnd       Op = "end"       // end the room (owner or admin)
	OpPublish   Op = "publish"   // publish a track
	OpUnpublish Op = "unpublish" // unpublish a track
	OpMute      Op = "mute"      // mute or unmute a track (own, or another's with mute_others)
	OpQuality   Op = "quality"   // report the caller's connection quality
	OpGrant     Op = "grant"     // gateway: may this session publish/subscribe this track?
	OpSpeakers  Op = "speakers"  // gateway: active speakers seen by its forwarder
)

// Operations of the gateway service "voice.media".
const (
	MediaPublish     Op = "publish"     // bind flows (one per layer) to an own track
	MediaSubscribe   Op = "subscribe"   // receive a track on a flow
	MediaUnsubscribe Op = "unsubscribe" // stop receiving
	MediaUnpublish   Op = "unpublish"   // unbind an own track's flows
	MediaEstimate    Op = "estimate"    // the subscriber's bandwidth estimate and wanted size
)

// Kind is a track's media kind.
type Kind string

// Kinds.
const (
	KindAudio Kind = "audio"
	KindVideo Kind = "video"
)

// Action is a room permission.
type Action string

// Actions (spec/JSP-voice.md §5).
const (
	ActPublish    Action = "publish"
	ActSubscribe  Action = "subscribe"
	ActMuteOthers Action = "mute_others"
	ActEnd        Action = "end"
)

// Role is a participant's role in a room.
type Role string

// Roles: the owner created the room; everyone else is a member.
const (
	RoleOwner  Role = "owner"
	RoleMember Role = "member"
)

// Layer is one simulcast layer.
type Layer struct {
	Width   int   `json:"width,omitempty"`
	Height  int   `json:"height,omitempty"`
	Bitrate int64 `json:"bitrate,omitempty"` // bit/s
}

// Track is a published track.
type Track struct {
	ID          string  `json:"id"` // room-unique: <participant>/<name>
	Participant string  `json:"participant"`
	Name        string  `json:"name"`
	Kind        Kind    `json:"kind"`
	Codec       string  `json:"codec"`
	Layers      []Layer `json:"layers,omitempty"`
	Muted       bool    `json:"muted,omitempty"`
}

// Participant is a member of a room.
type Participant struct {
	ID      string  `json:"id"` // the session id of the joining session
	User    string  `json:"user"`
	Role    Role    `json:"role"`
	Tracks  []Track `json:"tracks,omitempty"`
	Quality string  `json:"quality,omitempty"`
}

// Room describes a room.
type Room struct {
	ID           string            `json:"id"`
	Owner        string            `json:"owner"`
	Permissions  map[Action]Role   `json:"permissions,omitempty"`
	Participants []Participant     `json:"participants,omitempty"`
	Limits       map[string]int64  `json:"limits,omitempty"`
	Meta         map[string]string `json:"meta,omitempty"`
}

// Request is a command body, for both services.
type Request struct {
	Op          Op              `json:"op"`
	Room        string          `json:"room"`
	Track       string          `json:"track,omitempty"` // a track id (or name for publish)
	Kind        Kind            `json:"kind,omitempty"`
	Codec       string          `json:"codec,omitempty"`
	Layers      []Layer         `json:"layers,omitempty"`
	Muted       *bool           `json:"muted,omitempty"`
	Action      Action          `json:"action,omitempty"` // grant
	Permissions map[Action]Role `json:"permissions,omitempty"`
	Quality     string          `json:"quality,omitempty"`
	Speakers    []Speaker       `json:"speakers,omitempty"`
	// Flows are the media flows (voice.media): publish, one per layer
	// lowest first; subscribe, one.
	Flows []uint64 `json:"flows,omitempty"`
	// Estimate is a subscriber's bandwidth estimate in bit/s; Width and
	// Height its wanted size (voice.media estimate).
	Estimate int64 `json:"estimate,omitempty"`
	Width    int   `json:"width,omitempty"`
	Height   int   `json:"height,omitempty"`
}

// Speaker is one active speaker.
type Speaker struct {
	Participant string  `json:"participant"`
	Level       float64 `json:"level"` // smoothed loudness, 0 (quiet) .. 1
}

// Response is a reply body.
type Response struct {
	Room        *Room        `json:"room,omitempty"`
	Participant *Participant `json:"participant,omitempty"`
	Track       *Track       `json:"track,omitempty"`
	// MaxFrameBytes is the room's frame limit (join).
	MaxFrameBytes int `json:"max_frame_bytes,omitempty"`
}

// EventType names a room event.
type EventType string

// Event types (spec/JSP-voice.md §4).
const (
	EvJoined      EventType = "participant.joined"
	EvLeft        EventType = "participant.left"
	EvPublished   EventType = "track.published"
	EvUnpublished EventType = "track.unpublished"
	EvMuted       EventType = "track.muted"
	EvSpeakers    EventType = "speakers"
	EvQuality     EventType = "quality"
	EvEnded       EventType = "room.ended"
)

// Event is a room event, the body of an EVENT on voice.<room>.
type Event struct {
	Type        EventType    `json:"type"`
	Room        string       `json:"room"`
	Time        int64        `json:"time"` // Unix milliseconds
	Actor       string       `json:"actor,omitempty"`
	Participant *Participant `json:"participant,omitempty"`
	Track       *Track       `json:"track,omitempty"`
	Speakers    []Speaker    `json:"speakers,omitempty"`
	Quality     string       `json:"quality,omitempty"`
}

// Qualities a participant reports.
var Qualities = map[string]bool{"excellent": true, "good": true, "poor": true, "lost": true}

// Channel returns the channel of room.
func Channel(room string) string { return ChannelPrefix + room }

// RoomOf returns the room of a channel name.
func RoomOf(channel string) (string, bool) {
	r, ok := strings.CutPrefix(channel, ChannelPrefix)
	return r, ok && r != ""
}

// Marshal encodes v.
func Marshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// Only the types of this package are marshalled; none can fail.
		panic(fmt.Sprintf("voiceproto: marshal %T: %v", v, err))
	}
	return b
}

// DecodeRequest parses and validates a request body (spec/JSP-voice.md
// §3, §6).
func DecodeRequest(b []byte) (Request, error) {
	var r Request
	if len(b) > MaxBodyBytes {
		return r, jsperr.Newf(jsperr.BadRequest, "voice: body of %d bytes over %d", len(b), MaxBodyBytes)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, jsperr.Newf(jsperr.BadRequest, "voice: body: %v", err)
	}
	return r, r.Validate()
}

// Validate checks r's fields against the protocol limits.
func (r *Request) Validate() error {
	if r.Op == "" {
		return jsperr.New(jsperr.BadRequest, "voice: request without op")
	}
	if err := ValidID("room", r.Room); err != nil && r.Op != OpSpeakers {
		return err
	}
	for _, f := range []struct{ what, v string }{{"track", r.Track}, {"codec", r.Codec}} {
		if f.v != "" {
			if err := ValidID(f.what, f.v); err != nil {
				return err
			}
		}
	}
	if r.Kind != "" && r.Kind != KindAudio && r.Kind != KindVideo {
		return jsperr.Newf(jsperr.BadRequest, "voice: unknown kind %q", r.Kind)
	}
	if len(r.Layers) > MaxLayers {
		return jsperr.Newf(jsperr.BadRequest, "voice: %d layers, at most %d", len(r.Layers), MaxLayers)
	}
	for _, l := range r.Layers {
		if l.Width < 0 || l.Height < 0 || l.Bitrate < 0 || l.Width > 16384 || l.Height > 16384 {
			return jsperr.Newf(jsperr.BadRequest, "voice: bad layer %+v", l)
		}
	}
	if len(r.Flows) > MaxLayers {
		return jsperr.Newf(jsperr.BadRequest, "voice: %d flows, at most %d", len(r.Flows), MaxLayers)
	}
	if len(r.Speakers) > MaxSpeakers {
		return jsperr.Newf(jsperr.BadRequest, "voice: %d speakers, at most %d", len(r.Speakers), MaxSpeakers)
	}
	if r.Quality != "" && !Qualities[r.Quality] {
		return jsperr.Newf(jsperr.BadRequest, "voice: unknown quality %q", r.Quality)
	}
	for a, role := range r.Permissions {
		if !ValidAction(a) || (role != RoleOwner && role != RoleMember) {
			return jsperr.Newf(jsperr.BadRequest, "voice: bad permission %q=%q", a, role)
		}
	}
	if r.Estimate < 0 || r.Width < 0 || r.Height < 0 {
		return jsperr.New(jsperr.BadRequest, "voice: negative estimate or size")
	}
	return nil
}

// ValidAction reports whether a is a known permission.
func ValidAction(a Action) bool {
	switch a {
	case ActPublish, ActSubscribe, ActMuteOthers, ActEnd:
		return true
	}
	return false
}

// ValidID checks an id: 1..MaxIDBytes bytes of UTF-8 without control
// characters, spaces, '*' or '>' (ids end up in bus subjects and channel
// names).
func ValidID(what, s string) error {
	if s == "" || len(s) > MaxIDBytes || !utf8.ValidString(s) {
		return jsperr.Newf(jsperr.BadRequest, "voice: %s must be 1-%d bytes of UTF-8", what, MaxIDBytes)
	}
	for _, c := range s {
		if c <= ' ' || c == 0x7f || c == '*' || c == '>' {
			return jsperr.Newf(jsperr.BadRequest, "voice: %s %q has a forbidden character", what, s)
		}
	}
	return nil
}

// DecodeResponse parses a reply body.
func DecodeResponse(b []byte) (Response, error) {
	var r Response
	if len(b) > MaxBodyBytes {
		return r, fmt.Errorf("voice: reply of %d bytes over %d", len(b), MaxBodyBytes)
	}
	if len(b) == 0 {
		return r, nil
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("voice: reply: %w", err)
	}
	return r, nil
}

// DecodeEvent parses an event body.
func DecodeEvent(b []byte) (Event, error) {
	var e Event
	if len(b) > MaxBodyBytes {
		return e, fmt.Errorf("voice: event of %d bytes over %d", len(b), MaxBodyBytes)
	}
	if err := json.Unmarshal(b, &e); err != nil {
		return e, fmt.Errorf("voice: event: %w", err)
	}
	if e.Type == "" {
		return e, fmt.Errorf("voice: event without type")
	}
	return e, nil
}

// LayerMask is a set of simulcast layers: bit i is layer i.
type LayerMask uint8

// AllLayers is the mask of a track's n layers.
func AllLayers(n int) LayerMask { return LayerMask(1)<<min(max(n, 1), MaxLayers) - 1 }

// Has reports whether layer l is in m.
func (m LayerMask) Has(l int) bool { return l >= 0 && l < MaxLayers && m&(1<<l) != 0 }

// String formats m as the decimal of a NotifyLayers header.
func (m LayerMask) String() string { return strconv.Itoa(int(m)) }

// ParseLayerMask reads the "layers" header of a NotifyLayers NOTIFY:
// a decimal mask of at most MaxLayers bits.
func ParseLayerMask(s string) (LayerMask, error) {
	v, err := strconv.ParseUint(s, 10, 8)
	if err != nil || v >= 1<<MaxLayers {
		return 0, jsperr.Newf(jsperr.BadRequest, "voice: layer mask %q", s)
	}
	return LayerMask(v), nil
}
