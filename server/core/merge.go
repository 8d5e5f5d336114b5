package core

import (
	"context"
	"fmt"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/server/storage"
)

// Merged publishes (decision D26). A lane serves its queue in order, and
// before this each publish request paid its own storage commit (one fsync)
// even when the next request in the queue was for the same channel: with
// several gateways' or sessions' publishes to one hot channel queued
// behind each other, the channel committed one request per fsync. A lane
// now takes the publish requests of one channel that are queued back to
// back, up to maxMergedMessages messages, and appends their messages as
// one run: one group commit for all of them, in queue order, so the
// channel's order and each sender's order are those of serving them one
// by one (JSP §4.6, §5.8). Each request is still authorized and answered
// on its own, in order, and only after the commit.

// maxMergedMessages caps the messages appended as one merged run: a
// bound on the time one commit holds the store's writer and on the size
// of the run's answers.
const maxMergedMessages = 4 * DefaultMaxPublishBatch

// serveQueued serves first and, when it is a publish, every publish of the
// same channel queued right behind it as one merged run. A request taken
// from the queue that does not join the run is served next, so the lane's
// order is kept.
func (c *Core) serveQueued(q chan job, first job) {
	for {
		if !mergeable(&first) {
			c.serveJob(&first)
			return
		}
		run := []job{first}
		n := publishCount(&first.req)
		var next *job
	take:
		for n < maxMergedMessages {
			select {
			case j := <-q:
				if mergeable(&j) && j.req.Channel == first.req.Channel && n+publishCount(&j.req) <= maxMergedMessages {
					run = append(run, j)
					n += publishCount(&j.req)
					continue
				}
				next = &j
				break take
			default:
				break take
			}
		}
		if len(run) == 1 {
			c.serveJob(&run[0])
		} else {
			c.serveMerged(run)
		}
		if next == nil {
			return
		}
		first = *next
	}
}

// mergeable reports whether j is a well-formed publish request that may
// join a merged run.
func mergeable(j *job) bool {
	return j.err == nil && j.req.Op == OpPublish && j.req.Channel != "" && publishCount(&j.req) > 0
}

// publishCount is the number of messages a publish request carries.
func publishCount(req *Request) int {
	if req.Message != nil {
		return 1
	}
	return len(req.Messages)
}

// serveMerged serves run, publish requests of one channel in queue order,
// with one append of all their messages, and answers each request as
// serving it alone would have.
func (c *Core) serveMerged(run []job) {
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.RequestTimeout)
	defer cancel()
	channel := run[0].req.Channel
	reps := make([]Reply, len(run))
	// start[i] is where request i's messages begin in msgs; -1 when it
	// was refused before the append.
	start := make([]int, len(run))
	var msgs []storage.Message
	for i := range run {
		req := &run[i].req
		start[i] = -1
		if req.Message == nil && len(req.Messages) > c.cfg.MaxPublishBatch {
			reps[i] = Reply{Code: jsperr.BadRequest, Reason: fmt.Sprintf("publish of %d messages over limit %d", len(req.Messages), c.cfg.MaxPublishBatch)}
			continue
		}
		if err := c.authorize(ctx, req); err != nil {
			reps[i] = failure(err)
			continue
		}
		start[i] = len(msgs)
		if req.Message != nil {
			msgs = append(msgs, *req.Message)
		} else {
			msgs = append(msgs, req.Messages...)
		}
	}
	var (
		res  []storage.AppendResult
		errs []error
	)
	if ba, ok := c.cfg.Store.(batchAppender); ok {
		res, errs = ba.AppendMessages(ctx, channel, msgs)
	} else {
		res = make([]storage.AppendResult, len(msgs))
		errs = make([]error, len(msgs))
		for i, m := range msgs {
			res[i], errs[i] = c.cfg.Store.AppendMessage(ctx, channel, m)
		}
	}
	// Events go out in commit order, before any answer, as publishMany
	// does for one request.
	results := make([]PublishResult, len(msgs))
	var committed []storage.Message
	for k, m := range msgs {
		if err := errs[k]; err != nil {
			f := failure(err)
			if f.Code == jsperr.Internal {
				c.log.Warn("core: append failed", "channel", channel, "err", err)
			}
			results[k] = PublishResult{Code: f.Code, Reason: f.Reason, RetryAfterMS: f.RetryAfterMS}
			continue
		}
		r := res[k]
		results[k] = PublishResult{Seq: r.Seq, Time: r.Time, Duplicate: r.Duplicate}
		if r.Duplicate {
			continue
		}
		m.Channel, m.Seq, m.Time = channel, r.Seq, r.Time
		committed = append(committed, m)
	}
	c.publishEvents(channel, committed)
	for i := range run {
		if start[i] >= 0 {
			req := &run[i].req
			if req.Message != nil {
				// The one-message form's answer (publish).
				r := results[start[i]]
				if r.Code != jsperr.NoError {
					reps[i] = Reply{Code: r.Code, Reason: r.Reason, RetryAfterMS: r.RetryAfterMS}
				} else {
					reps[i] = Reply{Seq: r.Seq, Time: r.Time, Duplicate: r.Duplicate}
				}
			} else {
				reps[i] = Reply{Results: results[start[i] : start[i]+len(req.Messages)]}
			}
		}
		c.finishJob(&run[i], reps[i])
	}
}
