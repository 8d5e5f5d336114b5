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
	advance, newChannel, insertMessage          *sql.Stmt // writer
	channelSeq, setSeq                          *sql.Stmt // writer, group fast path (appendfast.go)
	claimSeq, claimTail, claimMerge, claimClear *sql.Stmt // writer, claim log (claims.go)
	dedupLookup                                 *sql.Stmt // writer, claim log (claims.go)
	savepoint, release, rollbackTo              *sql.Stmt // writer, one operation of a group commit (appends.go)
	upsertSession, touchSession, closeSession   *sql.Stmt // writer, session records (sessions.go)
	after, before                               *sql.Stmt // readers

	// Multi-row inserts (rows.go): insertMessages[i] and insertClaims[i]
	// insert 1<<i rows with one statement.
	insertMessages, insertClaims [multiRowSizes]*sql.Stmt
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
		{&s.st.insertMessage, s.w, `INSERT INTO messages (channel_id, seq, sender, client_id, body, headers, at_us)
			VALUES (?, ?, ?, ?, ?, ?, ?)`},
		{&s.st.channelSeq, s.w, `SELECT id, last_seq FROM channels WHERE name = ?`},
		{&s.st.setSeq, s.w, `UPDATE channels SET last_seq = ? WHERE id = ?`},
		{&s.st.after, s.r, `SELECT ` + messageCols + ` FROM messages m JOIN channels c ON c.id = m.channel_id
			WHERE c.name = ? AND m.seq > ? ORDER BY m.seq LIMIT ?`},
		{&s.st.before, s.r, `SELECT ` + messageCols + ` FROM messages m JOIN channels c ON c.id = m.channel_id
			WHERE c.name = ? AND m.seq < ? ORDER BY m.seq DESC LIMIT ?`},
		{&s.st.dedupLookup, s.w, claimStatements["dedupLookup"]},
		{&s.st.savepoint, s.w, `SAVEPOINT append_one`},
		{&s.st.release, s.w, `RELEASE append_one`},
		{&s.st.rollbackTo, s.w, `ROLLBACK TO append_one`},
		{&s.st.upsertSession, s.w, upsertSessionSQL},
		{&s.st.touchSession, s.w, touchSessionSQL},
		{&s.st.closeSession, s.w, closeSessionSQL},
	} {
		st, err := p.db.PrepareContext(ctx, p.query)
		if err != nil {
			return fmt.Errorf("storage/sqlite: prepare %q: %w", p.query, err)
		}
		*p.st = st
	}
	if s.claimLog {
		for _, p := range []struct {
			st    **sql.Stmt
			query string
		}{
			{&s.st.claimSeq, claimStatements["claimSeq"]},
			{&s.st.claimTail, claimStatements["claimTail"]},
			{&s.st.claimMerge, claimStatements["claimMerge"]},
			{&s.st.claimClear, claimStatements["claimClear"]},
		} {
			st, err := s.w.PrepareContext(ctx, p.query)
			if err != nil {
				return fmt.Errorf("storage/sqlite: prepare %q: %w", p.query, err)
			}
			*p.st = st
		}
	}
	claimsSQL, claimCols := insertDedupSQL, dedupRowCols
	if s.claimLog {
		claimsSQL, claimCols = insertClaimsSQL, claimRowColsN
	}
	for i := range multiRowSizes {
		n := 1 << i
		for _, p := range []struct {
			st    **sql.Stmt
			query string
		}{
			{&s.st.insertMessages[i], insertMessagesSQL + rowValues(n, messageRowCols)},
			{&s.st.insertClaims[i], claimsSQL + rowValues(n, claimCols) + claimsUpsert(s.claimLog)},
		} {
			st, err := s.w.PrepareContext(ctx, p.query)
			if err != nil {
				return fmt.Errorf("storage/sqlite: prepare %d-row insert: %w", n, err)
			}
			*p.st = st
		}
	}
	return nil
}

// closeStmts closes the prepared statements that exist.
func (s *Store) closeStmts() error {
	var errs []error
	all := []*sql.Stmt{s.st.advance, s.st.newChannel, s.st.insertMessage, s.st.channelSeq, s.st.setSeq, s.st.after, s.st.before,
		s.st.claimSeq, s.st.claimTail, s.st.claimMerge, s.st.claimClear, s.st.dedupLookup,
		s.st.savepoint, s.st.release, s.st.rollbackTo, s.st.upsertSession, s.st.touchSession, s.st.closeSession}
	all = append(append(all, s.st.insertMessages[:]...), s.st.insertClaims[:]...)
	for _, st := range all {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(errs...)
}
