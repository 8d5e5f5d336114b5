// Package chat is the chat service (spec/JSP-chat.md): conversations
// (public channels, private groups, direct chats), members and roles,
// messages with replies, threads, mentions, reactions, edits, deletions,
// history with authenticated cursors, read markers and typing. It runs in
// the core (ARCHITECTURE §1) as the core service "chat": gateways forward
// the chat COMMANDs with the caller's identity, and every decision is made
// here with services/acl.
//
// The flow of one change, for example msg.post:
//
//	Request ─► validate (limits) ─► caller's user (disabled?) ─► conversation
//	  (archived?) ─► membership and acl.Check ─► Host.Commit(chat.<conv>,
//	  EVENT envelope{body: chatevents.Event}) ─► per-conversation seq
//	  ─► chat tables (storage.ChatStore) ─► internal event log
//	  (chatevents.Append) ─► Response{event, seq}
//
// Every committed change is one event in the conversation's message log,
// so a member that was offline recovers edits, deletions, reactions and
// membership changes with the same resume/recover path as messages
// (ARCHITECTURE §4). History reads the current state from the chat
// tables: tombstones keep their place, edits show the latest text.
// Typing and read markers are ephemeral events (sequence number 0) that
// are never stored in the log.
//
// Removing a member (leave, kick) commits member.left and then asks the
// gateways to drop that user's local subscriptions of the conversation
// (Host.Drop), so a removed member stops receiving its events at once;
// subscribing again is refused by the core's authorization hook
// (services/acl).
//
// Goroutines: none; HandleCommand runs on the core's handler goroutine.
package chat

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/server/core"
	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/services/acl"
	"github.com/jetstreamproto/jsp/services/chat/chatproto"
	"github.com/jetstreamproto/jsp/services/chatevents"
	"github.com/jetstreamproto/jsp/wire"
)

// Limits; each is what a zero Config field means (spec/JSP-chat.md §6).
const (
	// DefaultMaxTextBytes caps a message text in bytes (UTF-8).
	DefaultMaxTextBytes = 8000
	// DefaultMaxEmojiBytes caps a reaction in bytes: enough for the
	// longest emoji ZWJ sequences, too short for text.
	DefaultMaxEmojiBytes = 32
	// DefaultMaxNameBytes caps a conversation name and a display name.
	DefaultMaxNameBytes = 80
	// DefaultMaxTopicBytes caps a topic.
	DefaultMaxTopicBytes = 250
	// DefaultMaxIDBytes caps ids: users, conversations, messages, client
	// ids.
	DefaultMaxIDBytes = 128
	// DefaultMaxAttachments caps the attachments of one message.
	DefaultMaxAttachments = 10
	// DefaultMaxAttachmentSize caps one attachment.
	DefaultMaxAttachmentSize = 100 << 20
	// DefaultMaxMembers caps the members listed at creation and the
	// members an event carries for notification senders.
	DefaultMaxMembers = 1000
	// DefaultPageSize is a history page without a limit.
	DefaultPageSize = 50
	// DefaultMaxPageSize caps a history page.
	DefaultMaxPageSize = 200
)

// Host is what the service needs from the core it runs in; *core.Core
// implements it.
type Host interface {
	// Commit appends msg to channel's log, assigning the sequence number,
	// and publishes it to the gateways.
	Commit(ctx context.Context, channel string, msg storage.Message) (storage.AppendResult, error)
	// PublishCommitted publishes msg, which the service committed to the
	// store itself (a post: storage.ChatStore.PostChatMessage), to the
	// gateways; msg carries its sequence number and time.
	PublishCommitted(channel string, msg storage.Message) error
	// Ephemeral publishes msg live without storing it.
	Ephemeral(channel string, msg storage.Message) error
	// Drop ends the local subscriptions of users on channel at every
	// gateway.
	Drop(channel string, users ...string) error
}

var _ Host = (*core.Core)(nil)

