package pubsub

import "github.com/jetstreamproto/jsp/jsperr"

// NewSinkSubscriber registers a subscriber without a delivery queue: each
// delivery is handed to sink at once, while the channel is locked, on the
// publishing goroutine or, for a channel large enough to be split
// (Config.FanOutSplit), on one of the goroutines the publish waits for.
// One channel's deliveries therefore reach sink in sequence order and one
// at a time; deliveries of different channels may reach it concurrently.
//
// This is the gateway's fan-out path: the sink puts the message straight
// into the session's own send queue, so a delivery costs no queue and no
// goroutine hand-off of its own (decision D26). sink must not block and
// must not call back into the hub. It returns false when it cannot take
// the delivery (its own queue is full); the subscriber is then dropped
// with SLOW_CONSUMER, as a queue subscriber whose queue is full.
//
// Next and Len are for queue subscribers: on a sink subscriber Len is 0
// and Next only reports the subscriber's end. The owner must call Close.
func (h *Hub[T]) NewSinkSubscriber(name string, sink func(Delivery[T]) bool) *Subscriber[T] {
	return h.newSubscriber(name, sink)
}

// slowErr is the SLOW_CONSUMER error of a subscriber that could not take a
// delivery on channel.
func (s *Subscriber[T]) slowErr(channel string) error {
	if s.sink != nil {
		return jsperr.Newf(jsperr.SlowConsumer, "subscriber %s: refused a delivery on channel %q", s.name, channel)
	}
	return jsperr.Newf(jsperr.SlowConsumer, "subscriber %s: delivery queue of %d full on channel %q", s.name, s.limit, channel)
}
