package storage

// ChannelRun is a run of messages for one channel, appended in the order
// given (the SQLite store's AppendRuns takes several channels' runs in one
// call, so that they share group commits).
type ChannelRun struct {
	// Channel names the channel the messages are appended to.
	Channel string
	// Messages are appended in this order.
	Messages []Message
}
