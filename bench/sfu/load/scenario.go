// Package load is what the SFU benchmark's processes share: the
// benchmark shapes (audio talkers, a simulcast camera), their layout in
// rooms, the header every sent frame starts with, a latency histogram that
// can be written out and merged, the lines the client processes and the
// orchestrator exchange, and the summary of a run. The JSP clients
// (bench/sfu) and the LiveKit clients (module bench/livekit) both use it,
// so the two systems are measured the same way.
package load

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// RoomCap is the participants one room holds with the server's embedded
// defaults (voiceproto.DefaultMaxParticipants). Scenarios that need more
// subscribers than a room cap allows spread them over several rooms.
const RoomCap = 100

// DefaultBenchRoomCap is the room cap the benchmark runs with: the
// orchestrator starts `jsp server --voice-max-participants` with it, so
// that the shapes (10 talkers x 100 subscribers, 1 camera -> 200
// subscribers) each fit one room. LiveKit has no room cap by default.
const DefaultBenchRoomCap = 250

// LayerSpec is one stream a publisher sends: encoded frames of a fixed
// size at a fixed rate. The SDK cuts frames larger than a datagram into
// packets (JSP §5.13), so a VP8 layer's packet rate is its frame rate
// times the packets per frame.
type LayerSpec struct {
	// FPS is frames per second.
	FPS int
	// FrameBytes is the encoded frame size.
	FrameBytes int
	// Width, Height and Bitrate describe the layer to the forwarder's
	// layer selection.
	Width, Height int
	Bitrate       int64
	// Estimate is the bandwidth estimate a subscriber of this layer
	// reports, so that the selector picks exactly this layer.
	Estimate int64
}

// Interval is the time between two frames.
func (l LayerSpec) Interval() time.Duration { return time.Second / time.Duration(l.FPS) }

// Scenario is one benchmark shape.
type Scenario struct {
	// Name is "audio" or "video".
	Name string
	// Video selects video tracks (simulcast layers) instead of audio.
	Video bool
	// Publishers is the number of publishing participants per room.
	Publishers int
	// Subscribers is the subscriptions each published track gets in
	// total (over all rooms).
	Subscribers int
	// Layers are the track's layers, lowest first.
	Layers []LayerSpec
	// KeyInterval is how often each video layer sends a key frame.
	KeyInterval time.Duration
}

// AudioScenario: Opus at 20 ms frames (50 packets/s), 80-byte packets (about
// 32 kbit/s, a speech encoder's usual rate).
func AudioScenario(publishers, subscribers, frameBytes int) Scenario {
	return Scenario{Name: "audio", Publishers: publishers, Subscribers: subscribers,
		Layers: []LayerSpec{{FPS: 50, FrameBytes: frameBytes}}}
}

// VideoScenario: one VP8 camera at 30 frames/s in three simulcast layers (320x180
// at 150 kbit/s, 640x360 at 500 kbit/s, 1280x720 at 1.7 Mbit/s), so
// 1, 2 and 6 packets a frame with the SDK's datagram size; subscribers are
// spread over the layers in equal thirds.
func VideoScenario(subscribers int) Scenario {
	return Scenario{Name: "video", Video: true, Publishers: 1, Subscribers: subscribers, KeyInterval: 2 * time.Second,
		Layers: []LayerSpec{
			{FPS: 30, FrameBytes: 625, Width: 320, Height: 180, Bitrate: 150_000, Estimate: 250_000},
			{FPS: 30, FrameBytes: 2083, Width: 640, Height: 360, Bitrate: 500_000, Estimate: 900_000},
			{FPS: 30, FrameBytes: 7083, Width: 1280, Height: 720, Bitrate: 1_700_000, Estimate: 5_000_000},
		}}
}

// Plan is how a Scenario's participants are laid out in rooms.
type Plan struct {
	// Rooms is the number of rooms; every room has all the publishers.
	Rooms int
	// Listeners[r] is the number of participants of room r that only
	// subscribe.
	Listeners []int
	// PublishersSubscribe is set when publishers subscribe to each other
	// (audio: every talker hears every other one).
	PublishersSubscribe bool
}

