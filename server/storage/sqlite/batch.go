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
	rs, es := s.AppendRuns(ctx, []storage.ChannelRun{{Channel: channel, Messages: msgs}})
	return rs[0], es[0]
}

// AppendRuns appends the runs of several channels in one call, as
// AppendMessages would append each run, with every message of every run
// handed to the append loop together, in the order given (D36): a core
// lane that holds publishes for many channels commits them in one group
// commit instead of one commit per channel. Each channel's messages keep
// their order, and no message commits before an earlier one of the call.
// res[k][i] and errs[k][i] answer runs[k].Messages[i].
func (s *Store) AppendRuns(ctx context.Context, runs []storage.ChannelRun) (res [][]storage.AppendResult, errs [][]error) {
	res = make([][]storage.AppendResult, len(runs))
	errs = make([][]error, len(runs))
	type slot struct {
		run, i int
		r      *appendReq
	}
	var (
		valid []*appendReq
		slots []slot
	)
	for k, run := range runs {
		res[k] = make([]storage.AppendResult, len(run.Messages))
		errs[k] = make([]error, len(run.Messages))
		for i, m := range run.Messages {
			headers, digest, err := sqlcommon.Message(s.cfg, run.Channel, m)
			if err != nil {
				errs[k][i] = fmt.Errorf("storage/sqlite: append to channel %q: %w", run.Channel, err)
				continue
			}
			r := &appendReq{ctx: ctx, channel: run.Channel, m: m, headers: headers, digest: digest, done: make(chan appendResp, 1)}
			valid = append(valid, r)
			slots = append(slots, slot{run: k, i: i, r: r})
		}
	}
	handed := 0
	for handed < len(valid) {
		n := min(len(valid)-handed, max(s.loop.maxBatch, 1))
		group := valid[handed : handed+n]
		head := group[0]
		head.rest = group[1:]
		if err := s.handOver(ctx, head, n); err != nil {
			for _, r := range valid[handed:] {
				r.done <- appendResp{err: fmt.Errorf("storage/sqlite: append to channel %q: %w", r.channel, err)}
			}
			break
		}
		handed += n
	}
	for _, sl := range slots {
		k, i, r := sl.run, sl.i, sl.r
		select {
		case resp := <-r.done:
			res[k][i], errs[k][i] = resp.res, resp.err
		case <-ctx.Done():
			// As in submitAppend: the message may still commit, and a
			// resend with the same client id then returns its number.
			errs[k][i] = fmt.Errorf("storage/sqlite: append to channel %q: %w", r.channel, ctx.Err())
		}
		if errs[k][i] != nil && !errorsHasPrefix(errs[k][i]) {
			errs[k][i] = fmt.Errorf("storage/sqlite: append to channel %q: %w", r.channel, errs[k][i])
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
