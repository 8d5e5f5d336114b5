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
// on its own, in order, and only after the commit. Since D36 the run
// takes the queued publishes of every channel, not only the first's
// (serveQueued).

// maxMergedMessages caps the messages appended as one merged run: a
// bound on the time one commit holds the store's writer and on the size
// of the run's answers.
const maxMergedMessages = 4 * DefaultMaxPublishBatch

// serveQueued serves first and, when it is a publish, every publish queued
// right behind it, of any channel, as one merged group (D36): one store
// call and one group commit for all of them, where before each channel's
// requests paid a commit of their own and a lane held at most one
// channel's requests in the store at a time — with publishes spread over
// many channels, a group commit then carried at most one request per lane.
// A request taken from the queue that does not join the group is served
// next, so the lane's order is kept.
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
				if mergeable(&j) && n+publishCount(&j.req) <= maxMergedMessages {
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

// mergedRun is one channel's part of a merged group: its messages in
// queue order and, after the append, their results.
type mergedRun struct {
	channel string
	msgs    []storage.Message
	results []PublishResult
}

// serveMerged serves run, publish requests in queue order, with one append
// of all their messages grouped by channel, and answers each request as
// serving it alone would have. A channel's messages keep their queue
// order, so the channel's order and each sender's order are those of
// serving the requests one by one (JSP §4.6, §5.8).
func (c *Core) serveMerged(run []job) {
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.RequestTimeout)
	defer cancel()
	reps := make([]Reply, len(run))
	// runIdx[i] and start[i] say where request i's messages are: in
	// runs[runIdx[i]].msgs from start[i]; start -1 when it was refused
	// before the append.
	runIdx := make([]int, len(run))
	start := make([]int, len(run))
	var runs []*mergedRun
	byChannel := map[string]int{}
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
		k, ok := byChannel[req.Channel]
		if !ok {
			k = len(runs)
			byChannel[req.Channel] = k
			runs = append(runs, &mergedRun{channel: req.Channel})
		}
		r := runs[k]
		runIdx[i], start[i] = k, len(r.msgs)
		if req.Message != nil {
			r.msgs = append(r.msgs, *req.Message)
		} else {
			r.msgs = append(r.msgs, req.Messages...)
		}
	}
	res, errs := c.appendRuns(ctx, runs)
	// Events go out in commit order, before any answer, as publishMany
	// does for one request.
	for k, r := range runs {
		r.results = make([]PublishResult, len(r.msgs))
		var committed []storage.Message
		for j, m := range r.msgs {
			if err := errs[k][j]; err != nil {
				f := failure(err)
				if f.Code == jsperr.Internal {
					c.log.Warn("core: append failed", "channel", r.channel, "err", err)
				}
				r.results[j] = PublishResult{Code: f.Code, Reason: f.Reason, RetryAfterMS: f.RetryAfterMS}
				continue
			}
			a := res[k][j]
			r.results[j] = PublishResult{Seq: a.Seq, Time: a.Time, Duplicate: a.Duplicate}
			if a.Duplicate {
				continue
			}
			m.Channel, m.Seq, m.Time = r.channel, a.Seq, a.Time
			committed = append(committed, m)
		}
		c.publishEvents(r.channel, committed)
	}
	for i := range run {
		if start[i] >= 0 {
			req := &run[i].req
			results := runs[runIdx[i]].results
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

// runsAppender is a store that appends several channels' runs in one call,
// sharing group commits (the SQLite store's AppendRuns).
type runsAppender interface {
	AppendRuns(ctx context.Context, runs []storage.ChannelRun) ([][]storage.AppendResult, [][]error)
}

// appendRuns appends runs with the store's widest call: all channels at
// once (runsAppender), else one call per channel (batchAppender), else
// one message at a time. res[k][j] and errs[k][j] answer runs[k].msgs[j].
func (c *Core) appendRuns(ctx context.Context, runs []*mergedRun) ([][]storage.AppendResult, [][]error) {
	if ra, ok := c.cfg.Store.(runsAppender); ok {
		in := make([]storage.ChannelRun, len(runs))
		for k, r := range runs {
			in[k] = storage.ChannelRun{Channel: r.channel, Messages: r.msgs}
		}
		return ra.AppendRuns(ctx, in)
	}
	res := make([][]storage.AppendResult, len(runs))
	errs := make([][]error, len(runs))
	ba, ok := c.cfg.Store.(batchAppender)
	for k, r := range runs {
		if ok {
			res[k], errs[k] = ba.AppendMessages(ctx, r.channel, r.msgs)
			continue
		}
		res[k] = make([]storage.AppendResult, len(r.msgs))
		errs[k] = make([]error, len(r.msgs))
		for j, m := range r.msgs {
			res[k][j], errs[k][j] = c.cfg.Store.AppendMessage(ctx, r.channel, m)
		}
	}
	return res, errs
}
