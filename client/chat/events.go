package chat

import (
	"context"
	"fmt"
	"sync"

	"github.com/jetstreamproto/jsp/client"
	"github.com/jetstreamproto/jsp/services/chat/chatproto"
	"github.com/jetstreamproto/jsp/services/chatevents"
)

// Event is one live (or replayed) chat event of a conversation.
type Event struct {
	chatevents.Event
	// Seq is the event's sequence number in the conversation; 0 for
	// ephemeral events (typing, read markers).
	Seq uint64
	// Err is set when the body could not be decoded; the other fields are
	// then zero.
	Err error
}

// Subscription is a live subscription to a conversation.
type Subscription struct {
	sub *client.Subscription
}

// Close ends the subscription.
func (s *Subscription) Close(ctx context.Context) error { return s.sub.Unsubscribe(ctx) }

// Subscribe delivers the events of conv to handler, one at a time, in
// order. With since > 0 the server first replays every event after since
// (what an offline member missed: messages, edits, deletions, reactions,
// membership changes), then continues live. The server refuses
// non-members (NOT_A_MEMBER) and ends the subscription of a member who is
// removed.
func (x *Client) Subscribe(ctx context.Context, conv string, since uint64, handler func(Event)) (*Subscription, error) {
	var opts []client.SubscribeOption
	if since > 0 {
		opts = append(opts, client.Since(since))
	}
	sub, err := x.c.Subscribe(ctx, chatproto.Channel(conv), func(e client.Event) {
		ev, err := chatevents.Decode(e.Body)
		if err != nil {
			handler(Event{Seq: e.Seq, Err: fmt.Errorf("chat: event %d of %s: %w", e.Seq, conv, err)})
			return
		}
		if ev.Seq == 0 {
			ev.Seq = e.Seq
		}
		if ev.Message != nil && ev.Type == chatevents.MessageCreated && ev.Message.Seq == 0 {
			ev.Message.Seq = e.Seq
		}
		handler(Event{Event: ev, Seq: e.Seq})
	}, opts...)
	if err != nil {
		return nil, fmt.Errorf("chat: subscribe %s: %w", conv, err)
	}
	return &Subscription{sub: sub}, nil
}

// PresenceChange is a user's change of presence as a presence.changed
// event carries it (spec/JSP-chat.md §4.3): User, Status (online, away,
// offline) and Previous.
type PresenceChange = chatevents.Presence

// EventPresence is the type of presence events: the server pushes one to
// the members of a user's direct chats and groups whenever the user's
// presence changes on any gateway, with sequence number 0 (live only).
const EventPresence = chatevents.PresenceChanged

// PresenceChange returns the presence change an event carries, and false
// for every other event.
func (e Event) PresenceChange() (PresenceChange, bool) {
	if e.Type != chatevents.PresenceChanged || e.Presence == nil {
		return PresenceChange{}, false
	}
	return *e.Presence, true
}

// presenceSeen is how many recent presence event ids PresenceFilter
// remembers: one change reaches a client once per shared conversation,
// all within moments, so a short memory suffices.
const presenceSeen = 256

// PresenceFilter returns an event handler for Subscribe that calls fn once
// per presence change, however many of the caller's subscribed
// conversations carry it (the server gives one change the same event id
// in each), and passes every other event to next (nil drops them). Use
// one filter for all the subscriptions whose presence events should be
// merged; it is safe for concurrent use.
func PresenceFilter(fn func(PresenceChange), next func(Event)) func(Event) {
	var (
		mu   sync.Mutex
		seen = make(map[string]struct{}, presenceSeen)
		ring = make([]string, 0, presenceSeen)
	)
	return func(e Event) {
		p, ok := e.PresenceChange()
		if !ok {
			if next != nil {
				next(e)
			}
			return
		}
		mu.Lock()
		_, dup := seen[e.ID]
		if !dup {
			if len(ring) == presenceSeen {
				delete(seen, ring[0])
				ring = ring[1:]
			}
			seen[e.ID] = struct{}{}
			ring = append(ring, e.ID)
		}
		mu.Unlock()
		if !dup {
			fn(p)
		}
	}
}
