package sqlcommon

import (
	"context"
	"fmt"

	"github.com/jetstreamproto/jsp/server/storage"
)

// MessageTx validates m and returns the statements that store it inside a
// transaction the caller runs: the message row at seq (m.Seq is ignored),
// its mentions, and the author's read marker moved to it. A backend's
// PostChatMessage runs them in the transaction of the message-log append
// that assigned seq, so a post costs one commit; PutChatMessage runs them
// on their own. The statements return ErrConflict when the message id or
// seq exists.
func (c *Chat) MessageTx(m storage.ChatMessage) (func(ctx context.Context, q Querier, seq storage.Seq) error, error) {
	if err := Name("message id", m.ID); err != nil {
		return nil, c.errf("put message", err)
	}
	if err := Name("conversation", m.Conversation); err != nil {
		return nil, c.errf("put message", err)
	}
	if err := chatText("text", m.Text, storage.MaxChatTextLen); err != nil {
		return nil, c.errf("put message", err)
	}
	mentions, err := encodeJSON(m.Mentions, len(m.Mentions) == 0)
	if err != nil {
		return nil, c.errf("put message", err)
	}
	atts, err := encodeJSON(m.Attachments, len(m.Attachments) == 0)
	if err != nil {
		return nil, c.errf("put message", err)
	}
	if m.Created.IsZero() {
		m.Created = c.now()
	}
	return func(ctx context.Context, q Querier, seq storage.Seq) error {
		if seq == 0 {
			return fmt.Errorf("%w: seq 0", storage.ErrInvalid)
		}
		n, err := q.Exec(ctx, `INSERT INTO chat_messages (`+msgCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0, ?, 0) ON CONFLICT DO NOTHING`,
			m.Conversation, m.ID, int64(seq), m.Author, m.Text, m.ReplyTo, m.Thread, mentions, b2i(m.MentionsAll), atts, Micros(m.Created))
		if err != nil {
			return fmt.Errorf("insert message %s: %w", m.ID, err)
		}
		if n == 0 {
			return fmt.Errorf("%w: message %q or seq %d exists", storage.ErrConflict, m.ID, seq)
		}
		// The author has read what they wrote.
		if _, err := q.Exec(ctx, `UPDATE chat_members SET read_seq = ? WHERE conversation = ? AND user_id = ? AND read_seq < ?`,
			int64(seq), m.Conversation, m.Author, int64(seq)); err != nil {
			return fmt.Errorf("move read marker of %s: %w", m.Author, err)
		}
		for _, u := range m.Mentions {
			if _, err := q.Exec(ctx, `INSERT INTO chat_mentions (conversation, user_id, seq) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
				m.Conversation, u, int64(seq)); err != nil {
				return fmt.Errorf("mention %s: %w", u, err)
			}
		}
		return nil
	}, nil
}
