package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"strings"

	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/server/storage/internal/sqlcommon"
)

// The claim log (D41, migration 0007). A message's idempotency key
// (sender, client id) is claimed by appending a row to message_claims, in
// id order, instead of upserting it into message_dedup: that table's key is
// random (the publisher's envelope id), so each upsert dirtied one page of
// its tree, and each dirty page cost a 4 KiB WAL frame at commit and a
// copy at checkpoint — half of an append's CPU time. The log's rows are
// written in order, a few pages per group.
//
// The append loop keeps the log in memory (claims.recent) and, under the
// write lock at the start of each transaction, reads the rows other
// processes appended since it last looked (syncClaims), so a key's newest
// entry is always known: the log's newest row for the key, or else
// message_dedup's row. Once the log holds DefaultClaimMergeRows rows, the
// loop merges it into message_dedup in key order, in one transaction, and
// empties it but for its newest row (migration 0007): a page of
// message_dedup is then written once per merge instead of once per
// message.
//
// Only the append loop's goroutine touches claims. Entries of the
// transaction in progress stay in pending until its commit, and a
// savepoint that rolls back drops its own (mark, undo), so recent only ever
// holds committed rows.

// DefaultClaimMergeRows is how many rows the claim log holds before the
// append loop merges it into message_dedup: large enough that a merge
// touches each page of message_dedup for many keys, small enough that the
// log's in-memory copy stays around a megabyte and is read back quickly at
// start-up.
const DefaultClaimMergeRows = 8192

// claimKey is an idempotency key.
type claimKey struct{ sender, clientID string }

// claimEntry is a key's claim: the message it numbered.
type claimEntry struct {
	id        int64 // the log row's id; 0 for an entry read from message_dedup
	channelID int64
	seq, at   int64
	digest    []byte
}

// claims is the append loop's copy of the claim log.
type claims struct {
	recent map[claimKey]claimEntry // committed log rows, newest per key
	seen   int64                   // highest log id read or committed here

	// The transaction in progress.
	pending map[claimKey]claimEntry // claims made in it
	added   []claimKey              // pending's keys in claim order (undo)
	next    int64                   // id of its next claim
	merged  bool                    // it merged the log into message_dedup

	direct bool // no claim log (schema before 0007): claims go to message_dedup

	// filter learns every key that enters recent (dedupfilter.go); nil
	// without the claim log.
	filter *dedupFilter
}

func newClaims() *claims {
	return &claims{recent: map[claimKey]claimEntry{}, pending: map[claimKey]claimEntry{}}
}

// claimMark is the state undo returns to.
type claimMark struct {
	added  int
	next   int64
	merged bool
}

func (c *claims) mark() claimMark {
	return claimMark{added: len(c.added), next: c.next, merged: c.merged}
}

// undo drops the claims made since m (a savepoint rolled back).
func (c *claims) undo(m claimMark) {
	for _, k := range c.added[m.added:] {
		delete(c.pending, k)
	}
	c.added = c.added[:m.added]
	c.next, c.merged = m.next, m.merged
}

// add records a claim of the transaction in progress and returns its log
// id.
func (c *claims) add(k claimKey, e claimEntry) claimEntry {
	e.id = c.next
	c.next++
	c.pending[k] = e
	c.added = append(c.added, k)
	return e
}

// commit folds the committed transaction's claims into recent. A merge
// moved every row read so far into message_dedup, so recent restarts
// from the transaction's own claims (made after or before the merge: an
// entry that is also in message_dedup is still right).
func (c *claims) commit() {
	if c.direct {
		// The claims went to message_dedup, where liveClaim reads them.
		c.reset()
		return
	}
	if c.merged {
		c.recent = make(map[claimKey]claimEntry, len(c.added))
	}
	for _, k := range c.added {
		e := c.pending[k]
		c.recent[k] = e
		c.seen = max(c.seen, e.id)
		if c.filter != nil {
			c.filter.add(k, e.at)
		}
	}
	c.reset()
}

// abort forgets the transaction's claims (rolled back).
func (c *claims) abort() { c.reset() }

func (c *claims) reset() {
	clear(c.pending)
	c.added = c.added[:0]
	c.next = c.seen + 1
	c.merged = false
}