// Files is the file store attachments live in; the service checks that an
// attachment exists with the declared size and hash, and removes it when
// its message is deleted.
type Files interface {
	// Stat returns a stored file's size and lower-case hex SHA-256.
	Stat(id string) (size int64, sha256 string, err error)
	// Remove deletes a stored file.
	Remove(id string) error
}

// Presence reports users' presence (online, away, offline) from the
// cluster's session registry.
type Presence interface {
	Status(ctx context.Context, user string) (string, error)
}

// Config configures the service. Host and Store are required; every other
// zero field means its documented default.
type Config struct {
	// Host commits and publishes. Required.
	Host Host
	// Store holds the chat tables and the message log. Required.
	Store storage.Store
	// EventLog receives the internal events (services/chatevents).
	// Default: none are logged.
	EventLog bus.EventLog
	// Files checks and removes attachments. Default: attachments are
	// checked for well-formed metadata only and never removed.
	Files Files
	// Presence answers presence.get. Default: every user is "unknown".
	Presence Presence
	// CursorKey authenticates history cursors (HMAC-SHA256). Every core
	// of a cluster must use the same key. Default: a random key kept in
	// the store's KV under chat/cursor-key, shared by every core that
	// uses the store.
	CursorKey []byte
	// Admins are user ids that are always administrators (bootstrap).
	Admins []string
	// NoAutoProvision refuses authenticated users without an account;
	// by default the first command of an authenticated user creates it.
	NoAutoProvision bool
	// Limits (see the Default constants).
	MaxTextBytes      int
	MaxEmojiBytes     int
	MaxNameBytes      int
	MaxTopicBytes     int
	MaxIDBytes        int
	MaxAttachments    int
	MaxAttachmentSize int64
	MaxMembers        int
	PageSize          int
	MaxPageSize       int
	// Now is the clock. Default: time.Now.
	Now func() time.Time
	// Rand is the source of ids and of a generated cursor key. Default:
	// crypto/rand.Reader.
	Rand io.Reader
	// Logger receives structured logs. Default: slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	def := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	def(&c.MaxTextBytes, DefaultMaxTextBytes)
	def(&c.MaxEmojiBytes, DefaultMaxEmojiBytes)
	def(&c.MaxNameBytes, DefaultMaxNameBytes)
	def(&c.MaxTopicBytes, DefaultMaxTopicBytes)
	def(&c.MaxIDBytes, DefaultMaxIDBytes)
	def(&c.MaxAttachments, DefaultMaxAttachments)
	def(&c.MaxMembers, DefaultMaxMembers)
	def(&c.PageSize, DefaultPageSize)
	def(&c.MaxPageSize, DefaultMaxPageSize)
	if c.MaxAttachmentSize == 0 {
		c.MaxAttachmentSize = DefaultMaxAttachmentSize
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Rand == nil {
		c.Rand = rand.Reader
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

func (c *Config) validate() error {
	switch {
	case c.Host == nil:
		return errors.New("chat: Config.Host is required")
	case c.Store == nil:
		return errors.New("chat: Config.Store is required")
	case c.MaxTextBytes < 0, c.MaxEmojiBytes < 0, c.MaxNameBytes < 0, c.MaxTopicBytes < 0, c.MaxIDBytes < 0,
		c.MaxAttachments < 0, c.MaxAttachmentSize < 0, c.MaxMembers < 0, c.PageSize < 0, c.MaxPageSize < 0:
		return errors.New("chat: negative limit in config")
	case c.MaxTextBytes > storage.MaxChatTextLen:
		return fmt.Errorf("chat: MaxTextBytes %d over the store's %d", c.MaxTextBytes, storage.MaxChatTextLen)
	case c.PageSize > c.MaxPageSize && c.MaxPageSize > 0:
		return fmt.Errorf("chat: PageSize %d over MaxPageSize %d", c.PageSize, c.MaxPageSize)
	case c.CursorKey != nil && len(c.CursorKey) < 16:
		return errors.New("chat: CursorKey shorter than 16 bytes")
	}
	return nil
}

// Service is the chat service.
type Service struct {
	cfg    Config
	log    *slog.Logger
	store  storage.Store
	cursor []byte
	admins map[string]bool
}

var _ core.Service = (*Service)(nil)

// New returns the service. ctx bounds loading or creating the cursor key.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	s := &Service{cfg: cfg, log: cfg.Logger.With("component", "chat"), store: cfg.Store, admins: map[string]bool{}}
	for _, a := range cfg.Admins {
		s.admins[a] = true
	}
	key, err := s.cursorKey(ctx)
	if err != nil {
		return nil, err
	}
	s.cursor = key
	return s, nil
}

// cursorKey returns the configured key, or the one shared in the store's
// KV, creating it once (compare-and-set, so concurrent cores agree).
func (s *Service) cursorKey(ctx context.Context) ([]byte, error) {
	if s.cfg.CursorKey != nil {
		return s.cfg.CursorKey, nil
	}
	const ns, key = "chat", "cursor-key"
	e, err := s.store.KVGet(ctx, ns, key)
	if err == nil && len(e.Value) >= 16 {
		return e.Value, nil
	}
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("chat: read cursor key: %w", err)
	}
	k := make([]byte, 32)
	if _, err := io.ReadFull(s.cfg.Rand, k); err != nil {
		return nil, fmt.Errorf("chat: generate cursor key: %w", err)
	}
	if _, err := s.store.KVCompareAndSet(ctx, ns, key, k, 0, 0); err != nil {
		if !errors.Is(err, storage.ErrConflict) {
			return nil, fmt.Errorf("chat: store cursor key: %w", err)
		}
		// Another core created it first: use theirs.
		if e, err = s.store.KVGet(ctx, ns, key); err != nil {
			return nil, fmt.Errorf("chat: read cursor key: %w", err)
		}
		return e.Value, nil
	}
	return k, nil
}

// Register adds the service to a core registry under chatproto.Service.
func (s *Service) Register(r *core.Registry) error { return r.Register(chatproto.Service, s) }

// AdminScope is the credential scope that makes a user a chat
// administrator (the admin commands user.add, user.list, user.disable).
const AdminScope = "chat:admin"

// caller is the authenticated user a command runs for.
type caller struct {
	id   core.Identity
	user storage.ChatUser
}

// HandleCommand implements core.Service.
func (s *Service) HandleCommand(ctx context.Context, id core.Identity, body []byte) ([]byte, error) {
	req, err := chatproto.DecodeRequest(body)
	if err != nil {
		return nil, jsperr.Wrap(jsperr.BadRequest, err)
	}
	if id.Anonymous() {
		return nil, jsperr.New(jsperr.Unauthenticated, "chat needs an authenticated user")
	}
	c, err := s.caller(ctx, id)
	if err != nil {
		return nil, err
	}
	h, ok := handlers[req.Op]
	if !ok {
		return nil, jsperr.Newf(jsperr.BadRequest, "unknown chat command %q", req.Op)
	}
	resp, err := h(s, ctx, c, &req)
	if err != nil {
		return nil, s.mapErr(req.Op, err)
	}
	return resp.Marshal(), nil
}

type handler func(s *Service, ctx context.Context, c *caller, r *chatproto.Request) (*chatproto.Response, error)

// handlers maps each command to its method.
var handlers = map[chatproto.Op]handler{
	chatproto.OpWhoami:      (*Service).whoami,
	chatproto.OpUserAdd:     (*Service).userAdd,
	chatproto.OpUserList:    (*Service).userList,
	chatproto.OpUserDisable: (*Service).userDisable,
	chatproto.OpUserEnable:  (*Service).userEnable,
	chatproto.OpCreate:      (*Service).create,
	chatproto.OpList:        (*Service).list,
	chatproto.OpGet:         (*Service).get,
	chatproto.OpJoin:        (*Service).join,
	chatproto.OpLeave:       (*Service).leave,
	chatproto.OpInvite:      (*Service).invite,
	chatproto.OpKick:        (*Service).kick,
	chatproto.OpSetRole:     (*Service).setRole,
	chatproto.OpRename:      (*Service).rename,
	chatproto.OpTopic:       (*Service).topic,
	chatproto.OpArchive:     (*Service).archive,
	chatproto.OpConfigure:   (*Service).configure,
	chatproto.OpMembers:     (*Service).members,
	chatproto.OpPost:        (*Service).post,
	chatproto.OpEdit:        (*Service).edit,
	chatproto.OpDelete:      (*Service).delete,
	chatproto.OpHistory:     (*Service).history,
	chatproto.OpEdits:       (*Service).edits,
	chatproto.OpReact:       (*Service).react,
	chatproto.OpUnreact:     (*Service).unreact,
	chatproto.OpRead:        (*Service).markRead,
	chatproto.OpTyping:      (*Service).typing,
	chatproto.OpPresence:    (*Service).presence,
}

// mapErr gives storage failures their registry codes; errors that already
// carry one pass unchanged.
func (s *Service) mapErr(op chatproto.Op, err error) error {
	var je *jsperr.Error
	switch {
	case errors.As(err, &je):
		return err
	case errors.Is(err, storage.ErrTooLarge):
		return jsperr.Wrap(jsperr.TextTooLong, err)
	case errors.Is(err, storage.ErrInvalid):
		return jsperr.Wrap(jsperr.BadRequest, err)
	case errors.Is(err, context.DeadlineExceeded):
		return jsperr.Wrap(jsperr.Timeout, err)
	}
	s.log.Warn("chat: command failed", "op", string(op), "err", err)
	return jsperr.Wrap(jsperr.Internal, fmt.Errorf("chat %s: %w", op, err))
}

// caller loads (or provisions) the calling user and refuses disabled ones.
func (s *Service) caller(ctx context.Context, id core.Identity) (*caller, error) {
	if err := s.checkID("user id", id.User); err != nil {
		return nil, err
	}
	u, err := s.store.GetUser(ctx, id.User)
	if errors.Is(err, storage.ErrNotFound) && !s.cfg.NoAutoProvision {
		u, err = s.store.PutUser(ctx, storage.ChatUser{ID: id.User, DisplayName: id.User})
		if errors.Is(err, storage.ErrConflict) {
			u, err = s.store.GetUser(ctx, id.User)
		}
	}
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return nil, jsperr.Newf(jsperr.UserNotFound, "user %s has no account", id.User)
	case err != nil:
		return nil, fmt.Errorf("load user %s: %w", id.User, err)
	case u.Disabled:
		return nil, jsperr.Newf(jsperr.UserDisabled, "user %s is disabled", id.User)
	}
	if s.admins[u.ID] || slices.Contains(id.Scopes, AdminScope) {
		u.Admin = true
	}
	return &caller{id: id, user: u}, nil
}

