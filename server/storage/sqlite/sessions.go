package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/server/storage/internal/sqlcommon"
)

const sessionCols = `id, user_id, device_id, gateway, transport, remote_addr, since_us, last_seen_us, closed_us`

type scanner interface{ Scan(dest ...any) error }

func scanSession(sc scanner) (storage.Session, error) {
	var (
		s               storage.Session
		since, lastSeen int64
		closed          sql.NullInt64
	)
	if err := sc.Scan(&s.ID, &s.UserID, &s.DeviceID, &s.Gateway, &s.Transport, &s.RemoteAddr, &since, &lastSeen, &closed); err != nil {
		return storage.Session{}, err
	}
	s.Since = sqlcommon.FromMicros(since)
	s.LastSeen = sqlcommon.FromMicros(lastSeen)
	if closed.Valid {
		s.ClosedAt = sqlcommon.FromMicros(closed.Int64)
	}
	return s, nil
}

// UpsertSession inserts or reopens a session; see storage.SessionStore.
func (s *Store) UpsertSession(ctx context.Context, in storage.Session) (storage.Session, error) {
	if err := sqlcommon.Session(in); err != nil {
		return storage.Session{}, fmt.Errorf("storage/sqlite: upsert session: %w", err)
	}
	var out storage.Session
	now := s.now()
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		row := tx.StmtContext(ctx, s.st.upsertSession).QueryRowContext(ctx,
			in.ID, in.UserID, in.DeviceID, in.Gateway, in.Transport, in.RemoteAddr, now, now)
		var err error
		out, err = scanSession(row)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: session %q belongs to another user", storage.ErrConflict, in.ID)
		}
		return err
	})
	if err != nil {
		return storage.Session{}, fmt.Errorf("storage/sqlite: upsert session %q: %w", in.ID, err)
	}
	return out, nil
}

// upsertSessionSQL inserts a session or updates it. The WHERE clause
// makes the update a no-op, returning no row, when the id belongs to
// another user: a session id is never handed over.
const upsertSessionSQL = `INSERT INTO sessions (` + sessionCols + `)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)
	ON CONFLICT (id) DO UPDATE SET
		device_id = excluded.device_id, gateway = excluded.gateway,
		transport = excluded.transport, remote_addr = excluded.remote_addr,
		last_seen_us = excluded.last_seen_us, closed_us = NULL
	WHERE sessions.user_id = excluded.user_id
	RETURNING ` + sessionCols

// touchSessionSQL and closeSessionSQL take the time, then the id.
const (
	touchSessionSQL = `UPDATE sessions SET last_seen_us = ? WHERE id = ? AND closed_us IS NULL`
	closeSessionSQL = `UPDATE sessions SET closed_us = COALESCE(closed_us, ?) WHERE id = ?`
)

// TouchSession sets an open session's LastSeen to now.
func (s *Store) TouchSession(ctx context.Context, id string) error {
	return s.sessionUpdate(ctx, "touch", id, s.st.touchSession)
}

// CloseSession marks a session closed, keeping the first close time.
func (s *Store) CloseSession(ctx context.Context, id string) error {
	return s.sessionUpdate(ctx, "close", id, s.st.closeSession)
}

func (s *Store) sessionUpdate(ctx context.Context, what, id string, st *sql.Stmt) error {
	if err := sqlcommon.Name("session id", id); err != nil {
		return fmt.Errorf("storage/sqlite: %s session: %w", what, err)
	}
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.StmtContext(ctx, st).ExecContext(ctx, s.now(), id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return storage.ErrNotFound
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("storage/sqlite: %s session %q: %w", what, id, err)
	}
	return nil
}

// GetSession returns one session or ErrNotFound.
func (s *Store) GetSession(ctx context.Context, id string) (storage.Session, error) {
	return getByID(ctx, s, "sessions", sessionCols, "session", id, scanSession)
}

// ListSessions returns sessions by user or by gateway, ordered by ID.
func (s *Store) ListSessions(ctx context.Context, q storage.SessionQuery) ([]storage.Session, error) {
	if err := sqlcommon.SessionQuery(q); err != nil {
		return nil, fmt.Errorf("storage/sqlite: list sessions: %w", err)
	}
	r, err := s.reader()
	if err != nil {
		return nil, err
	}
	col, val := "user_id", q.UserID
	if q.Gateway != "" {
		col, val = "gateway", q.Gateway
	}
	query := `SELECT ` + sessionCols + ` FROM sessions WHERE ` + col + ` = ? AND id > ?`
	if !q.IncludeClosed {
		query += ` AND closed_us IS NULL`
	}
	query += ` ORDER BY id LIMIT ?`
	rows, err := r.QueryContext(ctx, query, val, q.After, s.cfg.PageLimit(q.Limit))
	if err != nil {
		return nil, fmt.Errorf("storage/sqlite: list sessions of %s %q: %w", col, val, err)
	}
	defer rows.Close()
	var out []storage.Session
	for rows.Next() {
		sess, err := scanSession(rows)
		if err != nil {
			return nil, fmt.Errorf("storage/sqlite: list sessions: %w", err)
		}
		out = append(out, sess)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage/sqlite: list sessions: %w", err)
	}
	return out, nil
}

// ExpireSessions closes open sessions not seen since staleBefore.
func (s *Store) ExpireSessions(ctx context.Context, staleBefore time.Time) (int64, error) {
	return s.sessionsExec(ctx, "expire sessions",
		`UPDATE sessions SET closed_us = ? WHERE closed_us IS NULL AND last_seen_us < ?`, s.now(), sqlcommon.Micros(staleBefore))
}

// CloseGatewaySessions closes every open session of one gateway.
func (s *Store) CloseGatewaySessions(ctx context.Context, gateway string) (int64, error) {
	if err := sqlcommon.Name("gateway", gateway); err != nil {
		return 0, fmt.Errorf("storage/sqlite: close gateway sessions: %w", err)
	}
	return s.sessionsExec(ctx, "close sessions of gateway "+gateway,
		`UPDATE sessions SET closed_us = ? WHERE closed_us IS NULL AND gateway = ?`, s.now(), gateway)
}

// PurgeSessions deletes sessions closed before closedBefore.
func (s *Store) PurgeSessions(ctx context.Context, closedBefore time.Time) (int64, error) {
	return s.sessionsExec(ctx, "purge sessions",
		`DELETE FROM sessions WHERE closed_us IS NOT NULL AND closed_us < ?`, sqlcommon.Micros(closedBefore))
}

func (s *Store) sessionsExec(ctx context.Context, what, query string, args ...any) (int64, error) {
	var n int64
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, query, args...)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("storage/sqlite: %s: %w", what, err)
	}
	return n, nil
}
