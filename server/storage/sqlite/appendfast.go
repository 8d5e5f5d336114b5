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
// appendGroup commits the common case with two statements per message: it
// reads each channel's counter once, numbers the messages in memory, claims
// and inserts each, and writes each counter once at the end. A duplicate
// needs no undo here, because nothing of it was written: its claim found a
// live entry and changed nothing, and its number is simply not used. Any
// statement error, or a channel that does not exist yet, makes the caller
// roll the whole transaction back and redo the group on the savepoint
// path, which isolates the failing message; so a group's outcome is the
// same on either path, and every answer still follows the commit.

// groupChannel is one channel's counter during a group.
type groupChannel struct {
	id, last int64
	moved    bool // last changed: write it back
}

// appendGroup appends batch in tx on the fast path, filling resps; the
// caller leaves out batches with a savepoint hook (appendReq.then). ok is
// false when the group must be redone on the savepoint path, after the
// caller rolled tx back; resps is then undefined.
func (s *Store) appendGroup(ctx context.Context, tx *sql.Tx, batch []*appendReq, now time.Time, resps []appendResp) (committed int, ok bool) {
	at := sqlcommon.Micros(now)
	cutoff := sqlcommon.Micros(now.Add(-s.cfg.DedupWindow))
	// One statement handle per group: StmtContext allocates a wrapper
	// per call.
	var (
		channelSeq = tx.StmtContext(ctx, s.st.channelSeq)
		claim      = tx.StmtContext(ctx, s.st.claimExec)
		insert     = tx.StmtContext(ctx, s.st.insertMessage)
	)
	chans := map[string]*groupChannel{}
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
			// The claim without RETURNING: a row count says what RETURNING
			// would, without a result set to step through and scan.
			var claimed int64
			out, err := claim.ExecContext(ctx, m.Sender, m.ClientID, ch.id, seq, r.digest, at, cutoff)
			if err == nil {
				claimed, err = out.RowsAffected()
			}
			if err != nil {
				return 0, false
			}
			if claimed == 0 {
				// A live entry holds the id: a duplicate, or a conflict
				// the caller is told about. Nothing was written.
				res, err := s.duplicate(ctx, tx, r.channel, m, r.digest, cutoff)
				if err != nil && !errors.Is(err, storage.ErrConflict) {
					return 0, false
				}
				resps[i] = appendResp{res: res, err: err}
				continue
			}
		}
		var hdr any
		if r.headers != nil {
			hdr = string(r.headers)
		}
		body := m.Body
		if body == nil {
			body = []byte{}
		}
		if _, err := insert.ExecContext(ctx, ch.id, seq, m.Sender, m.ClientID, body, hdr, at); err != nil {
			return 0, false
		}
		ch.last, ch.moved = seq, true
		resps[i] = appendResp{res: storage.AppendResult{Seq: storage.Seq(seq), Time: sqlcommon.FromMicros(at)}}
		committed++
	}
	if committed == 0 {
		return 0, true
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
