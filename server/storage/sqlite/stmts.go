package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// stmts are the prepared statements of the hot paths: appends on the
// writer and history reads on the read pool. Preparing once saves SQLite's
// parse and plan per call, which otherwise dominates an append's CPU time.
// The writer's statements are prepared before the append loop starts: later
// preparation would wait for the one writer connection that a running
// transaction holds.
type stmts struct {
	advance, newChannel, claim, insertMessage, duplicate *sql.Stmt // writer
	channelSeq, setSeq, claimExec                        *sql.Stmt // writer, group fast path (appendfast.go)
	after, before                                        *sql.Stmt // readers
}

const messageCols = `m.seq, m.client_id, m.sender, m.body, m.headers, m.at_us`

func (s *Store) prepare(ctx context.Context) error {
	for _, p := range []struct {
		st    **sql.Stmt
		db    *sql.DB
		query string
	}{
		{&s.st.advance, s.w, `UPDATE channels SET last_seq = last_seq + 1 WHERE name = ? RETURNING id, last_seq`},
		{&s.st.newChannel, s.w, `INSERT INTO channels (name, last_seq, first_seq) VALUES (?, 1, 1) RETURNING id, last_seq`},
		{&s.st.claim, s.w, `INSERT INTO message_dedup (sender, client_id, channel_id, seq, digest, at_us)
			VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (sender, client_id) DO UPDATE SET
				channel_id = excluded.channel_id, seq = excluded.seq,
				digest = excluded.digest, at_us = excluded.at_us
			WHERE message_dedup.at_us < ?
			RETURNING seq`},
		{&s.st.insertMessage, s.w, `INSERT INTO messages (channel_id, seq, sender, client_id, body, headers, at_us)
			VALUES (?, ?, ?, ?, ?, ?, ?)`},
		{&s.st.claimExec, s.w, `INSERT INTO message_dedup (sender, client_id, channel_id, seq, digest, at_us)
			VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (sender, client_id) DO UPDATE SET
				channel_id = excluded.channel_id, seq = excluded.seq,
				digest = excluded.digest, at_us = excluded.at_us
			WHERE message_dedup.at_us < ?`},
		{&s.st.channelSeq, s.w, `SELECT id, last_seq FROM channels WHERE name = ?`},
		{&s.st.setSeq, s.w, `UPDATE channels SET last_seq = ? WHERE id = ?`},
		{&s.st.duplicate, s.w, `SELECT c.name, d.seq, d.digest, d.at_us FROM message_dedup d
			JOIN channels c ON c.id = d.channel_id
			WHERE d.sender = ? AND d.client_id = ? AND d.at_us >= ?`},
		{&s.st.after, s.r, `SELECT ` + messageCols + ` FROM messages m JOIN channels c ON c.id = m.channel_id
			WHERE c.name = ? AND m.seq > ? ORDER BY m.seq LIMIT ?`},
		{&s.st.before, s.r, `SELECT ` + messageCols + ` FROM messages m JOIN channels c ON c.id = m.channel_id
			WHERE c.name = ? AND m.seq < ? ORDER BY m.seq DESC LIMIT ?`},
	} {
		st, err := p.db.PrepareContext(ctx, p.query)
		if err != nil {
			return fmt.Errorf("storage/sqlite: prepare %q: %w", p.query, err)
		}
		*p.st = st
	}
	return nil
}

// closeStmts closes the prepared statements that exist.
func (s *Store) closeStmts() error {
	var errs []error
	for _, st := range []*sql.Stmt{s.st.advance, s.st.newChannel, s.st.claim, s.st.insertMessage, s.st.duplicate, s.st.channelSeq, s.st.setSeq, s.st.claimExec, s.st.after, s.st.before} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(errs...)
}
