// Package chat is the typed chat API of the Go SDK (spec/JSP-chat.md) on
// top of a *client.Client: accounts, conversations, members and roles,
// messages (post, reply, edit, delete), reactions, history iterators in
// both directions, read markers, typing, presence and live events.
//
//	c, _ := client.Dial(ctx, url, client.Options{Credentials: ...})
//	ch := chat.New(c)
//	conv, _ := ch.Create(ctx, chat.KindGroup, "team", "", "bob", "carol")
//	sub, _ := ch.Subscribe(ctx, conv.ID, 0, func(e chat.Event) { ... })
//	ch.Post(ctx, conv.ID, "hello @bob")
//
// Every call is one COMMAND to the chat service, routed by the
// conversation id (header "key") so that the commands of one conversation
// are handled in order. Events arrive on the conversation's channel
// (chat.<id>) as chatevents.Event bodies; a subscription with a since
// sequence number first replays what was missed, so an offline member
// catches up on messages, edits, deletions and reactions on reconnect.
//
// Errors are *jsperr.Error values from the server; branch with
// jsperr.CodeOf (NOT_A_MEMBER, FORBIDDEN, TEXT_TOO_LONG, INVALID_CURSOR...).
package chat

import (
	"context"
	"fmt"

	"github.com/jetstreamproto/jsp/client"
	"github.com/jetstreamproto/jsp/services/chat/chatproto"
	"github.com/jetstreamproto/jsp/services/chatevents"
)

// Kinds and roles, re-exported for callers.
const (
	KindChannel = chatevents.KindChannel
	KindGroup   = chatevents.KindGroup
	KindDirect  = chatevents.KindDirect

	RoleOwner  = chatevents.RoleOwner
	RoleAdmin  = chatevents.RoleAdmin
	RoleMember = chatevents.RoleMember
	RoleGuest  = chatevents.RoleGuest
)

// Types of the wire format, re-exported.
type (
	// Conversation is a conversation as the caller sees it.
	Conversation = chatproto.Conversation
	// Message is a message's state.
	Message = chatevents.Message
	// HistoryItem is one message of a history page with its reactions.
	HistoryItem = chatproto.HistoryItem
	// Reaction is one emoji's aggregate on a message.
	Reaction = chatproto.Reaction
	// Member is a member and its role.
	Member = chatproto.Member
	// User is an account.
	User = chatproto.User
	// Edit is an earlier version of a message.
	Edit = chatproto.Edit
	// Presence is a user's presence.
	Presence = chatproto.Presence
	// Attachment references a stored file.
	Attachment = chatevents.Attachment
)

// Client is the chat API over one SDK client. It is safe for concurrent
// use and owns no goroutines of its own (subscriptions run on the SDK
// client's handler goroutines).
type Client struct {
	c *client.Client
}

// New returns the chat API of c.
func New(c *client.Client) *Client { return &Client{c: c} }

// do sends one command routed by key and decodes the reply.
func (x *Client) do(ctx context.Context, key string, r *chatproto.Request) (*chatproto.Response, error) {
	var h map[string]string
	if key != "" {
		h = map[string]string{chatproto.HeaderKey: key}
	}
	body, err := x.c.CommandWithHeaders(ctx, chatproto.Service, r.Marshal(), h)
	if err != nil {
		return nil, fmt.Errorf("chat %s: %w", r.Op, err)
	}
	resp, err := chatproto.DecodeResponse(body)
	if err != nil {
		return nil, fmt.Errorf("chat %s: reply: %w", r.Op, err)
	}
	return &resp, nil
}

// --- accounts

func firstUser(resp *chatproto.Response) (User, error) {
	if len(resp.Users) == 0 {
		return User{}, fmt.Errorf("chat: reply without user")
	}
	return resp.Users[0], nil
}

// Me returns the caller's account (created on first use unless the server
// disabled that).
func (x *Client) Me(ctx context.Context) (User, error) {
	resp, err := x.do(ctx, "", &chatproto.Request{Op: chatproto.OpWhoami})
	if err != nil {
		return User{}, err
	}
	return firstUser(resp)
}

// AddUser creates an account (administrators only).
func (x *Client) AddUser(ctx context.Context, id, displayName string, admin bool) (User, error) {
	resp, err := x.do(ctx, "", &chatproto.Request{Op: chatproto.OpUserAdd, User: id, DisplayName: displayName, Admin: admin})
	if err != nil {
		return User{}, err
	}
	return firstUser(resp)
}

// ListUsers returns up to limit accounts with ids after after
// (administrators only).
func (x *Client) ListUsers(ctx context.Context, after string, limit int) ([]User, error) {
	resp, err := x.do(ctx, "", &chatproto.Request{Op: chatproto.OpUserList, Cursor: []byte(after), Limit: uint64(max(limit, 0))})
	if err != nil {
		return nil, err
	}
	return resp.Users, nil
}

// DisableUser disables (or with enable true, re-enables) an account
// (administrators only).
func (x *Client) DisableUser(ctx context.Context, id string, enable bool) (User, error) {
	op := chatproto.OpUserDisable
	if enable {
		op = chatproto.OpUserEnable
	}
	resp, err := x.do(ctx, "", &chatproto.Request{Op: op, User: id})
	if err != nil {
		return User{}, err
	}
	return firstUser(resp)
}

