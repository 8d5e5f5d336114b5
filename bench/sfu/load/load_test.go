package load

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestPlanRooms(t *testing.T) {
	tests := []struct {
		name      string
		s         Scenario
		rooms     int
		listeners []int
		perTrack  []int
		err       string
	}{
		{name: "audio 10x99", s: AudioScenario(10, 99, 80), rooms: 1, listeners: []int{90}, perTrack: []int{99}},
		{name: "audio 10x100 over the cap", s: AudioScenario(10, 100, 80), err: "room cap"},
		{name: "audio 2x5", s: AudioScenario(2, 5, 80), rooms: 1, listeners: []int{4}, perTrack: []int{5}},
		{name: "audio more talkers than subscriptions", s: AudioScenario(5, 2, 80), rooms: 1, listeners: []int{0}, perTrack: []int{4}},
		{name: "video 200", s: VideoScenario(200), rooms: 3, listeners: []int{67, 67, 66}, perTrack: []int{67, 67, 66}},
		{name: "video 99", s: VideoScenario(99), rooms: 1, listeners: []int{99}, perTrack: []int{99}},
		{name: "video 100", s: VideoScenario(100), rooms: 2, listeners: []int{50, 50}, perTrack: []int{50, 50}},
		{name: "no subscribers", s: AudioScenario(10, 0, 80), err: "needs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := PlanRooms(tt.s, RoomCap)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Rooms != tt.rooms || len(p.Listeners) != tt.rooms {
				t.Fatalf("rooms = %d %v, want %d", p.Rooms, p.Listeners, tt.rooms)
			}
			for r := range p.Rooms {
				if p.Listeners[r] != tt.listeners[r] || p.Subscriptions(tt.s, r) != tt.perTrack[r] {
					t.Errorf("room %d: %d listeners, %d per track; want %d, %d", r, p.Listeners[r],
						p.Subscriptions(tt.s, r), tt.listeners[r], tt.perTrack[r])
				}
				if p.Listeners[r]+tt.s.Publishers > RoomCap {
					t.Errorf("room %d over the cap", r)
				}
			}
		})
	}
}

func TestHeaderRoundTrip(t *testing.T) {
	now := time.Now()
	tests := []FrameHeader{
		{Sent: now, Sched: now.Add(-time.Millisecond), Seq: 7, Layer: 2, Window: true},
		{Sent: time.Unix(0, 1), Sched: time.Unix(0, 0), Seq: 1<<32 - 1, Layer: 0},
	}
	for _, h := range tests {
		b := make([]byte, PayloadHeader+10)
		PutHeader(b, h)
		got, err := ParseHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Sent.Equal(h.Sent) || !got.Sched.Equal(h.Sched) || got.Seq != h.Seq || got.Layer != h.Layer || got.Window != h.Window {
			t.Errorf("round trip %+v = %+v", h, got)
		}
	}
	if _, err := ParseHeader(make([]byte, PayloadHeader-1)); err == nil {
		t.Error("short payload parsed")
	}
}

func TestHistQuantileAndMerge(t *testing.T) {
	a, b := &Hist{}, &Hist{}
	for i := range 90 {
		a.Record(time.Duration(i+1) * time.Microsecond)
	}
	for range 10 {
		b.Record(10 * time.Millisecond)
	}
	b.Record(-time.Second)
	a.Merge(b)
	if a.Count() != 101 {
		t.Fatalf("count = %d", a.Count())
	}
	tests := []struct {
		q     float64
		total uint64
		lo    float64
		hi    float64
	}{
		{0.5, 101, 49, 52},
		{0.95, 101, 10000, 10000 * 1.04},
		{0.99, 200, -1, -1}, // 99 lost frames: p99 is among them
		{0.5, 0, 0, 0},
	}
	for _, tt := range tests {
		if got := a.Quantile(tt.q, tt.total); got < tt.lo || got > tt.hi {
			t.Errorf("quantile(%v, %d) = %v, want [%v, %v]", tt.q, tt.total, got, tt.lo, tt.hi)
		}
	}
	back, err := ParseHist(a.String())
	if err != nil {
		t.Fatal(err)
	}
	if back.String() != a.String() || back.Count() != a.Count() {
		t.Errorf("round trip %q = %q", a.String(), back.String())
	}
	for _, bad := range []string{"1", "x:1", "99999:1", "1:-1"} {
		if _, err := ParseHist(bad); err == nil {
			t.Errorf("ParseHist(%q) accepted", bad)
		}
	}
	if h, err := ParseHist("-"); err != nil || h.Count() != 0 {
		t.Errorf("empty histogram: %v %v", h, err)
	}
}

func TestHistBucketsBound(t *testing.T) {
	for _, us := range []uint64{0, 1, 63, 64, 65, 1000, 123456, 1 << 40} {
		i := histBucket(us)
		if up := histUpper(i); up < us || float64(up) > float64(us)*1.04+1 {
			t.Errorf("value %d: bucket %d upper %d", us, i, up)
		}
	}
}

// TestStreamAndReceiver runs a short stream into a receiver: every window
// frame is counted once, frames before the window are not, the key frames
// fall where asked, and the result lines say so.
func TestStreamAndReceiver(t *testing.T) {
	rx := &Receiver{}
	sub := rx.NewSubscription("tr", 1)
	sub.SetStats(func() (uint64, uint64) { return 2, 1 })
	st := &Stream{Key: StreamKey("tr", 1), Layer: 1, Spec: LayerSpec{FPS: 200, FrameBytes: 40}, ClockRate: 90_000, Video: true, KeyEvery: 4}
	t0 := time.Now()
	var keys []bool
	var stamps []uint32
	st.Run(context.Background(), t0, t0.Add(50*time.Millisecond), t0.Add(100*time.Millisecond), func(f OutFrame) (int, error) {
		keys = append(keys, f.KeyFrame)
		stamps = append(stamps, f.Timestamp)
		sub.OnFrame(f.Payload, 2, time.Now())
		return 2, nil
	})
	if len(keys) != 20 {
		t.Fatalf("%d frames, want 20", len(keys))
	}
	for i, k := range keys {
		if k != (i%4 == 0) {
			t.Errorf("frame %d key = %v", i, k)
		}
		if stamps[i] != uint32(i*450) {
			t.Errorf("frame %d timestamp %d, want %d", i, stamps[i], i*450)
		}
	}
	sub.OnFrame([]byte{1, 2}, 1, time.Now())
	sent := SentLines([]*Stream{st})
	if len(sent) != 2 || sent[0].Get("frames") != "10" || sent[0].Get("packets") != "20" || sent[0].Get("stream") != "tr/1" {
		t.Fatalf("sent lines %v", sent)
	}
	lines := rx.Lines()
	if len(lines) != 2 {
		t.Fatalf("rx lines %v", lines)
	}
	want := map[string]string{"stream": "tr/1", "subs": "1", "frames": "10", "packets": "20", "bad": "1", "rx-lost": "2", "rx-late": "1"}
	for k, v := range want {
		if got := lines[0].Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	h, err := ParseHist(lines[1].Get("hist"))
	if err != nil || h.Count() != 10 {
		t.Errorf("latency histogram %v %v", h, err)
	}
}
