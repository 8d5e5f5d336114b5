package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/jetstreamproto/jsp/server/core"
	"github.com/jetstreamproto/jsp/services/chat"
)

// setupChat registers the chat service in the core. In the single-process
// role its attachments live in the files service's directory, where the
// Stream API uploads them. Administrators are the users whose token
// carries the scope chat.AdminScope.
func setupChat(ctx context.Context, c *core.Core, reg *core.Registry, n nodeFlags, dataDir string, log *slog.Logger) error {
	cfg := chat.Config{Logger: log}
	if n.role == roleAll {
		fs, err := chat.OpenFileStore(filepath.Join(dataDir, "files"), 0)
		if err != nil {
			return err
		}
		cfg.Files = fs
	}
	if _, err := chat.Setup(ctx, c, reg, cfg); err != nil {
		return fmt.Errorf("chat service: %w", err)
	}
	return nil
}