// --- conversations

func convOf(resp *chatproto.Response) (Conversation, error) {
	if resp.Conversation == nil {
		return Conversation{}, fmt.Errorf("chat: reply without conversation")
	}
	return *resp.Conversation, nil
}

// Create creates a public channel or a private group with the caller as
// owner and members as members.
func (x *Client) Create(ctx context.Context, kind chatevents.Kind, name, topic string, members ...string) (Conversation, error) {
	resp, err := x.do(ctx, "", &chatproto.Request{Op: chatproto.OpCreate, Kind: kind, Name: name, Topic: topic, Members: members})
	if err != nil {
		return Conversation{}, err
	}
	return convOf(resp)
}

// List returns the caller's conversations with unread and mention counts.
func (x *Client) List(ctx context.Context) ([]Conversation, error) {
	return x.listAll(ctx, "")
}

// PublicChannels returns every public channel (Role set where the caller
// is a member).
func (x *Client) PublicChannels(ctx context.Context) ([]Conversation, error) {
	return x.listAll(ctx, KindChannel)
}

func (x *Client) listAll(ctx context.Context, kind chatevents.Kind) ([]Conversation, error) {
	var out []Conversation
	var cursor []byte
	for {
		resp, err := x.do(ctx, "", &chatproto.Request{Op: chatproto.OpList, Kind: kind, Cursor: cursor})
		if err != nil {
			return nil, err
		}
		out = append(out, resp.Conversations...)
		if !resp.More {
			return out, nil
		}
		cursor = resp.Next
	}
}

// Get returns one conversation.
func (x *Client) Get(ctx context.Context, conv string) (Conversation, error) {
	resp, err := x.do(ctx, conv, &chatproto.Request{Op: chatproto.OpGet, Conversation: conv})
	if err != nil {
		return Conversation{}, err
	}
	return convOf(resp)
}

// Join joins a public channel.
func (x *Client) Join(ctx context.Context, conv string) (Conversation, error) {
	resp, err := x.do(ctx, conv, &chatproto.Request{Op: chatproto.OpJoin, Conversation: conv})
	if err != nil {
		return Conversation{}, err
	}
	return convOf(resp)
}

// simple runs a command whose reply only confirms.
func (x *Client) simple(ctx context.Context, r *chatproto.Request) error {
	_, err := x.do(ctx, r.Conversation, r)
	return err
}

// Leave leaves a conversation.
func (x *Client) Leave(ctx context.Context, conv string) error {
	return x.simple(ctx, &chatproto.Request{Op: chatproto.OpLeave, Conversation: conv})
}

// Invite adds user with role ("" = member).
func (x *Client) Invite(ctx context.Context, conv, user string, role chatevents.Role) error {
	return x.simple(ctx, &chatproto.Request{Op: chatproto.OpInvite, Conversation: conv, User: user, Role: role})
}

// Kick removes user.
func (x *Client) Kick(ctx context.Context, conv, user string) error {
	return x.simple(ctx, &chatproto.Request{Op: chatproto.OpKick, Conversation: conv, User: user})
}

// SetRole changes user's role.
func (x *Client) SetRole(ctx context.Context, conv, user string, role chatevents.Role) error {
	return x.simple(ctx, &chatproto.Request{Op: chatproto.OpSetRole, Conversation: conv, User: user, Role: role})
}

// Rename changes the name.
func (x *Client) Rename(ctx context.Context, conv, name string) error {
	return x.simple(ctx, &chatproto.Request{Op: chatproto.OpRename, Conversation: conv, Name: name})
}

// SetTopic changes the topic.
func (x *Client) SetTopic(ctx context.Context, conv, topic string) error {
	return x.simple(ctx, &chatproto.Request{Op: chatproto.OpTopic, Conversation: conv, Topic: topic})
}

// Archive archives (or with archived false, unarchives) a conversation.
func (x *Client) Archive(ctx context.Context, conv string, archived bool) error {
	return x.simple(ctx, &chatproto.Request{Op: chatproto.OpArchive, Conversation: conv, Archived: archived})
}

// Configure replaces the conversation's ACL overrides: action -> weakest
// role allowed (services/acl), e.g. {"post": "member"} keeps guests quiet.
func (x *Client) Configure(ctx context.Context, conv string, overrides map[string]string) error {
	return x.simple(ctx, &chatproto.Request{Op: chatproto.OpConfigure, Conversation: conv, Overrides: overrides})
}

// Members returns every member.
func (x *Client) Members(ctx context.Context, conv string) ([]Member, error) {
	var out []Member
	var cursor []byte
	for {
		resp, err := x.do(ctx, conv, &chatproto.Request{Op: chatproto.OpMembers, Conversation: conv, Cursor: cursor})
		if err != nil {
			return nil, err
		}
		out = append(out, resp.Members...)
		if !resp.More {
			return out, nil
		}
		cursor = resp.Next
	}
}

