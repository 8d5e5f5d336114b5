// Package events is the internal event envelope of the chat and system
// services and its transport on the bus (docs/events.md).
//
// Every change a service commits (a message posted, edited or deleted, a
// reaction added, a member joined) is published as one [Event]: a typed
// envelope whose payload is the type's JSON document. Events go to the
// bus's event log (JetStream stream JSP_EVENTS), one subject per type:
//
//	jsp.<cluster>.events.<Token(type)>     e.g. jsp.c1.events.message_2Ecreated
//
// The flow:
//
//	service --commit--> storage
//	service --Publisher.Publish(ev)--> event log (de-duplicated by ev.ID)
//	event log --Replay(from cursor, follow)--> Consumer "webhooks"  --> webhook work queue
//	                                       \-> Consumer "push"      --> push notifier
//
// A [Consumer] is durable: it stores the sequence number of the last event
// it handled under its name ([CursorStore]) and resumes after it, so a
// restart neither loses nor repeats more than the event in flight
// (delivery is at least once; handlers de-duplicate by Event.ID).
//
// This package knows no event type's payload: the chat service defines
// them. It works with any type that follows the naming rule of
// [ValidateType].
package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jetstreamproto/jsp/jsperr"
)

// Version is the envelope version this package writes ("v" field).
const Version = 1

// Limits of an event (docs/events.md).
const (
	// MaxEventBytes caps an encoded envelope. A webhook body is the
	// envelope, so this also bounds what a receiver must accept.
	MaxEventBytes = 256 << 10
	// MaxTypeLen caps an event type.
	MaxTypeLen = 64
	// MaxIDLen caps an event id.
	MaxIDLen = 128
	// MaxNameLen caps the conversation and actor fields.
	MaxNameLen = 256
)

// ErrInvalid is the sentinel every validation and decoding error wraps;
// errors also carry jsperr.EventInvalid.
var ErrInvalid = errors.New("events: invalid event")

// Event is the internal event envelope.
type Event struct {
	// Type names what happened, "<noun>.<verb>" in lower case:
	// "message.created", "reaction.added", "member.joined". Required.
	Type string `json:"type"`
	// ID identifies the event uniquely; publishing the same id twice
	// within the bus's duplicate window stores it once, and consumers
	// de-duplicate by it. Publish fills a random id when empty.
	ID string `json:"id"`
	// Time is when the change was committed. Publish fills the current
	// time when zero.
	Time time.Time `json:"time"`
	// Conversation is the conversation the event belongs to, empty for
	// events outside any conversation.
	Conversation string `json:"conversation,omitempty"`
	// Actor is the user or service that caused the event, empty for
	// system events.
	Actor string `json:"actor,omitempty"`
	// Payload is the type's JSON object; absent when the type has none.
	Payload json.RawMessage `json:"payload,omitempty"`
}

// wire is the encoded form; V is written first so readers see the
// version before anything else.
type wire struct {
	V int `json:"v"`
	Event
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %w", ErrInvalid, jsperr.Newf(jsperr.EventInvalid, format, args...))
}

// ValidateType checks an event type: 1..MaxTypeLen bytes, at least two
// dot-separated parts, each a lower-case letter followed by lower-case
// letters, digits or '_'. The rule keeps types readable in subjects and
// lets webhook filters use "message.*".
func ValidateType(t string) error {
	if t == "" || len(t) > MaxTypeLen {
		return invalid("type of %d bytes (want 1..%d)", len(t), MaxTypeLen)
	}
	parts := 0
	for part := range strings.SplitSeq(t, ".") {
		parts++
		if part == "" || part[0] < 'a' || part[0] > 'z' {
			return invalid("type %q: each part starts with a lower-case letter", t)
		}
		for i := 1; i < len(part); i++ {
			c := part[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_') {
				return invalid("type %q: byte %q not allowed", t, c)
			}
		}
	}
	if parts < 2 {
		return invalid("type %q: want <noun>.<verb>", t)
	}
	return nil
}

func validID(id string) bool {
	if id == "" || len(id) > MaxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' {
			return false
		}
	}
	return true
}

