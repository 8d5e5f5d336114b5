package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/server/storage/internal/sqlcommon"
)

const sessionCols = `id, user_id, device_id, gateway, transport, remote_addr, since, last_seen, closed_at`

func scanSession(row pgx.Row) (storage.Session, error) {
	var (
		s               storage.Session
		since, lastSeen time.Time
		closed          *time.Time
	)
	if err := row.Scan(&s.ID, &s.UserID, &s.DeviceID, &s.Gateway, &s.Transport, &s.RemoteAddr, &since, &lastSeen, &closed); err != nil {
		return storage.Session{}, err
	}
	s.Since, s.LastSeen, s.ClosedAt = utc(since), utc(lastSeen), utcPtr(closed)
	return s, nil
}

// UpsertSession inserts or reopens a session; see storage.SessionStore.
func (s *Store) UpsertSession(ctx context.Context, in storage.Session) (storage.Session, error) {
	if err := sqlcommon.Session(in); err != nil {
		return storage.Session{}, fmt.Errorf("storage/postgres: upsert session: %w", err)
	}
	var out storage.Session
	now := s.now()
	err := s.write(ctx, func(tx pgx.Tx) error {
		// The WHERE clause makes the update a no-op, returning no row, when
		// the id belongs to another user: a session id is never handed over.
		var err error
		out, err = scanSession(tx.QueryRow(ctx, `INSERT INTO sessions (`+sessionCols+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $7, NULL)
			ON CONFLICT (id) DO UPDATE SET
				device_id = excluded.device_id, gateway = excluded.gateway,
				transport = excluded.transport, remote_addr = excluded.remote_addr,
				last_seen = excluded.last_seen, closed_at = NULL
			WHERE sessions.user_id = excluded.user_id
			RETURNING `+sessionCols,
			in.ID, in.UserID, in.DeviceID, in.Gateway, in.Transport, in.RemoteAddr, now))
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: session %q belongs to another user", storage.ErrConflict, in.ID)
		}
		return err
	})
	if err != nil {
		return storage.Session{}, fmt.Errorf("storage/postgres: upsert session %q: %w", in.ID, err)
	}
	return out, nil
}

// TouchSession sets an open session's LastSeen to now.
func (s *Store) TouchSession(ctx context.Context, id string) error {
	return s.sessionUpdate(ctx, "touch", id, `UPDATE sessions SET last_seen = $1 WHERE id = $2 AND closed_at IS NULL`)
}

// CloseSession marks a session closed, keeping the first close time.
func (s *Store) CloseSession(ctx context.Context, id string) error {
	return s.sessionUpdate(ctx, "close", id, `UPDATE sessions SET closed_at = COALESCE(closed_at, $1) WHERE id = $2`)
}

func (s *Store) sessionUpdate(ctx context.Context, what, id, query string) error {
	if err := sqlcommon.Name("session id", id); err != nil {
		return fmt.Errorf("storage/postgres: %s session: %w", what, err)
	}
	db, err := s.db()
	if err != nil {
		return err
	}
	tag, err := db.Exec(ctx, query, s.now(), id)
	if err == nil && tag.RowsAffected() == 0 {
		err = storage.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("storage/postgres: %s session %q: %w", what, id, err)
	}
	return nil
}

// GetSession returns one session or ErrNotFound.
func (s *Store) GetSession(ctx context.Context, id string) (storage.Session, error) {
	db, err := s.db()
	if err != nil {
		return storage.Session{}, err
	}
	out, err := scanSession(db.QueryRow(ctx, `SELECT `+sessionCols+` FROM sessions WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		err = storage.ErrNotFound
	}
	if err != nil {
		return storage.Session{}, fmt.Errorf("storage/postgres: get session %q: %w", id, err)
	}
	return out, nil
}

// ListSessions returns sessions by user or by gateway, ordered by ID.
func (s *Store) ListSessions(ctx context.Context, q storage.SessionQuery) ([]storage.Session, error) {
	if err := sqlcommon.SessionQuery(q); err != nil {
		return nil, fmt.Errorf("storage/postgres: list sessions: %w", err)
	}
	db, err := s.db()
	if err != nil {
		return nil, err
	}
	col, val := "user_id", q.UserID
	if q.Gateway != "" {
		col, val = "gateway", q.Gateway
	}
	query := `SELECT ` + sessionCols + ` FROM sessions WHERE ` + col + ` = $1 AND id > $2`
	if !q.IncludeClosed {
		query += ` AND closed_at IS NULL`
	}
	query += ` ORDER BY id LIMIT $3`
	rows, err := db.Query(ctx, query, val, q.After, s.cfg.PageLimit(q.Limit))
	if err != nil {
		return nil, fmt.Errorf("storage/postgres: list sessions of %s %q: %w", col, val, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (storage.Session, error) { return scanSession(r) })
	if err != nil {
		return nil, fmt.Errorf("storage/postgres: list sessions of %s %q: %w", col, val, err)
	}
	return out, nil
}

// ExpireSessions closes open sessions not seen since staleBefore.
func (s *Store) ExpireSessions(ctx context.Context, staleBefore time.Time) (int64, error) {
	return s.exec(ctx, "expire sessions",
		`UPDATE sessions SET closed_at = $1 WHERE closed_at IS NULL AND last_seen < $2`, s.now(), sqlcommon.Time(staleBefore))
}

// CloseGatewaySessions closes every open session of one gateway.
func (s *Store) CloseGatewaySessions(ctx context.Context, gateway string) (int64, error) {
	if err := sqlcommon.Name("gateway", gateway); err != nil {
		return 0, fmt.Errorf("storage/postgres: close gateway sessions: %w", err)
	}
	return s.exec(ctx, "close sessions of gateway "+gateway,
		`UPDATE sessions SET closed_at = $1 WHERE closed_at IS NULL AND gateway = $2`, s.now(), gateway)
}

// PurgeSessions deletes sessions closed before closedBefore.
func (s *Store) PurgeSessions(ctx context.Context, closedBefore time.Time) (int64, error) {
	return s.exec(ctx, "purge sessions",
		`DELETE FROM sessions WHERE closed_at IS NOT NULL AND closed_at < $1`, sqlcommon.Time(closedBefore))
}

// exec runs one statement outside an explicit transaction and returns the
// rows it affected.
func (s *Store) exec(ctx context.Context, what, query string, args ...any) (int64, error) {
	db, err := s.db()
	if err != nil {
		return 0, err
	}
	tag, err := db.Exec(ctx, query, args...)
	if err != nil {
		return 0, fmt.Errorf("storage/postgres: %s: %w", what, err)
	}
	return tag.RowsAffected(), nil
}

// maxTouchBatch caps the sessions one TouchSessions statement updates.
const maxTouchBatch = 1024

// TouchSessions sets LastSeen to now for the open sessions among ids,
// with one statement per maxTouchBatch ids instead of one round trip per
// session (the gateway touches all of its live sessions every minute).
// Ids of closed or unknown sessions are skipped, as TouchSession would
// refuse them.
func (s *Store) TouchSessions(ctx context.Context, ids []string) error {
	for _, id := range ids {
		if err := sqlcommon.Name("session id", id); err != nil {
			return fmt.Errorf("storage/postgres: touch sessions: %w", err)
		}
	}
	db, err := s.db()
	if err != nil {
		return err
	}
	for len(ids) > 0 {
		n := min(len(ids), maxTouchBatch)
		if _, err := db.Exec(ctx, `UPDATE sessions SET last_seen = $1 WHERE id = ANY($2) AND closed_at IS NULL`, s.now(), ids[:n]); err != nil {
			return fmt.Errorf("storage/postgres: touch %d sessions: %w", n, err)
		}
		ids = ids[n:]
	}
	return nil
}
