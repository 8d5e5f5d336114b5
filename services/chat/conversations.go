package chat

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/services/acl"
	"github.com/jetstreamproto/jsp/services/chat/chatproto"
	"github.com/jetstreamproto/jsp/services/chatevents"
)

// --- accounts

func userOf(u storage.ChatUser) chatproto.User {
	return chatproto.User{ID: u.ID, DisplayName: u.DisplayName, Admin: u.Admin, Disabled: u.Disabled}
}

func (s *Service) whoami(_ context.Context, c *caller, _ *chatproto.Request) (*chatproto.Response, error) {
	return &chatproto.Response{Users: []chatproto.User{userOf(c.user)}}, nil
}

func (c *caller) admin() error {
	if !c.user.Admin {
		return jsperr.New(jsperr.Forbidden, "needs an administrator")
	}
	return nil
}

func (s *Service) userAdd(ctx context.Context, c *caller, r *chatproto.Request) (*chatproto.Response, error) {
	if err := c.admin(); err != nil {
		return nil, err
	}
	if err := s.checkID("user id", r.User); err != nil {
		return nil, err
	}
	if err := checkText("display name", r.DisplayName, s.cfg.MaxNameBytes); err != nil {
		return nil, err
	}
	name := r.DisplayName
	if name == "" {
		name = r.User
	}
	u, err := s.store.PutUser(ctx, storage.ChatUser{ID: r.User, DisplayName: name, Admin: r.Admin})
	if errors.Is(err, storage.ErrConflict) {
		return nil, jsperr.Newf(jsperr.Conflict, "user %s exists", r.User)
	}
	if err != nil {
		return nil, err
	}
	return &chatproto.Response{Users: []chatproto.User{userOf(u)}}, nil
}

func (s *Service) userList(ctx context.Context, c *caller, r *chatproto.Request) (*chatproto.Response, error) {
	if err := c.admin(); err != nil {
		return nil, err
	}
	us, err := s.store.ListUsers(ctx, string(r.Cursor), s.pageSize(r.Limit))
	if err != nil {
		return nil, err
	}
	resp := &chatproto.Response{}
	for _, u := range us {
		resp.Users = append(resp.Users, userOf(u))
	}
	if len(us) > 0 {
		resp.Next, resp.More = []byte(us[len(us)-1].ID), len(us) == s.pageSize(r.Limit)
	}
	return resp, nil
}

func (s *Service) setDisabled(ctx context.Context, c *caller, r *chatproto.Request, disabled bool) (*chatproto.Response, error) {
	if err := c.admin(); err != nil {
		return nil, err
	}
	err := s.store.SetUserDisabled(ctx, r.User, disabled)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, jsperr.Newf(jsperr.UserNotFound, "no user %s", r.User)
	}
	if err != nil {
		return nil, err
	}
	u, err := s.store.GetUser(ctx, r.User)
	if err != nil {
		return nil, err
	}
	return &chatproto.Response{Users: []chatproto.User{userOf(u)}}, nil
}

func (s *Service) userDisable(ctx context.Context, c *caller, r *chatproto.Request) (*chatproto.Response, error) {
	return s.setDisabled(ctx, c, r, true)
}

func (s *Service) userEnable(ctx context.Context, c *caller, r *chatproto.Request) (*chatproto.Response, error) {
	return s.setDisabled(ctx, c, r, false)
}

// --- access

// conv loads a conversation (CONVERSATION_NOT_FOUND).
func (s *Service) conv(ctx context.Context, id string) (storage.Conversation, error) {
	if err := s.checkID("conversation id", id); err != nil {
		return storage.Conversation{}, err
	}
	v, err := s.store.GetConversation(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return v, jsperr.Newf(jsperr.ConversationNotFound, "no conversation %s", id)
	}
	return v, err
}