// newID returns 16 random bytes in hex.
func (s *Service) newID() (string, error) {
	b := make([]byte, 16)
	if _, err := io.ReadFull(s.cfg.Rand, b); err != nil {
		return "", fmt.Errorf("chat: random id: %w", err)
	}
	return hex.EncodeToString(b), nil
}

func (s *Service) now() time.Time { return s.cfg.Now().UTC().Truncate(time.Millisecond) }

// commit stores ev in the conversation's log as an EVENT envelope (JSP
// §5.8) and returns it with its sequence number. clientID, when set, is
// the idempotency key (a resend commits nothing and reports duplicate).
func (s *Service) commit(ctx context.Context, ev *chatevents.Event, clientID string) (dup bool, err error) {
	env, err := s.envelope(ev)
	if err != nil {
		return false, err
	}
	if clientID == "" {
		clientID = ev.ID
	}
	res, err := s.cfg.Host.Commit(ctx, acl.Channel(ev.Conversation), storage.Message{
		ClientID: clientID,
		Sender:   ev.Actor,
		Body:     env.Append(nil),
	})
	if err != nil {
		if errors.Is(err, storage.ErrConflict) {
			return false, jsperr.Wrap(jsperr.Conflict, err)
		}
		return false, err
	}
	ev.Seq = uint64(res.Seq)
	if ev.Message != nil && ev.Type == chatevents.MessageCreated {
		ev.Message.Seq = ev.Seq
	}
	return res.Duplicate, nil
}

