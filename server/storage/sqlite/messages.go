package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/server/storage/internal/sqlcommon"
)

// AppendMessage commits a message and assigns the channel's next sequence
// number; see storage.MessageLog. The message joins the append loop's next
// group commit (see appends.go).
func (s *Store) AppendMessage(ctx context.Context, channel string, m storage.Message) (storage.AppendResult, error) {
	headers, digest, err := sqlcommon.Message(s.cfg, channel, m)
	if err != nil {
		return storage.AppendResult{}, fmt.Errorf("storage/sqlite: append to channel %q: %w", channel, err)
	}
	res, err := s.submitAppend(ctx, &appendReq{ctx: ctx, channel: channel, m: m, headers: headers, digest: digest})
	if err != nil {
		return storage.AppendResult{}, fmt.Errorf("storage/sqlite: append to channel %q: %w", channel, err)
	}
	return res, nil
}

// appendInTx appends one message inside the group's transaction. dup
// reports a duplicate whose changes (the counter increment) the caller must
// roll back to the message's savepoint.
func (s *Store) appendInTx(ctx context.Context, tx *sql.Tx, r *appendReq, now time.Time) (res storage.AppendResult, dup bool, err error) {
	m := r.m
	at := sqlcommon.Micros(now)
	cutoff := sqlcommon.Micros(now.Add(-s.cfg.DedupWindow))
	var hdr any
	if r.headers != nil {
		hdr = string(r.headers)
	}
	body := m.Body
	if body == nil {
		body = []byte{}
	}
	// The counter row is incremented first; if anything below fails the
	// savepoint rolls back and the number is not used, so the sequence has
	// no gaps.
	var chID, seq int64
	err = tx.StmtContext(ctx, s.st.advance).QueryRowContext(ctx, r.channel).Scan(&chID, &seq)
	if errors.Is(err, sql.ErrNoRows) {
		err = tx.StmtContext(ctx, s.st.newChannel).QueryRowContext(ctx, r.channel).Scan(&chID, &seq)
	}
	if err != nil {
		return res, false, fmt.Errorf("advance sequence: %w", err)
	}
	if m.ClientID != "" {
		// Claim the idempotency key in the claim log (claims.go); the
		// savepoint undoes the row and the claim together.
		e, res, dup, err := s.claimRequest(ctx, tx, r, chID, seq, at, cutoff, true)
		if dup || err != nil {
			return res, dup, err
		}
		if _, err := insertRows(ctx, tx, &s.st.insertClaims, s.claimCols(), s.claimArgs(nil, claimKey{m.Sender, m.ClientID}, e), s.claimExtra(cutoff)...); err != nil {
			return res, false, fmt.Errorf("claim client id %q: %w", m.ClientID, err)
		}
	}
	if _, err := tx.StmtContext(ctx, s.st.insertMessage).ExecContext(ctx, chID, seq, m.Sender, m.ClientID, body, hdr, at); err != nil {
		return res, false, fmt.Errorf("insert message %d: %w", seq, err)
	}
	return storage.AppendResult{Seq: storage.Seq(seq), Time: sqlcommon.FromMicros(at)}, false, nil
}

// MessagesAfter returns up to limit messages with Seq > after, ascending.
func (s *Store) MessagesAfter(ctx context.Context, channel string, after storage.Seq, limit int) ([]storage.Message, error) {
	if after > math.MaxInt64 {
		return nil, nil
	}
	msgs, err := s.readMessages(ctx, channel, s.st.after, int64(after), s.cfg.PageLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("storage/sqlite: read channel %q after %d: %w", channel, after, err)
	}
	return msgs, nil
}

// MessagesBefore returns the up to limit newest messages with Seq <
// before (0: from the end), ascending.
func (s *Store) MessagesBefore(ctx context.Context, channel string, before storage.Seq, limit int) ([]storage.Message, error) {
	b := int64(math.MaxInt64)
	if before != 0 && before <= math.MaxInt64 {
		b = int64(before)
	}
	msgs, err := s.readMessages(ctx, channel, s.st.before, b, s.cfg.PageLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("storage/sqlite: read channel %q before %d: %w", channel, before, err)
	}
	slices.Reverse(msgs)
	return msgs, nil
}