// role returns user's role in conv, "" when not a member.
func (s *Service) role(ctx context.Context, conv, user string) (chatevents.Role, error) {
	m, err := s.store.GetMember(ctx, conv, user)
	if errors.Is(err, storage.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return chatevents.Role(m.Role), nil
}

// writes are the actions an archived conversation refuses.
var writes = map[acl.Action]bool{
	acl.Post: true, acl.React: true, acl.EditOwn: true, acl.EditAny: true, acl.DeleteAny: true,
	acl.Invite: true, acl.Kick: true, acl.SetRole: true, acl.Rename: true, acl.Topic: true,
}

// access loads conv and checks that c is a member allowed a.
func (s *Service) access(ctx context.Context, c *caller, id string, a acl.Action) (storage.Conversation, chatevents.Role, error) {
	v, err := s.conv(ctx, id)
	if err != nil {
		return v, "", err
	}
	role, err := s.role(ctx, id, c.user.ID)
	if err != nil {
		return v, "", err
	}
	if role == "" {
		return v, "", jsperr.Newf(jsperr.NotAMember, "%s is not a member of %s", c.user.ID, id)
	}
	if err := acl.Check(chatevents.Kind(v.Kind), role, a, v.Overrides); err != nil {
		return v, role, err
	}
	if v.Archived && writes[a] {
		return v, role, jsperr.Newf(jsperr.ConversationArchived, "conversation %s is archived", id)
	}
	return v, role, nil
}

func (s *Service) info(v storage.Conversation) *chatevents.Conversation {
	return &chatevents.Conversation{ID: v.ID, Kind: chatevents.Kind(v.Kind), Name: v.Name, Topic: v.Topic, Archived: v.Archived, Creator: v.Creator}
}

func convOf(v storage.Conversation) chatproto.Conversation {
	return chatproto.Conversation{
		Conversation: chatevents.Conversation{ID: v.ID, Kind: chatevents.Kind(v.Kind), Name: v.Name, Topic: v.Topic,
			Archived: v.Archived, Creator: v.Creator},
		Overrides: v.Overrides,
	}
}

func (s *Service) lastSeq(ctx context.Context, conv string) uint64 {
	info, err := s.store.ChannelInfo(ctx, acl.Channel(conv))
	if err != nil {
		return 0
	}
	return uint64(info.Last)
}

// memberIDs lists up to MaxMembers member ids of conv.
func (s *Service) memberIDs(ctx context.Context, conv string) ([]string, error) {
	ms, err := s.store.Members(ctx, conv, "", s.cfg.MaxMembers)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.User
	}
	return out, nil
}

// --- conversations

func (s *Service) create(ctx context.Context, c *caller, r *chatproto.Request) (*chatproto.Response, error) {
	switch r.Kind {
	case chatevents.KindChannel, chatevents.KindGroup:
	case chatevents.KindDirect:
		return nil, jsperr.New(jsperr.BadRequest, "direct chats are created by the first msg.post to a user")
	default:
		return nil, jsperr.Newf(jsperr.BadRequest, "conversation kind %q: want channel or group", r.Kind)
	}
	if err := checkText("name", r.Name, s.cfg.MaxNameBytes); err != nil {
		return nil, err
	}
	if err := checkText("topic", r.Topic, s.cfg.MaxTopicBytes); err != nil {
		return nil, err
	}
	if len(r.Members) > s.cfg.MaxMembers {
		return nil, jsperr.Newf(jsperr.LimitExceeded, "%d members over the limit of %d", len(r.Members), s.cfg.MaxMembers)
	}
	id := r.Conversation
	if id == "" {
		var err error
		if id, err = s.newID(); err != nil {
			return nil, err
		}
	} else if err := s.checkID("conversation id", id); err != nil {
		return nil, err
	}
	members := []storage.ChatMember{{User: c.user.ID, Role: string(chatevents.RoleOwner)}}
	for _, u := range r.Members {
		if u == c.user.ID || slices.ContainsFunc(members, func(m storage.ChatMember) bool { return m.User == u }) {
			continue
		}
		if err := s.knownUser(ctx, u); err != nil {
			return nil, err
		}
		members = append(members, storage.ChatMember{User: u, Role: string(chatevents.RoleMember)})
	}
	v, err := s.store.CreateConversation(ctx, storage.Conversation{ID: id, Kind: string(r.Kind), Name: r.Name, Topic: r.Topic, Creator: c.user.ID}, members)
	if errors.Is(err, storage.ErrConflict) {
		return nil, jsperr.Newf(jsperr.Conflict, "conversation %s exists", id)
	}
	if err != nil {
		return nil, err
	}
	ev, err := s.event(chatevents.ConversationCreated, c, id)
	if err != nil {
		return nil, err
	}
	ev.Info = s.info(v)
	for _, m := range members {
		ev.Members = append(ev.Members, m.User)
	}
	if _, err := s.commit(ctx, ev, ""); err != nil {
		return nil, err
	}
	s.emit(ctx, ev)
	cv := convOf(v)
	cv.Role, cv.LastSeq = chatevents.RoleOwner, ev.Seq
	return &chatproto.Response{Event: ev, Conversation: &cv}, nil
}