// commitPost stores a message.created event and its chat row in one
// transaction (storage.ChatStore.PostChatMessage: one commit per post),
// then publishes the event to the gateways, and sets ev's sequence
// numbers. clientID is the idempotency key as for commit; a resend
// commits nothing and reports dup. A conflict is returned unwrapped
// (storage.ErrConflict) for the caller to tell a late resend from a
// clash.
func (s *Service) commitPost(ctx context.Context, ev *chatevents.Event, clientID string, row storage.ChatMessage) (dup bool, err error) {
	env, err := s.envelope(ev)
	if err != nil {
		return false, err
	}
	if clientID == "" {
		clientID = ev.ID
	}
	channel := acl.Channel(ev.Conversation)
	msg := storage.Message{ClientID: clientID, Sender: ev.Actor, Body: env.Append(nil)}
	res, err := s.store.PostChatMessage(ctx, channel, msg, row)
	if err != nil {
		return false, err
	}
	ev.Seq = uint64(res.Seq)
	if ev.Message != nil {
		ev.Message.Seq = ev.Seq
	}
	if res.Duplicate {
		return true, nil
	}
	msg.Seq, msg.Time = res.Seq, res.Time
	if err := s.cfg.Host.PublishCommitted(channel, msg); err != nil {
		// Committed: subscribers that missed it recover it from the log.
		s.log.Warn("chat: post not published", "conversation", ev.Conversation, "seq", res.Seq, "err", err)
	}
	return false, nil
}

