package storage

import (
	"context"
	"time"
)

// This file is the chat part of the storage interface: users,
// conversations, members, message state (text, edits, tombstones,
// mentions), reactions and read markers. The events themselves (messages,
// edits, reactions, membership changes) are committed to the message log
// under the conversation's channel, which assigns the per-conversation
// sequence numbers (ARCHITECTURE §1); these tables hold the current state
// that history and access checks read.

// MaxChatTextLen caps a chat message text the store accepts, in bytes.
// The chat service's own limit is lower (spec/JSP-chat.md §6).
const MaxChatTextLen = 64 << 10

// ChatUser is an account.
type ChatUser struct {
	// ID is the user id, the identity's User. Required.
	ID string
	// DisplayName is the name shown to others.
	DisplayName string
	// Admin users may use the admin commands.
	Admin bool
	// Disabled users are refused by every chat command.
	Disabled bool
	// Created is when the user was added; set by PutUser.
	Created time.Time
}

// Conversation is a channel, a group or a direct chat.
type Conversation struct {
	// ID identifies the conversation. Required.
	ID string
	// Kind is "channel", "group" or "direct". Required.
	Kind string
	// Name and Topic are free text.
	Name, Topic string
	// Archived conversations are read-only.
	Archived bool
	// Creator is the creating user.
	Creator string
	// DirectKey is set for direct chats: the two user ids, sorted, joined
	// by the unit separator "\x1f" (which the chat service refuses in
	// user ids). It is unique, so there is exactly one direct chat per
	// pair.
	DirectKey string
	// Overrides are the per-conversation ACL overrides: action -> the
	// weakest role allowed (services/acl).
	Overrides map[string]string
	// Created is set by CreateConversation.
	Created time.Time
}

// ChatMember is one user's membership of a conversation.
type ChatMember struct {
	// Conversation and User identify the membership.
	Conversation, User string
	// Role is owner, admin, member or guest.
	Role string
	// ReadSeq is the member's read marker: the last sequence number read.
	ReadSeq Seq
	// Joined is set by PutMember on insert.
	Joined time.Time
}

// Attachment is a stored file a message references.
type Attachment struct {
	// ID is the file's id in the file store.
	ID string `json:"id"`
	// Name is the uploader's file name.
	Name string `json:"name"`
	// Size is the file size in bytes.
	Size int64 `json:"size"`
	// SHA256 is the content hash, lower-case hex.
	SHA256 string `json:"sha256"`
}

// ChatMessage is a message's current state.
type ChatMessage struct {
	// Conversation and ID identify the message.
	Conversation, ID string
	// Seq is the sequence number of its message.created event in the
	// conversation's log: its place in history.
	Seq Seq
	// Author posted it.
	Author string
	// Text is the current text; empty once deleted.
	Text string
	// ReplyTo and Thread link replies and threads (message ids).
	ReplyTo, Thread string
	// Mentions are the users mentioned; MentionsAll is @channel.
	Mentions    []string
	MentionsAll bool
	// Attachments are the files; removed on delete.
	Attachments []Attachment
	// Edited and Deleted mark edits and tombstones.
	Edited, Deleted bool
	// Created is the posting time; Updated the last edit or the deletion.
	Created, Updated time.Time
}

// ChatEdit is one earlier version of a message's text.
type ChatEdit struct {
	// Text is the text before the edit.
	Text string
	// Editor made the edit.
	Editor string
	// LogSeq is the seq of the message.edited event in the log.
	LogSeq Seq
	// At is when the edit was made.
	At time.Time
}

// ReactionCount aggregates one emoji on one message.
type ReactionCount struct {
	MessageID, Emoji string
	// Count is the number of users.
	Count int
	// Users are the reacting users, in the order they reacted.
	Users []string
}

// ConversationQuery selects conversations for ListConversations.
type ConversationQuery struct {
	// Member, when set, lists that user's conversations, with summaries.
	Member string
	// Kind, when set, restricts the kind ("channel" to list public
	// channels to join).
	Kind string
	// After is the cursor: conversation ids greater than it.
	After string
	// Limit caps the page. Required (> 0).
	Limit int
}

// ConversationSummary is a conversation as a member's list shows it.
type ConversationSummary struct {
	Conversation
	// Role is the member's role ("" when listed without Member).
	Role string
	// ReadSeq is the member's read marker.
	ReadSeq Seq
	// Unread counts messages after ReadSeq by others, not deleted.
	Unread int
	// Mentions counts unread messages that mention the member.
	Mentions int
}

