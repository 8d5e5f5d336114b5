package chat

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"regexp"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/services/acl"
	"github.com/jetstreamproto/jsp/services/chat/chatproto"
	"github.com/jetstreamproto/jsp/services/chatevents"
)

var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

// checkAttachments checks count, size and hash format, and with a file
// store that each file exists with the declared size and hash.
func (s *Service) checkAttachments(as []chatevents.Attachment) error {
	if len(as) > s.cfg.MaxAttachments {
		return jsperr.Newf(jsperr.AttachmentInvalid, "%d attachments over the limit of %d", len(as), s.cfg.MaxAttachments)
	}
	for _, a := range as {
		if err := s.checkID("attachment id", a.ID); err != nil {
			return jsperr.Wrap(jsperr.AttachmentInvalid, err)
		}
		if err := checkText("attachment name", a.Name, s.cfg.MaxNameBytes*4); err != nil {
			return err
		}
		if a.Size == 0 || a.Size > uint64(s.cfg.MaxAttachmentSize) {
			return jsperr.Newf(jsperr.AttachmentInvalid, "attachment %s of %d bytes: want 1..%d", a.ID, a.Size, s.cfg.MaxAttachmentSize)
		}
		if !sha256Hex.MatchString(a.SHA256) {
			return jsperr.Newf(jsperr.AttachmentInvalid, "attachment %s: sha256 must be 64 lower-case hex digits", a.ID)
		}
		if s.cfg.Files == nil {
			continue
		}
		size, sum, err := s.cfg.Files.Stat(a.ID)
		if err != nil {
			return jsperr.Newf(jsperr.AttachmentInvalid, "attachment %s is not stored: upload it first", a.ID)
		}
		if uint64(size) != a.Size || sum != a.SHA256 {
			return jsperr.Newf(jsperr.AttachmentInvalid, "attachment %s: stored size or hash differs from the declared one", a.ID)
		}
	}
	return nil
}

func attachmentsOf(as []chatevents.Attachment) []storage.Attachment {
	var out []storage.Attachment
	for _, a := range as {
		out = append(out, storage.Attachment{ID: a.ID, Name: a.Name, Size: int64(a.Size), SHA256: a.SHA256})
	}
	return out
}

func eventAttachments(as []storage.Attachment) []chatevents.Attachment {
	var out []chatevents.Attachment
	for _, a := range as {
		out = append(out, chatevents.Attachment{ID: a.ID, Name: a.Name, Size: uint64(a.Size), SHA256: a.SHA256})
	}
	return out
}

// messageOf is a stored message as events carry it.
func messageOf(m storage.ChatMessage) chatevents.Message {
	return chatevents.Message{
		ID: m.ID, Author: m.Author, Text: m.Text, ReplyTo: m.ReplyTo, Thread: m.Thread,
		Mentions: m.Mentions, MentionsAll: m.MentionsAll, Attachments: eventAttachments(m.Attachments),
		Edited: m.Edited, Deleted: m.Deleted, Seq: uint64(m.Seq),
	}
}

// message loads a message of conv (CHAT_MESSAGE_NOT_FOUND).
func (s *Service) message(ctx context.Context, conv, id string) (storage.ChatMessage, error) {
	if err := s.checkID("message id", id); err != nil {
		return storage.ChatMessage{}, err
	}
	m, err := s.store.GetChatMessage(ctx, conv, id)
	if errors.Is(err, storage.ErrNotFound) {
		return m, jsperr.Newf(jsperr.ChatMessageNotFound, "no message %s in %s", id, conv)
	}
	return m, err
}

