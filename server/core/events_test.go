package core_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/server/core"
	"github.com/jetstreamproto/jsp/server/storage"
)

// TestEventRuns checks how a multi-message publish leaves on the bus: one
// event per run of consecutive numbers, the one-message form for a run of
// one, and runs cut by the body-size cap.
func TestEventRuns(t *testing.T) {
	big := strings.Repeat("b", 100<<10)
	tests := []struct {
		name string
		msgs []storage.Message
		runs []int // messages per event; 1 = the one-message form
	}{
		{"one", []storage.Message{msg("a", "1")}, []int{1}},
		{"run", []storage.Message{msg("a", "1"), msg("b", "2"), msg("c", "3")}, []int{3}},
		{"duplicate inside", []storage.Message{msg("a", "1"), msg("a", "1"), msg("b", "2")}, []int{2}},
		{"size cap", []storage.Message{msg("a", big), msg("b", big), msg("c", big), msg("d", "x")}, []int{2, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, newMemBus(t))
			subj, err := f.subj.Channel("room")
			if err != nil {
				t.Fatal(err)
			}
			raw := make(chan core.Event, 16)
			sub, err := f.bus.Subscribe(subj, func(m *bus.Msg) {
				ev, err := core.DecodeEvent(m.Data)
				if err != nil {
					t.Errorf("decode event: %v", err)
					return
				}
				raw <- ev
			})
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Unsubscribe()
			if _, err := f.client.PublishMany(ctx(t), "room", tt.msgs); err != nil {
				t.Fatal(err)
			}
			next := storage.Seq(1)
			for i, n := range tt.runs {
				var ev core.Event
				select {
				case ev = <-raw:
				case <-time.After(5 * time.Second):
					t.Fatalf("event %d missing", i)
				}
				got := ev.Messages
				if len(got) == 0 {
					got = []storage.Message{ev.Message}
				} else if len(got) == 1 {
					t.Fatalf("event %d: a run of one", i)
				}
				if len(got) != n {
					t.Fatalf("event %d carries %d messages, want %d", i, len(got), n)
				}
				for _, m := range got {
					if m.Seq != next {
						t.Fatalf("event %d: seq %d, want %d", i, m.Seq, next)
					}
					next++
				}
			}
			select {
			case ev := <-raw:
				t.Fatalf("extra event %+v", ev)
			case <-time.After(20 * time.Millisecond):
			}
		})
	}
}

// TestDecodeEventRuns: a run must carry consecutive numbers; an
// ephemeral run (live messages, D44) none.
func TestDecodeEventRuns(t *testing.T) {
	for _, tt := range []struct {
		seqs      []int
		ephemeral bool
		ok        bool
	}{
		{[]int{4, 5, 6}, false, true},
		{[]int{4, 6}, false, false},
		{[]int{0, 1}, false, false},
		{[]int{5, 4}, false, false},
		{[]int{0, 0, 0}, false, false},
		{[]int{0, 0, 0}, true, true},
		{[]int{0, 1}, true, false},
		{[]int{4, 5}, true, false},
	} {
		var parts []string
		for _, s := range tt.seqs {
			parts = append(parts, fmt.Sprintf(`{"seq":%d}`, s))
		}
		data := `{"channel":"room","message":{},"messages":[` + strings.Join(parts, ",") + `]`
		if tt.ephemeral {
			data += `,"ephemeral":true`
		}
		data += `}`
		if _, err := core.DecodeEvent([]byte(data)); (err == nil) != tt.ok {
			t.Fatalf("seqs %v ephemeral %v: err %v, want ok %v", tt.seqs, tt.ephemeral, err, tt.ok)
		}
	}
}

// FuzzDecodeEvent: DecodeEvent never panics, and whatever it accepts has a
// channel and, for a run, consecutive non-zero numbers. Seeded from
// encoded events of every form.
func FuzzDecodeEvent(f *testing.F) {
	run := []storage.Message{{Seq: 7, Body: []byte("a")}, {Seq: 8, Body: []byte("b")}}
	for _, ev := range []core.Event{
		{Channel: "room", Message: storage.Message{Seq: 3, Body: []byte("x")}},
		{Channel: "room", Messages: run},
		{Channel: "room", Ephemeral: true, Message: storage.Message{Body: []byte("typing")}},
		{Channel: "room", Drop: []string{"alice"}},
		{Channel: "room", Ephemeral: true, Messages: []storage.Message{{Body: []byte("a")}, {Body: []byte("b")}}},
	} {
		data, err := json.Marshal(&ev)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
		f.Add(core.AppendEvent(nil, &ev))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := core.DecodeEvent(data)
		if err != nil {
			return
		}
		if ev.Channel == "" {
			t.Fatal("accepted an event without a channel")
		}
		for i, m := range ev.Messages {
			if ev.Ephemeral {
				if m.Seq != 0 {
					t.Fatalf("accepted an ephemeral run with seq %d at %d", m.Seq, i)
				}
				continue
			}
			if m.Seq == 0 || (i > 0 && m.Seq != ev.Messages[i-1].Seq+1) {
				t.Fatalf("accepted a run with seq %d at %d", m.Seq, i)
			}
		}
	})
}