// knownUser checks that u has an account and is not disabled.
func (s *Service) knownUser(ctx context.Context, u string) error {
	if err := s.checkID("user id", u); err != nil {
		return err
	}
	usr, err := s.store.GetUser(ctx, u)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return jsperr.Newf(jsperr.UserNotFound, "no user %s", u)
	case err != nil:
		return err
	case usr.Disabled:
		return jsperr.Newf(jsperr.UserDisabled, "user %s is disabled", u)
	}
	return nil
}

func (s *Service) pageSize(n uint64) int {
	if n == 0 {
		return s.cfg.PageSize
	}
	return int(min(n, uint64(s.cfg.MaxPageSize)))
}

func (s *Service) list(ctx context.Context, c *caller, r *chatproto.Request) (*chatproto.Response, error) {
	q := storage.ConversationQuery{Member: c.user.ID, After: string(r.Cursor), Limit: s.pageSize(r.Limit)}
	if r.Kind == chatevents.KindChannel {
		// Public channels, joined or not: what a user can join.
		q.Member, q.Kind = "", string(chatevents.KindChannel)
	} else if r.Kind != "" {
		q.Kind = string(r.Kind)
	}
	sums, err := s.store.ListConversations(ctx, q)
	if err != nil {
		return nil, err
	}
	resp := &chatproto.Response{}
	for _, sm := range sums {
		cv := convOf(sm.Conversation)
		cv.Role, cv.ReadSeq, cv.Unread, cv.Mentions = chatevents.Role(sm.Role), uint64(sm.ReadSeq), uint64(sm.Unread), uint64(sm.Mentions)
		if q.Member == "" {
			if cv.Role, err = s.role(ctx, sm.ID, c.user.ID); err != nil {
				return nil, err
			}
		}
		cv.LastSeq = s.lastSeq(ctx, sm.ID)
		resp.Conversations = append(resp.Conversations, cv)
	}
	if n := len(sums); n > 0 {
		resp.Next, resp.More = []byte(sums[n-1].ID), n == q.Limit
	}
	return resp, nil
}

func (s *Service) get(ctx context.Context, c *caller, r *chatproto.Request) (*chatproto.Response, error) {
	v, err := s.conv(ctx, r.Conversation)
	if err != nil {
		return nil, err
	}
	m, err := s.store.GetMember(ctx, v.ID, c.user.ID)
	if errors.Is(err, storage.ErrNotFound) && v.Kind != string(chatevents.KindChannel) {
		// Private: a non-member learns nothing, not even that it exists.
		return nil, jsperr.Newf(jsperr.NotAMember, "%s is not a member of %s", c.user.ID, v.ID)
	} else if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	cv := convOf(v)
	cv.Role, cv.ReadSeq, cv.LastSeq = chatevents.Role(m.Role), uint64(m.ReadSeq), s.lastSeq(ctx, v.ID)
	return &chatproto.Response{Conversation: &cv}, nil
}

// memberEvent commits a member.* event and logs it.
func (s *Service) memberEvent(ctx context.Context, c *caller, t chatevents.Type, conv string, m chatevents.Member) (*chatevents.Event, error) {
	ev, err := s.event(t, c, conv)
	if err != nil {
		return nil, err
	}
	ev.Member = &m
	if _, err := s.commit(ctx, ev, ""); err != nil {
		return nil, err
	}
	s.emit(ctx, ev)
	return ev, nil
}

