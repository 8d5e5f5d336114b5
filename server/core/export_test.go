package core

// LaneQueued returns the number of requests waiting on channel's lane, so
// that tests can tell when their requests have been queued.
func LaneQueued(c *Core, channel string) int {
	return len(c.lanes[laneOf(channel, len(c.lanes))])
}

// DecodeEventForm decodes an event in either encoding within lim without
// DecodeEvent's checks of its meaning.
var DecodeEventForm = decodeEvent
