package audiolevel

import (
	"errors"
	"math"
	"slices"
	"testing"
	"time"
)

func sine(n int, amp float64) []int16 {
	out := make([]int16, n)
	for i := range out {
		out[i] = int16(amp * 32767 * math.Sin(2*math.Pi*440*float64(i)/48000))
	}
	return out
}

func TestLevel(t *testing.T) {
	cases := []struct {
		in   []int16
		want uint8
	}{
		{nil, 127},
		{make([]int16, 960), 127},
		{sine(48000, 1), 3},      // full-scale sine: RMS -3 dBov
		{sine(48000, 0.1), 23},   // -20 dB more
		{sine(48000, 0.001), 63}, // -60 dB more
		{[]int16{-32768, -32768}, 0},
		{[]int16{1}, 127}, // -90 dBov rounds to 90? no: see below
	}
	cases[len(cases)-1].want = uint8(math.Round(-20 * math.Log10(1.0/32768)))
	for i, c := range cases {
		if got := LevelFromPCM16(c.in); got != c.want {
			t.Errorf("case %d: level %d, want %d", i, got, c.want)
		}
	}
	f := make([]float32, 480)
	for i := range f {
		f[i] = 0.5
	}
	if got := LevelFromFloat(f); got != 6 {
		t.Errorf("float 0.5 DC: %d", got)
	}
	if LevelFromFloat(nil) != 127 || Linear(0) != 1 || Linear(200) != Linear(127) {
		t.Error("edge cases")
	}
	if d := Linear(20); math.Abs(d-0.1) > 1e-9 {
		t.Errorf("Linear(20) = %v", d)
	}
}

// talk feeds a detector 20 ms frames for each participant per the
// script, and returns the list published at each change.
type script map[string]func(at time.Duration) uint8

func run(t *testing.T, d *Detector, s script, total time.Duration) (events []struct {
	at  time.Duration
	ids []string
}) {
	t.Helper()
	start := time.Unix(0, 0)
	names := make([]string, 0, len(s))
	for n := range s {
		names = append(names, n)
	}
	slices.Sort(names)
	for at := time.Duration(0); at < total; at += 20 * time.Millisecond {
		now := start.Add(at)
		for _, n := range names {
			if err := d.Observe(n, s[n](at), true, 20*time.Millisecond, now); err != nil {
				t.Fatal(err)
			}
		}
		if list, changed := d.Update(now); changed {
			var ids []string
			for _, sp := range list {
				ids = append(ids, sp.ID)
			}
			events = append(events, struct {
				at  time.Duration
				ids []string
			}{at, ids})
		}
	}
	return events
}

func during(from, to time.Duration, in, out uint8) func(time.Duration) uint8 {
	return func(at time.Duration) uint8 {
		if at >= from && at < to {
			return in
		}
		return out
	}
}

// TestActiveSpeaker: A talks 0-3 s, B (quieter) 2-6 s, C is steady noise
// at -60 dBov, D has a cough (one loud frame every second).
func TestActiveSpeaker(t *testing.T) {
	d, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	events := run(t, d, script{
		"A": during(0, 3*time.Second, 15, 127),
		"B": during(2*time.Second, 6*time.Second, 25, 127),
		"C": func(time.Duration) uint8 { return 60 },
		"D": func(at time.Duration) uint8 {
			if at%time.Second == 0 {
				return 5
			}
			return 127
		},
	}, 9*time.Second)
	for _, e := range events {
		t.Logf("%v: %v", e.at, e.ids)
	}
	want := [][]string{{"A"}, {"A", "B"}, {"B"}, nil}
	if len(events) != len(want) {
		t.Fatalf("%d events, want %d", len(events), len(want))
	}
	for i, e := range events {
		if !slices.Equal(e.ids, want[i]) {
			t.Errorf("event %d: %v, want %v", i, e.ids, want[i])
		}
	}
	if events[0].at > time.Second {
		t.Errorf("A detected only at %v", events[0].at)
	}
	if e := events[2]; e.at < 3*time.Second || e.at > 4*time.Second {
		t.Errorf("A dropped at %v, stopped at 3 s", e.at)
	}
	if e := events[3]; e.at < 6*time.Second || e.at > 7*time.Second {
		t.Errorf("B dropped at %v, stopped at 6 s", e.at)
	}
}