// Validate checks every field of a complete event (ID and Time set).
func (e *Event) Validate() error {
	if err := ValidateType(e.Type); err != nil {
		return err
	}
	if !validID(e.ID) {
		return invalid("event %s: id must be 1..%d printable ASCII bytes", e.Type, MaxIDLen)
	}
	if e.Time.IsZero() {
		return invalid("event %s %s: zero time", e.Type, e.ID)
	}
	for _, f := range []struct{ what, v string }{{"conversation", e.Conversation}, {"actor", e.Actor}} {
		if len(f.v) > MaxNameLen || !utf8.ValidString(f.v) {
			return invalid("event %s %s: %s must be valid UTF-8 of at most %d bytes", e.Type, e.ID, f.what, MaxNameLen)
		}
	}
	if len(e.Payload) > 0 {
		p := bytes.TrimLeft(e.Payload, " \t\r\n")
		if len(p) == 0 || p[0] != '{' || !json.Valid(e.Payload) {
			return invalid("event %s %s: payload must be a JSON object", e.Type, e.ID)
		}
	}
	return nil
}

// Encode validates e and returns its JSON envelope.
func (e *Event) Encode() ([]byte, error) {
	if err := e.Validate(); err != nil {
		return nil, err
	}
	ev := *e
	ev.Time = ev.Time.UTC()
	b, err := json.Marshal(wire{V: Version, Event: ev})
	if err != nil {
		return nil, fmt.Errorf("events: encode %s %s: %w", e.Type, e.ID, err)
	}
	if len(b) > MaxEventBytes {
		return nil, invalid("event %s %s: %d bytes encoded, limit %d", e.Type, e.ID, len(b), MaxEventBytes)
	}
	return b, nil
}

// knownFields are the envelope's keys; others are skipped (docs/events.md:
// a newer writer may add fields, and older readers must keep working).
var knownFields = map[string]bool{"v": true, "type": true, "id": true, "time": true, "conversation": true, "actor": true, "payload": true}

// Decode parses an envelope. It rejects input over MaxEventBytes, anything
// but one JSON object, duplicate keys (two readers could otherwise see two
// different events), a version newer than Version, and an event that
// fails Validate. Unknown keys are skipped.
func Decode(b []byte) (Event, error) {
	if len(b) > MaxEventBytes {
		return Event{}, invalid("envelope of %d bytes, limit %d", len(b), MaxEventBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return Event{}, invalid("envelope is not a JSON object")
	}
	seen := make(map[string]bool, len(knownFields))
	fields := make(map[string]json.RawMessage, len(knownFields))
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return Event{}, invalid("envelope: %v", err)
		}
		key, ok := tok.(string)
		if !ok {
			return Event{}, invalid("envelope: key is not a string")
		}
		if seen[key] {
			return Event{}, invalid("envelope: duplicate key %q", key)
		}
		seen[key] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return Event{}, invalid("envelope key %q: %v", key, err)
		}
		if knownFields[key] {
			fields[key] = raw
		}
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return Event{}, invalid("envelope: unterminated object")
	}
	if _, err := dec.Token(); err == nil {
		return Event{}, invalid("envelope: data after the object")
	}
	var v int
	if err := json.Unmarshal(fields["v"], &v); err != nil || v < 1 {
		return Event{}, invalid("envelope: missing or bad version")
	}
	if v > Version {
		return Event{}, invalid("envelope version %d, this build reads up to %d", v, Version)
	}
	var e Event
	for key, dst := range map[string]any{"type": &e.Type, "id": &e.ID, "time": &e.Time, "conversation": &e.Conversation, "actor": &e.Actor} {
		raw, ok := fields[key]
		if !ok {
			continue
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			return Event{}, invalid("envelope key %q: %v", key, err)
		}
	}
	if p, ok := fields["payload"]; ok && !bytes.Equal(p, []byte("null")) {
		e.Payload = p
	}
	if err := e.Validate(); err != nil {
		return Event{}, err
	}
	e.Time = e.Time.UTC()
	return e, nil
}

// Match reports whether an event type matches a filter: "*" matches every
// type, "<prefix>.*" every type that starts with "<prefix>.", anything
// else only itself.
func Match(filter, typ string) bool {
	switch {
	case filter == "*":
		return true
	case strings.HasSuffix(filter, ".*"):
		return strings.HasPrefix(typ, filter[:len(filter)-1])
	}
	return filter == typ
}

// ValidateFilter checks a filter for Match: "*", a type, or a type prefix
// followed by ".*".
func ValidateFilter(f string) error {
	if f == "*" {
		return nil
	}
	if p, ok := strings.CutSuffix(f, ".*"); ok {
		// A prefix is a type's leading parts; check it as a type by
		// adding a part.
		return ValidateType(p + ".x")
	}
	return ValidateType(f)
}

// MatchAny reports whether any filter matches typ; no filters match
// everything.
func MatchAny(filters []string, typ string) bool {
	if len(filters) == 0 {
		return true
	}
	for _, f := range filters {
		if Match(f, typ) {
			return true
		}
	}
	return false
}
