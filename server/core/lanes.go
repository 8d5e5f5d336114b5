package core

import (
	"github.com/jetstreamproto/jsp/server/bus"
)

// Worker lanes (D23). The bus hands one subscription's messages to its
// handler one at a time, so a core serving requests in the handler commits
// one request per shard at a time, each with its own fsync, however many
// channels are waiting. handle therefore only decodes a request and queues
// it on a lane chosen by its channel's hash; each lane is one goroutine
// serving its queue in order. Requests of one channel always take the same
// lane, so they are committed and published in the order they arrived
// (JSP §4.6, §5.8); requests of different channels proceed in parallel
// and their appends meet in the store's group commit.
//
// Stop order: Close marks the core closed (handle takes nothing more),
// cancels the running requests and waits for every request taken to be
// answered (wg), and only then stops the lanes, so no request is left in
// a lane's queue.

// Defaults of the lanes.
const (
	// DefaultWorkers is the number of worker lanes.
	DefaultWorkers = 16
	// laneQueue is the length of each lane's queue; a full queue holds
	// back the bus subscription that feeds it.
	laneQueue = 64
)

// job is one request taken from the bus and waiting on its lane.
type job struct {
	msg *bus.Msg
	req Request
	err error // decoding failure, answered as such
}

// laneOf returns the lane of channel among n.
func laneOf(channel string, n int) int {
	return int(bus.HashName(channel) % uint64(n))
}

// laneOfJob returns the lane of j among n. A subscribe or live-publish
// authorization reads no channel state, so it needs no order with the channel's commits and
// takes the next lane instead of waiting behind them: a session restoring
// its subscriptions after a resume (gateway resume.go) should not wait for
// a burst of commits on the same channel.
func laneOfJob(j *job, n int) int {
	l := laneOf(j.req.Channel, n)
	if j.req.Op == OpSubscribe || j.req.Op == OpLive {
		l = (l + 1) % n
	}
	return l
}

// startLanes starts the worker lanes; called once by Start.
func (c *Core) startLanes() {
	c.lanes = make([]chan job, c.cfg.Workers)
	c.lanesStop = make(chan struct{})
	for i := range c.lanes {
		q := make(chan job, laneQueue)
		c.lanes[i] = q
		c.lanesWG.Go(func() { c.runLane(q) })
	}
}

// runLane serves one lane's requests in order until stopLanes.
func (c *Core) runLane(q chan job) {
	for {
		select {
		case j := <-q:
			c.serveQueued(q, j)
		case <-c.lanesStop:
			return
		}
	}
}

// stopLanes stops the lanes and waits for them; every request taken has
// been answered by then (Close waits for wg first).
func (c *Core) stopLanes() {
	if c.lanesStop == nil {
		return
	}
	close(c.lanesStop)
	c.lanesWG.Wait()
}
