package main

import "github.com/jetstreamproto/jsp/server/config"

// defaultVoice returns the voice limits the flags default to: a nodeFlags
// literal in a test has zero limits, which validate refuses.
func defaultVoice() voiceFlags {
	d := config.Default().Voice
	return voiceFlags{maxRooms: d.MaxRooms, maxParticipants: d.MaxParticipants, maxTracks: d.MaxTracks}
}
