package chat

import (
	"context"
	"fmt"

	"github.com/jetstreamproto/jsp/server/core"
)

// CorePresence answers presence.get from the cluster's session registry
// (core.Presence, NATS KV), which every gateway keeps current for its
// sessions, so the status is right across gateways: online, away (every
// session idle) or offline (no live session).
type CorePresence struct {
	// P is the registry. Required.
	P *core.Presence
}

var _ Presence = CorePresence{}

// Status implements Presence.
func (c CorePresence) Status(ctx context.Context, user string) (string, error) {
	up, err := c.P.Query(ctx, user)
	if err != nil {
		return "unknown", fmt.Errorf("chat: presence of %s: %w", user, err)
	}
	return string(up.Status), nil
}