// ChatStore is the chat storage interface. Every method returns
// ErrNotFound for a missing user, conversation, member or message, and
// ErrInvalid for malformed arguments.
type ChatStore interface {
	// PutUser adds a user; ErrConflict if the id exists.
	PutUser(ctx context.Context, u ChatUser) (ChatUser, error)
	// GetUser returns a user.
	GetUser(ctx context.Context, id string) (ChatUser, error)
	// ListUsers returns up to limit users with id > after, by id.
	ListUsers(ctx context.Context, after string, limit int) ([]ChatUser, error)
	// SetUserDisabled disables or enables a user.
	SetUserDisabled(ctx context.Context, id string, disabled bool) error

	// CreateConversation stores c and its first members in one
	// transaction; ErrConflict when the id or the DirectKey exists.
	CreateConversation(ctx context.Context, c Conversation, members []ChatMember) (Conversation, error)
	// GetConversation returns a conversation.
	GetConversation(ctx context.Context, id string) (Conversation, error)
	// DirectConversation returns the direct chat with key.
	DirectConversation(ctx context.Context, key string) (Conversation, error)
	// UpdateConversation replaces name, topic, archived and overrides.
	UpdateConversation(ctx context.Context, c Conversation) error
	// ListConversations returns a page of conversations by id.
	ListConversations(ctx context.Context, q ConversationQuery) ([]ConversationSummary, error)

	// PutMember adds a member or changes its role; it reports whether the
	// member is new. A new member's read marker starts at ReadSeq.
	PutMember(ctx context.Context, m ChatMember) (created bool, err error)
	// RemoveMember removes a member.
	RemoveMember(ctx context.Context, conversation, user string) error
	// GetMember returns a membership.
	GetMember(ctx context.Context, conversation, user string) (ChatMember, error)
	// Members returns up to limit members with user > after, by user.
	Members(ctx context.Context, conversation, after string, limit int) ([]ChatMember, error)
	// SetReadSeq moves a member's read marker forward (never back) and
	// returns the marker now stored.
	SetReadSeq(ctx context.Context, conversation, user string, seq Seq) (Seq, error)

	// PutChatMessage stores a new message and its mentions and moves the
	// author's read marker to it; ErrConflict when the id exists.
	PutChatMessage(ctx context.Context, m ChatMessage) error
	// PostChatMessage commits a post in one transaction (one commit, one
	// fsync): it appends msg to channel's message log as AppendMessage
	// does (next sequence number, idempotency by sender and client id)
	// and stores m at the assigned number with its mentions, moving the
	// author's read marker to it, as PutChatMessage does (m.Seq is
	// ignored). Either both are stored or neither is. A resend within
	// the de-duplication window stores nothing and returns the first
	// attempt's result with Duplicate set; ErrConflict when the client id
	// was used for something else or m's id exists.
	PostChatMessage(ctx context.Context, channel string, msg Message, m ChatMessage) (AppendResult, error)
	// GetChatMessage returns a message (a tombstone when deleted).
	GetChatMessage(ctx context.Context, conversation, id string) (ChatMessage, error)
	// ChatMessagesAfter returns up to limit messages with Seq > after,
	// ascending; ChatMessagesBefore those with Seq < before (0: newest),
	// ascending as well.
	ChatMessagesAfter(ctx context.Context, conversation string, after Seq, limit int) ([]ChatMessage, error)
	ChatMessagesBefore(ctx context.Context, conversation string, before Seq, limit int) ([]ChatMessage, error)
	// EditChatMessage keeps the current text in the edit history and
	// replaces it; ErrConflict for a deleted message.
	EditChatMessage(ctx context.Context, conversation, id, editor, text string, logSeq Seq, at time.Time) (ChatMessage, error)
	// ChatEdits returns a message's earlier versions, oldest first.
	ChatEdits(ctx context.Context, conversation, id string) ([]ChatEdit, error)
	// DeleteChatMessage turns a message into a tombstone: text, edit
	// history, attachments, mentions and reactions are removed. It returns
	// the message as it was (so the caller can remove attachment files and
	// redact the log) and the log seqs of its edits; ErrConflict when it
	// was already deleted.
	DeleteChatMessage(ctx context.Context, conversation, id string, at time.Time) (ChatMessage, []Seq, error)

	// AddReaction adds user's emoji to a message; added is false when it
	// was there already. It returns the emoji's count after the change.
	AddReaction(ctx context.Context, conversation, messageID, user, emoji string, at time.Time) (count int, added bool, err error)
	// RemoveReaction removes it; removed is false when it was not there.
	RemoveReaction(ctx context.Context, conversation, messageID, user, emoji string) (count int, removed bool, err error)
	// Reactions returns the aggregated reactions of the messages, by
	// message then emoji.
	Reactions(ctx context.Context, conversation string, messageIDs []string) ([]ReactionCount, error)

	// RedactMessage replaces the body of the log message seq of channel
	// (content removal on delete); ErrNotFound when it is not stored.
	RedactMessage(ctx context.Context, channel string, seq Seq, body []byte) error
}
