package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/server/storage/internal/sqlcommon"
)

// maxDedupRetries bounds how often AppendMessage retries when the row that
// made its client id a duplicate vanished (purged or expired) before it
// could be read.
const maxDedupRetries = 3

// AppendMessage commits a message and assigns the channel's next sequence
// number; see storage.MessageLog and the package comment.
func (s *Store) AppendMessage(ctx context.Context, channel string, m storage.Message) (storage.AppendResult, error) {
	headers, digest, err := sqlcommon.Message(s.cfg, channel, m)
	if err != nil {
		return storage.AppendResult{}, fmt.Errorf("storage/postgres: append to channel %q: %w", channel, err)
	}
	return s.appendWith(ctx, channel, m, headers, digest, nil)
}

// appendWith is AppendMessage with then, when set, run in the append's
// transaction after a successful, non-duplicate append, with its result
// (PostChatMessage, chatpost.go).
func (s *Store) appendWith(ctx context.Context, channel string, m storage.Message, headers, digest []byte, then func(ctx context.Context, tx pgx.Tx, res storage.AppendResult) error) (storage.AppendResult, error) {
	for range maxDedupRetries {
		res, retry, err := s.appendOnce(ctx, channel, m, headers, digest, then)
		if err != nil {
			return storage.AppendResult{}, fmt.Errorf("storage/postgres: append to channel %q: %w", channel, err)
		}
		if !retry {
			return res, nil
		}
	}
	return storage.AppendResult{}, fmt.Errorf("storage/postgres: append to channel %q: de-duplication entry for client id %q keeps vanishing", channel, m.ClientID)
}