func (s *Store) readMessages(ctx context.Context, channel string, st *sql.Stmt, seq int64, limit int) ([]storage.Message, error) {
	if err := sqlcommon.Name("channel", channel); err != nil {
		return nil, err
	}
	if err := s.check(); err != nil {
		return nil, err
	}
	rows, err := st.QueryContext(ctx, channel, seq, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []storage.Message
	for rows.Next() {
		var (
			m       storage.Message
			seq, at int64
			headers sql.NullString
		)
		if err := rows.Scan(&seq, &m.ClientID, &m.Sender, &m.Body, &headers, &at); err != nil {
			return nil, err
		}
		m.Channel, m.Seq, m.Time = channel, storage.Seq(seq), sqlcommon.FromMicros(at)
		if m.Headers, err = sqlcommon.DecodeHeaders([]byte(headers.String)); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// ChannelInfo reports the retained range of a channel.
func (s *Store) ChannelInfo(ctx context.Context, channel string) (storage.ChannelInfo, error) {
	if err := sqlcommon.Name("channel", channel); err != nil {
		return storage.ChannelInfo{}, fmt.Errorf("storage/sqlite: channel info: %w", err)
	}
	r, err := s.reader()
	if err != nil {
		return storage.ChannelInfo{}, err
	}
	info := storage.ChannelInfo{Name: channel, Oldest: 1}
	var first, last int64
	err = r.QueryRowContext(ctx, `SELECT first_seq, last_seq FROM channels WHERE name = ?`, channel).Scan(&first, &last)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return info, nil
	case err != nil:
		return storage.ChannelInfo{}, fmt.Errorf("storage/sqlite: channel info %q: %w", channel, err)
	}
	info.Oldest, info.Last = storage.Seq(first), storage.Seq(last)
	return info, nil
}

// Channels lists channels ordered by name after the given name.
func (s *Store) Channels(ctx context.Context, after string, limit int) ([]storage.ChannelInfo, error) {
	r, err := s.reader()
	if err != nil {
		return nil, err
	}
	rows, err := r.QueryContext(ctx, `SELECT name, first_seq, last_seq FROM channels WHERE name > ? ORDER BY name LIMIT ?`, after, s.cfg.PageLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("storage/sqlite: list channels: %w", err)
	}
	defer rows.Close()
	var out []storage.ChannelInfo
	for rows.Next() {
		var (
			c           storage.ChannelInfo
			first, last int64
		)
		if err := rows.Scan(&c.Name, &first, &last); err != nil {
			return nil, fmt.Errorf("storage/sqlite: list channels: %w", err)
		}
		c.Oldest, c.Last = storage.Seq(first), storage.Seq(last)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage/sqlite: list channels: %w", err)
	}
	return out, nil
}

// TrimMessages keeps only the newest keep messages of a channel.
func (s *Store) TrimMessages(ctx context.Context, channel string, keep int) (int64, error) {
	if err := sqlcommon.Keep(keep); err != nil {
		return 0, fmt.Errorf("storage/sqlite: trim channel %q: %w", channel, err)
	}
	n, err := s.trim(ctx, channel, func(tx *sql.Tx, chID, first, last int64) (int64, error) {
		return last - int64(keep) + 1, nil
	})
	if err != nil {
		return 0, fmt.Errorf("storage/sqlite: trim channel %q to %d messages: %w", channel, keep, err)
	}
	return n, nil
}

// TrimMessagesBefore deletes the channel's oldest messages committed before
// the given time, as a prefix of the log.
func (s *Store) TrimMessagesBefore(ctx context.Context, channel string, before time.Time) (int64, error) {
	n, err := s.trim(ctx, channel, func(tx *sql.Tx, chID, first, last int64) (int64, error) {
		// The first message to keep ends the prefix; scanning in seq order
		// from first_seq touches only the rows about to be deleted.
		var keepFrom int64
		err := tx.QueryRowContext(ctx, `SELECT seq FROM messages WHERE channel_id = ? AND seq >= ? AND at_us >= ? ORDER BY seq LIMIT 1`,
			chID, first, sqlcommon.Micros(before)).Scan(&keepFrom)
		if errors.Is(err, sql.ErrNoRows) {
			return last + 1, nil
		}
		return keepFrom, err
	})
	if err != nil {
		return 0, fmt.Errorf("storage/sqlite: trim channel %q before %v: %w", channel, before, err)
	}
	return n, nil
}

// trim deletes the messages below the new first sequence number that
// newFirst computes, and records it.
func (s *Store) trim(ctx context.Context, channel string, newFirst func(tx *sql.Tx, chID, first, last int64) (int64, error)) (int64, error) {
	if err := sqlcommon.Name("channel", channel); err != nil {
		return 0, err
	}
	var n int64
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var chID, first, last int64
		err := tx.QueryRowContext(ctx, `SELECT id, first_seq, last_seq FROM channels WHERE name = ?`, channel).Scan(&chID, &first, &last)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		nf, err := newFirst(tx, chID, first, last)
		if err != nil {
			return err
		}
		if nf <= first {
			return nil
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM messages WHERE channel_id = ? AND seq < ?`, chID, nf)
		if err != nil {
			return err
		}
		if n, err = res.RowsAffected(); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE channels SET first_seq = ? WHERE id = ?`, nf, chID)
		return err
	})
	return n, err
}
