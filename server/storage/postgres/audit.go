package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/server/storage/internal/sqlcommon"
)

// AppendAudit stores an audit event and returns its ID.
func (s *Store) AppendAudit(ctx context.Context, e storage.AuditEvent) (storage.AuditID, error) {
	detail, err := sqlcommon.Audit(s.cfg, e)
	if err != nil {
		return 0, fmt.Errorf("storage/postgres: append audit event %q: %w", e.Action, err)
	}
	at := sqlcommon.Time(e.Time)
	if e.Time.IsZero() {
		at = s.now()
	}
	var d any
	if detail != nil {
		// A string parameter cast to jsonb: PostgreSQL parses it.
		d = string(detail)
	}
	db, err := s.db()
	if err != nil {
		return 0, err
	}
	var id storage.AuditID
	err = db.QueryRow(ctx, `INSERT INTO audit_log (at, actor, action, target, detail, remote_addr)
		VALUES ($1, $2, $3, $4, $5::text::jsonb, $6) RETURNING id`, at, e.Actor, e.Action, e.Target, d, e.RemoteAddr).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("storage/postgres: append audit event %q: %w", e.Action, err)
	}
	return id, nil
}

// QueryAudit returns one page of audit events in (Time, ID) order.
func (s *Store) QueryAudit(ctx context.Context, q storage.AuditQuery) (storage.AuditPage, error) {
	if err := sqlcommon.AuditQuery(q); err != nil {
		return storage.AuditPage{}, fmt.Errorf("storage/postgres: query audit log: %w", err)
	}
	db, err := s.db()
	if err != nil {
		return storage.AuditPage{}, err
	}
	var (
		where []string
		args  []any
	)
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if !q.Since.IsZero() {
		where = append(where, `at >= `+arg(sqlcommon.Time(q.Since)))
	}
	if !q.Until.IsZero() {
		where = append(where, `at < `+arg(sqlcommon.Time(q.Until)))
	}
	if q.Actor != "" {
		where = append(where, `actor = `+arg(q.Actor))
	}
	if q.Action != "" {
		where = append(where, `action = `+arg(q.Action))
	}
	cmp, order := ">", "ASC"
	if q.Reverse {
		cmp, order = "<", "DESC"
	}
	if !q.After.IsZero() {
		where = append(where, `(at, id) `+cmp+` (`+arg(sqlcommon.Time(q.After.Time))+`, `+arg(int64(q.After.ID))+`)`)
	}
	limit := s.cfg.PageLimit(q.Limit)
	query := `SELECT id, at, actor, action, target, detail::text, remote_addr FROM audit_log`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, ` AND `)
	}
	// One row more than the page tells whether a next page exists.
	query += ` ORDER BY at ` + order + `, id ` + order + ` LIMIT ` + arg(limit+1)
	rows, err := db.Query(ctx, query, args...)
	if err != nil {
		return storage.AuditPage{}, fmt.Errorf("storage/postgres: query audit log: %w", err)
	}
	events, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (storage.AuditEvent, error) {
		var (
			e      storage.AuditEvent
			at     time.Time
			detail *string
		)
		if err := r.Scan(&e.ID, &at, &e.Actor, &e.Action, &e.Target, &detail, &e.RemoteAddr); err != nil {
			return e, err
		}
		e.Time = utc(at)
		if detail != nil {
			e.Detail = []byte(*detail)
		}
		return e, nil
	})
	if err != nil {
		return storage.AuditPage{}, fmt.Errorf("storage/postgres: query audit log: %w", err)
	}
	page := storage.AuditPage{Events: events}
	if len(page.Events) > limit {
		page.Events = page.Events[:limit]
		last := page.Events[limit-1]
		page.Next = storage.AuditCursor{Time: last.Time, ID: last.ID}
	}
	return page, nil
}

// PurgeAudit deletes events older than before.
func (s *Store) PurgeAudit(ctx context.Context, before time.Time) (int64, error) {
	return s.exec(ctx, "purge audit log", `DELETE FROM audit_log WHERE at < $1`, sqlcommon.Time(before))
}
