package natsbus

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
)

// DefaultReplicas is the JetStream replica count of every bucket and
// stream when nothing else is configured: one copy, all a single server
// (the embedded default) can hold.
const DefaultReplicas = 1

// MaxReplicas is the largest replica count JetStream accepts.
const MaxReplicas = 5

// Replicas are the JetStream replica counts the bus gives what it creates
// when the caller's KVConfig, EventLogConfig or WorkQueueConfig leaves
// Replicas zero; a caller's own non-zero count wins. Zero fields mean
// DefaultReplicas.
//
// A bucket or stream that already exists with another count is updated to
// this one when it is opened (JetStream moves or drops copies in the
// background); when the servers refuse, the error names the bucket or
// stream, the count it has and the count asked for.
type Replicas struct {
	// KV is the replica count of the NATS KV buckets (session registry,
	// presence, gateway registry).
	KV int
	// EventLog is the replica count of the event log stream.
	EventLog int
	// WorkQueue is the replica count of the work queue streams (webhook
	// and push delivery).
	WorkQueue int
}

func (r *Replicas) setDefaults() {
	for _, p := range []*int{&r.KV, &r.EventLog, &r.WorkQueue} {
		if *p == 0 {
			*p = DefaultReplicas
		}
	}
}

func (r *Replicas) validate() error {
	for _, c := range []struct {
		what string
		n    int
	}{{"kv", r.KV}, {"event log", r.EventLog}, {"work queue", r.WorkQueue}} {
		if c.n < 0 || c.n > MaxReplicas {
			return fmt.Errorf("natsbus: client config: %s replicas %d outside 1..%d", c.what, c.n, MaxReplicas)
		}
	}
	return nil
}

// ErrTooManyReplicas is wrapped when a replica count is larger than the
// cluster the bus is connected to, where the bus knows its size (an
// embedded server).
var ErrTooManyReplicas = errors.New("natsbus: more replicas than servers")

// checkFits fails when a configured count exceeds size, the number of
// JetStream servers; size 0 means unknown and passes.
func (r Replicas) checkFits(size int, where string) error {
	if size <= 0 {
		return nil
	}
	for _, c := range []struct {
		key string
		n   int
	}{{"kv", r.KV}, {"event log", r.EventLog}, {"work queue", r.WorkQueue}} {
		if c.n > size {
			return fmt.Errorf("%w: %s replicas %d, but %s has %d JetStream server(s)", ErrTooManyReplicas, c.key, c.n, where, size)
		}
	}
	return nil
}

// ClusterSize returns the number of servers in the JetStream meta group
// this server belongs to: 1 when it is not clustered.
func (s *Server) ClusterSize() int {
	if !s.ns.JetStreamIsClustered() {
		return 1
	}
	info, err := s.ns.Jsz(&server.JSzOptions{})
	if err != nil || info.Meta == nil || info.Meta.Size == 0 {
		// The meta group is still forming: at least the configured routes
		// are peers, but their count is not known yet.
		return 0
	}
	return info.Meta.Size
}

// clusterSize is the JetStream cluster size where the bus knows it (its
// own embedded server), else 0.
func (b *Bus) clusterSize() int {
	if b.owned == nil {
		return 0
	}
	return b.owned.ClusterSize()
}

// replicasFor resolves the replica count of a bucket or stream: the
// caller's when set, else the bus's configured one for that kind.
func (b *Bus) replicasFor(asked, configured int) (int, error) {
	n := asked
	if n == 0 {
		n = configured
	}
	if size := b.clusterSize(); size > 0 && n > size {
		return 0, fmt.Errorf("%w: %d replicas asked, the embedded server's cluster has %d", ErrTooManyReplicas, n, size)
	}
	return n, nil
}

// StreamReplicas returns the replica count JetStream holds for stream
// (a KV bucket's stream is "KV_<bucket>").
func (b *Bus) StreamReplicas(ctx context.Context, stream string) (int, error) {
	ctx, cancel := apiCtx(ctx)
	defer cancel()
	s, err := b.js.Stream(ctx, stream)
	if err != nil {
		return 0, fmt.Errorf("natsbus: stream %s: %w", stream, mapErr(err))
	}
	return s.CachedInfo().Config.Replicas, nil
}

// existingReplicas returns the replica count of stream, 0 when it does
// not exist. A lookup that fails with a transient error returns it (the
// open retries); other failures return 0 and leave the reason to the
// create that follows.
func (b *Bus) existingReplicas(ctx context.Context, stream string) (int, error) {
	s, err := b.js.Stream(ctx, stream)
	switch {
	case err == nil:
		return s.CachedInfo().Config.Replicas, nil
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return 0, nil
	case transient(mapErr(err)):
		return 0, fmt.Errorf("look up stream %s: %w", stream, err)
	}
	return 0, nil
}

// createOrUpdate opens what (for example "kv sessions") by running
// create, which creates or updates stream to want replicas, under the
// open retry (open.go). It logs a change of an existing stream's count and
// names both counts when the servers refuse it.
func (b *Bus) createOrUpdate(ctx context.Context, what, stream string, want int, create func(context.Context) error) error {
	logged := false
	err := b.open(ctx, what, func(ctx context.Context) error {
		had, err := b.existingReplicas(ctx, stream)
		if err != nil {
			return err
		}
		if had != 0 && had != want && !logged {
			logged = true
			b.log.Info("natsbus: changing replicas", "resource", what, "stream", stream, "from", had, "to", want)
		}
		err = create(ctx)
		switch {
		case err == nil:
			return nil
		case had == 0 || had == want:
			return fmt.Errorf("%d replicas: %w", want, err)
		}
		return fmt.Errorf("replicas %d -> %d refused (set the replica count back to %d, or check the cluster has %d JetStream servers): %w",
			had, want, had, want, err)
	})
	return err
}

// kvStream is the stream that holds a KV bucket.
func kvStream(bucket string) string { return "KV_" + bucket }
