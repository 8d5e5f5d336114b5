package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/jetstreamproto/jsp/server/storage/internal/sqlcommon"
)

// chatDB lends the store's pool to the shared chat implementation
// (sqlcommon.Chat), rewriting its "?" placeholders.
type chatDB struct{ s *Store }

type pgQuerier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

type querier struct{ q pgQuerier }

func (q querier) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	tag, err := q.q.Exec(ctx, sqlcommon.Rebind(query), args...)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

func (q querier) Query(ctx context.Context, query string, args []any, row func(scan func(dest ...any) error) error) error {
	rows, err := q.q.Query(ctx, sqlcommon.Rebind(query), args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := row(rows.Scan); err != nil {
			return err
		}
	}
	return rows.Err()
}

func (c chatDB) Write(ctx context.Context, fn func(q sqlcommon.Querier) error) error {
	return c.s.write(ctx, func(tx pgx.Tx) error { return fn(querier{tx}) })
}

func (c chatDB) Read() (sqlcommon.Querier, error) {
	db, err := c.s.db()
	if err != nil {
		return nil, err
	}
	return querier{db}, nil
}