func (s *Service) post(ctx context.Context, c *caller, r *chatproto.Request) (*chatproto.Response, error) {
	if err := checkText("text", r.Text, s.cfg.MaxTextBytes); err != nil {
		return nil, err
	}
	if r.Text == "" && len(r.Attachments) == 0 {
		return nil, jsperr.New(jsperr.BadRequest, "empty message")
	}
	if err := s.checkAttachments(r.Attachments); err != nil {
		return nil, err
	}
	if r.ClientID != "" {
		if err := s.checkID("client id", r.ClientID); err != nil {
			return nil, err
		}
	}
	convID := r.Conversation
	if convID == "" {
		if r.User == "" {
			return nil, jsperr.New(jsperr.BadRequest, "msg.post needs a conversation or a user")
		}
		// A direct chat is created by its first message.
		v, err := s.direct(ctx, c, r.User)
		if err != nil {
			return nil, err
		}
		convID = v.ID
	}
	v, _, err := s.access(ctx, c, convID, acl.Post)
	if err != nil {
		return nil, err
	}
	thread := ""
	if r.ReplyTo != "" {
		parent, err := s.message(ctx, v.ID, r.ReplyTo)
		if err != nil {
			return nil, err
		}
		// A reply belongs to its parent's thread, or starts one at the
		// parent.
		thread = parent.Thread
		if thread == "" {
			thread = parent.ID
		}
	}
	members, err := s.memberIDs(ctx, v.ID)
	if err != nil {
		return nil, err
	}
	named, all := parseMentions(r.Text)
	var mentions []string
	for _, u := range named {
		if u != c.user.ID && containsStr(members, u) {
			mentions = append(mentions, u)
		}
	}
	ev, err := s.event(chatevents.MessageCreated, c, v.ID)
	if err != nil {
		return nil, err
	}
	msgID := ev.ID
	if r.ClientID != "" {
		// The id follows from the idempotency key, so a resend finds the
		// message its first attempt stored.
		sum := sha256.Sum256([]byte(c.user.ID + "\x00" + v.ID + "\x00" + r.ClientID))
		msgID = hex.EncodeToString(sum[:16])
	}
	ev.Message = &chatevents.Message{
		ID: msgID, Author: c.user.ID, Text: r.Text, ReplyTo: r.ReplyTo, Thread: thread,
		Mentions: mentions, MentionsAll: all, Attachments: r.Attachments,
	}
	ev.Members = members
	unread := mentions
	if all {
		unread = nil
		for _, u := range members {
			if u != c.user.ID {
				unread = append(unread, u)
			}
		}
	}
	row := storage.ChatMessage{
		Conversation: v.ID, ID: msgID, Author: c.user.ID, Text: r.Text,
		ReplyTo: r.ReplyTo, Thread: thread, Mentions: unread, MentionsAll: all,
		Attachments: attachmentsOf(r.Attachments), Created: ev.Time,
	}
	dup, err := s.commitPost(ctx, ev, r.ClientID, row)
	if errors.Is(err, storage.ErrConflict) {
		// A resend after the de-duplication window: the log took the
		// client id again, but the message (its id follows from the
		// client id) exists, so the transaction rolled back. Answer as
		// for a resend when it is the same message.
		if m, merr := s.message(ctx, v.ID, msgID); merr == nil && r.ClientID != "" && m.Author == c.user.ID && m.Text == r.Text {
			ev.Message = ptr(messageOf(m))
			ev.Seq = uint64(m.Seq)
			return &chatproto.Response{Event: ev, Seq: uint64(m.Seq), Message: msgID}, nil
		}
		return nil, jsperr.Wrap(jsperr.Conflict, err)
	}
	if err != nil {
		return nil, err
	}
	if dup {
		m, err := s.message(ctx, v.ID, msgID)
		if err == nil {
			ev.Message = ptr(messageOf(m))
			ev.Seq = uint64(m.Seq)
			return &chatproto.Response{Event: ev, Seq: uint64(m.Seq), Message: msgID}, nil
		}
		if ev.Seq == 0 {
			return nil, err
		}
		// The log has the event but no row: a post committed by a server
		// that wrote the two in separate transactions and stopped in
		// between. The event's seq is the message's: store the row now.
		row.Seq = storage.Seq(ev.Seq)
		if err := s.store.PutChatMessage(ctx, row); err != nil && !errors.Is(err, storage.ErrConflict) {
			return nil, err
		}
	}
	s.emit(ctx, ev)
	return &chatproto.Response{Event: ev, Seq: ev.Seq, Message: msgID}, nil
}

func ptr[T any](v T) *T { return &v }

