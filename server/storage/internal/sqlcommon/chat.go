package sqlcommon

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jetstreamproto/jsp/server/storage"
)

// ChatDB is what a backend lends the shared chat implementation: write
// transactions and a reader. Statements use "?" placeholders; a backend
// whose driver wants "$n" rewrites them (Rebind).
type ChatDB interface {
	// Write runs fn in one write transaction; an error from fn rolls it
	// back.
	Write(ctx context.Context, fn func(q Querier) error) error
	// Read returns a querier outside any transaction.
	Read() (Querier, error)
}

// Querier runs statements.
type Querier interface {
	// Exec runs a statement and returns the rows it affected.
	Exec(ctx context.Context, query string, args ...any) (int64, error)
	// Query runs a query and calls row for each result row, with a scan
	// function for it.
	Query(ctx context.Context, query string, args []any, row func(scan func(dest ...any) error) error) error
}

// Rebind rewrites "?" placeholders as "$1", "$2", ... (PostgreSQL). The
// chat statements contain no literal question marks.
func Rebind(q string) string {
	var b strings.Builder
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

// Chat implements storage.ChatStore over a ChatDB. Backends embed it.
type Chat struct {
	db   ChatDB
	now  func() time.Time
	what string // "storage/sqlite" or "storage/postgres", for errors
}

// NewChat returns the chat store of a backend named what.
func NewChat(db ChatDB, now func() time.Time, what string) *Chat {
	return &Chat{db: db, now: now, what: what}
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

func (c *Chat) errf(op string, err error) error {
	return fmt.Errorf("%s: %s: %w", c.what, op, err)
}

func chatText(what, s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("%w: %s is %d bytes, limit %d", storage.ErrTooLarge, what, len(s), max)
	}
	if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
		return fmt.Errorf("%w: %s is not valid UTF-8 or contains NUL", storage.ErrInvalid, what)
	}
	return nil
}

func limitOf(limit int) error {
	if limit <= 0 {
		return fmt.Errorf("%w: limit %d", storage.ErrInvalid, limit)
	}
	return nil
}

// one runs q and requires exactly one row, scanned by row.
func one(ctx context.Context, q Querier, query string, args []any, row func(scan func(dest ...any) error) error) error {
	found := false
	err := q.Query(ctx, query, args, func(scan func(dest ...any) error) error {
		found = true
		return row(scan)
	})
	if err == nil && !found {
		err = storage.ErrNotFound
	}
	return err
}

// --- users

const userCols = `id, display_name, admin, disabled, created_us`

func scanUser(scan func(dest ...any) error) (storage.ChatUser, error) {
	var u storage.ChatUser
	var admin, disabled, created int64
	if err := scan(&u.ID, &u.DisplayName, &admin, &disabled, &created); err != nil {
		return u, err
	}
	u.Admin, u.Disabled, u.Created = admin != 0, disabled != 0, FromMicros(created)
	return u, nil
}

