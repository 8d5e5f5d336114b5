package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/server/storage/internal/sqlcommon"
)

// PostChatMessage implements storage.ChatStore: the chat row rides in the
// message's savepoint of the append loop's group commit (appends.go), so
// a post costs no commit of its own and shares the group's fsync with the
// other appends waiting.
func (s *Store) PostChatMessage(ctx context.Context, channel string, msg storage.Message, m storage.ChatMessage) (storage.AppendResult, error) {
	headers, digest, err := sqlcommon.Message(s.cfg, channel, msg)
	if err != nil {
		return storage.AppendResult{}, fmt.Errorf("storage/sqlite: post to channel %q: %w", channel, err)
	}
	put, err := s.MessageTx(m)
	if err != nil {
		return storage.AppendResult{}, err
	}
	res, err := s.submitAppend(ctx, &appendReq{ctx: ctx, channel: channel, m: msg, headers: headers, digest: digest,
		then: func(ctx context.Context, tx *sql.Tx, res storage.AppendResult) error {
			return put(ctx, querier{q: tx, ctx: ctx}, res.Seq)
		}})
	if err != nil {
		return storage.AppendResult{}, fmt.Errorf("storage/sqlite: post %s to channel %q: %w", m.ID, channel, err)
	}
	return res, nil
}
