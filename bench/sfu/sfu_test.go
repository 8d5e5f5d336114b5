package main

import (
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestPlanRooms(t *testing.T) {
	tests := []struct {
		name      string
		s         scenario
		rooms     int
		listeners []int
		perTrack  []int
		err       string
	}{
		{name: "audio 10x99", s: audioScenario(10, 99, 80), rooms: 1, listeners: []int{90}, perTrack: []int{99}},
		{name: "audio 10x100 over the cap", s: audioScenario(10, 100, 80), err: "room cap"},
		{name: "audio 2x5", s: audioScenario(2, 5, 80), rooms: 1, listeners: []int{4}, perTrack: []int{5}},
		{name: "audio more talkers than subscriptions", s: audioScenario(5, 2, 80), rooms: 1, listeners: []int{0}, perTrack: []int{4}},
		{name: "video 200", s: videoScenario(200), rooms: 3, listeners: []int{67, 67, 66}, perTrack: []int{67, 67, 66}},
		{name: "video 99", s: videoScenario(99), rooms: 1, listeners: []int{99}, perTrack: []int{99}},
		{name: "video 100", s: videoScenario(100), rooms: 2, listeners: []int{50, 50}, perTrack: []int{50, 50}},
		{name: "no subscribers", s: audioScenario(10, 0, 80), err: "needs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := planRooms(tt.s, RoomCap)
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
				if p.Listeners[r] != tt.listeners[r] || p.subscriptions(tt.s, r) != tt.perTrack[r] {
					t.Errorf("room %d: %d listeners, %d per track; want %d, %d", r, p.Listeners[r],
						p.subscriptions(tt.s, r), tt.listeners[r], tt.perTrack[r])
				}
				if p.Listeners[r]+tt.s.Publishers > RoomCap {
					t.Errorf("room %d over the cap", r)
				}
			}
		})
	}
}

func TestAssignListeners(t *testing.T) {
	tests := []struct {
		listeners []int
		procs     int
		want      []string
	}{
		{[]int{90}, 2, []string{"0:45:0", "0:45:45"}},
		{[]int{67, 67, 66}, 2, []string{"0:67:0,1:33:0", "1:34:33,2:66:0"}},
		{[]int{5}, 8, []string{"0:1:0", "0:1:1", "0:1:2", "0:1:3", "0:1:4"}},
		{[]int{3}, 1, []string{"0:3:0"}},
	}
	for _, tt := range tests {
		got := assignListeners(plan{Rooms: len(tt.listeners), Listeners: tt.listeners}, tt.procs)
		if strings.Join(got, " ") != strings.Join(tt.want, " ") {
			t.Errorf("%v over %d: %q, want %q", tt.listeners, tt.procs, got, tt.want)
		}
	}
}

func TestHeaderRoundTrip(t *testing.T) {
	now := time.Now()
	tests := []frameHeader{
		{Sent: now, Sched: now.Add(-time.Millisecond), Seq: 7, Layer: 2, Window: true},
		{Sent: time.Unix(0, 1), Sched: time.Unix(0, 0), Seq: 1<<32 - 1, Layer: 0},
	}
	for _, h := range tests {
		b := make([]byte, payloadHeader+10)
		putHeader(b, h)
		got, err := parseHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Sent.Equal(h.Sent) || !got.Sched.Equal(h.Sched) || got.Seq != h.Seq || got.Layer != h.Layer || got.Window != h.Window {
			t.Errorf("round trip %+v = %+v", h, got)
		}
	}
	if _, err := parseHeader(make([]byte, payloadHeader-1)); err == nil {
		t.Error("short payload parsed")
	}
}

func TestHistQuantileAndMerge(t *testing.T) {
	a, b := &hist{}, &hist{}
	for i := range 90 {
		a.record(time.Duration(i+1) * time.Microsecond)
	}
	for range 10 {
		b.record(10 * time.Millisecond)
	}
	b.record(-time.Second)
	a.merge(b)
	if a.count() != 101 {
		t.Fatalf("count = %d", a.count())
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
		if got := a.quantile(tt.q, tt.total); got < tt.lo || got > tt.hi {
			t.Errorf("quantile(%v, %d) = %v, want [%v, %v]", tt.q, tt.total, got, tt.lo, tt.hi)
		}
	}
	back, err := parseHist(a.String())
	if err != nil {
		t.Fatal(err)
	}
	if back.String() != a.String() || back.count() != a.count() {
		t.Errorf("round trip %q = %q", a.String(), back.String())
	}
	for _, bad := range []string{"1", "x:1", "99999:1", "1:-1"} {
		if _, err := parseHist(bad); err == nil {
			t.Errorf("parseHist(%q) accepted", bad)
		}
	}
	if h, err := parseHist("-"); err != nil || h.count() != 0 {
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

func TestSummarize(t *testing.T) {
	h := &hist{}
	for range 190 {
		h.record(2 * time.Millisecond)
	}
	lines := []string{
		"result kind=sent stream=a/0 frames=100 packets=100",
		"result kind=sent stream=b/1 frames=50 packets=100",
		"result kind=rx stream=a/0 subs=1 frames=100 packets=100 bad=0",
		"result kind=rx stream=b/1 subs=2 frames=90 packets=180 bad=1",
		"result kind=latency hist=" + h.String(),
		"not a result",
	}
	l, err := summarize(lines, 2*time.Second, time.Second, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"forwarded-pps": "140", "expected-pps": "150", "in-pps": "100", "server-cores": "0.5",
		"client-cores": "1.5", "pps-per-core": "280", "frames-expected": "200", "frames-lost": "10",
		"loss": "0.05", "bad": "1", "p99-us": "inf",
	}
	for k, v := range want {
		if got := l.Get(k); got != v {
			t.Errorf("%s = %q, want %q (%v)", k, got, v, l)
		}
	}
	if p50, _ := l.Float("p50-us"); p50 < 2000 || p50 > 2100 {
		t.Errorf("p50 = %v", p50)
	}
	if _, err := summarize(lines[4:], time.Second, time.Second, 0); err == nil {
		t.Error("summary without send results")
	}
}
