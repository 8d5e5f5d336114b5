// Package chatevents defines the typed internal events the chat service
// publishes for every change it commits (issue "chat and system events",
// item 5), their encodings and their bus subjects. It is a leaf package:
// consumers (webhooks, push, audit, search) import it without importing
// the chat service.
//
// The flow of one change:
//
//	client ─COMMAND chat─► gateway ─► core ─► services/chat
//	        commit to storage (per-conversation seq)
//	        ─► channel subject (live delivery to members, body = Event CBOR)
//	        ─► event log, subject Subject(kind)  (body = services/events JSON envelope)
//
// One [Event] type carries every kind; which optional parts are set
// depends on the kind (see the Type constants). Clients receive its CBOR
// body in the EVENT envelopes of a conversation channel
// (spec/JSP-chat.md §4); the event log holds the same event as a
// services/events JSON envelope (Event.Envelope, FromEnvelope), the one
// format every internal consumer reads (docs/events.md, D25).
//
// Encodings: CBOR maps with small unsigned integer keys in deterministic
// order (JSP §6), decoded with the bounds-checked wire.CBORDecoder;
// unknown keys are skipped so newer servers can add fields (JSP §8.3).
// JSON (struct tags) has the same field names as the spec.
package chatevents

import (
	"context"
	"fmt"
	"time"

	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/services/events"
)

// Type names an event kind. It is also the event log kind and the last
// token of the event's subject.
type Type string

// Event kinds. The parts each one sets are listed with it; every event sets
// Type, ID, Time, Conversation and Actor.
const (
	// MessageCreated: a message was posted. Message (full), Seq, Members.
	MessageCreated Type = "message.created"
	// MessageEdited: a message's text changed. Message (new text, Edited
	// set), Seq.
	MessageEdited Type = "message.edited"
	// MessageDeleted: a message became a tombstone. Message (ID, Author,
	// Deleted set; no text), Seq.
	MessageDeleted Type = "message.deleted"
	// ReactionAdded: Reaction (with the new aggregated Count), Seq.
	ReactionAdded Type = "reaction.added"
	// ReactionRemoved: Reaction (with the new aggregated Count), Seq.
	ReactionRemoved Type = "reaction.removed"
	// MemberJoined: Member joined (Actor == Member.User) or was invited or
	// added (Actor != Member.User). Member, Seq.
	MemberJoined Type = "member.joined"
	// MemberLeft: Member left (Actor == Member.User) or was kicked. Member,
	// Seq.
	MemberLeft Type = "member.left"
	// MemberRoleChanged: Member (Role new, PrevRole old), Seq.
	MemberRoleChanged Type = "member.role_changed"
	// ConversationCreated: Info, Members.
	ConversationCreated Type = "conversation.created"
	// ConversationUpdated: rename, topic or archive. Info (new state), Seq.
	ConversationUpdated Type = "conversation.updated"
	// ReadUpdated: a member's read marker moved. Read.
	ReadUpdated Type = "read.updated"
	// Typing: the actor is typing; with Member set (to the actor), the
	// actor stopped. Ephemeral: never stored nor put in the event log,
	// delivered live only, with sequence number 0.
	Typing Type = "typing"
	// PresenceChanged: the actor's presence changed (online, away,
	// offline), across every gateway of the cluster. Presence.
	// Ephemeral like Typing: delivered live only, with sequence number 0,
	// to the members of the actor's direct chats and groups (spec
	// /JSP-chat.md §4.3); never stored nor put in the event log.
	PresenceChanged Type = "presence.changed"
)

// Types lists every stored kind (all but the ephemeral Typing and
// PresenceChanged), in a fixed order.
var Types = []Type{
	MessageCreated, MessageEdited, MessageDeleted, ReactionAdded, ReactionRemoved,
	MemberJoined, MemberLeft, MemberRoleChanged, ConversationCreated, ConversationUpdated, ReadUpdated,
}

