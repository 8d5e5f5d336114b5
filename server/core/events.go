package core

import (
	"fmt"

	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/server/storage"
)

// Event runs (decision D26). A group commit of one channel used to leave
// as one bus event per message, and each cost the gateway a bus delivery,
// a decode, a hub publish and, for every local subscriber, a queue item
// and usually a write of its own. publishEvents sends the committed
// messages of one append as runs instead: consecutive sequence numbers in
// one event (Event.Messages), which a gateway hands to each subscriber as
// one queue item. A run of one message keeps the one-message form.

// Caps of one event run: the bus's payload limit (1 MiB by default in
// NATS) must hold the run's JSON when the core sends JSON (Config.Codec),
// in which bodies grow by a third (base64).
const (
	maxRunMessages  = DefaultMaxPublishBatch
	maxRunBodyBytes = 256 << 10
)

// publishEvents publishes msgs, committed messages of channel in commit
// order with Seq and Time set, as event runs of consecutive numbers. A
// failure is logged: the messages are committed, and subscribers that
// missed them recover them from history.
func (c *Core) publishEvents(channel string, msgs []storage.Message) {
	for len(msgs) > 0 {
		n, size := 1, len(msgs[0].Body)
		for n < len(msgs) && n < maxRunMessages && msgs[n].Seq == msgs[n-1].Seq+1 && size+len(msgs[n].Body) <= maxRunBodyBytes {
			size += len(msgs[n].Body)
			n++
		}
		var err error
		if n == 1 {
			err = c.publishEvent(channel, msgs[0])
		} else {
			err = c.publishRun(channel, msgs[:n])
		}
		if err != nil {
			c.log.Warn("core: event not published", "channel", channel, "seq", msgs[0].Seq, "messages", n, "err", err)
		}
		msgs = msgs[n:]
	}
}

// publishRun publishes run as one event.
func (c *Core) publishRun(channel string, run []storage.Message) error {
	subj, err := c.cfg.Subjects.Channel(channel)
	if err != nil {
		return err
	}
	data, err := c.cfg.Codec.EncodeEvent(&Event{Channel: channel, Messages: run})
	if err != nil {
		return fmt.Errorf("encode event run: %w", err)
	}
	return c.cfg.Bus.Publish(subj, bus.Msg{Data: data})
}
