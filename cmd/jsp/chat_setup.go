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

// openJetStream runs open, which opens JetStream resources on the bus,
// and names what in its error. It does not retry: the bus retries each
// open while a (re)started NATS cluster elects its leaders, up to
// bus.open_wait, and reports the resources still waiting on /readyz
// (docs/decisions.md D35).
func openJetStream(ctx context.Context, what string, open func(context.Context) error) error {
	if err := open(ctx); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// setupChat registers the chat service in the core. In the single-process
// role its attachments live in the files service's directory, where the
// Stream API uploads them. Administrators are the users whose token
// carries the scope chat.AdminScope. Presence comes from the cluster's
// session registry, opened with the same TTL and idle time as the
// gateways' (opsFlags); the service's presence feed pushes its changes
// to the members of each user's direct chats and groups. It returns the
// presence registry for the push notifier and the feed, which the caller
// closes before the core.
func setupChat(ctx context.Context, c *core.Core, reg *core.Registry, n nodeFlags, dataDir string, log *slog.Logger) (*core.Presence, *chat.PresenceFeed, error) {
	cfg := chat.Config{Logger: log}
	hb := n.ops.heartbeat
	if hb == 0 {
		hb = gateway.DefaultRegistryHeartbeat
	}
	var p *core.Presence
	if err := openJetStream(ctx, "chat service: presence", func(ctx context.Context) error {
		var err error
		p, err = core.OpenPresence(ctx, core.PresenceConfig{Bus: c.Bus(), TTL: gateway.RegistryTTLBeats * hb, AwayAfter: n.ops.awayAfter})
		return err
	}); err != nil {
		return nil, nil, err
	}
	cfg.Presence = chat.CorePresence{P: p}
	if n.role == roleAll {
		fs, err := chat.OpenFileStore(filepath.Join(dataDir, "files"), 0)
		if err != nil {
			return nil, nil, err
		}
		cfg.Files = fs
	}
	var svc *chat.Service
	if err := openJetStream(ctx, "chat service", func(ctx context.Context) error {
		var err error
		svc, err = chat.Setup(ctx, c, reg, cfg)
		return err
	}); err != nil {
		return nil, nil, err
	}
	var feed *chat.PresenceFeed
	if err := openJetStream(ctx, "chat presence feed", func(ctx context.Context) error {
		var err error
		feed, err = svc.StartPresenceFeed(ctx, chat.PresenceFeedConfig{Presence: p})
		return err
	}); err != nil {
		return nil, nil, err
	}
	return p, feed, nil
}
