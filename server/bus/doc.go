// Package bus is the internal message bus between gateways and cores
// (ARCHITECTURE.md §1): the interface both roles program against, the
// subject names and their permissions, and helpers every role needs.
//
// Gateway and core always talk through the bus, also when they run in one
// process; package natsbus implements [Bus] over NATS (an embedded server
// with an in-process connection by default, an external cluster by URL) and
// package membus implements it in memory for unit tests of other packages.
//
// The flow of a chat message (JSP §5.8):
//
//	session --PUBLISH room.1--> gateway G1
//	G1 --Request jsp.<c>.core.cmd.<shard>--> core (queue group "core",
//	        shard = JumpHash(room.1, shards): one channel, one shard, one order)
//	core: ACL, commit to storage (assigns the channel sequence number)
//	core --Reply--> G1 --ACK--> session
//	core --Publish jsp.<c>.ch.<Token(room.1)>--> every gateway with local
//	        subscribers of room.1 (one bus subscription per channel and
//	        gateway, see [ChannelFanout]) --EVENT--> each local session
//
// Durable work (webhook and push delivery) goes through JetStream work
// queues ([WorkQueue]); the event log ([EventLog]) keeps an ordered,
// replayable record; the shared state cache (session registry, presence)
// lives in KV buckets ([KV]). docs/bus.md lists every subject, stream and
// bucket and the permissions of each role.
package bus