func containsStr(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// own loads message id of conv for a change by c: the author needs
// EditOwn, anyone else the any-action (EditAny or DeleteAny).
func (s *Service) own(ctx context.Context, c *caller, conv, id string, any acl.Action) (storage.Conversation, storage.ChatMessage, error) {
	v, role, err := s.access(ctx, c, conv, acl.Read)
	if err != nil {
		return v, storage.ChatMessage{}, err
	}
	m, err := s.message(ctx, v.ID, id)
	if err != nil {
		return v, m, err
	}
	if m.Deleted {
		return v, m, jsperr.Newf(jsperr.MessageDeleted, "message %s was deleted", id)
	}
	a := any
	if m.Author == c.user.ID {
		a = acl.EditOwn
	}
	if err := acl.Check(chatevents.Kind(v.Kind), role, a, v.Overrides); err != nil {
		if m.Author != c.user.ID {
			return v, m, jsperr.Newf(jsperr.Forbidden, "message %s is %s's; %s", id, m.Author, err.(*jsperr.Error).Reason)
		}
		return v, m, err
	}
	if v.Archived {
		return v, m, jsperr.Newf(jsperr.ConversationArchived, "conversation %s is archived", v.ID)
	}
	return v, m, nil
}

func (s *Service) edit(ctx context.Context, c *caller, r *chatproto.Request) (*chatproto.Response, error) {
	if err := checkText("text", r.Text, s.cfg.MaxTextBytes); err != nil {
		return nil, err
	}
	if r.Text == "" {
		return nil, jsperr.New(jsperr.BadRequest, "empty text; use msg.delete")
	}
	v, m, err := s.own(ctx, c, r.Conversation, r.Message, acl.EditAny)
	if err != nil {
		return nil, err
	}
	ev, err := s.event(chatevents.MessageEdited, c, v.ID)
	if err != nil {
		return nil, err
	}
	m.Text, m.Edited = r.Text, true
	ev.Message = ptr(messageOf(m))
	if _, err := s.commit(ctx, ev, ""); err != nil {
		return nil, err
	}
	m, err = s.store.EditChatMessage(ctx, v.ID, m.ID, c.user.ID, r.Text, storage.Seq(ev.Seq), ev.Time)
	if errors.Is(err, storage.ErrConflict) {
		return nil, jsperr.Newf(jsperr.MessageDeleted, "message %s was deleted", r.Message)
	}
	if err != nil {
		return nil, err
	}
	s.emit(ctx, ev)
	return &chatproto.Response{Event: ev, Seq: ev.Seq, Message: m.ID}, nil
}

func (s *Service) delete(ctx context.Context, c *caller, r *chatproto.Request) (*chatproto.Response, error) {
	v, m, err := s.own(ctx, c, r.Conversation, r.Message, acl.DeleteAny)
	if err != nil {
		return nil, err
	}
	old, editSeqs, err := s.store.DeleteChatMessage(ctx, v.ID, m.ID, s.now())
	if errors.Is(err, storage.ErrConflict) {
		return nil, jsperr.Newf(jsperr.MessageDeleted, "message %s was deleted", r.Message)
	}
	if err != nil {
		return nil, err
	}
	tomb := chatevents.Message{ID: m.ID, Author: m.Author, ReplyTo: m.ReplyTo, Thread: m.Thread, Deleted: true, Seq: uint64(m.Seq)}
	ev, err := s.event(chatevents.MessageDeleted, c, v.ID)
	if err != nil {
		return nil, err
	}
	ev.Message = &tomb
	if _, err := s.commit(ctx, ev, ""); err != nil {
		return nil, err
	}
	// Content removal: the log entries that carried the text (the post and
	// every edit) are replaced by the tombstone, so neither history nor
	// recovery can return it; then the files go.
	s.redact(ctx, v.ID, tomb, m.Seq, editSeqs)
	if s.cfg.Files != nil {
		for _, a := range old.Attachments {
			if err := s.cfg.Files.Remove(a.ID); err != nil {
				s.log.Warn("chat: attachment of a deleted message not removed", "file", a.ID, "err", err)
			}
		}
	}
	s.emit(ctx, ev)
	return &chatproto.Response{Event: ev, Seq: ev.Seq, Message: m.ID}, nil
}

// redact replaces the log entries of a deleted message that carried its
// text, the post at postSeq and the edits at editSeqs, with the same kind
// of event carrying the tombstone: history and recovery keep every seq in
// place, and none of them returns the content.
func (s *Service) redact(ctx context.Context, conv string, tomb chatevents.Message, postSeq storage.Seq, editSeqs []storage.Seq) {
	kinds := map[storage.Seq]chatevents.Type{postSeq: chatevents.MessageCreated}
	for _, seq := range editSeqs {
		kinds[seq] = chatevents.MessageEdited
	}
	for seq, kind := range kinds {
		if seq == 0 {
			continue
		}
		// The original event ids went with the bodies; each redacted
		// entry gets a fresh one.
		id, err := s.newID()
		if err != nil {
			s.log.Warn("chat: redaction id", "err", err)
			return
		}
		ev := chatevents.Event{Type: kind, ID: id, Time: s.now(), Conversation: conv, Actor: tomb.Author, Message: &tomb}
		env, err := s.envelope(&ev)
		if err != nil {
			s.log.Warn("chat: redaction envelope", "err", err)
			return
		}
		if err := s.store.RedactMessage(ctx, acl.Channel(conv), seq, env.Append(nil)); err != nil && !errors.Is(err, storage.ErrNotFound) {
			s.log.Warn("chat: log entry not redacted", "conversation", conv, "seq", seq, "err", err)
		}
	}
}

func (s *Service) history(ctx context.Context, c *caller, r *chatproto.Request) (*chatproto.Response, error) {
	v, _, err := s.access(ctx, c, r.Conversation, acl.Read)
	if err != nil {
		return nil, err
	}
	limit := s.pageSize(r.Limit)
	var ms []storage.ChatMessage
	switch {
	case r.Cursor == nil:
		ms, err = s.store.ChatMessagesBefore(ctx, v.ID, 0, limit)
	default:
		var at storage.Seq
		if at, err = s.parseCursor(v.ID, r.Cursor); err != nil {
			return nil, err
		}
		if r.Backward {
			ms, err = s.store.ChatMessagesBefore(ctx, v.ID, at, limit)
		} else {
			ms, err = s.store.ChatMessagesAfter(ctx, v.ID, at, limit)
		}
	}
	if err != nil {
		return nil, err
	}
	resp := &chatproto.Response{More: len(ms) == limit}
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.ID
		resp.Messages = append(resp.Messages, chatproto.HistoryItem{Message: messageOf(m), Time: m.Created})
	}
	if len(ms) > 0 {
		rs, err := s.store.Reactions(ctx, v.ID, ids)
		if err != nil {
			return nil, err
		}
		idx := map[string]int{}
		for i, id := range ids {
			idx[id] = i
		}
		for _, x := range rs {
			h := &resp.Messages[idx[x.MessageID]]
			h.Reactions = append(h.Reactions, chatproto.Reaction{Emoji: x.Emoji, Count: uint64(x.Count), Users: x.Users})
		}
		resp.Prev = s.makeCursor(v.ID, ms[0].Seq)
		resp.Next = s.makeCursor(v.ID, ms[len(ms)-1].Seq)
	} else if r.Cursor != nil {
		resp.Prev, resp.Next = r.Cursor, r.Cursor
	} else {
		resp.Prev = s.makeCursor(v.ID, 1)
		resp.Next = s.makeCursor(v.ID, 0)
	}
	return resp, nil
}