// TestLoudestFirstAndCap: four talkers, the list holds the three loudest.
func TestLoudestFirstAndCap(t *testing.T) {
	d, _ := New(Config{MaxSpeakers: 3})
	events := run(t, d, script{
		"a": func(time.Duration) uint8 { return 30 },
		"b": func(time.Duration) uint8 { return 10 },
		"c": func(time.Duration) uint8 { return 20 },
		"d": func(time.Duration) uint8 { return 25 },
	}, 3*time.Second)
	last := events[len(events)-1].ids
	if !slices.Equal(last, []string{"b", "c", "d"}) {
		t.Fatalf("list %v", last)
	}
}

func TestEventSpacingAndRemove(t *testing.T) {
	d, _ := New(Config{MinEventInterval: time.Second, Window: 100 * time.Millisecond, Smoothing: 1})
	now := time.Unix(0, 0)
	talking := map[string]bool{}
	// step: every talker sends one window of loud audio, then Update.
	step := func() ([]Speaker, bool) {
		for id := range talking {
			_ = d.Observe(id, 10, true, 100*time.Millisecond, now)
		}
		now = now.Add(100 * time.Millisecond)
		return d.Update(now)
	}
	talking["x"] = true
	if _, ch := step(); !ch {
		t.Fatal("first speaker not reported")
	}
	talking["y"] = true
	if list, ch := step(); ch || len(list) != 2 {
		t.Fatalf("change reported within MinEventInterval: %v %v", list, ch)
	}
	changed := false
	for range 9 {
		_, ch := step()
		changed = changed || ch
	}
	if !changed {
		t.Fatal("held-back change not reported later")
	}
	delete(talking, "y")
	d.Remove("y")
	for range 10 {
		step()
	}
	if list, _ := step(); len(list) != 1 || list[0].ID != "x" {
		t.Fatalf("after removal: %v", list)
	}
}

func TestLimits(t *testing.T) {
	d, _ := New(Config{MaxParticipants: 2, MaxObservationsPerWindow: 3})
	now := time.Unix(0, 0)
	if err := d.Observe("a", 10, true, time.Millisecond, now); err != nil {
		t.Fatal(err)
	}
	_ = d.Observe("b", 10, true, time.Millisecond, now)
	if err := d.Observe("c", 10, true, time.Millisecond, now); !errors.Is(err, ErrTooManyParticipants) {
		t.Fatalf("third participant: %v", err)
	}
	for range 10 {
		_ = d.Observe("a", 10, true, time.Millisecond, now)
	}
	if p := d.parts["a"]; p.count != 3 {
		t.Fatalf("%d observations counted, cap 3", p.count)
	}
	// The voice flag is honoured when asked to.
	v, _ := New(Config{UseVoiceFlag: true, Window: 100 * time.Millisecond, Smoothing: 1})
	_ = v.Observe("a", 0, false, 100*time.Millisecond, now)
	if list, _ := v.Update(now.Add(100 * time.Millisecond)); len(list) != 0 {
		t.Fatal("loud audio without the voice bit counted as speech")
	}
	bad := []Config{{ActiveLevel: 128}, {MinActiveFraction: 2}, {Window: -1}, {Smoothing: 1.5},
		{EnterActivity: 0.1, ExitActivity: 0.2}, {MaxSpeakers: -1}}
	for _, c := range bad {
		if _, err := New(c); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	// A long silence decays at once, without a loop per window.
	w, _ := New(Config{})
	_ = w.Observe("a", 0, true, time.Second, now)
	w.Update(now.Add(time.Second))
	w.Update(now.Add(time.Hour))
	if p := w.parts["a"]; p.smoothed != 0 {
		t.Fatalf("after an hour of silence: %v", p.smoothed)
	}
}
