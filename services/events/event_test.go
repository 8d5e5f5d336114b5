package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
)

var t0 = time.Date(2026, 11, 29, 1, 2, 3, 456789000, time.UTC)

func sample() Event {
	return Event{Type: "message.created", ID: "ev-1", Time: t0, Conversation: "room-1", Actor: "alice",
		Payload: json.RawMessage(`{"seq":7,"text":"hi @bob","mentions":["bob"]}`)}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	for _, ev := range []Event{
		sample(),
		{Type: "member.joined", ID: "x", Time: t0},
		{Type: "a.b.c_9", ID: strings.Repeat("i", MaxIDLen), Time: t0.In(time.FixedZone("X", 3600)), Actor: "ü"},
	} {
		b, err := ev.Encode()
		if err != nil {
			t.Fatalf("encode %+v: %v", ev, err)
		}
		if !bytes.HasPrefix(b, []byte(`{"v":1,`)) {
			t.Errorf("encoding does not start with the version: %s", b)
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("decode %s: %v", b, err)
		}
		if got.Type != ev.Type || got.ID != ev.ID || !got.Time.Equal(ev.Time) || got.Time.Location() != time.UTC ||
			got.Conversation != ev.Conversation || got.Actor != ev.Actor || !bytes.Equal(got.Payload, ev.Payload) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, ev)
		}
	}
}