func (s *Service) join(ctx context.Context, c *caller, r *chatproto.Request) (*chatproto.Response, error) {
	v, err := s.conv(ctx, r.Conversation)
	if err != nil {
		return nil, err
	}
	if v.Kind != string(chatevents.KindChannel) {
		return nil, jsperr.Newf(jsperr.Forbidden, "%s is not a public channel; members join by invitation", v.ID)
	}
	if v.Archived {
		return nil, jsperr.Newf(jsperr.ConversationArchived, "conversation %s is archived", v.ID)
	}
	created, err := s.putIfAbsent(ctx, v.ID, c.user.ID, chatevents.RoleMember)
	if err != nil {
		return nil, err
	}
	resp := &chatproto.Response{}
	if created {
		if resp.Event, err = s.memberEvent(ctx, c, chatevents.MemberJoined, v.ID, chatevents.Member{User: c.user.ID, Role: chatevents.RoleMember}); err != nil {
			return nil, err
		}
	}
	cv := convOf(v)
	cv.Role, cv.LastSeq = chatevents.RoleMember, s.lastSeq(ctx, v.ID)
	resp.Conversation = &cv
	return resp, nil
}

// remove takes user out of conv and drops their subscriptions.
func (s *Service) remove(ctx context.Context, c *caller, conv, user string) (*chatproto.Response, error) {
	if err := s.store.RemoveMember(ctx, conv, user); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return nil, jsperr.Newf(jsperr.NotAMember, "%s is not a member of %s", user, conv)
		}
		return nil, err
	}
	ev, err := s.memberEvent(ctx, c, chatevents.MemberLeft, conv, chatevents.Member{User: user})
	if err != nil {
		return nil, err
	}
	// After the commit, so the gateways deliver member.left to the others
	// first; the removed user's live subscription ends here.
	if err := s.cfg.Host.Drop(acl.Channel(conv), user); err != nil {
		s.log.Warn("chat: subscriptions of a removed member not dropped", "conversation", conv, "user", user, "err", err)
	}
	return &chatproto.Response{Event: ev}, nil
}

func (s *Service) leave(ctx context.Context, c *caller, r *chatproto.Request) (*chatproto.Response, error) {
	v, role, err := s.access(ctx, c, r.Conversation, acl.Read)
	if err != nil {
		return nil, err
	}
	if v.Kind == string(chatevents.KindDirect) {
		return nil, jsperr.New(jsperr.Forbidden, "a direct chat cannot be left")
	}
	if role == chatevents.RoleOwner {
		if err := s.otherOwner(ctx, v.ID, c.user.ID); err != nil {
			return nil, err
		}
	}
	return s.remove(ctx, c, v.ID, c.user.ID)
}

// otherOwner refuses when user is the conversation's last owner.
func (s *Service) otherOwner(ctx context.Context, conv, user string) error {
	after := ""
	for {
		ms, err := s.store.Members(ctx, conv, after, 500)
		if err != nil {
			return err
		}
		for _, m := range ms {
			if m.User != user && m.Role == string(chatevents.RoleOwner) {
				return nil
			}
		}
		if len(ms) < 500 {
			return jsperr.New(jsperr.Conflict, "the last owner cannot leave; make another member owner first")
		}
		after = ms[len(ms)-1].User
	}
}

func (s *Service) invite(ctx context.Context, c *caller, r *chatproto.Request) (*chatproto.Response, error) {
	v, myRole, err := s.access(ctx, c, r.Conversation, acl.Invite)
	if err != nil {
		return nil, err
	}
	role := r.Role
	if role == "" {
		role = chatevents.RoleMember
	}
	if !acl.ValidRole(role) {
		return nil, jsperr.Newf(jsperr.BadRequest, "unknown role %q", role)
	}
	if acl.Rank(role) > acl.Rank(myRole) || (role != chatevents.RoleMember && role != chatevents.RoleGuest &&
		acl.Check(chatevents.Kind(v.Kind), myRole, acl.SetRole, v.Overrides) != nil) {
		return nil, jsperr.Newf(jsperr.Forbidden, "a %s cannot invite as %s", myRole, role)
	}
	if err := s.knownUser(ctx, r.User); err != nil {
		return nil, err
	}
	created, err := s.putIfAbsent(ctx, v.ID, r.User, role)
	if err != nil {
		return nil, err
	}
	if !created {
		return nil, jsperr.Newf(jsperr.Conflict, "%s is already a member of %s", r.User, v.ID)
	}
	ev, err := s.memberEvent(ctx, c, chatevents.MemberJoined, v.ID, chatevents.Member{User: r.User, Role: role})
	if err != nil {
		return nil, err
	}
	return &chatproto.Response{Event: ev}, nil
}

