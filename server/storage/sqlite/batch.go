package sqlite

import (
	"context"
	"fmt"
	"strings"

	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/server/storage/internal/sqlcommon"
)

// AppendMessages appends msgs to channel in the order given, as one
// caller's run of AppendMessage calls would, but without waiting for each
// commit before the next: the messages are handed to the append loop
// together, in groups of up to the loop's batch size (rest), so they share
// its group commits (one fsync for many), and then the answers are
// collected. res[i] and errs[i] are what AppendMessage would have returned
// for msgs[i]. When ctx ends or the store closes part way, the messages not
// yet handed over fail without being stored, so a later message never
// commits before an earlier one of the same call.
func (s *Store) AppendMessages(ctx context.Context, channel string, msgs []storage.Message) (res []storage.AppendResult, errs []error) {
	res = make([]storage.AppendResult, len(msgs))
	errs = make([]error, len(msgs))
	reqs := make([]*appendReq, len(msgs))
	var valid []*appendReq
	for i, m := range msgs {
		headers, digest, err := sqlcommon.Message(s.cfg, channel, m)
		if err != nil {
			errs[i] = fmt.Errorf("storage/sqlite: append to channel %q: %w", channel, err)
			continue
		}
		reqs[i] = &appendReq{ctx: ctx, channel: channel, m: m, headers: headers, digest: digest, done: make(chan appendResp, 1)}
		valid = append(valid, reqs[i])
	}
	handed := 0
	for handed < len(valid) {
		n := min(len(valid)-handed, max(s.loop.maxBatch, 1))
		group := valid[handed : handed+n]
		head := group[0]
		head.rest = group[1:]
		if err := s.handOver(ctx, head, n); err != nil {
			err = fmt.Errorf("storage/sqlite: append to channel %q: %w", channel, err)
			for _, r := range valid[handed:] {
				r.done <- appendResp{err: err}
			}
			break
		}
		handed += n
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
			errs[i] = fmt.Errorf("storage/sqlite: append to channel %q: %w", channel, ctx.Err())
		}
		if errs[i] != nil && !errorsHasPrefix(errs[i]) {
			errs[i] = fmt.Errorf("storage/sqlite: append to channel %q: %w", channel, errs[i])
		}
	}
	return res, errs
}

// errorsHasPrefix reports whether err already names the store, so that it
// is not wrapped twice.
func errorsHasPrefix(err error) bool {
	return strings.HasPrefix(err.Error(), "storage/sqlite: ")
}

// handOver gives r (and r.rest, n requests in all) to the append loop
// without waiting for their commit.
func (s *Store) handOver(ctx context.Context, r *appendReq, n int) error {
	if err := s.check(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.loop.onSubmit != nil {
		for range n {
			s.loop.onSubmit()
		}
	}
	select {
	case s.appends <- r:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.stop:
		return storage.ErrClosed
	}
}
