package core

import (
	"fmt"

	"github.com/jetstreamproto/jsp/server/storage"
)

// PublishCommitted sends a message that a service committed to the store
// itself to the gateways, as Commit does after its append: services that
// store their own rows in the append's transaction (the chat service's
// posts, storage.ChatStore.PostChatMessage) call it after that commit.
// msg carries the sequence number and time the store assigned. A failure
// leaves the message committed; subscribers that missed it recover it
// from history.
func (c *Core) PublishCommitted(channel string, msg storage.Message) error {
	msg.Channel = channel
	if err := c.publishEvent(channel, msg); err != nil {
		return fmt.Errorf("core: publish %q seq %d: %w", channel, msg.Seq, err)
	}
	c.mu.Lock()
	c.stats.Published++
	c.mu.Unlock()
	return nil
}