func TestValidate(t *testing.T) {
	long := strings.Repeat("a", MaxNameLen+1)
	for _, tc := range []struct {
		name string
		mod  func(*Event)
	}{
		{"empty type", func(e *Event) { e.Type = "" }},
		{"one part", func(e *Event) { e.Type = "message" }},
		{"upper case", func(e *Event) { e.Type = "Message.created" }},
		{"empty part", func(e *Event) { e.Type = "message..created" }},
		{"digit first", func(e *Event) { e.Type = "message.1created" }},
		{"wildcard", func(e *Event) { e.Type = "message.*" }},
		{"long type", func(e *Event) { e.Type = "a." + strings.Repeat("b", MaxTypeLen) }},
		{"no id", func(e *Event) { e.ID = "" }},
		{"space in id", func(e *Event) { e.ID = "a b" }},
		{"long id", func(e *Event) { e.ID = strings.Repeat("i", MaxIDLen+1) }},
		{"zero time", func(e *Event) { e.Time = time.Time{} }},
		{"long actor", func(e *Event) { e.Actor = long }},
		{"bad utf8 conversation", func(e *Event) { e.Conversation = "\xff" }},
		{"payload array", func(e *Event) { e.Payload = json.RawMessage(`[1]`) }},
		{"payload broken", func(e *Event) { e.Payload = json.RawMessage(`{"a":`) }},
		{"payload too large", func(e *Event) {
			e.Payload = json.RawMessage(`{"x":"` + strings.Repeat("a", MaxEventBytes) + `"}`)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := sample()
			tc.mod(&ev)
			_, err := ev.Encode()
			if !errors.Is(err, ErrInvalid) || jsperr.CodeOf(err) != jsperr.EventInvalid {
				t.Fatalf("err = %v (code %v), want ErrInvalid / EVENT_INVALID", err, jsperr.CodeOf(err))
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	good, err := func() ([]byte, error) { e := sample(); return e.Encode() }()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, in string }{
		{"empty", ``},
		{"not object", `[1]`},
		{"null", `null`},
		{"no version", `{"type":"a.b","id":"x","time":"2026-01-01T00:00:00Z"}`},
		{"future version", `{"v":2,"type":"a.b","id":"x","time":"2026-01-01T00:00:00Z"}`},
		{"version string", `{"v":"1","type":"a.b","id":"x","time":"2026-01-01T00:00:00Z"}`},
		{"duplicate type", `{"v":1,"type":"a.b","type":"c.d","id":"x","time":"2026-01-01T00:00:00Z"}`},
		{"duplicate unknown", `{"v":1,"type":"a.b","id":"x","time":"2026-01-01T00:00:00Z","z":1,"z":2}`},
		{"type number", `{"v":1,"type":5,"id":"x","time":"2026-01-01T00:00:00Z"}`},
		{"bad time", `{"v":1,"type":"a.b","id":"x","time":"yesterday"}`},
		{"trailing data", `{"v":1,"type":"a.b","id":"x","time":"2026-01-01T00:00:00Z"} {}`},
		{"unterminated", `{"v":1,"type":"a.b"`},
		{"oversize", `{"v":1,"pad":"` + strings.Repeat("a", MaxEventBytes) + `"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Decode([]byte(tc.in)); !errors.Is(err, ErrInvalid) {
				t.Fatalf("Decode(%.60q) err = %v, want ErrInvalid", tc.in, err)
			}
		})
	}
	// No proper prefix of a valid envelope decodes.
	for i := range len(good) {
		if _, err := Decode(good[:i]); err == nil {
			t.Fatalf("prefix of %d bytes decoded", i)
		}
	}
}

func TestDecodeSkipsUnknownFields(t *testing.T) {
	in := `{"v":1,"type":"a.b","id":"x","time":"2026-01-01T00:00:00Z","new_field":{"deep":[1,2]},"payload":null}`
	ev, err := Decode([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if ev.Type != "a.b" || ev.Payload != nil {
		t.Fatalf("got %+v", ev)
	}
}

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		filter, typ string
		want        bool
	}{
		{"*", "message.created", true},
		{"message.*", "message.created", true},
		{"message.*", "message.thread.created", true},
		{"message.*", "messages.created", false},
		{"message.*", "reaction.added", false},
		{"message.created", "message.created", true},
		{"message.created", "message.created2", false},
		{"member.role.*", "member.role.changed", true},
	} {
		if got := Match(tc.filter, tc.typ); got != tc.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tc.filter, tc.typ, got, tc.want)
		}
	}
	if !MatchAny(nil, "a.b") || MatchAny([]string{"c.*"}, "a.b") {
		t.Error("MatchAny")
	}
	for f, ok := range map[string]bool{"*": true, "message.*": true, "a.b.*": true, "message.created": true,
		"message": false, "*.created": false, "message.**": false, "": false, ".*": false} {
		if err := ValidateFilter(f); (err == nil) != ok {
			t.Errorf("ValidateFilter(%q) = %v, want ok=%v", f, err, ok)
		}
	}
}

func TestBackoff(t *testing.T) {
	maxRand := func(n int64) int64 { return n - 1 }
	zeroRand := func(int64) int64 { return 0 }
	for _, tc := range []struct {
		n        int
		min, max time.Duration
	}{
		{1, 50 * time.Millisecond, 100 * time.Millisecond},
		{2, 100 * time.Millisecond, 200 * time.Millisecond},
		{4, 400 * time.Millisecond, 800 * time.Millisecond},
		{10, 500 * time.Millisecond, time.Second}, // capped
		{1000, 500 * time.Millisecond, time.Second},
	} {
		lo := Backoff(100*time.Millisecond, time.Second, tc.n, zeroRand)
		hi := Backoff(100*time.Millisecond, time.Second, tc.n, maxRand)
		if lo != tc.min || hi != tc.max {
			t.Errorf("Backoff n=%d in [%v, %v], want [%v, %v]", tc.n, lo, hi, tc.min, tc.max)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, ev := range []Event{sample(), {Type: "member.joined", ID: "x", Time: t0}} {
		b, err := ev.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"v":1,"type":"a.b","type":"a.c"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := Decode(b)
		if err != nil {
			return
		}
		// Whatever decodes re-encodes and decodes to the same event.
		enc, err := ev.Encode()
		if err != nil {
			t.Fatalf("decoded event does not encode: %v", err)
		}
		again, err := Decode(enc)
		if err != nil {
			t.Fatalf("re-encoded event does not decode: %v", err)
		}
		if again.Type != ev.Type || again.ID != ev.ID || !again.Time.Equal(ev.Time) || again.Actor != ev.Actor ||
			again.Conversation != ev.Conversation {
			t.Fatalf("re-decode differs: %+v vs %+v", again, ev)
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	ev := sample()
	enc, err := ev.Encode()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(enc)))
	for b.Loop() {
		if _, err := Decode(enc); err != nil {
			b.Fatal(err)
		}
	}
}
