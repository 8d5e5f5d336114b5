package core

import (
	"context"
	"fmt"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/server/storage"
)

// DefaultMaxPublishBatch caps the messages of one multi-message publish
// request (Request.Messages). A gateway sends at most its publish window
// per request (gateway.DefaultPublishWindow, which is this limit).
const DefaultMaxPublishBatch = 256

// batchAppender is a store that takes a run of appends to one channel at
// once and commits them in order, sharing commits (the SQLite store's
// AppendMessages). Stores without it get the messages one at a time.
type batchAppender interface {
	AppendMessages(ctx context.Context, channel string, msgs []storage.Message) ([]storage.AppendResult, []error)
}

// publishMany commits several messages of one channel in the order given
// and publishes each committed one, in that order, so that subscribers see
// them in sequence order and one sender's messages keep their order (JSP
// §4.6, §5.8). A message's failure fails that message only; the reply's
// Results answer each.
func (c *Core) publishMany(ctx context.Context, req *Request) Reply {
	if len(req.Messages) > c.cfg.MaxPublishBatch {
		return Reply{Code: jsperr.BadRequest, Reason: fmt.Sprintf("publish of %d messages over limit %d", len(req.Messages), c.cfg.MaxPublishBatch)}
	}
	var (
		res  []storage.AppendResult
		errs []error
	)
	if ba, ok := c.cfg.Store.(batchAppender); ok {
		res, errs = ba.AppendMessages(ctx, req.Channel, req.Messages)
	} else {
		res = make([]storage.AppendResult, len(req.Messages))
		errs = make([]error, len(req.Messages))
		for i, m := range req.Messages {
			res[i], errs[i] = c.cfg.Store.AppendMessage(ctx, req.Channel, m)
		}
	}
	rep := Reply{Results: make([]PublishResult, len(req.Messages))}
	var committed []storage.Message
	for i, m := range req.Messages {
		if err := errs[i]; err != nil {
			f := failure(err)
			if f.Code == jsperr.Internal {
				c.log.Warn("core: append failed", "channel", req.Channel, "err", err)
			}
			rep.Results[i] = PublishResult{Code: f.Code, Reason: f.Reason, RetryAfterMS: f.RetryAfterMS}
			continue
		}
		r := res[i]
		rep.Results[i] = PublishResult{Seq: r.Seq, Time: r.Time, Duplicate: r.Duplicate}
		if r.Duplicate {
			continue
		}
		m.Channel, m.Seq, m.Time = req.Channel, r.Seq, r.Time
		committed = append(committed, m)
	}
	c.publishEvents(req.Channel, committed)
	return rep
}

// AppendMessages appends msgs in order through the breaker as one call,
// sharing commits when the guarded store can (batchAppender); see
// storage/sqlite's Store.AppendMessages. The breaker is told the first
// message's failure, if any, as the outcome of the call.
func (g *GuardedStore) AppendMessages(ctx context.Context, channel string, msgs []storage.Message) ([]storage.AppendResult, []error) {
	res := make([]storage.AppendResult, len(msgs))
	errs := make([]error, len(msgs))
	ba, ok := g.Store.(batchAppender)
	if !ok {
		for i, m := range msgs {
			res[i], errs[i] = g.AppendMessage(ctx, channel, m)
		}
		return res, errs
	}
	_, err := guard(g.br, "append messages", func() (struct{}, error) {
		res, errs = ba.AppendMessages(ctx, channel, msgs)
		for _, err := range errs {
			if err != nil {
				return struct{}{}, err
			}
		}
		return struct{}{}, nil
	})
	if err != nil && allNil(errs) {
		// The breaker refused the call: nothing was appended.
		for i := range errs {
			errs[i] = err
		}
	}
	return res, errs
}

func allNil(errs []error) bool {
	for _, err := range errs {
		if err != nil {
			return false
		}
	}
	return true
}

// AppendRuns appends several channels' runs through the breaker as one
// call, sharing commits when the guarded store can (runsAppender), else
// run by run as AppendMessages. The breaker is told the first message's
// failure, if any, as the outcome of the call.
func (g *GuardedStore) AppendRuns(ctx context.Context, runs []storage.ChannelRun) ([][]storage.AppendResult, [][]error) {
	ra, ok := g.Store.(runsAppender)
	if !ok {
		res := make([][]storage.AppendResult, len(runs))
		errs := make([][]error, len(runs))
		for k, r := range runs {
			res[k], errs[k] = g.AppendMessages(ctx, r.Channel, r.Messages)
		}
		return res, errs
	}
	var (
		res  [][]storage.AppendResult
		errs [][]error
	)
	_, err := guard(g.br, "append messages", func() (struct{}, error) {
		res, errs = ra.AppendRuns(ctx, runs)
		for _, es := range errs {
			for _, err := range es {
				if err != nil {
					return struct{}{}, err
				}
			}
		}
		return struct{}{}, nil
	})
	if err != nil && res == nil {
		// The breaker refused the call: nothing was appended.
		res = make([][]storage.AppendResult, len(runs))
		errs = make([][]error, len(runs))
		for k, r := range runs {
			res[k] = make([]storage.AppendResult, len(r.Messages))
			errs[k] = make([]error, len(r.Messages))
			for j := range errs[k] {
				errs[k][j] = err
			}
		}
	}
	return res, errs
}
