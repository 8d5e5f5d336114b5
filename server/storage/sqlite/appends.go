package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jetstreamproto/jsp/server/storage"
)

// Group commit. With synchronous=FULL every commit waits for an fsync,
// which costs milliseconds, and SQLite commits one transaction at a time.
// So appends go through one goroutine, the append loop, which takes every
// append waiting when it becomes free (up to maxAppendBatch) and commits
// them in one transaction: one fsync for the group. Each message runs under
// its own savepoint, so a failed or duplicate message rolls back alone
// (returning its sequence number) and the others commit. Callers get their
// answers only after the commit, so acknowledgement still follows
// durability.

// maxAppendBatch caps the messages of one group commit, bounding the time
// the writer holds the write lock.
const maxAppendBatch = 128

// appendReq is one AppendMessage waiting for the append loop.
type appendReq struct {
	ctx             context.Context
	channel         string
	m               storage.Message
	headers, digest []byte
	done            chan appendResp // buffered: the loop never blocks on reply
	// rest are the following appends of one AppendMessages call, handed
	// over with this one so that they join the same group commit (the
	// hand-over channel is unbuffered, so one by one they would not be
	// waiting when the loop drains it).
	rest []*appendReq
	// then, when set, runs in the append's savepoint after a successful,
	// non-duplicate append, with its result: rows that must commit with
	// the message or not at all (PostChatMessage, chatpost.go).
	then func(ctx context.Context, tx *sql.Tx, res storage.AppendResult) error
	// fn, when set, makes this a write of another kind (Store.write): no
	// message, fn runs under the request's savepoint with the loop's
	// context.
	fn func(ctx context.Context, tx *sql.Tx) error
}

type appendResp struct {
	res storage.AppendResult
	err error
}

// submitAppend hands r to the append loop and waits for its commit. The
// channel to the loop is unbuffered: once the loop has taken r it always
// answers, and after Close nothing takes it, so no request is stranded.
func (s *Store) submitAppend(ctx context.Context, r *appendReq) (storage.AppendResult, error) {
	if err := s.check(); err != nil {
		return storage.AppendResult{}, err
	}
	if err := ctx.Err(); err != nil {
		return storage.AppendResult{}, err
	}
	r.done = make(chan appendResp, 1)
	if s.loop.onSubmit != nil {
		s.loop.onSubmit()
	}
	select {
	case s.appends <- r:
	case <-ctx.Done():
		return storage.AppendResult{}, ctx.Err()
	case <-s.stop:
		return storage.AppendResult{}, storage.ErrClosed
	}
	select {
	case resp := <-r.done:
		return resp.res, resp.err
	case <-ctx.Done():
		// The message may still commit; a resend with the same client id
		// then returns its number.
		return storage.AppendResult{}, ctx.Err()
	}
}

// runAppends is the append loop, started by open and stopped by Close.
func (s *Store) runAppends() {
	defer close(s.appendsDone)
	batch := make([]*appendReq, 0, s.loop.maxBatch)
	for {
		batch = batch[:0]
		select {
		case r := <-s.appends:
			batch = append(append(batch, r), r.rest...)
		case <-s.stop:
			return
		}
	drain:
		for len(batch) < s.loop.maxBatch {
			select {
			case r := <-s.appends:
				batch = append(append(batch, r), r.rest...)
			default:
				break drain
			}
		}
		if len(s.claims.recent) >= s.opts.ClaimMergeRows {
			// A failed merge leaves the log as it was: its entries stay
			// right and a later group tries again.
			if err := s.mergeClaimsNow(context.Background()); err != nil {
				s.cfg.Logger.Warn("storage: merge claim log", "backend", Scheme, "path", s.path, "err", err)
			}
		}
		if s.loop.onBatch != nil {
			s.loop.onBatch(len(batch))
		}
		s.commitBatch(batch)
		clear(batch) // drop references to answered requests
	}
}

// commitBatch appends a group of messages in one transaction and answers
// each request.
func (s *Store) commitBatch(batch []*appendReq) {
	// Statements run under the loop's own context, not the callers': a
	// caller's cancellation interrupts the connection asynchronously and
	// could abort a neighbour's statement. A caller cancelled before its
	// turn is skipped instead.
	ctx := context.Background()
	resps := make([]appendResp, len(batch))
	tx, err := s.begin(ctx)
	if err != nil {
		for i := range batch {
			batch[i].done <- appendResp{err: err}
		}
		return
	}
	now := s.cfg.Now()
	// A request with more work in its savepoint (a chat post's row,
	// PostChatMessage) needs the savepoint path, which runs that work and
	// undoes the message with it when it fails.
	fast := !slices.ContainsFunc(batch, func(r *appendReq) bool { return r.then != nil || r.fn != nil })
	var committed int
	ok := false
	if fast {
		committed, ok = s.appendGroup(ctx, tx, batch, now, resps)
	}
	if !ok {
		// Redo the group with a savepoint per message (appendfast.go).
		if fast {
			tx.Rollback()
			s.claims.abort()
			if tx, err = s.begin(ctx); err != nil {
				for i := range batch {
					batch[i].done <- appendResp{err: err}
				}
				return
			}
		}
		committed = 0
		for i, r := range batch {
			resps[i] = appendResp{}
			if err := r.ctx.Err(); err != nil {
				resps[i].err = err
				continue
			}
			resps[i].err = s.appendSavepoint(ctx, tx, r, now, &resps[i].res)
			if resps[i].err == nil && !resps[i].res.Duplicate {
				committed++
			}
		}
	}
	if committed == 0 {
		tx.Rollback()
		s.claims.abort()
	} else if err := tx.Commit(); err != nil {
		s.claims.abort()
		err = fmt.Errorf("commit: %w", err)
		for i := range resps {
			if resps[i].err == nil {
				resps[i] = appendResp{err: err}
			}
		}
	} else {
		s.claims.commit()
		s.noteCommit(ctx)
	}
	for i, r := range batch {
		r.done <- resps[i]
	}
}

// begin starts a write transaction on the writer and reads the claim log
// rows committed elsewhere (syncClaims).
func (s *Store) begin(ctx context.Context) (*sql.Tx, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	if err := s.syncClaims(ctx, tx); err != nil {
		tx.Rollback()
		return nil, err
	}
	return tx, nil
}

// appendSavepoint runs one append under a savepoint and rolls it back when
// the append fails or is a duplicate.
func (s *Store) appendSavepoint(ctx context.Context, tx *sql.Tx, r *appendReq, now time.Time, res *storage.AppendResult) error {
	if _, err := tx.StmtContext(ctx, s.st.savepoint).ExecContext(ctx); err != nil {
		return fmt.Errorf("savepoint: %w", err)
	}
	mark := s.claims.mark()
	var out storage.AppendResult
	var dup bool
	var err error
	if r.fn != nil {
		err = r.fn(ctx, tx)
	} else {
		out, dup, err = s.appendInTx(ctx, tx, r, now)
	}
	if err == nil && !dup && r.then != nil {
		err = r.then(ctx, tx, out)
	}
	if err != nil || dup {
		s.claims.undo(mark)
		if _, rbErr := tx.StmtContext(ctx, s.st.rollbackTo).ExecContext(ctx); rbErr != nil {
			return errors.Join(err, fmt.Errorf("roll back to savepoint: %w", rbErr))
		}
	}
	if _, relErr := tx.StmtContext(ctx, s.st.release).ExecContext(ctx); relErr != nil && err == nil {
		return fmt.Errorf("release savepoint: %w", relErr)
	}
	*res = out
	return err
}
