package natsbus_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/server/bus/natsbus"
)

// TestReplicasEmbedded checks the replica counts against the embedded
// server, whose cluster size (1) the bus knows: the default is one copy,
// and more is refused when the bus starts, naming the kind and the size.
func TestReplicasEmbedded(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b := embedded(t, nil)
	if _, err := b.KV(ctx, bus.KVConfig{Bucket: "r1"}); err != nil {
		t.Fatal(err)
	}
	if n, err := b.StreamReplicas(ctx, "KV_r1"); err != nil || n != natsbus.DefaultReplicas {
		t.Fatalf("default replicas = %d, %v", n, err)
	}
	// A caller's own count is checked too.
	_, err := b.KV(ctx, bus.KVConfig{Bucket: "r3", Replicas: 3})
	if !errors.Is(err, natsbus.ErrTooManyReplicas) || !strings.Contains(err.Error(), "kv r3") {
		t.Fatalf("kv with 3 replicas on one server: %v", err)
	}
	for _, tc := range []struct {
		name string
		r    natsbus.Replicas
		want string
	}{
		{"kv", natsbus.Replicas{KV: 3}, "kv replicas 3, but the embedded NATS server has 1"},
		{"event log", natsbus.Replicas{EventLog: 2}, "event log replicas 2"},
		{"work queue", natsbus.Replicas{WorkQueue: 3}, "work queue replicas 3"},
		{"over max", natsbus.Replicas{KV: 6}, "kv replicas 6 outside 1..5"},
		{"negative", natsbus.Replicas{WorkQueue: -1}, "work queue replicas -1 outside"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := natsbus.Embedded(natsbus.EmbeddedConfig{
				Server: natsbus.ServerConfig{DataDir: t.TempDir(), Logger: quiet},
				Client: natsbus.ClientConfig{Logger: quiet, Replicas: tc.r},
			})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestReplicasRefusedByServer checks the error when the servers refuse a
// count the bus cannot check itself (an external server, here a single
// one reached by URL): it names the bucket and both counts.
func TestReplicasRefusedByServer(t *testing.T) {
	srv, err := natsbus.StartServer(natsbus.ServerConfig{DataDir: t.TempDir(), Listen: "127.0.0.1:0", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	one := connectTo(t, srv, "one")
	if _, err := one.KV(ctx, bus.KVConfig{Bucket: "grow"}); err != nil {
		t.Fatal(err)
	}
	b, err := natsbus.Connect([]string{srv.ClientURL()}, natsbus.ClientConfig{Logger: quiet, Replicas: natsbus.Replicas{KV: 3}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	_, err = b.KV(ctx, bus.KVConfig{Bucket: "grow"})
	if err == nil || !strings.Contains(err.Error(), "kv grow") || !strings.Contains(err.Error(), "replicas 1 -> 3 refused") {
		t.Fatalf("growing a bucket on one server: %v", err)
	}
	_, err = b.KV(ctx, bus.KVConfig{Bucket: "fresh"})
	if err == nil || !strings.Contains(err.Error(), "kv fresh: 3 replicas") {
		t.Fatalf("new bucket with 3 replicas on one server: %v", err)
	}
	if n, err := b.StreamReplicas(ctx, "KV_grow"); err != nil || n != 1 {
		t.Fatalf("refused update changed the bucket: %d, %v", n, err)
	}
}

// TestReplicasCluster runs the configured replica counts on a real
// 3-node cluster: an existing one-copy bucket is updated to three, the
// event log and work queue are created with three, and the replicated
// bucket keeps serving reads and writes after its stream leader is shut
// down.
func TestReplicasCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	t.Parallel() // its elections overlap the other cluster tests' (open_test.go)
	nodes := startCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var urls []string
	for _, n := range nodes {
		urls = append(urls, n.ClientURL())
	}
	connect := func(name string, r natsbus.Replicas) *natsbus.Bus {
		b, err := natsbus.Connect(urls, natsbus.ClientConfig{Name: name, Logger: quiet, Replicas: r,
			ReconnectWait: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		return b
	}
	old := connect("old", natsbus.Replicas{})
	b := connect("new", natsbus.Replicas{KV: 3, EventLog: 3, WorkQueue: 3})
	s, _ := bus.NewSubjects("rp")

	retry(t, "create one-copy bucket", func() error {
		_, err := old.KV(ctx, bus.KVConfig{Bucket: bus.BucketSessions})
		return err
	})
	if n, err := old.StreamReplicas(ctx, "KV_"+bus.BucketSessions); err != nil || n != 1 {
		t.Fatalf("bucket replicas before = %d, %v", n, err)
	}
	var kv bus.KV
	retry(t, "reopen bucket with 3 replicas", func() error {
		var err error
		kv, err = b.KV(ctx, bus.KVConfig{Bucket: bus.BucketSessions})
		return err
	})
	if kv.Config().Replicas != 3 {
		t.Fatalf("bucket config replicas = %d", kv.Config().Replicas)
	}
	if n, err := b.StreamReplicas(ctx, "KV_"+bus.BucketSessions); err != nil || n != 3 {
		t.Fatalf("bucket replicas after = %d, %v", n, err)
	}
	lcfg := s.EventLog()
	retry(t, "create event log", func() error {
		_, err := b.EventLog(ctx, lcfg)
		return err
	})
	wcfg, _ := s.WorkQueue(bus.WorkPush)
	retry(t, "create work queue", func() error {
		_, err := b.WorkQueue(ctx, wcfg)
		return err
	})
	for _, stream := range []string{lcfg.Stream, wcfg.Stream} {
		if n, err := b.StreamReplicas(ctx, stream); err != nil || n != 3 {
			t.Fatalf("stream %s replicas = %d, %v", stream, n, err)
		}
	}

	key, _ := bus.PresenceKey("ann", "s1")
	var rev uint64
	retry(t, "put", func() error {
		var err error
		rev, err = kv.Put(ctx, key, []byte("before"))
		return err
	})
	// Shut down the node that leads the bucket's stream: the two others
	// elect a new leader and keep every acknowledged write. The copies
	// added by the update catch up in the background; the leader goes once
	// both followers are current, as an operator waits for
	// "nats stream info" to show them current after changing the count.
	leader := streamLeader(t, ctx, urls, "KV_"+bus.BucketSessions)
	var killed bool
	for _, n := range nodes {
		if n.Name() == leader {
			n.Shutdown()
			killed = true
		}
	}
	if !killed {
		t.Fatalf("leader %q is none of the nodes", leader)
	}
	// Each attempt has its own deadline: a request that reached the
	// node just before it went down is never answered, and must not use
	// up the test's context.
	retry(t, "read after losing the leader", func() error {
		actx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		e, err := kv.Get(actx, key)
		if err != nil {
			return err
		}
		if string(e.Value) != "before" || e.Revision != rev {
			return fmt.Errorf("got %q at %d, want %q at %d", e.Value, e.Revision, "before", rev)
		}
		return nil
	})
	retry(t, "write after losing the leader", func() error {
		actx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		_, err := kv.Update(actx, key, []byte("after"), rev)
		return err
	})
	e, err := kv.Get(ctx, key)
	if err != nil || string(e.Value) != "after" {
		t.Fatalf("after the update: %+v, %v", e, err)
	}
}

// streamLeader asks the cluster which server leads stream, once every
// follower is current.
func streamLeader(t *testing.T, ctx context.Context, urls []string, stream string) string {
	t.Helper()
	nc, err := nats.Connect(strings.Join(urls, ","))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	var leader string
	retry(t, "stream leader", func() error {
		st, err := js.Stream(ctx, stream)
		if err != nil {
			return err
		}
		info, err := st.Info(ctx)
		if err != nil {
			return err
		}
		if info.Cluster == nil || info.Cluster.Leader == "" {
			return errors.New("no leader yet")
		}
		current := 0
		for _, p := range info.Cluster.Replicas {
			if p.Current {
				current++
			}
		}
		if current != info.Config.Replicas-1 {
			return fmt.Errorf("%d of %d followers current", current, info.Config.Replicas-1)
		}
		leader = info.Cluster.Leader
		return nil
	})
	return leader
}
