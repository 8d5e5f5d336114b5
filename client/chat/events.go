package chat

import (
	"context"
	"fmt"

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
