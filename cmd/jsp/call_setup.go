package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jetstreamproto/jsp/server/core"
	"github.com/jetstreamproto/jsp/services/voice"
)

// voiceAuthz is the rooms service's part of the core's authorization hook
// (room channels need a participant). The core is created before the
// service, which needs the core as its host, so the hook is wired first
// and pointed at the service by setupVoice before the core starts.
type voiceAuthz struct{ svc *voice.Service }

// Authorize implements core.Authorizer.
func (v *voiceAuthz) Authorize(ctx context.Context, id core.Identity, a core.Action) error {
	if v.svc == nil {
		return nil
	}
	return v.svc.Authorize(ctx, id, a)
}

// setupVoice registers the voice/video rooms service in the core; call it
// before the core starts.
func setupVoice(c *core.Core, reg *core.Registry, vz *voiceAuthz, log *slog.Logger) error {
	svc, err := voice.Setup(c, reg, voice.Config{Logger: log})
	if err != nil {
		return fmt.Errorf("voice service: %w", err)
	}
	vz.svc = svc
	return nil
}
