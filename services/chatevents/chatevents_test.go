package chatevents

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/server/bus/membus"
	"github.com/jetstreamproto/jsp/services/events"
	"github.com/jetstreamproto/jsp/wire"
)

var t0 = time.UnixMilli(1_800_000_000_123).UTC()

func samples() []Event {
	return []Event{
		{Type: MessageCreated, ID: "e1", Time: t0, Conversation: "c1", Seq: 7, Actor: "alice",
			Message: &Message{ID: "m1", Author: "alice", Text: "hi @bob", ReplyTo: "m0", Thread: "m0",
				Mentions: []string{"bob"}, MentionsAll: true, Seq: 7,
				Attachments: []Attachment{{ID: "f1", Name: "a.png", Size: 10, SHA256: strings.Repeat("ab", 32)}}},
			Members: []string{"alice", "bob"}},
		{Type: MessageEdited, ID: "e2", Time: t0, Conversation: "c1", Seq: 8, Actor: "alice",
			Message: &Message{ID: "m1", Author: "alice", Text: "hello", Edited: true, Seq: 7}},
		{Type: MessageDeleted, ID: "e3", Time: t0, Conversation: "c1", Seq: 9, Actor: "alice",
			Message: &Message{ID: "m1", Author: "alice", Deleted: true, Seq: 7}},
		{Type: ReactionAdded, ID: "e4", Time: t0, Conversation: "c1", Seq: 10, Actor: "bob",
			Reaction: &Reaction{MessageID: "m1", Emoji: "👍", User: "bob", Count: 2}},
		{Type: MemberRoleChanged, ID: "e5", Time: t0, Conversation: "c1", Seq: 11, Actor: "alice",
			Member: &Member{User: "bob", Role: RoleAdmin, PrevRole: RoleMember}},
		{Type: MemberLeft, ID: "e6", Time: t0, Conversation: "c1", Seq: 12, Actor: "bob", Member: &Member{User: "bob"}},
		{Type: ConversationUpdated, ID: "e7", Time: t0, Conversation: "c1", Seq: 13, Actor: "alice",
			Info: &Conversation{ID: "c1", Kind: KindGroup, Name: "team", Topic: "ship it", Archived: true, Creator: "alice"}},
		{Type: ReadUpdated, ID: "e8", Time: t0, Conversation: "c1", Actor: "bob", Read: &Read{User: "bob", Seq: 13}},
		{Type: Typing, ID: "e9", Time: t0, Conversation: "c1", Actor: "bob"},
		{Type: PresenceChanged, ID: "ea", Time: t0, Conversation: "c1", Actor: "bob",
			Presence: &Presence{User: "bob", Status: StatusAway, Previous: StatusOnline}},
		{Type: PresenceChanged, ID: "eb", Time: t0, Conversation: "c1", Actor: "carol",
			Presence: &Presence{User: "carol", Status: StatusOnline}},
	}
}

