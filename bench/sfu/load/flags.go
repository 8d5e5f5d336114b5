package load

import (
	"flag"
	"fmt"
	"strconv"
	"time"
)

// ClientFlags are the flags every client process of the benchmark takes,
// whatever system it drives (the JSP SDK or LiveKit's), so that the
// orchestrator starts both the same way.
type ClientFlags struct {
	RoomPrefix, ScenarioName, Role, Assign string
	Publishers, Subscribers, FrameBytes    int
	Dialers, RoomCap                       int
	Warmup, Window                         time.Duration
}

// Register adds the flags to fs with their defaults.
func (f *ClientFlags) Register(fs *flag.FlagSet) {
	fs.StringVar(&f.RoomPrefix, "room-prefix", "bench", "rooms are PREFIX-0, PREFIX-1, ...")
	fs.IntVar(&f.RoomCap, "room-cap", DefaultBenchRoomCap, "participants per room (as the orchestrator plans them)")
	fs.StringVar(&f.ScenarioName, "scenario", "audio", "audio or video")
	fs.StringVar(&f.Role, "role", "sub", "pub (every publisher of every room) or sub (listeners)")
	fs.IntVar(&f.Publishers, "publishers", 10, "audio publishers")
	fs.IntVar(&f.Subscribers, "subscribers", 100, "subscriptions per track")
	fs.IntVar(&f.FrameBytes, "frame-bytes", 80, "audio frame size")
	fs.StringVar(&f.Assign, "assign", "", "listeners: ROOM:COUNT:FIRST,... (sub role)")
	fs.DurationVar(&f.Warmup, "warmup", 2*time.Second, "sending before the window")
	fs.DurationVar(&f.Window, "window", 5*time.Second, "measurement window")
	fs.IntVar(&f.Dialers, "dialers", 8, "clients connecting at once")
}

// Scenario returns the scenario the flags name.
func (f *ClientFlags) Scenario() (Scenario, error) {
	switch f.ScenarioName {
	case "audio":
		return AudioScenario(f.Publishers, f.Subscribers, f.FrameBytes), nil
	case "video":
		return VideoScenario(f.Subscribers), nil
	}
	return Scenario{}, fmt.Errorf("unknown scenario %q", f.ScenarioName)
}

// RoomName is the name of room r: PREFIX-r.
func (f *ClientFlags) RoomName(r int) string { return f.RoomPrefix + "-" + strconv.Itoa(r) }
