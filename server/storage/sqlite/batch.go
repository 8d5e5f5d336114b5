package sqlite

import (
	"context"
	"fmt"

	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/server/storage/internal/sqlcommon"
)

// AppendMessages appends msgs to channel in the order given, as one
// caller's run of AppendMessage calls would, but without waiting for each
// commit before handing over the next: every message is handed to the
// append loop first, from this one goroutine, so they reach the loop in
// order and share its group commits (one fsync for many), and then the
// answers are collected. res[i] and errs[i] are what AppendMessage would
// have returned for msgs[i]. When ctx ends or the store closes part way,
// the messages not yet handed over fail without being stored, so a later
// message never commits before an earlier one of the same call.
func (s *Store) AppendMessages(ctx context.Context, channel string, msgs []storage.Message) (res []storage.AppendResult, errs []error) {
	res = make([]storage.AppendResult, len(msgs))
	errs = make([]error, len(msgs))
	reqs := make([]*appendReq, len(msgs))
	var stop error // set once a message could not be handed over
	for i, m := range msgs {
		if stop != nil {
			errs[i] = stop
			continue
		}
		headers, digest, err := sqlcommon.Message(s.cfg, channel, m)
		if err != nil {
			errs[i] = fmt.Errorf("storage/sqlite: append to channel %q: %w", channel, err)
			continue
		}
		if err := s.handOver(ctx, &appendReq{ctx: ctx, channel: channel, m: m, headers: headers, digest: digest}, &reqs[i]); err != nil {
			stop = fmt.Errorf("storage/sqlite: append to channel %q: %w", channel, err)
			errs[i] = stop
		}
	}
	for i, r := range reqs {
		if r == nil {
			continue
		}
		select {
		case resp := <-r.done:
			res[i], errs[i] = resp.res, resp.err
		case <-ctx.Done():
			// As in submitAppend: the message may still commit, and a
			// resend with the same client id then returns its number.
			errs[i] = ctx.Err()
		}
		if errs[i] != nil {
			errs[i] = fmt.Errorf("storage/sqlite: append to channel %q: %w", channel, errs[i])
		}
	}
	return res, errs
}

// handOver gives r to the append loop without waiting for its commit and
// stores it in *slot once the loop has it.
func (s *Store) handOver(ctx context.Context, r *appendReq, slot **appendReq) error {
	if err := s.check(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	r.done = make(chan appendResp, 1)
	if s.loop.onSubmit != nil {
		s.loop.onSubmit()
	}
	select {
	case s.appends <- r:
		*slot = r
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.stop:
		return storage.ErrClosed
	}
}
