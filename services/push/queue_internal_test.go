package push

import (
	"strings"
	"testing"
)

func TestJobRoundTripAndRejects(t *testing.T) {
	good := job{User: "bob", Endpoint: "https://push.test/x", Payload: []byte(`{"a":1}`), TTL: 60, Urgency: UrgencyHigh, Topic: "t1"}
	b, err := encodeJob(good)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeJob(b)
	if err != nil || got.User != good.User || got.Endpoint != good.Endpoint || string(got.Payload) != string(good.Payload) ||
		got.TTL != 60 || got.Urgency != UrgencyHigh || got.Topic != "t1" {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	for i := range len(b) {
		if _, err := decodeJob(b[:i]); err == nil {
			t.Fatalf("prefix of %d bytes decoded", i)
		}
	}
	for name, in := range map[string]string{
		"unknown field": `{"user":"bob","endpoint":"https://x/","urgency":"low","extra":1}`,
		"no user":       `{"endpoint":"https://x/","urgency":"low"}`,
		"bad urgency":   `{"user":"bob","endpoint":"https://x/","urgency":"now"}`,
		"bad topic":     `{"user":"bob","endpoint":"https://x/","urgency":"low","topic":"a b"}`,
		"negative ttl":  `{"user":"bob","endpoint":"https://x/","urgency":"low","ttl":-1}`,
		"trailing":      `{"user":"bob","endpoint":"https://x/","urgency":"low"} {}`,
		"oversize":      `{"user":"` + strings.Repeat("a", MaxJobBytes) + `"}`,
		"big payload":   `{"user":"bob","endpoint":"https://x/","urgency":"low","payload":"` + strings.Repeat("AAAA", MaxPayload/3+1) + `"}`,
	} {
		if _, err := decodeJob([]byte(in)); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
	if _, err := encodeJob(job{User: "bob", Endpoint: "https://x/", Urgency: UrgencyLow, Payload: make([]byte, MaxPayload+1)}); err == nil {
		t.Error("oversize payload encoded")
	}
}

func FuzzDecodeJob(f *testing.F) {
	b, err := encodeJob(job{User: "bob", Endpoint: "https://push.test/x", Payload: []byte("hi"), TTL: 1, Urgency: UrgencyNormal, Topic: "abc"})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(`{"user":"u","endpoint":"e","urgency":"low"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		j, err := decodeJob(b)
		if err != nil {
			return
		}
		again, err := encodeJob(j)
		if err != nil {
			t.Fatalf("decoded job does not encode: %v", err)
		}
		if _, err := decodeJob(again); err != nil {
			t.Fatalf("re-encoded job does not decode: %v", err)
		}
	})
}
