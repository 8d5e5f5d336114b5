package qos

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Unix(1_700_000_000, 0)

func item(c protocol.Class, size int, v string) Item[string] {
	return Item[string]{Class: c, Size: size, Value: v}
}

func popAll(t *testing.T, s *Scheduler[string], now time.Time) []string {
	t.Helper()
	var out []string
	for {
		it, ok := s.Pop(now)
		if !ok {
			return out
		}
		out = append(out, it.Value)
	}
}

func TestStrictPriorityForSystem(t *testing.T) {
	s := New[string](Config{})
	for i := 0; i < 3; i++ {
		mustPush(t, s, item(protocol.ClassBulk, 10, fmt.Sprintf("b%d", i)))
		mustPush(t, s, item(protocol.ClassMedia, 10, fmt.Sprintf("m%d", i)))
	}
	mustPush(t, s, item(protocol.ClassSystem, 10, "s0"))
	mustPush(t, s, item(protocol.ClassSystem, 10, "s1"))
	got, _ := s.Pop(t0)
	if got.Value != "s0" {
		t.Fatalf("first pop = %q, want s0", got.Value)
	}
	// A system item pushed in the middle jumps ahead of everything else.
	got, _ = s.Pop(t0)
	if got.Value != "s1" {
		t.Fatalf("second pop = %q, want s1", got.Value)
	}
	got, _ = s.Pop(t0)
	mustPush(t, s, item(protocol.ClassSystem, 10, "s2"))
	got2, _ := s.Pop(t0)
	if got2.Value != "s2" {
		t.Fatalf("after %q, pop = %q, want s2", got.Value, got2.Value)
	}
}

func mustPush(t *testing.T, s *Scheduler[string], it Item[string]) {
	t.Helper()
	if d, err := s.Push(it); err != nil || len(d) != 0 {
		t.Fatalf("Push(%v): dropped %v, err %v", it.Value, d, err)
	}
}

func TestWeightedShare(t *testing.T) {
	const q = 1000
	tests := []struct {
		name    string
		weights [protocol.NumClasses]int
		sizes   [protocol.NumClasses]int
		rounds  int
		want    [protocol.NumClasses]int // bytes sent per class after rounds
	}{
		{"defaults equal sizes", [4]int{}, [4]int{0, q, q, q}, 10, [4]int{0, 40 * q, 20 * q, 10 * q}},
		{"defaults small items", [4]int{}, [4]int{0, 100, 100, 100}, 10, [4]int{0, 40 * q, 20 * q, 10 * q}},
		{"custom weights", [4]int{0, 1, 1, 3}, [4]int{0, q, q, q}, 5, [4]int{0, 5 * q, 5 * q, 15 * q}},
		{"media large items", [4]int{}, [4]int{0, 2 * q, q, q}, 10, [4]int{0, 40 * q, 20 * q, 10 * q}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Weights: tc.weights, Quantum: q}
			cfg.QueueLength = [4]int{0, 100000, 100000, 100000}
			s := New[string](cfg)
			for _, c := range fairOrder {
				for i := 0; i < 1000; i++ {
					mustPush(t, s, item(c, tc.sizes[c], c.String()))
				}
			}
			// Weighted classes all earn their quantum once per round; count
			// what a whole number of rounds delivered.
			perRound := 0
			for _, c := range fairOrder {
				perRound += s.cfg.Weights[c] * q
			}
			var sent [protocol.NumClasses]int
			for total := 0; total < perRound*tc.rounds; {
				it, ok := s.Pop(t0)
				if !ok {
					t.Fatal("ran dry")
				}
				sent[it.Class] += it.Size
				total += it.Size
			}
			if sent != tc.want {
				t.Fatalf("bytes by class = %v, want %v", sent, tc.want)
			}
		})
	}
}

func TestIdleClassSavesNoCredit(t *testing.T) {
	s := New[string](Config{Quantum: 100})
	for i := 0; i < 50; i++ {
		mustPush(t, s, item(protocol.ClassBulk, 100, "b"))
	}
	for i := 0; i < 20; i++ {
		s.Pop(t0) // only bulk: media's deficit must stay zero meanwhile
	}
	for i := 0; i < 50; i++ {
		mustPush(t, s, item(protocol.ClassMedia, 100, "m"))
	}
	// From here one round is 4 media then 1 bulk: never more than 4 media in
	// a row, which a saved-up media credit would allow.
	run := 0
	for i := 0; i < 40; i++ {
		it, _ := s.Pop(t0)
		if it.Class == protocol.ClassMedia {
			run++
			if run > 4 {
				t.Fatalf("pop %d: %d media items in a row", i, run)
			}
		} else {
			run = 0
		}
	}
}