// PutUser adds a user.
func (c *Chat) PutUser(ctx context.Context, u storage.ChatUser) (storage.ChatUser, error) {
	if err := Name("user id", u.ID); err != nil {
		return u, c.errf("put user", err)
	}
	if err := OptionalName("display name", u.DisplayName); err != nil {
		return u, c.errf("put user", err)
	}
	u.Created = Time(c.now())
	err := c.db.Write(ctx, func(q Querier) error {
		n, err := q.Exec(ctx, `INSERT INTO chat_users (`+userCols+`) VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
			u.ID, u.DisplayName, b2i(u.Admin), b2i(u.Disabled), Micros(u.Created))
		if err == nil && n == 0 {
			err = fmt.Errorf("%w: user %q exists", storage.ErrConflict, u.ID)
		}
		return err
	})
	if err != nil {
		return u, c.errf("put user "+u.ID, err)
	}
	return u, nil
}

// GetUser returns a user.
func (c *Chat) GetUser(ctx context.Context, id string) (storage.ChatUser, error) {
	q, err := c.db.Read()
	if err != nil {
		return storage.ChatUser{}, err
	}
	var u storage.ChatUser
	err = one(ctx, q, `SELECT `+userCols+` FROM chat_users WHERE id = ?`, []any{id}, func(scan func(...any) error) error {
		u, err = scanUser(scan)
		return err
	})
	if err != nil {
		return u, c.errf("get user "+id, err)
	}
	return u, nil
}

// ListUsers returns a page of users by id.
func (c *Chat) ListUsers(ctx context.Context, after string, limit int) ([]storage.ChatUser, error) {
	if err := limitOf(limit); err != nil {
		return nil, c.errf("list users", err)
	}
	q, err := c.db.Read()
	if err != nil {
		return nil, err
	}
	var out []storage.ChatUser
	err = q.Query(ctx, `SELECT `+userCols+` FROM chat_users WHERE id > ? ORDER BY id LIMIT ?`, []any{after, limit},
		func(scan func(...any) error) error {
			u, err := scanUser(scan)
			out = append(out, u)
			return err
		})
	if err != nil {
		return nil, c.errf("list users", err)
	}
	return out, nil
}

// SetUserDisabled disables or enables a user.
func (c *Chat) SetUserDisabled(ctx context.Context, id string, disabled bool) error {
	err := c.db.Write(ctx, func(q Querier) error {
		n, err := q.Exec(ctx, `UPDATE chat_users SET disabled = ? WHERE id = ?`, b2i(disabled), id)
		if err == nil && n == 0 {
			err = storage.ErrNotFound
		}
		return err
	})
	if err != nil {
		return c.errf("disable user "+id, err)
	}
	return nil
}

// --- conversations

const convCols = `id, kind, name, topic, archived, creator, direct_key, overrides, created_us`

func scanConv(scan func(dest ...any) error, extra ...any) (storage.Conversation, error) {
	var v storage.Conversation
	var archived, created int64
	var overrides string
	dest := append([]any{&v.ID, &v.Kind, &v.Name, &v.Topic, &archived, &v.Creator, &v.DirectKey, &overrides, &created}, extra...)
	if err := scan(dest...); err != nil {
		return v, err
	}
	v.Archived, v.Created = archived != 0, FromMicros(created)
	if overrides != "" {
		if err := json.Unmarshal([]byte(overrides), &v.Overrides); err != nil {
			return v, fmt.Errorf("decode overrides of %s: %w", v.ID, err)
		}
	}
	return v, nil
}

func encodeJSON(v any, empty bool) (string, error) {
	if empty {
		return "", nil
	}
	b, err := json.Marshal(v)
	return string(b), err
}

func checkConv(v storage.Conversation) error {
	if err := Name("conversation id", v.ID); err != nil {
		return err
	}
	switch v.Kind {
	case "channel", "group", "direct":
	default:
		return fmt.Errorf("%w: conversation kind %q", storage.ErrInvalid, v.Kind)
	}
	for what, s := range map[string]string{"name": v.Name, "topic": v.Topic, "creator": v.Creator, "direct key": v.DirectKey} {
		if err := OptionalName(what, s); err != nil {
			return err
		}
	}
	return nil
}

// CreateConversation stores a conversation and its first members.
func (c *Chat) CreateConversation(ctx context.Context, v storage.Conversation, members []storage.ChatMember) (storage.Conversation, error) {
	if err := checkConv(v); err != nil {
		return v, c.errf("create conversation", err)
	}
	ov, err := encodeJSON(v.Overrides, len(v.Overrides) == 0)
	if err != nil {
		return v, c.errf("create conversation", err)
	}
	v.Created = Time(c.now())
	err = c.db.Write(ctx, func(q Querier) error {
		// DO NOTHING covers both unique keys: the id and the direct key.
		n, err := q.Exec(ctx, `INSERT INTO chat_conversations (`+convCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			v.ID, v.Kind, v.Name, v.Topic, b2i(v.Archived), v.Creator, v.DirectKey, ov, Micros(v.Created))
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("%w: conversation %q or its direct key exists", storage.ErrConflict, v.ID)
		}
		for _, m := range members {
			m.Conversation = v.ID
			if err := c.putMember(ctx, q, m); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return v, c.errf("create conversation "+v.ID, err)
	}
	return v, nil
}

func (c *Chat) getConv(ctx context.Context, where string, arg string) (storage.Conversation, error) {
	q, err := c.db.Read()
	if err != nil {
		return storage.Conversation{}, err
	}
	var v storage.Conversation
	err = one(ctx, q, `SELECT `+convCols+` FROM chat_conversations WHERE `+where+` = ?`, []any{arg}, func(scan func(...any) error) error {
		v, err = scanConv(scan)
		return err
	})
	return v, err
}

// GetConversation returns a conversation.
func (c *Chat) GetConversation(ctx context.Context, id string) (storage.Conversation, error) {
	v, err := c.getConv(ctx, "id", id)
	if err != nil {
		return v, c.errf("get conversation "+id, err)
	}
	return v, nil
}

// DirectConversation returns the direct chat with key.
func (c *Chat) DirectConversation(ctx context.Context, key string) (storage.Conversation, error) {
	if key == "" {
		return storage.Conversation{}, c.errf("direct conversation", fmt.Errorf("%w: empty key", storage.ErrInvalid))
	}
	v, err := c.getConv(ctx, "direct_key", key)
	if err != nil {
		return v, c.errf("direct conversation", err)
	}
	return v, nil
}

// UpdateConversation replaces name, topic, archived and overrides.
func (c *Chat) UpdateConversation(ctx context.Context, v storage.Conversation) error {
	if err := checkConv(v); err != nil {
		return c.errf("update conversation", err)
	}
	ov, err := encodeJSON(v.Overrides, len(v.Overrides) == 0)
	if err != nil {
		return c.errf("update conversation", err)
	}
	err = c.db.Write(ctx, func(q Querier) error {
		n, err := q.Exec(ctx, `UPDATE chat_conversations SET name = ?, topic = ?, archived = ?, overrides = ? WHERE id = ?`,
			v.Name, v.Topic, b2i(v.Archived), ov, v.ID)
		if err == nil && n == 0 {
			err = storage.ErrNotFound
		}
		return err
	})
	if err != nil {
		return c.errf("update conversation "+v.ID, err)
	}
	return nil
}

// ListConversations returns a page of conversations by id.
func (c *Chat) ListConversations(ctx context.Context, qq storage.ConversationQuery) ([]storage.ConversationSummary, error) {
	if err := limitOf(qq.Limit); err != nil {
		return nil, c.errf("list conversations", err)
	}
	q, err := c.db.Read()
	if err != nil {
		return nil, err
	}
	var out []storage.ConversationSummary
	if qq.Member == "" {
		err = q.Query(ctx, `SELECT `+convCols+` FROM chat_conversations WHERE id > ? AND (? = '' OR kind = ?) ORDER BY id LIMIT ?`,
			[]any{qq.After, qq.Kind, qq.Kind, qq.Limit}, func(scan func(...any) error) error {
				v, err := scanConv(scan)
				out = append(out, storage.ConversationSummary{Conversation: v})
				return err
			})
		if err != nil {
			return nil, c.errf("list conversations", err)
		}
		return out, nil
	}
	// The unread counts are correlated subqueries over the (conversation,
	// seq) index; a member's list is short.
	err = q.Query(ctx, `SELECT c.id, c.kind, c.name, c.topic, c.archived, c.creator, c.direct_key, c.overrides, c.created_us,
			m.role, m.read_seq,
			(SELECT COUNT(*) FROM chat_messages x WHERE x.conversation = c.id AND x.seq > m.read_seq AND x.author <> m.user_id AND x.deleted = 0),
			(SELECT COUNT(*) FROM chat_mentions y WHERE y.conversation = c.id AND y.user_id = m.user_id AND y.seq > m.read_seq)
		FROM chat_members m JOIN chat_conversations c ON c.id = m.conversation
		WHERE m.user_id = ? AND c.id > ? AND (? = '' OR c.kind = ?) ORDER BY c.id LIMIT ?`,
		[]any{qq.Member, qq.After, qq.Kind, qq.Kind, qq.Limit}, func(scan func(...any) error) error {
			var s storage.ConversationSummary
			var read, unread, mentions int64
			v, err := scanConv(scan, &s.Role, &read, &unread, &mentions)
			s.Conversation, s.ReadSeq, s.Unread, s.Mentions = v, storage.Seq(read), int(unread), int(mentions)
			out = append(out, s)
			return err
		})
	if err != nil {
		return nil, c.errf("list conversations of "+qq.Member, err)
	}
	return out, nil
}

// --- members

func (c *Chat) putMember(ctx context.Context, q Querier, m storage.ChatMember) error {
	if err := Name("member", m.User); err != nil {
		return err
	}
	if err := Name("role", m.Role); err != nil {
		return err
	}
	_, err := q.Exec(ctx, `INSERT INTO chat_members (conversation, user_id, role, read_seq, joined_us) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (conversation, user_id) DO UPDATE SET role = excluded.role`,
		m.Conversation, m.User, m.Role, int64(m.ReadSeq), Micros(c.now()))
	return err
}

// PutMember adds a member or changes its role.
func (c *Chat) PutMember(ctx context.Context, m storage.ChatMember) (bool, error) {
	created := false
	err := c.db.Write(ctx, func(q Querier) error {
		var n int64
		if err := q.Query(ctx, `SELECT COUNT(*) FROM chat_conversations WHERE id = ?`, []any{m.Conversation}, func(scan func(...any) error) error {
			return scan(&n)
		}); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("conversation %q: %w", m.Conversation, storage.ErrNotFound)
		}
		if err := q.Query(ctx, `SELECT COUNT(*) FROM chat_members WHERE conversation = ? AND user_id = ?`, []any{m.Conversation, m.User},
			func(scan func(...any) error) error { return scan(&n) }); err != nil {
			return err
		}
		created = n == 0
		return c.putMember(ctx, q, m)
	})
	if err != nil {
		return false, c.errf("put member "+m.User+" of "+m.Conversation, err)
	}
	return created, nil
}

// RemoveMember removes a member.
func (c *Chat) RemoveMember(ctx context.Context, conversation, user string) error {
	err := c.db.Write(ctx, func(q Querier) error {
		n, err := q.Exec(ctx, `DELETE FROM chat_members WHERE conversation = ? AND user_id = ?`, conversation, user)
		if err == nil && n == 0 {
			err = storage.ErrNotFound
		}
		return err
	})
	if err != nil {
		return c.errf("remove member "+user+" of "+conversation, err)
	}
	return nil
}

const memberCols = `conversation, user_id, role, read_seq, joined_us`

func scanMember(scan func(dest ...any) error) (storage.ChatMember, error) {
	var m storage.ChatMember
	var read, joined int64
	err := scan(&m.Conversation, &m.User, &m.Role, &read, &joined)
	m.ReadSeq, m.Joined = storage.Seq(read), FromMicros(joined)
	return m, err
}

// GetMember returns a membership.
func (c *Chat) GetMember(ctx context.Context, conversation, user string) (storage.ChatMember, error) {
	q, err := c.db.Read()
	if err != nil {
		return storage.ChatMember{}, err
	}
	var m storage.ChatMember
	err = one(ctx, q, `SELECT `+memberCols+` FROM chat_members WHERE conversation = ? AND user_id = ?`, []any{conversation, user},
		func(scan func(...any) error) error {
			m, err = scanMember(scan)
			return err
		})
	if err != nil {
		return m, c.errf("get member "+user+" of "+conversation, err)
	}
	return m, nil
}

// Members returns a page of members by user id.
func (c *Chat) Members(ctx context.Context, conversation, after string, limit int) ([]storage.ChatMember, error) {
	if err := limitOf(limit); err != nil {
		return nil, c.errf("members", err)
	}
	q, err := c.db.Read()
	if err != nil {
		return nil, err
	}
	var out []storage.ChatMember
	err = q.Query(ctx, `SELECT `+memberCols+` FROM chat_members WHERE conversation = ? AND user_id > ? ORDER BY user_id LIMIT ?`,
		[]any{conversation, after, limit}, func(scan func(...any) error) error {
			m, err := scanMember(scan)
			out = append(out, m)
			return err
		})
	if err != nil {
		return nil, c.errf("members of "+conversation, err)
	}
	return out, nil
}

// SetReadSeq moves a read marker forward.
func (c *Chat) SetReadSeq(ctx context.Context, conversation, user string, seq storage.Seq) (storage.Seq, error) {
	var now int64
	err := c.db.Write(ctx, func(q Querier) error {
		if _, err := q.Exec(ctx, `UPDATE chat_members SET read_seq = ? WHERE conversation = ? AND user_id = ? AND read_seq < ?`,
			int64(seq), conversation, user, int64(seq)); err != nil {
			return err
		}
		return one(ctx, q, `SELECT read_seq FROM chat_members WHERE conversation = ? AND user_id = ?`, []any{conversation, user},
			func(scan func(...any) error) error { return scan(&now) })
	})
	if err != nil {
		return 0, c.errf("read marker of "+user+" in "+conversation, err)
	}
	return storage.Seq(now), nil
}

// --- messages

const msgCols = `conversation, id, seq, author, text, reply_to, thread, mentions, mentions_all, attachments, edited, deleted, created_us, updated_us`

func scanMsg(scan func(dest ...any) error) (storage.ChatMessage, error) {
	var m storage.ChatMessage
	var seq, all, edited, deleted, created, updated int64
	var mentions, atts string
	if err := scan(&m.Conversation, &m.ID, &seq, &m.Author, &m.Text, &m.ReplyTo, &m.Thread, &mentions, &all, &atts,
		&edited, &deleted, &created, &updated); err != nil {
		return m, err
	}
	m.Seq, m.MentionsAll, m.Edited, m.Deleted = storage.Seq(seq), all != 0, edited != 0, deleted != 0
	m.Created, m.Updated = FromMicros(created), FromMicros(updated)
	if mentions != "" {
		if err := json.Unmarshal([]byte(mentions), &m.Mentions); err != nil {
			return m, fmt.Errorf("decode mentions of %s: %w", m.ID, err)
		}
	}
	if atts != "" {
		if err := json.Unmarshal([]byte(atts), &m.Attachments); err != nil {
			return m, fmt.Errorf("decode attachments of %s: %w", m.ID, err)
		}
	}
	return m, nil
}

// PutChatMessage stores a new message and its mentions.
func (c *Chat) PutChatMessage(ctx context.Context, m storage.ChatMessage) error {
	if m.Seq == 0 {
		return c.errf("put message", fmt.Errorf("%w: seq 0", storage.ErrInvalid))
	}
	put, err := c.MessageTx(m)
	if err != nil {
		return err
	}
	if err := c.db.Write(ctx, func(q Querier) error { return put(ctx, q, m.Seq) }); err != nil {
		return c.errf("put message "+m.ID+" in "+m.Conversation, err)
	}
	return nil
}

func getMsg(ctx context.Context, q Querier, conversation, id string) (storage.ChatMessage, error) {
	var m storage.ChatMessage
	err := one(ctx, q, `SELECT `+msgCols+` FROM chat_messages WHERE conversation = ? AND id = ?`, []any{conversation, id},
		func(scan func(...any) error) error {
			var err error
			m, err = scanMsg(scan)
			return err
		})
	return m, err
}

// GetChatMessage returns a message.
func (c *Chat) GetChatMessage(ctx context.Context, conversation, id string) (storage.ChatMessage, error) {
	q, err := c.db.Read()
	if err != nil {
		return storage.ChatMessage{}, err
	}
	m, err := getMsg(ctx, q, conversation, id)
	if err != nil {
		return m, c.errf("get message "+id+" in "+conversation, err)
	}
	return m, nil
}

func (c *Chat) messages(ctx context.Context, query string, args []any, reverse bool) ([]storage.ChatMessage, error) {
	q, err := c.db.Read()
	if err != nil {
		return nil, err
	}
	var out []storage.ChatMessage
	err = q.Query(ctx, query, args, func(scan func(...any) error) error {
		m, err := scanMsg(scan)
		out = append(out, m)
		return err
	})
	if err != nil {
		return nil, c.errf("read messages", err)
	}
	if reverse {
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
	}
	return out, nil
}

// ChatMessagesAfter returns messages with Seq > after, ascending.
func (c *Chat) ChatMessagesAfter(ctx context.Context, conversation string, after storage.Seq, limit int) ([]storage.ChatMessage, error) {
	if err := limitOf(limit); err != nil {
		return nil, c.errf("messages after", err)
	}
	return c.messages(ctx, `SELECT `+msgCols+` FROM chat_messages WHERE conversation = ? AND seq > ? ORDER BY seq LIMIT ?`,
		[]any{conversation, int64(after), limit}, false)
}

// ChatMessagesBefore returns the newest messages with Seq < before (0:
// all), ascending.
func (c *Chat) ChatMessagesBefore(ctx context.Context, conversation string, before storage.Seq, limit int) ([]storage.ChatMessage, error) {
	if err := limitOf(limit); err != nil {
		return nil, c.errf("messages before", err)
	}
	b := int64(before)
	if before == 0 {
		b = 1<<63 - 1
	}
	return c.messages(ctx, `SELECT `+msgCols+` FROM chat_messages WHERE conversation = ? AND seq < ? ORDER BY seq DESC LIMIT ?`,
		[]any{conversation, b, limit}, true)
}

// EditChatMessage records the old text and replaces it.
func (c *Chat) EditChatMessage(ctx context.Context, conversation, id, editor, text string, logSeq storage.Seq, at time.Time) (storage.ChatMessage, error) {
	if err := chatText("text", text, storage.MaxChatTextLen); err != nil {
		return storage.ChatMessage{}, c.errf("edit message", err)
	}
	var m storage.ChatMessage
	err := c.db.Write(ctx, func(q Querier) error {
		var err error
		if m, err = getMsg(ctx, q, conversation, id); err != nil {
			return err
		}
		if m.Deleted {
			return fmt.Errorf("%w: message %s is deleted", storage.ErrConflict, id)
		}
		var n int64
		if err := q.Query(ctx, `SELECT COUNT(*) FROM chat_edits WHERE conversation = ? AND message_id = ?`, []any{conversation, id},
			func(scan func(...any) error) error { return scan(&n) }); err != nil {
			return err
		}
		if _, err := q.Exec(ctx, `INSERT INTO chat_edits (conversation, message_id, n, text, editor, log_seq, at_us) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			conversation, id, n+1, m.Text, editor, int64(logSeq), Micros(at)); err != nil {
			return err
		}
		_, err = q.Exec(ctx, `UPDATE chat_messages SET text = ?, edited = 1, updated_us = ? WHERE conversation = ? AND id = ?`,
			text, Micros(at), conversation, id)
		m.Text, m.Edited, m.Updated = text, true, Time(at)
		return err
	})
	if err != nil {
		return m, c.errf("edit message "+id+" in "+conversation, err)
	}
	return m, nil
}

// ChatEdits returns a message's earlier versions, oldest first.
func (c *Chat) ChatEdits(ctx context.Context, conversation, id string) ([]storage.ChatEdit, error) {
	q, err := c.db.Read()
	if err != nil {
		return nil, err
	}
	var out []storage.ChatEdit
	err = q.Query(ctx, `SELECT text, editor, log_seq, at_us FROM chat_edits WHERE conversation = ? AND message_id = ? ORDER BY n`,
		[]any{conversation, id}, func(scan func(...any) error) error {
			var e storage.ChatEdit
			var seq, at int64
			err := scan(&e.Text, &e.Editor, &seq, &at)
			e.LogSeq, e.At = storage.Seq(seq), FromMicros(at)
			out = append(out, e)
			return err
		})
	if err != nil {
		return nil, c.errf("edits of "+id, err)
	}
	return out, nil
}

// DeleteChatMessage turns a message into a tombstone.
func (c *Chat) DeleteChatMessage(ctx context.Context, conversation, id string, at time.Time) (storage.ChatMessage, []storage.Seq, error) {
	var (
		m     storage.ChatMessage
		edits []storage.Seq
	)
	err := c.db.Write(ctx, func(q Querier) error {
		var err error
		if m, err = getMsg(ctx, q, conversation, id); err != nil {
			return err
		}
		if m.Deleted {
			return fmt.Errorf("%w: message %s is already deleted", storage.ErrConflict, id)
		}
		if err := q.Query(ctx, `SELECT log_seq FROM chat_edits WHERE conversation = ? AND message_id = ? ORDER BY n`, []any{conversation, id},
			func(scan func(...any) error) error {
				var s int64
				err := scan(&s)
				edits = append(edits, storage.Seq(s))
				return err
			}); err != nil {
			return err
		}
		for _, stmt := range []string{
			`DELETE FROM chat_edits WHERE conversation = ? AND message_id = ?`,
			`DELETE FROM chat_reactions WHERE conversation = ? AND message_id = ?`,
		} {
			if _, err := q.Exec(ctx, stmt, conversation, id); err != nil {
				return err
			}
		}
		if _, err := q.Exec(ctx, `DELETE FROM chat_mentions WHERE conversation = ? AND seq = ?`, conversation, int64(m.Seq)); err != nil {
			return err
		}
		_, err = q.Exec(ctx, `UPDATE chat_messages SET text = '', mentions = '', mentions_all = 0, attachments = '', deleted = 1, updated_us = ?
			WHERE conversation = ? AND id = ?`, Micros(at), conversation, id)
		return err
	})
	if err != nil {
		return m, nil, c.errf("delete message "+id+" in "+conversation, err)
	}
	return m, edits, nil
}

// --- reactions

func (c *Chat) reactionCount(ctx context.Context, q Querier, conversation, messageID, emoji string) (int, error) {
	var n int64
	err := q.Query(ctx, `SELECT COUNT(*) FROM chat_reactions WHERE conversation = ? AND message_id = ? AND emoji = ?`,
		[]any{conversation, messageID, emoji}, func(scan func(...any) error) error { return scan(&n) })
	return int(n), err
}

// AddReaction adds user's emoji to a message.
func (c *Chat) AddReaction(ctx context.Context, conversation, messageID, user, emoji string, at time.Time) (int, bool, error) {
	if err := Name("emoji", emoji); err != nil {
		return 0, false, c.errf("add reaction", err)
	}
	var (
		count int
		added bool
	)
	err := c.db.Write(ctx, func(q Querier) error {
		m, err := getMsg(ctx, q, conversation, messageID)
		if err != nil {
			return err
		}
		if m.Deleted {
			return fmt.Errorf("%w: message %s is deleted", storage.ErrConflict, messageID)
		}
		n, err := q.Exec(ctx, `INSERT INTO chat_reactions (conversation, message_id, emoji, user_id, at_us) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			conversation, messageID, emoji, user, Micros(at))
		if err != nil {
			return err
		}
		added = n > 0
		count, err = c.reactionCount(ctx, q, conversation, messageID, emoji)
		return err
	})
	if err != nil {
		return 0, false, c.errf("add reaction to "+messageID, err)
	}
	return count, added, nil
}

// RemoveReaction removes user's emoji from a message.
func (c *Chat) RemoveReaction(ctx context.Context, conversation, messageID, user, emoji string) (int, bool, error) {
	var (
		count   int
		removed bool
	)
	err := c.db.Write(ctx, func(q Querier) error {
		if _, err := getMsg(ctx, q, conversation, messageID); err != nil {
			return err
		}
		n, err := q.Exec(ctx, `DELETE FROM chat_reactions WHERE conversation = ? AND message_id = ? AND emoji = ? AND user_id = ?`,
			conversation, messageID, emoji, user)
		if err != nil {
			return err
		}
		removed = n > 0
		count, err = c.reactionCount(ctx, q, conversation, messageID, emoji)
		return err
	})
	if err != nil {
		return 0, false, c.errf("remove reaction from "+messageID, err)
	}
	return count, removed, nil
}

// maxReactionQuery caps the message ids of one Reactions call, keeping the
// statement's placeholder count within every driver's limit.
const maxReactionQuery = 500

// Reactions returns the aggregated reactions of messages.
func (c *Chat) Reactions(ctx context.Context, conversation string, messageIDs []string) ([]storage.ReactionCount, error) {
	if len(messageIDs) == 0 {
		return nil, nil
	}
	if len(messageIDs) > maxReactionQuery {
		return nil, c.errf("reactions", fmt.Errorf("%w: %d message ids, limit %d", storage.ErrInvalid, len(messageIDs), maxReactionQuery))
	}
	q, err := c.db.Read()
	if err != nil {
		return nil, err
	}
	args := []any{conversation}
	ph := make([]string, len(messageIDs))
	for i, id := range messageIDs {
		ph[i] = "?"
		args = append(args, id)
	}
	var out []storage.ReactionCount
	err = q.Query(ctx, `SELECT message_id, emoji, user_id FROM chat_reactions WHERE conversation = ? AND message_id IN (`+
		strings.Join(ph, ", ")+`) ORDER BY message_id, emoji, at_us, user_id`, args, func(scan func(...any) error) error {
		var mid, emoji, user string
		if err := scan(&mid, &emoji, &user); err != nil {
			return err
		}
		if n := len(out); n > 0 && out[n-1].MessageID == mid && out[n-1].Emoji == emoji {
			out[n-1].Count++
			out[n-1].Users = append(out[n-1].Users, user)
			return nil
		}
		out = append(out, storage.ReactionCount{MessageID: mid, Emoji: emoji, Count: 1, Users: []string{user}})
		return nil
	})
	if err != nil {
		return nil, c.errf("reactions in "+conversation, err)
	}
	return out, nil
}

// RedactMessage replaces a log message's body.
func (c *Chat) RedactMessage(ctx context.Context, channel string, seq storage.Seq, body []byte) error {
	if body == nil {
		body = []byte{}
	}
	err := c.db.Write(ctx, func(q Querier) error {
		n, err := q.Exec(ctx, `UPDATE messages SET body = ? WHERE channel_id = (SELECT id FROM channels WHERE name = ?) AND seq = ?`,
			body, channel, int64(seq))
		if err == nil && n == 0 {
			err = storage.ErrNotFound
		}
		return err
	})
	if err != nil {
		return c.errf(fmt.Sprintf("redact %s seq %d", channel, seq), err)
	}
	return nil
}