// envelope wraps ev as the EVENT envelope a subscriber receives: route the
// conversation's channel, class chat, sender the actor, body the event.
func (s *Service) envelope(ev *chatevents.Event) (*wire.Envelope, error) {
	id, err := hex.DecodeString(ev.ID)
	if err != nil {
		return nil, fmt.Errorf("chat: event id %q: %w", ev.ID, err)
	}
	return &wire.Envelope{
		ID:        id,
		Route:     wire.Route{Kind: wire.RouteChannel, Name: acl.Channel(ev.Conversation)},
		Kind:      wire.KindEvent,
		Class:     protocol.ClassChat,
		Timestamp: uint64(ev.Time.UnixMilli()),
		Sender:    ev.Actor,
		Headers:   map[string]string{"type": string(ev.Type)},
		Body:      ev.Marshal(),
	}, nil
}

// event returns a new event of type t by c in conv.
func (s *Service) event(t chatevents.Type, c *caller, conv string) (*chatevents.Event, error) {
	id, err := s.newID()
	if err != nil {
		return nil, err
	}
	return &chatevents.Event{Type: t, ID: id, Time: s.now(), Conversation: conv, Actor: c.user.ID}, nil
}

// emit appends ev to the internal event log. The change is committed
// already; a log failure is logged, not returned.
func (s *Service) emit(ctx context.Context, ev *chatevents.Event) {
	if s.cfg.EventLog == nil || ev.Type.Ephemeral() {
		return
	}
	if _, err := chatevents.Append(ctx, s.cfg.EventLog, ev); err != nil {
		s.log.Warn("chat: internal event not logged", "type", string(ev.Type), "conversation", ev.Conversation, "err", err)
	}
}

// ephemeral publishes ev live without storing it.
func (s *Service) ephemeral(ev *chatevents.Event) error {
	env, err := s.envelope(ev)
	if err != nil {
		return err
	}
	if err := s.cfg.Host.Ephemeral(acl.Channel(ev.Conversation), storage.Message{Sender: ev.Actor, Body: env.Append(nil)}); err != nil {
		return jsperr.Wrap(jsperr.Internal, fmt.Errorf("chat: publish %s: %w", ev.Type, err))
	}
	return nil
}