func TestLargeItemGetsThrough(t *testing.T) {
	s := New[string](Config{Quantum: 10})
	mustPush(t, s, item(protocol.ClassBulk, 1<<30, "huge"))
	for i := 0; i < 100; i++ {
		mustPush(t, s, item(protocol.ClassMedia, 40, "m"))
	}
	seen := false
	for i := 0; i < 200; i++ {
		it, ok := s.Pop(t0)
		if !ok {
			break
		}
		if it.Value == "huge" {
			seen = true
		}
	}
	if !seen {
		t.Fatal("an item larger than the quantum never left the queue")
	}
	if s.Len() != 0 || s.Bytes() != 0 {
		t.Fatalf("Len %d Bytes %d after draining", s.Len(), s.Bytes())
	}
}

func TestDeadlines(t *testing.T) {
	tests := []struct {
		name      string
		class     protocol.Class
		deadline  time.Time
		now       time.Time
		delivered bool
	}{
		{"media before deadline", protocol.ClassMedia, t0.Add(time.Second), t0, true},
		{"media at deadline", protocol.ClassMedia, t0, t0, true},
		{"media past deadline", protocol.ClassMedia, t0, t0.Add(time.Nanosecond), false},
		{"media no deadline", protocol.ClassMedia, time.Time{}, t0.Add(time.Hour), true},
		{"chat past deadline", protocol.ClassChat, t0, t0.Add(time.Second), false},
		{"system past deadline", protocol.ClassSystem, t0, t0.Add(time.Second), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := New[string](Config{})
			var expired []string
			s.OnExpire(func(it Item[string]) { expired = append(expired, it.Value) })
			mustPush(t, s, Item[string]{Class: tc.class, Size: 5, Deadline: tc.deadline, Value: "x"})
			mustPush(t, s, item(tc.class, 5, "after"))
			got := popAll(t, s, tc.now)
			st := s.Stats()[tc.class]
			if tc.delivered {
				if len(got) != 2 || len(expired) != 0 || st.Expired != 0 {
					t.Fatalf("got %v, expired %v, stats %+v", got, expired, st)
				}
				return
			}
			if len(got) != 1 || got[0] != "after" {
				t.Fatalf("popped %v, want only [after]", got)
			}
			if len(expired) != 1 || st.Expired != 1 || st.Dropped != 1 || s.Dropped() != 1 {
				t.Fatalf("expired %v, stats %+v", expired, st)
			}
		})
	}
}

