package core

// LaneQueued returns the number of requests waiting on channel's lane, so
// that tests can tell when their requests have been queued.
func LaneQueued(c *Core, channel string) int {
	return len(c.lanes[laneOf(channel, len(c.lanes))])
}