// syncClaims reads the log rows other processes committed since the loop
// last looked, and readies the transaction's ids. It runs first in every
// write transaction: BEGIN IMMEDIATE holds the write lock, so no row can
// be added behind it.
func (s *Store) syncClaims(ctx context.Context, tx *sql.Tx) error {
	c := s.claims
	if !s.claimLog {
		c.reset()
		return nil
	}
	var last int64
	err := tx.StmtContext(ctx, s.st.claimSeq).QueryRowContext(ctx).Scan(&last)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("read claim log position: %w", err)
	}
	if last > c.seen {
		rows, err := tx.StmtContext(ctx, s.st.claimTail).QueryContext(ctx, c.seen)
		if err != nil {
			return fmt.Errorf("read claim log: %w", err)
		}
		defer rows.Close()
		tail := map[claimKey]claimEntry{}
		var read int64
		for rows.Next() {
			var (
				k claimKey
				e claimEntry
			)
			if err := rows.Scan(&e.id, &k.sender, &k.clientID, &e.channelID, &e.seq, &e.digest, &e.at); err != nil {
				return fmt.Errorf("read claim log: %w", err)
			}
			tail[k] = e
			if c.filter != nil {
				c.filter.add(k, e.at)
			}
			read++
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read claim log: %w", err)
		}
		if read < last-c.seen {
			// Ids are handed out one after another under the write lock,
			// so fewer rows than ids means another process merged the log
			// before its newest rows were read here. A merge moves the
			// whole log, so every entry held here is in message_dedup now,
			// where a newer claim of its key may be too: keep only the
			// rows just read. And the merged keys never passed through the
			// filter: from now on every key is looked up.
			c.recent = tail
			if c.filter != nil && !c.filter.off {
				c.filter.off = true
				s.cfg.Logger.Warn("storage: de-duplication filter off: another process merged claims not yet read", "backend", Scheme, "path", s.path)
			}
		} else {
			maps.Copy(c.recent, tail)
		}
		c.seen = last
	}
	c.reset()
	return nil
}

// liveClaim returns the live entry of k, if any: the transaction's own
// claim, else the log's newest row, else message_dedup's row. An entry of
// the log that has left the window hides an older one in message_dedup,
// which has left it too.
func (s *Store) liveClaim(ctx context.Context, tx *sql.Tx, k claimKey, cutoff int64) (claimEntry, bool, error) {
	c := s.claims
	if e, ok := c.pending[k]; ok {
		return e, true, nil
	}
	if e, ok := c.recent[k]; ok {
		return e, e.at >= cutoff, nil
	}
	if c.filter != nil && c.filter.absent(k, cutoff+c.filter.window) {
		return claimEntry{}, false, nil
	}
	var e claimEntry
	err := tx.StmtContext(ctx, s.st.dedupLookup).QueryRowContext(ctx, k.sender, k.clientID, cutoff).Scan(&e.channelID, &e.seq, &e.digest, &e.at)
	if errors.Is(err, sql.ErrNoRows) {
		return claimEntry{}, false, nil
	}
	if err != nil {
		return claimEntry{}, false, fmt.Errorf("read de-duplication entry: %w", err)
	}
	return e, true, nil
}

// claimDuplicate answers a message whose key has the live entry e: a
// duplicate when it repeats e's message, storage.ErrConflict otherwise.
func (s *Store) claimDuplicate(ctx context.Context, tx *sql.Tx, channelID int64, m storage.Message, digest []byte, e claimEntry) (storage.AppendResult, error) {
	if e.channelID != channelID {
		var name string
		if err := tx.QueryRowContext(ctx, `SELECT name FROM channels WHERE id = ?`, e.channelID).Scan(&name); err != nil {
			return storage.AppendResult{}, fmt.Errorf("read channel %d of a de-duplication entry: %w", e.channelID, err)
		}
		return storage.AppendResult{}, fmt.Errorf("%w: client id %q of sender %q was used for channel %q", storage.ErrConflict, m.ClientID, m.Sender, name)
	}
	if !bytes.Equal(e.digest, digest) {
		return storage.AppendResult{}, fmt.Errorf("%w: client id %q of sender %q was used for a different message", storage.ErrConflict, m.ClientID, m.Sender)
	}
	return storage.AppendResult{Seq: storage.Seq(e.seq), Time: sqlcommon.FromMicros(e.at), Duplicate: true}, nil
}

