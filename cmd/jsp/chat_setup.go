package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/jetstreamproto/jsp/server/core"
	"github.com/jetstreamproto/jsp/server/gateway"
	"github.com/jetstreamproto/jsp/services/chat"
)

// setupChat registers the chat service in the core. In the single-process
// role its attachments live in the files service's directory, where the
// Stream API uploads them. Administrators are the users whose token
// carries the scope chat.AdminScope. Presence comes from the cluster's
// session registry, opened with the same TTL and idle time as the
// gateways' (opsFlags). It returns the presence registry for the push
// notifier.
func setupChat(ctx context.Context, c *core.Core, reg *core.Registry, n nodeFlags, dataDir string, log *slog.Logger) (*core.Presence, error) {
	cfg := chat.Config{Logger: log}
	hb := n.ops.heartbeat
	if hb == 0 {
		hb = gateway.DefaultRegistryHeartbeat
	}
	p, err := core.OpenPresence(ctx, core.PresenceConfig{Bus: c.Bus(), TTL: gateway.RegistryTTLBeats * hb, AwayAfter: n.ops.awayAfter})
	if err != nil {
		return nil, fmt.Errorf("chat service: presence: %w", err)
	}
	cfg.Presence = chat.CorePresence{P: p}
	if n.role == roleAll {
		fs, err := chat.OpenFileStore(filepath.Join(dataDir, "files"), 0)
		if err != nil {
			return nil, err
		}
		cfg.Files = fs
	}
	if _, err := chat.Setup(ctx, c, reg, cfg); err != nil {
		return nil, fmt.Errorf("chat service: %w", err)
	}
	return p, nil
}