func (s *Service) edits(ctx context.Context, c *caller, r *chatproto.Request) (*chatproto.Response, error) {
	v, _, err := s.access(ctx, c, r.Conversation, acl.Read)
	if err != nil {
		return nil, err
	}
	if _, err := s.message(ctx, v.ID, r.Message); err != nil {
		return nil, err
	}
	es, err := s.store.ChatEdits(ctx, v.ID, r.Message)
	if err != nil {
		return nil, err
	}
	resp := &chatproto.Response{}
	for _, e := range es {
		resp.Edits = append(resp.Edits, chatproto.Edit{Text: e.Text, Editor: e.Editor, At: e.At})
	}
	return resp, nil
}

func (s *Service) reaction(ctx context.Context, c *caller, r *chatproto.Request, add bool) (*chatproto.Response, error) {
	if err := s.checkEmoji(r.Emoji); err != nil {
		return nil, err
	}
	v, _, err := s.access(ctx, c, r.Conversation, acl.React)
	if err != nil {
		return nil, err
	}
	m, err := s.message(ctx, v.ID, r.Message)
	if err != nil {
		return nil, err
	}
	if m.Deleted {
		return nil, jsperr.Newf(jsperr.MessageDeleted, "message %s was deleted", r.Message)
	}
	var (
		count   int
		changed bool
		t       = chatevents.ReactionRemoved
	)
	if add {
		t = chatevents.ReactionAdded
		count, changed, err = s.store.AddReaction(ctx, v.ID, m.ID, c.user.ID, r.Emoji, s.now())
	} else {
		count, changed, err = s.store.RemoveReaction(ctx, v.ID, m.ID, c.user.ID, r.Emoji)
	}
	if errors.Is(err, storage.ErrConflict) {
		return nil, jsperr.Newf(jsperr.MessageDeleted, "message %s was deleted", r.Message)
	}
	if err != nil {
		return nil, err
	}
	ev, err := s.event(t, c, v.ID)
	if err != nil {
		return nil, err
	}
	ev.Reaction = &chatevents.Reaction{MessageID: m.ID, Emoji: r.Emoji, User: c.user.ID, Count: uint64(count)}
	if !changed {
		// One reaction per user per emoji: nothing changed, nothing to
		// tell anyone.
		return &chatproto.Response{Event: ev}, nil
	}
	if _, err := s.commit(ctx, ev, ""); err != nil {
		return nil, err
	}
	s.emit(ctx, ev)
	return &chatproto.Response{Event: ev, Seq: ev.Seq}, nil
}

