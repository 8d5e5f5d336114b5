// Package acl holds the chat permission rules (spec/JSP-chat.md §5): four
// roles, owner > admin > member > guest, a default weakest role for every
// action, per-conversation overrides of those defaults, and the core
// authorization hook for conversation channels.
//
// A decision is Check(conversation kind, member role, action, overrides):
//
//	role rank >= rank(override[action] or Default[action]) → allowed
//
// Direct chats allow no membership or structure changes at all. The
// hook ([Authorizer]) guards the generic core operations on conversation
// channels: subscribing, history and recovery need membership; PUBLISH is
// refused, since a conversation is written only through chat commands,
// which the chat service checks with Check.
package acl

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/server/core"
	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/services/chat/chatproto"
	"github.com/jetstreamproto/jsp/services/chatevents"
)

// Role is a member's role.
type Role = chatevents.Role

// Rank orders roles: owner 4, admin 3, member 2, guest 1; 0 for anything
// else.
func Rank(r Role) int {
	switch r {
	case chatevents.RoleOwner:
		return 4
	case chatevents.RoleAdmin:
		return 3
	case chatevents.RoleMember:
		return 2
	case chatevents.RoleGuest:
		return 1
	}
	return 0
}

// ValidRole reports whether r is one of the four roles.
func ValidRole(r Role) bool { return Rank(r) > 0 }

// Action is something a member does in a conversation.
type Action string

// Actions.
const (
	Read      Action = "read"       // history, subscribe, recover
	Post      Action = "post"       // post and reply
	React     Action = "react"      // add and remove own reactions
	EditOwn   Action = "edit_own"   // edit or delete own messages
	EditAny   Action = "edit_any"   // edit others' messages
	DeleteAny Action = "delete_any" // delete others' messages
	Invite    Action = "invite"     // add members
	Kick      Action = "kick"       // remove members
	SetRole   Action = "set_role"   // change roles (never above one's own)
	Rename    Action = "rename"     // change the name
	Topic     Action = "topic"      // change the topic
	Archive   Action = "archive"    // archive and unarchive
	Configure Action = "configure"  // change the overrides
)

// Default is the weakest role allowed each action when no override says
// otherwise.
var Default = map[Action]Role{
	Read:      chatevents.RoleGuest,
	Post:      chatevents.RoleGuest,
	React:     chatevents.RoleGuest,
	EditOwn:   chatevents.RoleGuest,
	EditAny:   chatevents.RoleAdmin,
	DeleteAny: chatevents.RoleAdmin,
	Invite:    chatevents.RoleMember,
	Kick:      chatevents.RoleAdmin,
	SetRole:   chatevents.RoleAdmin,
	Rename:    chatevents.RoleAdmin,
	Topic:     chatevents.RoleMember,
	Archive:   chatevents.RoleOwner,
	Configure: chatevents.RoleOwner,
}

// structural actions are refused in direct chats.
var structural = map[Action]bool{Invite: true, Kick: true, SetRole: true, Rename: true, Archive: true, Configure: true}

// ValidOverride checks one override: a known action and a role. Read and
// Configure cannot be overridden (members can always read; only owners
// configure), so no override locks a conversation.
func ValidOverride(a Action, r Role) error {
	if _, ok := Default[a]; !ok {
		return jsperr.Newf(jsperr.BadRequest, "unknown action %q in override", a)
	}
	if a == Read || a == Configure {
		return jsperr.Newf(jsperr.BadRequest, "action %q cannot be overridden", a)
	}
	if !ValidRole(r) {
		return jsperr.Newf(jsperr.BadRequest, "unknown role %q in override", r)
	}
	return nil
}

// Required returns the weakest role allowed a in a conversation with
// overrides.
func Required(a Action, overrides map[string]string) Role {
	if r, ok := overrides[string(a)]; ok && ValidRole(Role(r)) && a != Read && a != Configure {
		return Role(r)
	}
	return Default[a]
}

