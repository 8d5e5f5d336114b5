package sqlite

import (
	"context"
	"database/sql"

	"github.com/jetstreamproto/jsp/server/storage/internal/sqlcommon"
)

// chatDB lends the store's writer and readers to the shared chat
// implementation (sqlcommon.Chat).
type chatDB struct{ s *Store }

type sqlQuerier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

type querier struct {
	q sqlQuerier
	// ctx, when set, replaces the caller's context of every statement: in
	// a group commit statements run under the append loop's context
	// (Store.write).
	ctx context.Context
}

// use is the context a statement runs with.
func (q querier) use(ctx context.Context) context.Context {
	if q.ctx != nil {
		return q.ctx
	}
	return ctx
}

func (q querier) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := q.q.ExecContext(q.use(ctx), query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (q querier) Query(ctx context.Context, query string, args []any, row func(scan func(dest ...any) error) error) error {
	rows, err := q.q.QueryContext(q.use(ctx), query, args...)
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
	return c.s.write(ctx, func(ctx context.Context, tx *sql.Tx) error { return fn(querier{q: tx, ctx: ctx}) })
}

func (c chatDB) Read() (sqlcommon.Querier, error) {
	r, err := c.s.reader()
	if err != nil {
		return nil, err
	}
	return querier{q: r}, nil
}
