package chat

import (
	"slices"
	"testing"

	"github.com/jetstreamproto/jsp/services/chatevents"
)

// TestPresenceFilter checks that one change carried by several
// conversations reaches the handler once, and that other events pass.
func TestPresenceFilter(t *testing.T) {
	var got []string
	var other []chatevents.Type
	h := PresenceFilter(func(p PresenceChange) { got = append(got, p.User+":"+p.Status) },
		func(e Event) { other = append(other, e.Type) })
	pres := func(id, conv, user, status string) Event {
		return Event{Event: chatevents.Event{Type: EventPresence, ID: id, Conversation: conv, Actor: user,
			Presence: &chatevents.Presence{User: user, Status: status}}}
	}
	h(pres("a1", "dm", "bob", "online"))
	h(pres("a1", "grp", "bob", "online")) // the same change in another conversation
	h(Event{Event: chatevents.Event{Type: chatevents.Typing, ID: "t1", Actor: "bob"}})
	h(pres("a2", "grp", "bob", "away"))
	h(Event{Event: chatevents.Event{Type: EventPresence, ID: "bad"}}) // no Presence part: not a change
	if want := []string{"bob:online", "bob:away"}; !slices.Equal(got, want) {
		t.Fatalf("changes %v, want %v", got, want)
	}
	if want := []chatevents.Type{chatevents.Typing, EventPresence}; !slices.Equal(other, want) {
		t.Fatalf("other events %v, want %v", other, want)
	}
	// The memory is bounded: an id seen long ago counts again.
	for i := range presenceSeen {
		h(pres(string(rune('A'+i%26))+string(rune(i)), "dm", "carol", "online"))
	}
	h(pres("a1", "dm", "bob", "online"))
	if got[len(got)-1] != "bob:online" {
		t.Fatalf("an id beyond the memory was dropped")
	}
}