// --- messages

// Posted is the outcome of a post, edit or delete.
type Posted struct {
	// ID is the message id.
	ID string
	// Seq is the event's sequence number in the conversation.
	Seq uint64
	// Event is the committed event.
	Event *chatevents.Event
}

// PostOption is a per-post extra.
type PostOption func(*chatproto.Request)

// ReplyTo makes the post a reply to message id (and part of its thread).
func ReplyTo(id string) PostOption { return func(r *chatproto.Request) { r.ReplyTo = id } }

// Attach adds attachments (files uploaded with Upload).
func Attach(as ...Attachment) PostOption {
	return func(r *chatproto.Request) { r.Attachments = append(r.Attachments, as...) }
}

// ClientID sets the post's idempotency key: a resend with the same key
// (after a lost reply) stores nothing new and returns the first result.
func ClientID(id string) PostOption { return func(r *chatproto.Request) { r.ClientID = id } }

func posted(resp *chatproto.Response) Posted {
	return Posted{ID: resp.Message, Seq: resp.Seq, Event: resp.Event}
}

// Post posts text to a conversation.
func (x *Client) Post(ctx context.Context, conv, text string, opts ...PostOption) (Posted, error) {
	r := &chatproto.Request{Op: chatproto.OpPost, Conversation: conv, Text: text}
	for _, o := range opts {
		o(r)
	}
	resp, err := x.do(ctx, conv, r)
	if err != nil {
		return Posted{}, err
	}
	return posted(resp), nil
}

// SendDirect posts text to the direct chat with user, creating the chat
// with the first message. Posted.Event.Conversation is its id.
func (x *Client) SendDirect(ctx context.Context, user, text string, opts ...PostOption) (Posted, error) {
	r := &chatproto.Request{Op: chatproto.OpPost, User: user, Text: text}
	for _, o := range opts {
		o(r)
	}
	resp, err := x.do(ctx, user, r)
	if err != nil {
		return Posted{}, err
	}
	return posted(resp), nil
}

// Edit replaces a message's text (its author, or a role allowed to).
func (x *Client) Edit(ctx context.Context, conv, id, text string) (Posted, error) {
	resp, err := x.do(ctx, conv, &chatproto.Request{Op: chatproto.OpEdit, Conversation: conv, Message: id, Text: text})
	if err != nil {
		return Posted{}, err
	}
	return posted(resp), nil
}

// Delete turns a message into a tombstone for everyone.
func (x *Client) Delete(ctx context.Context, conv, id string) (Posted, error) {
	resp, err := x.do(ctx, conv, &chatproto.Request{Op: chatproto.OpDelete, Conversation: conv, Message: id})
	if err != nil {
		return Posted{}, err
	}
	return posted(resp), nil
}

// Edits returns a message's earlier versions, oldest first.
func (x *Client) Edits(ctx context.Context, conv, id string) ([]Edit, error) {
	resp, err := x.do(ctx, conv, &chatproto.Request{Op: chatproto.OpEdits, Conversation: conv, Message: id})
	if err != nil {
		return nil, err
	}
	return resp.Edits, nil
}

// React adds the caller's emoji to a message (once per user per emoji) and
// returns the emoji's new count.
func (x *Client) React(ctx context.Context, conv, id, emoji string) (uint64, error) {
	return x.reaction(ctx, chatproto.OpReact, conv, id, emoji)
}

// Unreact removes it and returns the new count.
func (x *Client) Unreact(ctx context.Context, conv, id, emoji string) (uint64, error) {
	return x.reaction(ctx, chatproto.OpUnreact, conv, id, emoji)
}

func (x *Client) reaction(ctx context.Context, op chatproto.Op, conv, id, emoji string) (uint64, error) {
	resp, err := x.do(ctx, conv, &chatproto.Request{Op: op, Conversation: conv, Message: id, Emoji: emoji})
	if err != nil {
		return 0, err
	}
	if resp.Event == nil || resp.Event.Reaction == nil {
		return 0, fmt.Errorf("chat: reaction reply without count")
	}
	return resp.Event.Reaction.Count, nil
}

// MarkRead moves the caller's read marker to seq and returns the stored
// marker (markers never move back).
func (x *Client) MarkRead(ctx context.Context, conv string, seq uint64) (uint64, error) {
	resp, err := x.do(ctx, conv, &chatproto.Request{Op: chatproto.OpRead, Conversation: conv, Seq: seq})
	if err != nil {
		return 0, err
	}
	return resp.Seq, nil
}

// Typing tells the members that the caller started (or stopped) typing.
// Nothing is stored.
func (x *Client) Typing(ctx context.Context, conv string, typing bool) error {
	return x.simple(ctx, &chatproto.Request{Op: chatproto.OpTyping, Conversation: conv, Typing: typing})
}

// Presence returns the presence of users.
func (x *Client) Presence(ctx context.Context, users ...string) ([]Presence, error) {
	resp, err := x.do(ctx, "", &chatproto.Request{Op: chatproto.OpPresence, Members: users})
	if err != nil {
		return nil, err
	}
	return resp.Presence, nil
}