func TestRoundTrip(t *testing.T) {
	for _, e := range samples() {
		t.Run(string(e.Type), func(t *testing.T) {
			b := e.Marshal()
			got, err := Decode(b)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !reflect.DeepEqual(got, e) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, e)
			}
			if again := got.Marshal(); !bytes.Equal(again, b) {
				t.Fatalf("re-encoding differs")
			}
			if !e.Type.Ephemeral() {
				env, err := e.Envelope()
				if err != nil {
					t.Fatal(err)
				}
				j, err := env.Encode()
				if err != nil {
					t.Fatal(err)
				}
				gj, err := DecodeLogged(j)
				if err != nil {
					t.Fatalf("DecodeLogged: %v", err)
				}
				if !reflect.DeepEqual(gj, e) {
					t.Fatalf("envelope round trip:\n got %+v\nwant %+v", gj, e)
				}
			} else if _, err := e.Envelope(); err == nil {
				t.Fatal("typing event has an envelope")
			}
			// No proper prefix decodes.
			for i := range len(b) {
				if _, err := Decode(b[:i]); err == nil {
					t.Fatalf("prefix of %d bytes decoded", i)
				}
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	good := samples()[3].Marshal()
	unknownType := Event{Type: "nope", ID: "x", Time: t0, Conversation: "c", Actor: "a"}
	missing := wire.AppendCBORMapHeader(nil, 1)
	missing = textField(missing, 1, string(MessageCreated))
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"trailing", append(append([]byte{}, good...), 0)},
		{"unknown type", unknownType.Marshal()},
		{"missing fields", missing},
		{"oversize", make([]byte, MaxEventBytes+1)},
		{"not a map", wire.AppendCBORUint(nil, 3)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Decode(tt.data); !errors.Is(err, ErrInvalid) {
				t.Fatalf("Decode = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestDecodeSkipsUnknownKeys(t *testing.T) {
	e := samples()[7]
	b := e.Marshal()
	// Bump the map's entry count and append an unknown key 20 (JSP §8.3).
	b[0]++
	b = textField(b, 20, "future")
	got, err := Decode(b)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if !reflect.DeepEqual(got, e) {
		t.Fatalf("got %+v", got)
	}
}

func TestSubject(t *testing.T) {
	s, err := bus.NewSubjects("c1")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range append(Types, Typing) {
		subj, err := Subject(s, k)
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		if !bus.IsLiteral(subj) || !bus.MatchSubject(s.Events(), subj) {
			t.Fatalf("%s: subject %q not under %q", k, subj, s.Events())
		}
	}
	if got, _ := Subject(s, MessageCreated); got != "jsp.c1.events.message_2Ecreated" {
		t.Fatalf("subject = %q", got)
	}
}

func FuzzDecode(f *testing.F) {
	for _, e := range samples() {
		f.Add(e.Marshal())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := Decode(data)
		if err != nil {
			return
		}
		b := e.Marshal()
		e2, err := Decode(b)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !bytes.Equal(e2.Marshal(), b) {
			t.Fatal("not stable")
		}
	})
}

func TestAppendToEventLog(t *testing.T) {
	b, err := membus.New(membus.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	s, _ := bus.NewSubjects("c1")
	ctx := context.Background()
	log, err := b.EventLog(ctx, s.EventLog())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range samples()[:3] {
		if _, err := Append(ctx, log, &e); err != nil {
			t.Fatal(err)
		}
	}
	typing := samples()[8]
	if _, err := Append(ctx, log, &typing); err == nil {
		t.Fatal("typing event was logged")
	}
	var got []Type
	err = log.Replay(ctx, bus.ReplayOptions{Kinds: []string{string(MessageEdited), string(MessageDeleted)}}, func(ev bus.Event) error {
		if h := ev.Msg.Header.Get(events.HeaderType); h != ev.Kind {
			t.Errorf("type header %q on kind %s", h, ev.Kind)
		}
		e, err := DecodeLogged(ev.Msg.Data)
		if err != nil {
			return err
		}
		got = append(got, e.Type)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, []Type{MessageEdited, MessageDeleted}) {
		t.Fatalf("replayed %v", got)
	}
}

// TestEnvelopePayload pins the payload names consumers read
// (docs/events.md, "Chat event payloads"), notably what the push notifier
// needs from a message event.
func TestEnvelopePayload(t *testing.T) {
	e := Event{Type: MessageCreated, ID: "e1", Time: t0, Conversation: "c1", Seq: 7, Actor: "alice",
		Message: &Message{ID: "m1", Author: "alice", Text: "hi @bob", Mentions: []string{"bob"}, MentionsAll: true, Seq: 7},
		Members: []string{"alice", "bob"}}
	env, err := e.Envelope()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"seq":7,"message":{"id":"m1","author":"alice","text":"hi @bob","mentions":["bob"],"mention_channel":true,"seq":7},"members":["alice","bob"]}`
	if string(env.Payload) != want {
		t.Fatalf("payload\n got %s\nwant %s", env.Payload, want)
	}
	if env.Type != "message.created" || env.Conversation != "c1" || env.Actor != "alice" || env.ID != "e1" {
		t.Fatalf("envelope %+v", env)
	}
}

func TestFromEnvelopeRejects(t *testing.T) {
	good, err := samples()[0].Envelope()
	if err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*events.Event){
		"unknown kind":    func(e *events.Event) { e.Type = "order.created" },
		"typing":          func(e *events.Event) { e.Type = string(Typing) },
		"presence":        func(e *events.Event) { e.Type = string(PresenceChanged) },
		"no conversation": func(e *events.Event) { e.Conversation = "" },
		"payload array":   func(e *events.Event) { e.Payload = []byte(`[1]`) },
		"bad field type":  func(e *events.Event) { e.Payload = []byte(`{"seq":"x"}`) },
	} {
		t.Run(name, func(t *testing.T) {
			ev := good
			mod(&ev)
			if _, err := FromEnvelope(ev); !errors.Is(err, ErrInvalid) {
				t.Fatalf("err %v, want ErrInvalid", err)
			}
		})
	}
	ev := good
	ev.Payload = []byte(`{"seq":1,"future":{"x":1}}`)
	if _, err := FromEnvelope(ev); err != nil {
		t.Fatalf("unknown payload key: %v", err)
	}
}

func FuzzDecodeLogged(f *testing.F) {
	for _, e := range samples() {
		if env, err := e.Envelope(); err == nil {
			b, _ := env.Encode()
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeLogged(b)
		if err != nil {
			return
		}
		env, err := e.Envelope()
		if err != nil {
			t.Fatalf("decoded event has no envelope: %v", err)
		}
		b2, err := env.Encode()
		if err != nil {
			return // a decoded payload may re-encode larger than the limit
		}
		e2, err := DecodeLogged(b2)
		if err != nil || !reflect.DeepEqual(e, e2) {
			t.Fatalf("not stable: %v", err)
		}
	})
}