func TestExpireSweepsWholeQueue(t *testing.T) {
	s := New[int](Config{})
	for i := 0; i < 10; i++ {
		dl := time.Time{}
		if i%2 == 1 {
			dl = t0
		}
		if _, err := s.Push(Item[int]{Class: protocol.ClassMedia, Size: 1, Deadline: dl, Value: i}); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	s.OnExpire(func(Item[int]) { n++ })
	if got := s.Expire(t0.Add(time.Millisecond)); got != 5 || n != 5 {
		t.Fatalf("Expire = %d (hook %d), want 5", got, n)
	}
	if s.Len() != 5 || s.Bytes() != 5 {
		t.Fatalf("Len %d Bytes %d, want 5 5", s.Len(), s.Bytes())
	}
	for want := 0; want < 10; want += 2 {
		it, ok := s.Pop(t0.Add(time.Hour))
		if !ok || it.Value != want {
			t.Fatalf("pop = %v %v, want %d", it.Value, ok, want)
		}
	}
}

func TestOverflowPolicies(t *testing.T) {
	tests := []struct {
		class    protocol.Class
		policy   Policy
		wantDrop bool
		wantErr  bool
	}{
		{protocol.ClassSystem, PolicyNeverDrop, false, true},
		{protocol.ClassMedia, PolicyDropOldest, true, false},
		{protocol.ClassChat, PolicyBackpressure, false, true},
		{protocol.ClassBulk, PolicyThrottle, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.class.String(), func(t *testing.T) {
			if p := PolicyOf(tc.class); p != tc.policy {
				t.Fatalf("PolicyOf = %v, want %v", p, tc.policy)
			}
			var cfg Config
			cfg.QueueLength[tc.class] = 2
			s := New[string](cfg)
			mustPush(t, s, item(tc.class, 1, "a"))
			mustPush(t, s, item(tc.class, 1, "b"))
			dropped, err := s.Push(item(tc.class, 1, "c"))
			st := s.Stats()[tc.class]
			if tc.wantErr {
				if jsperr.CodeOf(err) != jsperr.QueueFull || len(dropped) != 0 {
					t.Fatalf("Push on full queue: dropped %v err %v, want QUEUE_FULL", dropped, err)
				}
				if st.Refused != 1 || st.Len != 2 {
					t.Fatalf("stats %+v", st)
				}
				return
			}
			if err != nil || len(dropped) != 1 || dropped[0].Value != "a" {
				t.Fatalf("Push on full media queue: dropped %v err %v, want [a]", dropped, err)
			}
			if got := popAll(t, s, t0); fmt.Sprint(got) != "[b c]" {
				t.Fatalf("queue after drop = %v", got)
			}
			st = s.Stats()[tc.class]
			if st.Dropped != 1 || st.Queued != 3 || st.Sent != 2 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

func TestDefaultCaps(t *testing.T) {
	s := New[int](Config{})
	for c := protocol.Class(0); c < protocol.NumClasses; c++ {
		want := protocol.DefaultSendQueueLength
		if c == protocol.ClassSystem {
			want *= SystemQueueFactor
		}
		if got := s.Cap(c); got != want {
			t.Errorf("Cap(%s) = %d, want %d", c, got, want)
		}
	}
	// The system queue takes far more than any other before refusing.
	for i := 0; i < protocol.DefaultSendQueueLength*SystemQueueFactor; i++ {
		if _, err := s.Push(Item[int]{Class: protocol.ClassSystem}); err != nil {
			t.Fatalf("system push %d: %v", i, err)
		}
	}
	if _, err := s.Push(Item[int]{Class: protocol.ClassSystem}); jsperr.CodeOf(err) != jsperr.QueueFull {
		t.Fatalf("system push past cap: %v", err)
	}
}

func TestCountersAndSizes(t *testing.T) {
	s := New[int](Config{})
	sizes := map[protocol.Class]int{protocol.ClassSystem: 3, protocol.ClassMedia: 5, protocol.ClassChat: 7, protocol.ClassBulk: 11}
	for c, n := range sizes {
		for i := 0; i < n; i++ {
			if _, err := s.Push(Item[int]{Class: c, Size: n}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if s.Len() != 26 || s.Bytes() != 9+25+49+121 {
		t.Fatalf("Len %d Bytes %d", s.Len(), s.Bytes())
	}
	for c, n := range sizes {
		if s.LenClass(c) != n {
			t.Errorf("LenClass(%s) = %d, want %d", c, s.LenClass(c), n)
		}
	}
	if s.LenClass(9) != 0 {
		t.Error("LenClass of an invalid class should be 0")
	}
	for {
		if _, ok := s.Pop(t0); !ok {
			break
		}
	}
	for c, n := range sizes {
		st := s.Stats()[c]
		if st.Queued != uint64(n) || st.Sent != uint64(n) || st.Len != 0 || st.Bytes != 0 {
			t.Errorf("stats(%s) = %+v", c, st)
		}
	}
	if s.Len() != 0 || s.Bytes() != 0 {
		t.Fatalf("Len %d Bytes %d after draining", s.Len(), s.Bytes())
	}
}

func TestInvalidInput(t *testing.T) {
	s := New[int](Config{})
	if _, err := s.Push(Item[int]{Class: protocol.NumClasses}); err == nil {
		t.Error("Push with an invalid class succeeded")
	}
	if _, err := s.Push(Item[int]{Class: protocol.ClassChat, Size: -1}); err == nil {
		t.Error("Push with a negative size succeeded")
	}
	bad := []Config{
		{Weights: [4]int{0, -1, 0, 0}},
		{Quantum: -5},
		{QueueLength: [4]int{0, 0, -2, 0}},
	}
	for i, cfg := range bad {
		if err := cfg.Validate(); err == nil {
			t.Errorf("config %d: Validate accepted %+v", i, cfg)
		}
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("New with an invalid config did not panic")
			}
		}()
		New[int](bad[0])
	}()
	if !errors.Is(jsperr.New(jsperr.QueueFull, ""), queueFull(protocol.ClassChat, 1)) {
		t.Error("queueFull is not a QUEUE_FULL error")
	}
}

func BenchmarkSchedulerPushPop(b *testing.B) {
	s := New[int](Config{})
	classes := [...]protocol.Class{protocol.ClassMedia, protocol.ClassChat, protocol.ClassBulk, protocol.ClassMedia, protocol.ClassSystem}
	// Keep a standing queue so Pop does real round-robin work.
	for i := 0; i < 256; i++ {
		s.Push(Item[int]{Class: classes[i%len(classes)], Size: 1200})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.Push(Item[int]{Class: classes[i%len(classes)], Size: 1200, Value: i}); err != nil {
			b.Fatal(err)
		}
		if _, ok := s.Pop(t0); !ok {
			b.Fatal("empty")
		}
	}
}
