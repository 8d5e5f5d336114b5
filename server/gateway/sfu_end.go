package gateway

import "github.com/jetstreamproto/jsp/services/voice/voiceproto"

// mediaDropped ends the session's media bindings in the room whose event
// channel the core dropped the session's user from: the rooms service
// drops every member when a room ends (services/voice), so the room's
// media stops with its events, at once, rather than when each client
// notices.
func (h *host) mediaDropped(channel string) {
	room, ok := voiceproto.RoomOf(channel)
	m, hm := h.g.media, h.media
	if !ok || m == nil || hm == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	hm.mu.Lock()
	defer hm.mu.Unlock()
	for f, df := range hm.downs {
		if df.t.room.id == room {
			h.unbindDownLocked(f, df)
		}
	}
	for f, pf := range hm.pubs {
		if pf.t.room.id == room {
			delete(hm.pubs, f)
			m.dropTrackLocked(pf.t)
		}
	}
	delete(hm.rooms, room)
}
