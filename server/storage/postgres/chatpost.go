package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/server/storage/internal/sqlcommon"
)

// PostChatMessage implements storage.ChatStore: the chat row is written in
// the append's own transaction (messages.go, appendWith), after the
// channel's row lock assigned the sequence number, so a post is one
// commit.
func (s *Store) PostChatMessage(ctx context.Context, channel string, msg storage.Message, m storage.ChatMessage) (storage.AppendResult, error) {
	headers, digest, err := sqlcommon.Message(s.cfg, channel, msg)
	if err != nil {
		return storage.AppendResult{}, fmt.Errorf("storage/postgres: post to channel %q: %w", channel, err)
	}
	put, err := s.MessageTx(m)
	if err != nil {
		return storage.AppendResult{}, err
	}
	res, err := s.appendWith(ctx, channel, msg, headers, digest, func(ctx context.Context, tx pgx.Tx, res storage.AppendResult) error {
		return put(ctx, querier{tx}, res.Seq)
	})
	if err != nil {
		return storage.AppendResult{}, fmt.Errorf("storage/postgres: post %s: %w", m.ID, err)
	}
	return res, nil
}
