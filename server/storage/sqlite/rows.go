package sqlite

import (
	"context"
	"database/sql"
	"fmt"
)

// Multi-row inserts (D41). A group's messages and claims are inserted
// with one statement per power of two of rows rather than one per row:
// each statement execution through database/sql and the driver costs a
// lock, a bind pass, a VM start and a reset whatever its row count, and
// that per-execution cost was as large as the inserts' own B-tree work. The
// statements are prepared at open for 1, 2, 4, ... 64 rows, so a group of
// n rows takes at most popcount(n) executions of 64-row steps plus the
// bits of the rest, with no statement prepared while the loop runs (it
// would wait for the one writer connection, which the loop holds).

// multiRowSizes is the number of prepared sizes: 1<<0 ... 1<<6 rows.
const multiRowSizes = 7

// maxMultiRows is the largest prepared statement's row count.
const maxMultiRows = 1 << (multiRowSizes - 1)

const (
	insertMessagesSQL = `INSERT INTO messages (channel_id, seq, sender, client_id, body, headers, at_us) VALUES `
	messageRowCols    = 7
	insertClaimsSQL   = `INSERT INTO message_claims (` + claimRowCols + `) VALUES `
	claimRowColsN     = 7
	insertDedupSQL    = `INSERT INTO message_dedup (sender, client_id, channel_id, seq, digest, at_us) VALUES `
	dedupRowCols      = 6
)

// claimsUpsert ends the claims insert: without the claim log (a database
// at a schema before it) a claim goes straight into message_dedup and
// takes over the expired entry of its key, if any; the caller has checked
// that no live one exists.
func claimsUpsert(claimLog bool) string {
	if claimLog {
		return ""
	}
	return ` ON CONFLICT (sender, client_id) DO UPDATE SET
		channel_id = excluded.channel_id, seq = excluded.seq,
		digest = excluded.digest, at_us = excluded.at_us
		WHERE message_dedup.at_us < ?`
}

// insertRows inserts len(args)/cols rows with the statements of sts, the
// largest first: args holds the rows' values, row after row. It returns
// the rows changed, which an upsert's WHERE may leave below the rows given.
func insertRows(ctx context.Context, tx *sql.Tx, sts *[multiRowSizes]*sql.Stmt, cols int, args []any, extra ...any) (int64, error) {
	var changed int64
	for len(args) > 0 {
		n := len(args) / cols
		i := multiRowSizes - 1
		for 1<<i > n {
			i--
		}
		k := (1 << i) * cols
		stmtArgs := args[:k]
		if len(extra) > 0 {
			stmtArgs = append(stmtArgs[:k:k], extra...)
		}
		res, err := tx.StmtContext(ctx, sts[i]).ExecContext(ctx, stmtArgs...)
		if err != nil {
			return changed, fmt.Errorf("insert %d rows: %w", 1<<i, err)
		}
		got, err := res.RowsAffected()
		if err != nil {
			return changed, fmt.Errorf("insert %d rows: %w", 1<<i, err)
		}
		changed += got
		args = args[k:]
	}
	return changed, nil
}

// messageArgs appends one messages row's values to args.
func messageArgs(args []any, channelID, seq int64, r *appendReq, at int64) []any {
	var hdr any
	if r.headers != nil {
		hdr = string(r.headers)
	}
	body := r.m.Body
	if body == nil {
		body = []byte{}
	}
	return append(args, channelID, seq, r.m.Sender, r.m.ClientID, body, hdr, at)
}

// claimArgs appends one claim row's values to args: a claim log row, or
// a message_dedup row without the claim log.
func (s *Store) claimArgs(args []any, k claimKey, e claimEntry) []any {
	if !s.claimLog {
		return append(args, k.sender, k.clientID, e.channelID, e.seq, e.digest, e.at)
	}
	return append(args, e.id, k.sender, k.clientID, e.channelID, e.seq, e.digest, e.at)
}

// claimExtra is the claims insert's parameters after its rows: the
// window's cutoff for the upsert into message_dedup.
func (s *Store) claimExtra(cutoff int64) []any {
	if s.claimLog {
		return nil
	}
	return []any{cutoff}
}

// claimCols is the column count of claimArgs' rows.
func (s *Store) claimCols() int {
	if !s.claimLog {
		return dedupRowCols
	}
	return claimRowColsN
}
