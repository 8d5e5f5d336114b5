package chatevents

import (
	"encoding/json"
	"fmt"

	"github.com/jetstreamproto/jsp/services/events"
)

// payload is the services/events payload of a chat event: everything an
// Event holds beyond the envelope's type, id, time, conversation and
// actor, under the same JSON names (docs/events.md, "Chat event
// payloads"). A message event's text, mentions and @channel flag are
// message.text, message.mentions and message.mention_channel.
type payload struct {
	Seq      uint64        `json:"seq,omitempty"`
	Message  *Message      `json:"message,omitempty"`
	Reaction *Reaction     `json:"reaction,omitempty"`
	Member   *Member       `json:"member,omitempty"`
	Info     *Conversation `json:"info,omitempty"`
	Read     *Read         `json:"read,omitempty"`
	Members  []string      `json:"members,omitempty"`
}

// Envelope returns e as the services/events envelope the event log
// stores: the envelope fields from e, the rest as the JSON payload.
func (e *Event) Envelope() (events.Event, error) {
	if !e.Type.Valid() || e.Type.Ephemeral() {
		return events.Event{}, fmt.Errorf("%w: kind %q has no envelope", ErrInvalid, e.Type)
	}
	p, err := json.Marshal(payload{Seq: e.Seq, Message: e.Message, Reaction: e.Reaction, Member: e.Member,
		Info: e.Info, Read: e.Read, Members: e.Members})
	if err != nil {
		return events.Event{}, fmt.Errorf("chatevents: payload of %s %s: %w", e.Type, e.ID, err)
	}
	return events.Event{Type: string(e.Type), ID: e.ID, Time: e.Time.UTC(), Conversation: e.Conversation,
		Actor: e.Actor, Payload: p}, nil
}

// FromEnvelope returns the chat event an envelope carries. It fails,
// wrapping ErrInvalid, for a type that is not a logged chat kind, a
// missing conversation, a payload that is not the chat payload, or lists
// over MaxListLen. Unknown payload keys are skipped (JSP §8.3: newer
// servers may add fields).
func FromEnvelope(ev events.Event) (Event, error) {
	t := Type(ev.Type)
	if !t.Valid() || t.Ephemeral() {
		return Event{}, fmt.Errorf("%w: %q is not a logged chat kind", ErrInvalid, ev.Type)
	}
	if ev.Conversation == "" {
		return Event{}, fmt.Errorf("%w: %s %s has no conversation", ErrInvalid, ev.Type, ev.ID)
	}
	var p payload
	if len(ev.Payload) > 0 {
		if err := json.Unmarshal(ev.Payload, &p); err != nil {
			return Event{}, fmt.Errorf("%w: payload of %s %s: %w", ErrInvalid, ev.Type, ev.ID, err)
		}
	}
	if len(p.Members) > MaxListLen || p.Message != nil && (len(p.Message.Mentions) > MaxListLen || len(p.Message.Attachments) > MaxListLen) {
		return Event{}, fmt.Errorf("%w: %s %s: list over %d entries", ErrInvalid, ev.Type, ev.ID, MaxListLen)
	}
	return Event{Type: t, ID: ev.ID, Time: ev.Time, Conversation: ev.Conversation, Seq: p.Seq, Actor: ev.Actor,
		Message: p.Message, Reaction: p.Reaction, Member: p.Member, Info: p.Info, Read: p.Read, Members: p.Members}, nil
}

// DecodeLogged decodes an event as the event log stores it (Append): the
// services/events envelope, then FromEnvelope.
func DecodeLogged(b []byte) (Event, error) {
	ev, err := events.Decode(b)
	if err != nil {
		return Event{}, fmt.Errorf("chatevents: %w", err)
	}
	return FromEnvelope(ev)
}
