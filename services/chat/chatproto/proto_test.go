package chatproto

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/services/chatevents"
)

func sampleRequests() []Request {
	return []Request{
		{Op: OpPost, Conversation: "c1", Text: "hi @bob", ReplyTo: "m0", ClientID: "k1",
			Attachments: []chatevents.Attachment{{ID: "f1", Name: "a.png", Size: 3, SHA256: "ab"}}},
		{Op: OpHistory, Conversation: "c1", Cursor: []byte{1, 2, 3}, Limit: 20, Backward: true},
		{Op: OpCreate, Kind: chatevents.KindGroup, Name: "n", Topic: "t", Members: []string{"a", "b"}},
		{Op: OpConfigure, Conversation: "c", Overrides: map[string]string{"post": "member", "react": "member"}},
		{Op: OpUserAdd, User: "u", DisplayName: "U", Admin: true},
		{Op: OpTyping, Conversation: "c", Typing: true},
		{Op: OpArchive, Conversation: "c", Archived: true},
		{Op: OpRead, Conversation: "c", Seq: 9},
		{Op: OpInvite, Conversation: "c", User: "x", Role: chatevents.RoleGuest},
		{Op: OpReact, Conversation: "c", Message: "m", Emoji: "👍"},
	}
}

func TestRequestRoundTrip(t *testing.T) {
	for _, r := range sampleRequests() {
		b := r.Marshal()
		got, err := DecodeRequest(b)
		if err != nil {
			t.Fatalf("%s: %v", r.Op, err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Fatalf("%s:\n got %+v\nwant %+v", r.Op, got, r)
		}
		if !bytes.Equal(got.Marshal(), b) {
			t.Fatalf("%s: re-encoding differs", r.Op)
		}
		for i := range len(b) {
			if _, err := DecodeRequest(b[:i]); err == nil {
				t.Fatalf("%s: prefix of %d bytes decoded", r.Op, i)
			}
		}
	}
}

func sampleResponse() Response {
	t0 := time.UnixMilli(1_800_000_000_000).UTC()
	ev := chatevents.Event{Type: chatevents.MessageCreated, ID: "e", Time: t0, Conversation: "c", Seq: 4, Actor: "a",
		Message: &chatevents.Message{ID: "m", Author: "a", Text: "x", Seq: 4}}
	return Response{
		Event: &ev,
		Conversation: &Conversation{Conversation: chatevents.Conversation{ID: "c", Kind: chatevents.KindChannel, Name: "n"},
			Role: chatevents.RoleOwner, ReadSeq: 3, Unread: 1, Mentions: 1, LastSeq: 4, Overrides: map[string]string{"post": "member"}},
		Conversations: []Conversation{{Conversation: chatevents.Conversation{ID: "d", Kind: chatevents.KindDirect}}},
		Messages: []HistoryItem{{Message: chatevents.Message{ID: "m", Author: "a", Text: "x", Seq: 4, Edited: true}, Time: t0,
			Reactions: []Reaction{{Emoji: "👍", Count: 2, Users: []string{"a", "b"}}}}},
		Prev: []byte{1}, Next: []byte{2}, More: true,
		Members:  []Member{{User: "a", Role: chatevents.RoleOwner, ReadSeq: 4}},
		Users:    []User{{ID: "a", DisplayName: "A", Admin: true}},
		Edits:    []Edit{{Text: "old", Editor: "a", At: t0}},
		Presence: []Presence{{User: "a", Status: "online"}},
		Seq:      4, Message: "m",
	}
}

func TestResponseRoundTrip(t *testing.T) {
	r := sampleResponse()
	b := r.Marshal()
	got, err := DecodeResponse(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, r) {
		t.Fatalf("\n got %+v\nwant %+v", got, r)
	}
	empty, err := DecodeResponse(nil)
	if err != nil || !reflect.DeepEqual(empty, Response{}) {
		t.Fatalf("empty = %+v, %v", empty, err)
	}
}

func TestDecodeRejects(t *testing.T) {
	wrongType := Map{1: uint64(3)}.Append(nil)
	noOp := Map{2: "c"}.Append(nil)
	oddOverrides := Map{1: "conv.configure", 20: []any{"post"}}.Append(nil)
	deep := Map{}
	cur := deep
	for range maxDepth + 2 {
		next := Map{}
		cur[1] = next
		cur = next
	}
	for name, b := range map[string][]byte{
		"empty":          nil,
		"not a map":      {0x01},
		"wrong type":     wrongType,
		"no op":          noOp,
		"odd overrides":  oddOverrides,
		"too deep":       deep.Append(nil),
		"trailing bytes": append((&Request{Op: OpGet}).Marshal(), 0),
		"negative int":   {0xa1, 0x01, 0x20},
		"oversize":       make([]byte, MaxBodyBytes+1),
	} {
		if _, err := DecodeRequest(b); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
}

func FuzzDecodeRequest(f *testing.F) {
	for _, r := range sampleRequests() {
		f.Add(r.Marshal())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := DecodeRequest(data)
		if err != nil {
			return
		}
		if _, err := DecodeRequest(r.Marshal()); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
	})
}

func FuzzDecodeResponse(f *testing.F) {
	r := sampleResponse()
	f.Add(r.Marshal())
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := DecodeResponse(data)
		if err != nil {
			return
		}
		if _, err := DecodeResponse(r.Marshal()); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
	})
}
