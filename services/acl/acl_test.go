package acl

import (
	"testing"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/services/chatevents"
)

func TestCheck(t *testing.T) {
	const (
		owner  = chatevents.RoleOwner
		admin  = chatevents.RoleAdmin
		member = chatevents.RoleMember
		guest  = chatevents.RoleGuest
		group  = chatevents.KindGroup
		direct = chatevents.KindDirect
	)
	noPostForGuests := map[string]string{"post": "member"}
	tests := []struct {
		name      string
		kind      chatevents.Kind
		role      Role
		action    Action
		overrides map[string]string
		allowed   bool
	}{
		{"guest reads", group, guest, Read, nil, true},
		{"guest posts by default", group, guest, Post, nil, true},
		{"guest posts where guests may not", group, guest, Post, noPostForGuests, false},
		{"member posts where guests may not", group, member, Post, noPostForGuests, true},
		{"member edits others' messages", group, member, EditAny, nil, false},
		{"member deletes others' messages", group, member, DeleteAny, nil, false},
		{"admin deletes others' messages", group, admin, DeleteAny, nil, true},
		{"guest invites", group, guest, Invite, nil, false},
		{"member invites", group, member, Invite, nil, true},
		{"member kicks", group, member, Kick, nil, false},
		{"admin kicks", group, admin, Kick, nil, true},
		{"admin archives", group, admin, Archive, nil, false},
		{"owner archives", group, owner, Archive, nil, true},
		{"admin configures", group, admin, Configure, nil, false},
		{"non-member reads", group, "", Read, nil, false},
		{"read cannot be overridden", group, guest, Read, map[string]string{"read": "owner"}, true},
		{"invite in a direct chat", direct, member, Invite, nil, false},
		{"rename in a direct chat", direct, owner, Rename, nil, false},
		{"post in a direct chat", direct, member, Post, nil, true},
		{"override to a stronger role", group, admin, Topic, map[string]string{"topic": "owner"}, false},
		{"unknown role in an override is ignored", group, guest, Post, map[string]string{"post": "king"}, true},
		{"unknown action", group, owner, Action("fly"), nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check(tt.kind, tt.role, tt.action, tt.overrides)
			if (err == nil) != tt.allowed {
				t.Fatalf("Check = %v, want allowed %v", err, tt.allowed)
			}
			if err != nil && jsperr.CodeOf(err) != jsperr.Forbidden {
				t.Fatalf("code %s, want FORBIDDEN", jsperr.CodeOf(err))
			}
		})
	}
}

func TestValidOverride(t *testing.T) {
	tests := []struct {
		a  Action
		r  Role
		ok bool
	}{
		{Post, chatevents.RoleMember, true},
		{Read, chatevents.RoleMember, false},
		{Configure, chatevents.RoleAdmin, false},
		{Action("nope"), chatevents.RoleMember, false},
		{Post, Role("king"), false},
	}
	for _, tt := range tests {
		if err := ValidOverride(tt.a, tt.r); (err == nil) != tt.ok {
			t.Errorf("ValidOverride(%s, %s) = %v", tt.a, tt.r, err)
		}
	}
}

func TestConversationOf(t *testing.T) {
	for ch, want := range map[string]string{"chat.abc": "abc", "chat.": "", "room": "", "chatx": ""} {
		got, ok := ConversationOf(ch)
		if got != want || ok != (want != "") {
			t.Errorf("ConversationOf(%q) = %q, %v", ch, got, ok)
		}
	}
	if Channel("abc") != "chat.abc" {
		t.Fatal("Channel")
	}
}