// Ephemeral reports whether t is delivered live only: never stored in a
// conversation's log nor appended to the event log.
func (t Type) Ephemeral() bool { return t == Typing || t == PresenceChanged }

// Valid reports whether t is a known kind.
func (t Type) Valid() bool {
	if t.Ephemeral() {
		return true
	}
	for _, k := range Types {
		if k == t {
			return true
		}
	}
	return false
}

// Kind is a conversation's kind.
type Kind string

// Conversation kinds.
const (
	// KindChannel is a public channel: anyone may join.
	KindChannel Kind = "channel"
	// KindGroup is a private group: members join by invitation.
	KindGroup Kind = "group"
	// KindDirect is a direct chat between exactly two users.
	KindDirect Kind = "direct"
)

// Role is a member's role in a conversation.
type Role string

// Roles, strongest first.
const (
	RoleOwner  Role = "owner"
	RoleAdmin  Role = "admin"
	RoleMember Role = "member"
	RoleGuest  Role = "guest"
)

// Event is one internal chat event.
type Event struct {
	// Type is the kind. CBOR key 1.
	Type Type `json:"type"`
	// ID is unique per event (lower-case hex); receivers de-duplicate on
	// it. CBOR key 2.
	ID string `json:"id"`
	// Time is when the change was committed (millisecond precision).
	// CBOR key 3, Unix milliseconds.
	Time time.Time `json:"time"`
	// Conversation is the conversation id. CBOR key 4.
	Conversation string `json:"conversation"`
	// Seq is the event's sequence number in the conversation's log; 0 for
	// events that are not in it (Typing, ReadUpdated). CBOR key 5.
	Seq uint64 `json:"seq,omitempty"`
	// Actor is the user who made the change. CBOR key 6.
	Actor string `json:"actor"`
	// Message is set for message.* kinds. CBOR key 7.
	Message *Message `json:"message,omitempty"`
	// Reaction is set for reaction.* kinds. CBOR key 8.
	Reaction *Reaction `json:"reaction,omitempty"`
	// Member is set for member.* kinds. CBOR key 9.
	Member *Member `json:"member,omitempty"`
	// Info is set for conversation.* kinds. CBOR key 10.
	Info *Conversation `json:"info,omitempty"`
	// Read is set for read.updated. CBOR key 11.
	Read *Read `json:"read,omitempty"`
	// Members lists the conversation's members when the event happened
	// (message.created and conversation.created), so that notification
	// senders need not query storage. CBOR key 12.
	Members []string `json:"members,omitempty"`
	// Presence is set for presence.changed. CBOR key 13.
	Presence *Presence `json:"presence,omitempty"`
}

// Presence statuses (spec/JSP-chat.md §4.3).
const (
	StatusOnline  = "online"
	StatusAway    = "away"
	StatusOffline = "offline"
)

// Presence is a user's change of presence.
type Presence struct {
	// User is the user whose presence changed. Key 1.
	User string `json:"user"`
	// Status is the new status: online, away or offline. Key 2.
	Status string `json:"status"`
	// Previous is the status before the change. Key 3.
	Previous string `json:"previous,omitempty"`
}

// Message is a chat message as events carry it.
type Message struct {
	// ID is the message id. Key 1.
	ID string `json:"id"`
	// Author is the posting user. Key 2.
	Author string `json:"author"`
	// Text is the current text; empty for a tombstone. Key 3.
	Text string `json:"text,omitempty"`
	// ReplyTo is the id of the message this one answers. Key 4.
	ReplyTo string `json:"reply_to,omitempty"`
	// Thread is the id of the thread's root message. Key 5.
	Thread string `json:"thread,omitempty"`
	// Mentions are the users mentioned with @user. Key 6.
	Mentions []string `json:"mentions,omitempty"`
	// MentionsAll is set by @channel. Key 7.
	MentionsAll bool `json:"mention_channel,omitempty"`
	// Attachments are the message's files. Key 8.
	Attachments []Attachment `json:"attachments,omitempty"`
	// Edited marks a message whose text changed after posting. Key 9.
	Edited bool `json:"edited,omitempty"`
	// Deleted marks a tombstone. Key 10.
	Deleted bool `json:"deleted,omitempty"`
	// Seq is the sequence number of the message.created event, the
	// message's position in history. Key 11.
	Seq uint64 `json:"seq,omitempty"`
}

