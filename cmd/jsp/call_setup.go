package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/spf13/pflag"

	"github.com/jetstreamproto/jsp/server/config"
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

// voiceFlags are the rooms service's limits (config section voice).
type voiceFlags struct {
	maxRooms, maxParticipants, maxTracks int
}

// addVoiceFlags registers the flags of voiceFlags.
func addVoiceFlags(fl *pflag.FlagSet, v *voiceFlags) {
	d := config.Default().Voice
	fl.IntVar(&v.maxRooms, "voice-max-rooms", d.MaxRooms, "rooms one core holds")
	fl.IntVar(&v.maxParticipants, "voice-max-participants", d.MaxParticipants, "participants of one room")
	fl.IntVar(&v.maxTracks, "voice-max-tracks", d.MaxTracks, "tracks one participant publishes")
}

// validate refuses negative limits; 0 means the service's default.
func (v voiceFlags) validate() error {
	for _, c := range []struct {
		flag string
		n    int
	}{{"voice-max-rooms", v.maxRooms}, {"voice-max-participants", v.maxParticipants}, {"voice-max-tracks", v.maxTracks}} {
		if c.n < 0 {
			return fmt.Errorf("--%s %d: want a positive number (0: the default)", c.flag, c.n)
		}
	}
	return nil
}

// setupVoice registers the voice/video rooms service in the core; call it
// before the core starts.
func setupVoice(c *core.Core, reg *core.Registry, vz *voiceAuthz, v voiceFlags, log *slog.Logger) error {
	svc, err := voice.Setup(c, reg, voice.Config{Logger: log,
		MaxRooms: v.maxRooms, MaxParticipants: v.maxParticipants, MaxTracks: v.maxTracks})
	if err != nil {
		return fmt.Errorf("voice service: %w", err)
	}
	vz.svc = svc
	return nil
}