// Check decides whether a member with role may do a in a conversation of
// kind with overrides. A refusal is FORBIDDEN with the reason.
func Check(kind chatevents.Kind, role Role, a Action, overrides map[string]string) error {
	if _, ok := Default[a]; !ok {
		return jsperr.Newf(jsperr.Forbidden, "unknown action %q", a)
	}
	if kind == chatevents.KindDirect && structural[a] {
		return jsperr.Newf(jsperr.Forbidden, "%s is not possible in a direct chat", a)
	}
	need := Required(a, overrides)
	if Rank(role) < Rank(need) {
		return jsperr.Newf(jsperr.Forbidden, "%s needs role %s or above; you are %s", a, need, roleName(role))
	}
	return nil
}

func roleName(r Role) string {
	if r == "" {
		return "not a member"
	}
	return string(r)
}

// ChannelPrefix starts the channel name of every conversation.
const ChannelPrefix = chatproto.ChannelPrefix

// Channel returns the channel of conversation id.
func Channel(id string) string { return chatproto.Channel(id) }

// ConversationOf returns the conversation id of a channel name, ok false
// for a channel that is not a conversation's.
func ConversationOf(channel string) (string, bool) {
	id, ok := strings.CutPrefix(channel, ChannelPrefix)
	if !ok || id == "" {
		return "", false
	}
	return id, true
}

// Authorizer is the core authorization hook for conversation channels. It
// leaves every other channel to the next hook.
type Authorizer struct {
	// Store reads memberships and users. Required.
	Store storage.ChatStore
	// Services names the core services that need an authenticated user.
	// Default: {"chat"}.
	Services []string
}

var _ core.Authorizer = (*Authorizer)(nil)

// Authorize implements core.Authorizer.
func (a *Authorizer) Authorize(ctx context.Context, id core.Identity, act core.Action) error {
	if act.Op == core.OpCommand {
		svcs := a.Services
		if svcs == nil {
			svcs = []string{"chat"}
		}
		for _, s := range svcs {
			if s == act.Service && id.Anonymous() {
				return jsperr.Newf(jsperr.Unauthenticated, "service %s needs an authenticated user", s)
			}
		}
		return nil
	}
	conv, ok := ConversationOf(act.Channel)
	if !ok {
		return nil
	}
	switch act.Op {
	case core.OpPublish:
		return jsperr.New(jsperr.Forbidden, "conversations are written through the chat service, not PUBLISH")
	case core.OpHistory, core.OpRecover, core.OpSubscribe:
	default:
		return jsperr.Newf(jsperr.Forbidden, "operation %s on a conversation", act.Op)
	}
	if id.Anonymous() {
		return jsperr.New(jsperr.Unauthenticated, "conversations need an authenticated user")
	}
	return a.member(ctx, conv, id.User)
}

// member checks that user is an enabled member of conv allowed to read.
func (a *Authorizer) member(ctx context.Context, conv, user string) error {
	u, err := a.Store.GetUser(ctx, user)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return jsperr.Newf(jsperr.UserNotFound, "user %s is not registered", user)
	case err != nil:
		return jsperr.Wrap(jsperr.Internal, fmt.Errorf("acl: user %s: %w", user, err))
	case u.Disabled:
		return jsperr.Newf(jsperr.UserDisabled, "user %s is disabled", user)
	}
	c, err := a.Store.GetConversation(ctx, conv)
	if errors.Is(err, storage.ErrNotFound) {
		return jsperr.Newf(jsperr.ConversationNotFound, "no conversation %s", conv)
	}
	if err != nil {
		return jsperr.Wrap(jsperr.Internal, fmt.Errorf("acl: conversation %s: %w", conv, err))
	}
	m, err := a.Store.GetMember(ctx, conv, user)
	if errors.Is(err, storage.ErrNotFound) {
		return jsperr.Newf(jsperr.NotAMember, "%s is not a member of %s", user, conv)
	}
	if err != nil {
		return jsperr.Wrap(jsperr.Internal, fmt.Errorf("acl: member %s of %s: %w", user, conv, err))
	}
	return Check(chatevents.Kind(c.Kind), Role(m.Role), Read, c.Overrides)
}