func (s *Service) kick(ctx context.Context, c *caller, r *chatproto.Request) (*chatproto.Response, error) {
	v, myRole, err := s.access(ctx, c, r.Conversation, acl.Kick)
	if err != nil {
		return nil, err
	}
	if r.User == c.user.ID {
		return nil, jsperr.New(jsperr.BadRequest, "use conv.leave to leave")
	}
	their, err := s.role(ctx, v.ID, r.User)
	if err != nil {
		return nil, err
	}
	if their == "" {
		return nil, jsperr.Newf(jsperr.NotAMember, "%s is not a member of %s", r.User, v.ID)
	}
	if acl.Rank(their) >= acl.Rank(myRole) && myRole != chatevents.RoleOwner {
		return nil, jsperr.Newf(jsperr.Forbidden, "a %s cannot remove a %s", myRole, their)
	}
	return s.remove(ctx, c, v.ID, r.User)
}

func (s *Service) setRole(ctx context.Context, c *caller, r *chatproto.Request) (*chatproto.Response, error) {
	v, myRole, err := s.access(ctx, c, r.Conversation, acl.SetRole)
	if err != nil {
		return nil, err
	}
	if !acl.ValidRole(r.Role) {
		return nil, jsperr.Newf(jsperr.BadRequest, "unknown role %q", r.Role)
	}
	their, err := s.role(ctx, v.ID, r.User)
	if err != nil {
		return nil, err
	}
	if their == "" {
		return nil, jsperr.Newf(jsperr.NotAMember, "%s is not a member of %s", r.User, v.ID)
	}
	// Nobody raises anyone above their own role or changes a stronger
	// member; owners may do anything, including hand over ownership.
	if myRole != chatevents.RoleOwner && (acl.Rank(r.Role) > acl.Rank(myRole) || acl.Rank(their) >= acl.Rank(myRole)) {
		return nil, jsperr.Newf(jsperr.Forbidden, "a %s cannot make a %s %s", myRole, their, r.Role)
	}
	if their == chatevents.RoleOwner && r.Role != chatevents.RoleOwner {
		if err := s.otherOwner(ctx, v.ID, r.User); err != nil {
			return nil, err
		}
	}
	if _, err := s.store.PutMember(ctx, storage.ChatMember{Conversation: v.ID, User: r.User, Role: string(r.Role)}); err != nil {
		return nil, err
	}
	ev, err := s.memberEvent(ctx, c, chatevents.MemberRoleChanged, v.ID, chatevents.Member{User: r.User, Role: r.Role, PrevRole: their})
	if err != nil {
		return nil, err
	}
	return &chatproto.Response{Event: ev}, nil
}

// update applies change to the conversation after checking a, then commits
// conversation.updated.
func (s *Service) update(ctx context.Context, c *caller, id string, a acl.Action, change func(v *storage.Conversation) error) (*chatproto.Response, error) {
	v, _, err := s.access(ctx, c, id, a)
	if err != nil {
		return nil, err
	}
	if err := change(&v); err != nil {
		return nil, err
	}
	if err := s.store.UpdateConversation(ctx, v); err != nil {
		return nil, err
	}
	ev, err := s.event(chatevents.ConversationUpdated, c, v.ID)
	if err != nil {
		return nil, err
	}
	ev.Info = s.info(v)
	if _, err := s.commit(ctx, ev, ""); err != nil {
		return nil, err
	}
	s.emit(ctx, ev)
	cv := convOf(v)
	return &chatproto.Response{Event: ev, Conversation: &cv}, nil
}

func (s *Service) rename(ctx context.Context, c *caller, r *chatproto.Request) (*chatproto.Response, error) {
	if err := checkText("name", r.Name, s.cfg.MaxNameBytes); err != nil {
		return nil, err
	}
	return s.update(ctx, c, r.Conversation, acl.Rename, func(v *storage.Conversation) error { v.Name = r.Name; return nil })
}

