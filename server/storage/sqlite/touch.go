package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/jetstreamproto/jsp/server/storage/internal/sqlcommon"
)

// maxTouchBatch caps the sessions touched in one transaction, bounding the
// time one TouchSessions transaction holds the writer that the message
// log's group commits also need.
const maxTouchBatch = 512

// TouchSessions sets LastSeen to now for the open sessions among ids, in
// transactions of up to maxTouchBatch sessions (D36). A gateway touches all
// of its live sessions every minute; one TouchSession per session is one
// transaction and one fsync each, which with 10,000 sessions kept the
// writer busy for most of the minute and made every group commit of the
// message log wait behind a touch. Ids of closed or unknown sessions are
// skipped, as TouchSession would refuse them.
func (s *Store) TouchSessions(ctx context.Context, ids []string) error {
	for _, id := range ids {
		if err := sqlcommon.Name("session id", id); err != nil {
			return fmt.Errorf("storage/sqlite: touch sessions: %w", err)
		}
	}
	for len(ids) > 0 {
		n := min(len(ids), maxTouchBatch)
		batch := ids[:n]
		ids = ids[n:]
		err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
			st, err := tx.PrepareContext(ctx, `UPDATE sessions SET last_seen_us = ? WHERE id = ? AND closed_us IS NULL`)
			if err != nil {
				return err
			}
			defer st.Close()
			now := s.now()
			for _, id := range batch {
				if _, err := st.ExecContext(ctx, now, id); err != nil {
					return fmt.Errorf("session %q: %w", id, err)
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("storage/sqlite: touch %d sessions: %w", len(batch), err)
		}
	}
	return nil
}