// Attachment is a file stored by the server and referenced by a message.
type Attachment struct {
	// ID is the stored file's id. Key 1.
	ID string `json:"id"`
	// Name is the file name the uploader gave. Key 2.
	Name string `json:"name"`
	// Size is the size in bytes. Key 3.
	Size uint64 `json:"size"`
	// SHA256 is the content hash, lower-case hex. Key 4.
	SHA256 string `json:"sha256"`
}

// Reaction is one user's reaction and the emoji's new aggregate.
type Reaction struct {
	// MessageID is the message reacted to. Key 1.
	MessageID string `json:"message_id"`
	// Emoji is the reaction. Key 2.
	Emoji string `json:"emoji"`
	// User is who added or removed it. Key 3.
	User string `json:"user"`
	// Count is how many users now react with Emoji. Key 4.
	Count uint64 `json:"count"`
}

// Member is a membership change.
type Member struct {
	// User is the member. Key 1.
	User string `json:"user"`
	// Role is the (new) role. Key 2.
	Role Role `json:"role,omitempty"`
	// PrevRole is the role before a member.role_changed. Key 3.
	PrevRole Role `json:"prev_role,omitempty"`
}

// Conversation is a conversation's public state.
type Conversation struct {
	// ID is the conversation id. Key 1.
	ID string `json:"id"`
	// Kind is channel, group or direct. Key 2.
	Kind Kind `json:"kind"`
	// Name is the display name (empty for direct chats). Key 3.
	Name string `json:"name,omitempty"`
	// Topic is the topic line. Key 4.
	Topic string `json:"topic,omitempty"`
	// Archived conversations are read-only. Key 5.
	Archived bool `json:"archived,omitempty"`
	// Creator is the user who created it. Key 6.
	Creator string `json:"creator,omitempty"`
}

// Read is a member's read marker.
type Read struct {
	// User is the member. Key 1.
	User string `json:"user"`
	// Seq is the last sequence number the member has read. Key 2.
	Seq uint64 `json:"seq"`
}

// Subject returns the bus subject of kind t in the event log of subj:
// jsp.<cluster>.events.<Token(t)>, for example
// jsp.jsp.events.message_2Ecreated. Subscribe to subj.Events() for every
// kind of every service.
func Subject(subj bus.Subjects, t Type) (string, error) {
	tok, err := bus.EncodeToken(string(t))
	if err != nil {
		return "", fmt.Errorf("chatevents: subject of %q: %w", t, err)
	}
	return subj.EventLog().SubjectPrefix + "." + tok, nil
}

// Append stores e in the event log as the services/events envelope of e
// (Envelope; docs/events.md, D25), so every events consumer (webhooks,
// push) reads chat events. The event id is the message id header, so a
// retried append within the log's duplicate window is stored once. It
// returns the log's sequence number.
func Append(ctx context.Context, log bus.EventLog, e *Event) (uint64, error) {
	if e.Type.Ephemeral() {
		return 0, fmt.Errorf("chatevents: %s events are ephemeral and not logged", e.Type)
	}
	env, err := e.Envelope()
	if err != nil {
		return 0, err
	}
	b, err := env.Encode()
	if err != nil {
		return 0, fmt.Errorf("chatevents: append %s %s: %w", e.Type, e.ID, err)
	}
	m := bus.Msg{Data: b, Header: bus.Header{}}
	m.Header.Set(bus.HeaderMsgID, e.ID)
	m.Header.Set(events.HeaderType, string(e.Type))
	seq, err := log.Append(ctx, string(e.Type), m)
	if err != nil {
		return 0, fmt.Errorf("chatevents: append %s %s: %w", e.Type, e.ID, err)
	}
	return seq, nil
}
