package chat

import (
	"context"
	"fmt"

	"github.com/jetstreamproto/jsp/server/core"
	"github.com/jetstreamproto/jsp/server/storage"
)

// MembersPage is how many members one storage read returns while
// Members lists a conversation.
const MembersPage = 500

// StoreMembers lists conversation members from the chat store; it is
// the push notifier's push.Members (docs/events.md, "Wiring it into a
// server").
type StoreMembers struct {
	// Store is the chat store. Required.
	Store storage.ChatStore
}

// Members returns the user ids of every member of conversation, in the
// store's order.
func (m StoreMembers) Members(ctx context.Context, conversation string) ([]string, error) {
	var out []string
	after := ""
	for {
		page, err := m.Store.Members(ctx, conversation, after, MembersPage)
		if err != nil {
			return nil, fmt.Errorf("chat: members of %s: %w", conversation, err)
		}
		for _, p := range page {
			out = append(out, p.User)
		}
		if len(page) < MembersPage {
			return out, nil
		}
		after = page[len(page)-1].User
	}
}

// Online implements the push notifier's push.Presence: a user counts as
// online while any session of theirs is online or away on any gateway.
func (c CorePresence) Online(ctx context.Context, user string) (bool, error) {
	up, err := c.P.Query(ctx, user)
	if err != nil {
		return false, fmt.Errorf("chat: presence of %s: %w", user, err)
	}
	return up.Status == core.StatusOnline || up.Status == core.StatusAway, nil
}