func (s *Service) topic(ctx context.Context, c *caller, r *chatproto.Request) (*chatproto.Response, error) {
	if err := checkText("topic", r.Topic, s.cfg.MaxTopicBytes); err != nil {
		return nil, err
	}
	return s.update(ctx, c, r.Conversation, acl.Topic, func(v *storage.Conversation) error { v.Topic = r.Topic; return nil })
}

func (s *Service) archive(ctx context.Context, c *caller, r *chatproto.Request) (*chatproto.Response, error) {
	return s.update(ctx, c, r.Conversation, acl.Archive, func(v *storage.Conversation) error { v.Archived = r.Archived; return nil })
}

func (s *Service) configure(ctx context.Context, c *caller, r *chatproto.Request) (*chatproto.Response, error) {
	for a, role := range r.Overrides {
		if err := acl.ValidOverride(acl.Action(a), chatevents.Role(role)); err != nil {
			return nil, err
		}
	}
	return s.update(ctx, c, r.Conversation, acl.Configure, func(v *storage.Conversation) error {
		v.Overrides = r.Overrides
		return nil
	})
}

func (s *Service) members(ctx context.Context, c *caller, r *chatproto.Request) (*chatproto.Response, error) {
	v, _, err := s.access(ctx, c, r.Conversation, acl.Read)
	if err != nil {
		return nil, err
	}
	limit := s.pageSize(r.Limit)
	ms, err := s.store.Members(ctx, v.ID, string(r.Cursor), limit)
	if err != nil {
		return nil, err
	}
	resp := &chatproto.Response{}
	for _, m := range ms {
		resp.Members = append(resp.Members, chatproto.Member{User: m.User, Role: chatevents.Role(m.Role), ReadSeq: uint64(m.ReadSeq)})
	}
	if n := len(ms); n > 0 {
		resp.Next, resp.More = []byte(ms[n-1].User), n == limit
	}
	return resp, nil
}

// --- direct chats

// directKey is the unique key of the direct chat of a and b.
func directKey(a, b string) string {
	if b < a {
		a, b = b, a
	}
	return a + "\x1f" + b
}

// direct returns the direct chat of c and peer, creating it (exactly one
// per pair: the key is unique in storage, and a concurrent creation's loser
// reads the winner's).
func (s *Service) direct(ctx context.Context, c *caller, peer string) (storage.Conversation, error) {
	if peer == c.user.ID {
		return storage.Conversation{}, jsperr.New(jsperr.BadRequest, "a direct chat needs another user")
	}
	if err := s.knownUser(ctx, peer); err != nil {
		return storage.Conversation{}, err
	}
	key := directKey(c.user.ID, peer)
	v, err := s.store.DirectConversation(ctx, key)
	if err == nil || !errors.Is(err, storage.ErrNotFound) {
		return v, err
	}
	sum := sha256.Sum256([]byte(key))
	id := "dm-" + hex.EncodeToString(sum[:12])
	members := []storage.ChatMember{{User: c.user.ID, Role: string(chatevents.RoleMember)}, {User: peer, Role: string(chatevents.RoleMember)}}
	v, err = s.store.CreateConversation(ctx, storage.Conversation{ID: id, Kind: string(chatevents.KindDirect), Creator: c.user.ID, DirectKey: key}, members)
	if errors.Is(err, storage.ErrConflict) {
		return s.store.DirectConversation(ctx, key)
	}
	if err != nil {
		return v, err
	}
	ev, err := s.event(chatevents.ConversationCreated, c, id)
	if err != nil {
		return v, err
	}
	ev.Info, ev.Members = s.info(v), []string{c.user.ID, peer}
	if _, err := s.commit(ctx, ev, ""); err != nil {
		return v, err
	}
	s.emit(ctx, ev)
	return v, nil
}

// putIfAbsent adds user to conv with role unless already a member, and
// reports whether it did.
func (s *Service) putIfAbsent(ctx context.Context, conv, user string, role chatevents.Role) (bool, error) {
	have, err := s.role(ctx, conv, user)
	if err != nil || have != "" {
		return false, err
	}
	return s.store.PutMember(ctx, storage.ChatMember{Conversation: conv, User: user, Role: string(role), ReadSeq: storage.Seq(s.lastSeq(ctx, conv))})
}