// claimRequest checks r's key in the transaction and, when it is free,
// claims it for (channelID, seq): the returned entry's log row must then be
// inserted with the message. With a live entry it returns the duplicate's
// answer (dup true) or the conflict.
//
// Without the claim log the group fast path passes lookup false: the
// claims' upsert into message_dedup then refuses a live key itself, and
// the group is redone on the savepoint path when it did (claimsChanged).
func (s *Store) claimRequest(ctx context.Context, tx *sql.Tx, r *appendReq, channelID, seq, at, cutoff int64, lookup bool) (e claimEntry, res storage.AppendResult, dup bool, err error) {
	k := claimKey{r.m.Sender, r.m.ClientID}
	var (
		live claimEntry
		ok   bool
	)
	if lookup {
		live, ok, err = s.liveClaim(ctx, tx, k, cutoff)
		if err != nil {
			return claimEntry{}, res, false, err
		}
	} else {
		live, ok = s.claims.pending[k]
	}
	if ok {
		res, err = s.claimDuplicate(ctx, tx, channelID, r.m, r.digest, live)
		return claimEntry{}, res, true, err
	}
	return s.claims.add(k, claimEntry{channelID: channelID, seq: seq, at: at, digest: r.digest}), res, false, nil
}

// mergeClaims moves the claim log into message_dedup, in key order (a
// key claimed twice in the log keeps its newest row), and empties it but
// for its newest row, which keeps the ids increasing.
func (s *Store) mergeClaims(ctx context.Context, tx *sql.Tx) error {
	if !s.claimLog {
		return nil
	}
	if _, err := tx.StmtContext(ctx, s.st.claimMerge).ExecContext(ctx); err != nil {
		return fmt.Errorf("merge claim log: %w", err)
	}
	if _, err := tx.StmtContext(ctx, s.st.claimClear).ExecContext(ctx); err != nil {
		return fmt.Errorf("empty claim log: %w", err)
	}
	s.claims.merged = true
	return nil
}

// mergeClaimsNow merges the claim log in a transaction of its own, on the
// append loop, once the log has reached the merge size.
func (s *Store) mergeClaimsNow(ctx context.Context) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	err = s.syncClaims(ctx, tx)
	if err == nil {
		err = s.mergeClaims(ctx, tx)
	}
	if err == nil {
		err = tx.Commit()
	} else {
		tx.Rollback()
	}
	if err != nil {
		s.claims.abort()
		return err
	}
	s.claims.commit()
	s.noteCommit(ctx)
	return nil
}

// claimRowCols is the column list of a claim log row.
const claimRowCols = `id, sender, client_id, channel_id, seq, digest, at_us`

// claimStatements are the claim log's statements (stmts.go prepares them).
var claimStatements = map[string]string{
	"claimSeq":  `SELECT coalesce(max(id), 0) FROM message_claims`,
	"claimTail": `SELECT ` + claimRowCols + ` FROM message_claims WHERE id > ? ORDER BY id`,
	// The WHERE also keeps ON from being read as a join constraint; it
	// skips the rows Purge retired (claimRetire).
	"claimMerge": `INSERT INTO message_dedup (sender, client_id, channel_id, seq, digest, at_us)
		SELECT sender, client_id, channel_id, seq, digest, at_us FROM message_claims WHERE client_id != ''
		ORDER BY sender, client_id, id
		ON CONFLICT (sender, client_id) DO UPDATE SET
			channel_id = excluded.channel_id, seq = excluded.seq,
			digest = excluded.digest, at_us = excluded.at_us`,
	// claimRetire blanks the key of log rows past the window: the newest
	// row stays in the log after a merge (below), and without this a
	// merge would bring it back into message_dedup after each Purge
	// removed it. A claim always has a client id, so "" marks no key.
	"claimRetire": `UPDATE message_claims SET client_id = '' WHERE client_id != '' AND at_us < ?`,
	// The newest row stays: it keeps the ids increasing (migration 0007).
	"claimClear":  `DELETE FROM message_claims WHERE id < (SELECT max(id) FROM message_claims)`,
	"dedupLookup": `SELECT channel_id, seq, digest, at_us FROM message_dedup WHERE sender = ? AND client_id = ? AND at_us >= ?`,
}

// rowValues returns "(?, ?, ...), (...)" for n rows of cols columns.
func rowValues(n, cols int) string {
	row := "(" + strings.TrimSuffix(strings.Repeat("?, ", cols), ", ") + ")"
	return strings.TrimSuffix(strings.Repeat(row+", ", n), ", ")
}
