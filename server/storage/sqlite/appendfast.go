package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/server/storage/internal/sqlcommon"
)

// The group fast path (decision D26). The savepoint path (appendSavepoint)
// runs five statements per message: SAVEPOINT, the counter increment, the
// de-duplication claim, the insert and RELEASE. Of these only the claim
// and the insert are the message's own work; the savepoint exists for the
// rare message that fails or turns out to be a duplicate, and the counter
// moves by one per message although only its final value matters.
//
// appendGroup commits the common case with a few statements per group:
// it reads each channel's counter once, numbers the messages in memory,
// checks each key against the claim log's copy in memory, the
// de-duplication filter or message_dedup (D41), inserts the messages and
// their claims with multi-row statements and writes each counter once at
// the end. A duplicate needs no undo here, because nothing of it was
// written: its key has a live entry, and its number is simply not used.
// Any statement error, or a channel that does not exist yet, makes the
// caller roll the whole transaction back and redo the group on the
// savepoint path, which isolates the failing message; so a group's outcome
// is the same on either path, and every answer still follows the commit.

// groupChannel is one channel's counter during a group.
type groupChannel struct {
	id, last int64
	moved    bool // last changed: write it back
}

// appendGroup appends batch in tx on the fast path, filling resps; the
// caller leaves out batches with a savepoint hook (appendReq.then). ok is
// false when the group must be redone on the savepoint path, after the
// caller rolled tx back; resps is then undefined. The messages and their
// claims are inserted with multi-row statements at the end (rows.go), the
// claims into the claim log (claims.go, D41).
func (s *Store) appendGroup(ctx context.Context, tx *sql.Tx, batch []*appendReq, now time.Time, resps []appendResp) (committed int, ok bool) {
	at := sqlcommon.Micros(now)
	cutoff := sqlcommon.Micros(now.Add(-s.cfg.DedupWindow))
	channelSeq := tx.StmtContext(ctx, s.st.channelSeq)
	chans := map[string]*groupChannel{}
	msgArgs := make([]any, 0, len(batch)*messageRowCols)
	var claimRows []any
	for i, r := range batch {
		if err := r.ctx.Err(); err != nil {
			resps[i] = appendResp{err: err}
			continue
		}
		ch := chans[r.channel]
		if ch == nil {
			ch = &groupChannel{}
			if err := channelSeq.QueryRowContext(ctx, r.channel).Scan(&ch.id, &ch.last); err != nil {
				// A new channel (sql.ErrNoRows) is created on the savepoint
				// path, which undoes it when its first message fails.
				return 0, false
			}
			chans[r.channel] = ch
		}
		seq := ch.last + 1
		m := r.m
		if m.ClientID != "" {
			e, res, dup, err := s.claimRequest(ctx, tx, r, ch.id, seq, at, cutoff, !s.claims.direct)
			if err != nil && !errors.Is(err, storage.ErrConflict) {
				return 0, false
			}
			if dup {
				// A live entry holds the id: a duplicate, or a conflict
				// the caller is told about. Nothing was written and no
				// number used.
				resps[i] = appendResp{res: res, err: err}
				continue
			}
			claimRows = s.claimArgs(claimRows, claimKey{m.Sender, m.ClientID}, e)
		}
		msgArgs = messageArgs(msgArgs, ch.id, seq, r, at)
		ch.last, ch.moved = seq, true
		resps[i] = appendResp{res: storage.AppendResult{Seq: storage.Seq(seq), Time: sqlcommon.FromMicros(at)}}
		committed++
	}
	if committed == 0 {
		return 0, true
	}
	if _, err := insertRows(ctx, tx, &s.st.insertMessages, messageRowCols, msgArgs); err != nil {
		return 0, false
	}
	changed, err := insertRows(ctx, tx, &s.st.insertClaims, s.claimCols(), claimRows, s.claimExtra(cutoff)...)
	if err != nil || changed != int64(len(claimRows)/s.claimCols()) {
		// Without the claim log, a key that message_dedup holds live was
		// refused by the upsert: the savepoint path finds which.
		return 0, false
	}
	setSeq := tx.StmtContext(ctx, s.st.setSeq)
	for _, ch := range chans {
		if !ch.moved {
			continue
		}
		if _, err := setSeq.ExecContext(ctx, ch.last, ch.id); err != nil {
			return 0, false
		}
	}
	return committed, true
}
