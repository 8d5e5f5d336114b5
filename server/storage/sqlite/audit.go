package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/server/storage/internal/sqlcommon"
)

// AppendAudit stores an audit event and returns its ID.
func (s *Store) AppendAudit(ctx context.Context, e storage.AuditEvent) (storage.AuditID, error) {
	detail, err := sqlcommon.Audit(s.cfg, e)
	if err != nil {
		return 0, fmt.Errorf("storage/sqlite: append audit event %q: %w", e.Action, err)
	}
	at := sqlcommon.Micros(e.Time)
	if e.Time.IsZero() {
		at = s.now()
	}
	var d any
	if detail != nil {
		d = string(detail)
	}
	var id storage.AuditID
	err = s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `INSERT INTO audit_log (at_us, actor, action, target, detail, remote_addr)
			VALUES (?, ?, ?, ?, ?, ?) RETURNING id`, at, e.Actor, e.Action, e.Target, d, e.RemoteAddr).Scan(&id)
	})
	if err != nil {
		return 0, fmt.Errorf("storage/sqlite: append audit event %q: %w", e.Action, err)
	}
	return id, nil
}

// QueryAudit returns one page of audit events in (Time, ID) order.
func (s *Store) QueryAudit(ctx context.Context, q storage.AuditQuery) (storage.AuditPage, error) {
	if err := sqlcommon.AuditQuery(q); err != nil {
		return storage.AuditPage{}, fmt.Errorf("storage/sqlite: query audit log: %w", err)
	}
	r, err := s.reader()
	if err != nil {
		return storage.AuditPage{}, err
	}
	var (
		where []string
		args  []any
	)
	if !q.Since.IsZero() {
		where, args = append(where, `at_us >= ?`), append(args, sqlcommon.Micros(q.Since))
	}
	if !q.Until.IsZero() {
		where, args = append(where, `at_us < ?`), append(args, sqlcommon.Micros(q.Until))
	}
	if q.Actor != "" {
		where, args = append(where, `actor = ?`), append(args, q.Actor)
	}
	if q.Action != "" {
		where, args = append(where, `action = ?`), append(args, q.Action)
	}
	cmp, order := ">", "ASC"
	if q.Reverse {
		cmp, order = "<", "DESC"
	}
	if !q.After.IsZero() {
		where = append(where, `(at_us, id) `+cmp+` (?, ?)`)
		args = append(args, sqlcommon.Micros(q.After.Time), q.After.ID)
	}
	limit := s.cfg.PageLimit(q.Limit)
	query := `SELECT id, at_us, actor, action, target, detail, remote_addr FROM audit_log`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, ` AND `)
	}
	// One row more than the page tells whether a next page exists.
	query += ` ORDER BY at_us ` + order + `, id ` + order + ` LIMIT ?`
	args = append(args, limit+1)
	rows, err := r.QueryContext(ctx, query, args...)
	if err != nil {
		return storage.AuditPage{}, fmt.Errorf("storage/sqlite: query audit log: %w", err)
	}
	defer rows.Close()
	var page storage.AuditPage
	for rows.Next() {
		var (
			e      storage.AuditEvent
			at     int64
			detail sql.NullString
		)
		if err := rows.Scan(&e.ID, &at, &e.Actor, &e.Action, &e.Target, &detail, &e.RemoteAddr); err != nil {
			return storage.AuditPage{}, fmt.Errorf("storage/sqlite: query audit log: %w", err)
		}
		e.Time = sqlcommon.FromMicros(at)
		if detail.Valid {
			e.Detail = []byte(detail.String)
		}
		page.Events = append(page.Events, e)
	}
	if err := rows.Err(); err != nil {
		return storage.AuditPage{}, fmt.Errorf("storage/sqlite: query audit log: %w", err)
	}
	if len(page.Events) > limit {
		page.Events = page.Events[:limit]
		last := page.Events[limit-1]
		page.Next = storage.AuditCursor{Time: last.Time, ID: last.ID}
	}
	return page, nil
}

// PurgeAudit deletes events older than before.
func (s *Store) PurgeAudit(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM audit_log WHERE at_us < ?`, sqlcommon.Micros(before))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("storage/sqlite: purge audit log: %w", err)
	}
	return n, nil
}