// Subscriptions returns the subscriptions each track of room r gets.
func (p Plan) Subscriptions(s Scenario, r int) int {
	n := p.Listeners[r]
	if p.PublishersSubscribe {
		n += s.Publishers - 1
	}
	return n
}

// PlanRooms lays a Scenario out in rooms of at most roomCap participants.
// Audio keeps one room (the talkers hear each other, so each track's
// subscribers are the other talkers and the listeners); when it does not
// fit, it is refused rather than changed. Video spreads the subscribers
// over as few rooms as hold them, the publisher joining each.
func PlanRooms(s Scenario, roomCap int) (Plan, error) {
	if s.Publishers < 1 || s.Subscribers < 1 || len(s.Layers) == 0 {
		return Plan{}, errors.New("Scenario needs publishers, subscribers and layers")
	}
	if !s.Video {
		listeners := s.Subscribers - (s.Publishers - 1)
		if listeners < 0 {
			listeners = 0
		}
		if s.Publishers+listeners > roomCap {
			return Plan{}, fmt.Errorf("audio: %d talkers and %d listeners exceed the room cap of %d participants",
				s.Publishers, listeners, roomCap)
		}
		return Plan{Rooms: 1, Listeners: []int{listeners}, PublishersSubscribe: true}, nil
	}
	per := roomCap - s.Publishers
	if per < 1 {
		return Plan{}, fmt.Errorf("video: %d publishers leave no room for subscribers under the cap of %d", s.Publishers, roomCap)
	}
	rooms := (s.Subscribers + per - 1) / per
	p := Plan{Rooms: rooms, Listeners: make([]int, rooms)}
	for i := range s.Subscribers {
		p.Listeners[i%rooms]++
	}
	return p, nil
}

// Payload layout: every frame starts with a header the subscriber reads
// back; the rest is filler.
const (
	payloadSent   = 0  // int64 unix ns: when WriteFrame was called
	payloadSched  = 8  // int64 unix ns: when the schedule wanted it sent
	payloadSeq    = 16 // uint32: the stream's frame number
	payloadLayer  = 20 // byte: layer
	payloadFlags  = 21 // byte: flagWindow
	PayloadHeader = 22

	// flagWindow marks frames scheduled inside the measurement window.
	flagWindow = 1
)

// FrameHeader is what a frame's payload says about it.
type FrameHeader struct {
	Sent, Sched time.Time
	Seq         uint32
	Layer       int
	Window      bool
}

// PutHeader writes h at the start of b, which must hold PayloadHeader
// bytes.
func PutHeader(b []byte, h FrameHeader) {
	binary.LittleEndian.PutUint64(b[payloadSent:], uint64(h.Sent.UnixNano()))
	binary.LittleEndian.PutUint64(b[payloadSched:], uint64(h.Sched.UnixNano()))
	binary.LittleEndian.PutUint32(b[payloadSeq:], h.Seq)
	b[payloadLayer] = byte(h.Layer)
	b[payloadFlags] = 0
	if h.Window {
		b[payloadFlags] = flagWindow
	}
}

// ParseHeader reads a frame's header.
func ParseHeader(b []byte) (FrameHeader, error) {
	if len(b) < PayloadHeader {
		return FrameHeader{}, fmt.Errorf("frame of %d bytes, header needs %d", len(b), PayloadHeader)
	}
	return FrameHeader{
		Sent:   time.Unix(0, int64(binary.LittleEndian.Uint64(b[payloadSent:]))),
		Sched:  time.Unix(0, int64(binary.LittleEndian.Uint64(b[payloadSched:]))),
		Seq:    binary.LittleEndian.Uint32(b[payloadSeq:]),
		Layer:  int(b[payloadLayer]),
		Window: b[payloadFlags]&flagWindow != 0,
	}, nil
}