func (s *Service) react(ctx context.Context, c *caller, r *chatproto.Request) (*chatproto.Response, error) {
	return s.reaction(ctx, c, r, true)
}

func (s *Service) unreact(ctx context.Context, c *caller, r *chatproto.Request) (*chatproto.Response, error) {
	return s.reaction(ctx, c, r, false)
}

func (s *Service) markRead(ctx context.Context, c *caller, r *chatproto.Request) (*chatproto.Response, error) {
	v, _, err := s.access(ctx, c, r.Conversation, acl.Read)
	if err != nil {
		return nil, err
	}
	if last := s.lastSeq(ctx, v.ID); r.Seq > last {
		return nil, jsperr.Newf(jsperr.BadRequest, "read marker %d beyond the last seq %d", r.Seq, last)
	}
	seq, err := s.store.SetReadSeq(ctx, v.ID, c.user.ID, storage.Seq(r.Seq))
	if err != nil {
		return nil, err
	}
	ev, err := s.event(chatevents.ReadUpdated, c, v.ID)
	if err != nil {
		return nil, err
	}
	ev.Read = &chatevents.Read{User: c.user.ID, Seq: uint64(seq)}
	if err := s.ephemeral(ev); err != nil {
		return nil, err
	}
	s.emit(ctx, ev)
	return &chatproto.Response{Event: ev, Seq: uint64(seq)}, nil
}

func (s *Service) typing(ctx context.Context, c *caller, r *chatproto.Request) (*chatproto.Response, error) {
	v, _, err := s.access(ctx, c, r.Conversation, acl.Post)
	if err != nil {
		return nil, err
	}
	ev, err := s.event(chatevents.Typing, c, v.ID)
	if err != nil {
		return nil, err
	}
	if !r.Typing {
		// Stopped typing: an empty member part says so.
		ev.Member = &chatevents.Member{User: c.user.ID}
	}
	if err := s.ephemeral(ev); err != nil {
		return nil, err
	}
	return &chatproto.Response{}, nil
}

// MaxPresenceUsers caps the users of one presence.get.
const MaxPresenceUsers = 200

func (s *Service) presence(ctx context.Context, _ *caller, r *chatproto.Request) (*chatproto.Response, error) {
	if len(r.Members) > MaxPresenceUsers {
		return nil, jsperr.Newf(jsperr.LimitExceeded, "%d users over the limit of %d", len(r.Members), MaxPresenceUsers)
	}
	resp := &chatproto.Response{}
	for _, u := range r.Members {
		st := "unknown"
		if s.cfg.Presence != nil {
			var err error
			if st, err = s.cfg.Presence.Status(ctx, u); err != nil {
				st = "unknown"
			}
		}
		resp.Presence = append(resp.Presence, chatproto.Presence{User: u, Status: st})
	}
	return resp, nil
}