func (s *Store) appendOnce(ctx context.Context, channel string, m storage.Message, headers, digest []byte, then func(context.Context, pgx.Tx, storage.AppendResult) error) (res storage.AppendResult, retry bool, err error) {
	at := s.now()
	cutoff := sqlcommon.Time(at.Add(-s.cfg.DedupWindow))
	var hdr any
	if headers != nil {
		hdr = string(headers)
	}
	body := m.Body
	if body == nil {
		body = []byte{}
	}
	err = s.write(ctx, func(tx pgx.Tx) error {
		// The row lock taken here orders appenders to this channel until
		// commit; a rollback below returns the number unused.
		var chID, seq int64
		err := tx.QueryRow(ctx, `UPDATE channels SET last_seq = last_seq + 1 WHERE name = $1 RETURNING id, last_seq`, channel).Scan(&chID, &seq)
		if errors.Is(err, pgx.ErrNoRows) {
			// First message: two first appenders race on the unique name;
			// the loser's ON CONFLICT waits for the winner's commit and
			// then increments the committed row.
			err = tx.QueryRow(ctx, `INSERT INTO channels (name, last_seq, first_seq) VALUES ($1, 1, 1)
				ON CONFLICT (name) DO UPDATE SET last_seq = channels.last_seq + 1
				RETURNING id, last_seq`, channel).Scan(&chID, &seq)
		}
		if err != nil {
			return fmt.Errorf("advance sequence: %w", err)
		}
		if m.ClientID != "" {
			// Claim the idempotency key, taking over an entry that has
			// left the window. No row back means a live entry holds it.
			var got int64
			err := tx.QueryRow(ctx, `INSERT INTO message_dedup (sender, client_id, channel_id, seq, digest, at)
				VALUES ($1, $2, $3, $4, $5, $6)
				ON CONFLICT (sender, client_id) DO UPDATE SET
					channel_id = excluded.channel_id, seq = excluded.seq,
					digest = excluded.digest, at = excluded.at
				WHERE message_dedup.at < $7
				RETURNING seq`, m.Sender, m.ClientID, chID, seq, digest, at, cutoff).Scan(&got)
			if errors.Is(err, pgx.ErrNoRows) {
				var found bool
				res, found, err = s.duplicate(ctx, tx, channel, m, digest, cutoff)
				if err != nil {
					return err
				}
				retry = !found
				return errSkipCommit
			}
			if err != nil {
				return fmt.Errorf("claim client id %q: %w", m.ClientID, err)
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO messages (channel_id, seq, sender, client_id, body, headers, at)
			VALUES ($1, $2, $3, $4, $5, $6::text::jsonb, $7)`, chID, seq, m.Sender, m.ClientID, body, hdr, at); err != nil {
			return fmt.Errorf("insert message %d: %w", seq, err)
		}
		res = storage.AppendResult{Seq: storage.Seq(seq), Time: at}
		if then != nil {
			return then(ctx, tx, res)
		}
		return nil
	})
	return res, retry, err
}

// duplicate reads the live de-duplication entry of m's (sender, client
// id); READ COMMITTED gives this statement a fresh snapshot, so it sees the
// row whose commit the failed claim waited for. found is false when the
// entry vanished in between.
func (s *Store) duplicate(ctx context.Context, tx pgx.Tx, channel string, m storage.Message, digest []byte, cutoff time.Time) (res storage.AppendResult, found bool, err error) {
	var (
		name      string
		seq       int64
		at        time.Time
		oldDigest []byte
	)
	err = tx.QueryRow(ctx, `SELECT c.name, d.seq, d.digest, d.at FROM message_dedup d
		JOIN channels c ON c.id = d.channel_id
		WHERE d.sender = $1 AND d.client_id = $2 AND d.at >= $3`, m.Sender, m.ClientID, cutoff).Scan(&name, &seq, &oldDigest, &at)
	if errors.Is(err, pgx.ErrNoRows) {
		return storage.AppendResult{}, false, nil
	}
	if err != nil {
		return storage.AppendResult{}, false, fmt.Errorf("read de-duplication entry: %w", err)
	}
	if name != channel {
		return storage.AppendResult{}, true, fmt.Errorf("%w: client id %q of sender %q was used for channel %q", storage.ErrConflict, m.ClientID, m.Sender, name)
	}
	if !bytes.Equal(oldDigest, digest) {
		return storage.AppendResult{}, true, fmt.Errorf("%w: client id %q of sender %q was used for a different message", storage.ErrConflict, m.ClientID, m.Sender)
	}
	return storage.AppendResult{Seq: storage.Seq(seq), Time: utc(at), Duplicate: true}, true, nil
}

const messageCols = `m.seq, m.client_id, m.sender, m.body, m.headers::text, m.at`

// MessagesAfter returns up to limit messages with Seq > after, ascending.
func (s *Store) MessagesAfter(ctx context.Context, channel string, after storage.Seq, limit int) ([]storage.Message, error) {
	if after > math.MaxInt64 {
		return nil, nil
	}
	msgs, err := s.readMessages(ctx, channel, `SELECT `+messageCols+` FROM messages m JOIN channels c ON c.id = m.channel_id
		WHERE c.name = $1 AND m.seq > $2 ORDER BY m.seq LIMIT $3`, int64(after), s.cfg.PageLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("storage/postgres: read channel %q after %d: %w", channel, after, err)
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
	msgs, err := s.readMessages(ctx, channel, `SELECT `+messageCols+` FROM messages m JOIN channels c ON c.id = m.channel_id
		WHERE c.name = $1 AND m.seq < $2 ORDER BY m.seq DESC LIMIT $3`, b, s.cfg.PageLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("storage/postgres: read channel %q before %d: %w", channel, before, err)
	}
	slices.Reverse(msgs)
	return msgs, nil
}

func (s *Store) readMessages(ctx context.Context, channel, query string, seq int64, limit int) ([]storage.Message, error) {
	if err := sqlcommon.Name("channel", channel); err != nil {
		return nil, err
	}
	db, err := s.db()
	if err != nil {
		return nil, err
	}
	rows, err := db.Query(ctx, query, channel, seq, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (storage.Message, error) {
		var (
			m       storage.Message
			seq     int64
			at      time.Time
			headers *string
		)
		if err := r.Scan(&seq, &m.ClientID, &m.Sender, &m.Body, &headers, &at); err != nil {
			return m, err
		}
		m.Channel, m.Seq, m.Time = channel, storage.Seq(seq), utc(at)
		if headers != nil {
			var err error
			if m.Headers, err = sqlcommon.DecodeHeaders([]byte(*headers)); err != nil {
				return m, err
			}
		}
		return m, nil
	})
}

// ChannelInfo reports the retained range of a channel.
func (s *Store) ChannelInfo(ctx context.Context, channel string) (storage.ChannelInfo, error) {
	if err := sqlcommon.Name("channel", channel); err != nil {
		return storage.ChannelInfo{}, fmt.Errorf("storage/postgres: channel info: %w", err)
	}
	db, err := s.db()
	if err != nil {
		return storage.ChannelInfo{}, err
	}
	info := storage.ChannelInfo{Name: channel, Oldest: 1}
	var first, last int64
	err = db.QueryRow(ctx, `SELECT first_seq, last_seq FROM channels WHERE name = $1`, channel).Scan(&first, &last)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return info, nil
	case err != nil:
		return storage.ChannelInfo{}, fmt.Errorf("storage/postgres: channel info %q: %w", channel, err)
	}
	info.Oldest, info.Last = storage.Seq(first), storage.Seq(last)
	return info, nil
}

// Channels lists channels ordered by name after the given name.
func (s *Store) Channels(ctx context.Context, after string, limit int) ([]storage.ChannelInfo, error) {
	db, err := s.db()
	if err != nil {
		return nil, err
	}
	rows, err := db.Query(ctx, `SELECT name, first_seq, last_seq FROM channels WHERE name > $1 ORDER BY name LIMIT $2`, after, s.cfg.PageLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("storage/postgres: list channels: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (storage.ChannelInfo, error) {
		var (
			c           storage.ChannelInfo
			first, last int64
		)
		err := r.Scan(&c.Name, &first, &last)
		c.Oldest, c.Last = storage.Seq(first), storage.Seq(last)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("storage/postgres: list channels: %w", err)
	}
	return out, nil
}

// TrimMessages keeps only the newest keep messages of a channel.
func (s *Store) TrimMessages(ctx context.Context, channel string, keep int) (int64, error) {
	if err := sqlcommon.Keep(keep); err != nil {
		return 0, fmt.Errorf("storage/postgres: trim channel %q: %w", channel, err)
	}
	n, err := s.trim(ctx, channel, func(tx pgx.Tx, chID, first, last int64) (int64, error) {
		return last - int64(keep) + 1, nil
	})
	if err != nil {
		return 0, fmt.Errorf("storage/postgres: trim channel %q to %d messages: %w", channel, keep, err)
	}
	return n, nil
}

// TrimMessagesBefore deletes the channel's oldest messages committed before
// the given time, as a prefix of the log.
func (s *Store) TrimMessagesBefore(ctx context.Context, channel string, before time.Time) (int64, error) {
	n, err := s.trim(ctx, channel, func(tx pgx.Tx, chID, first, last int64) (int64, error) {
		// The first message to keep ends the prefix; scanning in seq order
		// from first_seq touches only the rows about to be deleted.
		var keepFrom int64
		err := tx.QueryRow(ctx, `SELECT seq FROM messages WHERE channel_id = $1 AND seq >= $2 AND at >= $3 ORDER BY seq LIMIT 1`,
			chID, first, sqlcommon.Time(before)).Scan(&keepFrom)
		if errors.Is(err, pgx.ErrNoRows) {
			return last + 1, nil
		}
		return keepFrom, err
	})
	if err != nil {
		return 0, fmt.Errorf("storage/postgres: trim channel %q before %v: %w", channel, before, err)
	}
	return n, nil
}

// trim deletes the messages below the new first sequence number that
// newFirst computes, and records it. FOR UPDATE holds the channel row so
// that appends wait and last_seq cannot move under the computation.
func (s *Store) trim(ctx context.Context, channel string, newFirst func(tx pgx.Tx, chID, first, last int64) (int64, error)) (int64, error) {
	if err := sqlcommon.Name("channel", channel); err != nil {
		return 0, err
	}
	var n int64
	err := s.write(ctx, func(tx pgx.Tx) error {
		var chID, first, last int64
		err := tx.QueryRow(ctx, `SELECT id, first_seq, last_seq FROM channels WHERE name = $1 FOR UPDATE`, channel).Scan(&chID, &first, &last)
		if errors.Is(err, pgx.ErrNoRows) {
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
		tag, err := tx.Exec(ctx, `DELETE FROM messages WHERE channel_id = $1 AND seq < $2`, chID, nf)
		if err != nil {
			return err
		}
		n = tag.RowsAffected()
		_, err = tx.Exec(ctx, `UPDATE channels SET first_seq = $1 WHERE id = $2`, nf, chID)
		return err
	})
	return n, err
}
