package natsbus_test

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/server/bus/natsbus"
)

// freePorts returns n loopback ports that were free a moment ago.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// startCluster starts n embedded servers on loopback ports, each with
// routes to all (a clustered JetStream needs configured routes on every
// node; a route to itself is ignored), and waits until JetStream is
// clustered.
func startCluster(t *testing.T, n int) []*natsbus.Server {
	t.Helper()
	ports := freePorts(t, n)
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	nodes := make([]*natsbus.Server, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	// Started together: each waits for the JetStream meta group, which
	// needs a quorum of peers.
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nodes[i], errs[i] = natsbus.StartServer(natsbus.ServerConfig{
				DataDir: t.TempDir(),
				Name:    fmt.Sprintf("node-%d", i+1),
				Listen:  "127.0.0.1:0",
				Cluster: natsbus.ClusterConfig{
					Name:   "jsp-test",
					Listen: fmt.Sprintf("127.0.0.1:%d", ports[i]),
					Routes: routes,
				},
				Logger: quiet,
			})
		}()
	}
	wg.Wait()
	for i, srv := range nodes {
		if srv != nil {
			t.Cleanup(srv.Shutdown)
		}
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, srv := range nodes {
		if err := srv.WaitJetStream(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return nodes
}

func connectTo(t *testing.T, srv *natsbus.Server, name string) *natsbus.Bus {
	t.Helper()
	b, err := natsbus.Connect([]string{srv.ClientURL()}, natsbus.ClientConfig{Name: name, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// retry runs f until it succeeds: in a fresh cluster, stream placement and
// subscription interest take a moment to reach every node.
func retry(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestCluster runs the bus over a real 3-node NATS cluster, with buses on
// different nodes.
func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	nodes := startCluster(t, 3)
	a := connectTo(t, nodes[0], "gw-a")
	b := connectTo(t, nodes[2], "core-b")
	c := connectTo(t, nodes[1], "gw-c")
	s, _ := bus.NewSubjects("cl")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	t.Run("PubSub", func(t *testing.T) {
		ch, _ := s.Channel("room.1")
		got := make(chan *bus.Msg, 64)
		if _, err := a.Subscribe(ch, func(m *bus.Msg) { got <- m }); err != nil {
			t.Fatal(err)
		}
		retry(t, "publish on node 3, receive on node 1", func() error {
			if err := b.Publish(ch, bus.Msg{Data: []byte("hello")}); err != nil {
				return err
			}
			select {
			case m := <-got:
				if string(m.Data) != "hello" {
					return fmt.Errorf("got %q", m.Data)
				}
				return nil
			case <-time.After(100 * time.Millisecond):
				return fmt.Errorf("nothing arrived")
			}
		})
	})

	t.Run("QueueGroup", func(t *testing.T) {
		subj := s.CoreCmd(5)
		var onA, onB atomic.Int64
		if _, err := a.QueueSubscribe(subj, bus.CoreQueue, func(*bus.Msg) { onA.Add(1) }); err != nil {
			t.Fatal(err)
		}
		if _, err := b.QueueSubscribe(subj, bus.CoreQueue, func(*bus.Msg) { onB.Add(1) }); err != nil {
			t.Fatal(err)
		}
		// Wait until node 2 knows both members: requests are answered by
		// neither, so probe with a plain request until no "no responders".
		probe := s.CoreCmd(6)
		var probes atomic.Int64
		if _, err := a.Subscribe(probe, func(m *bus.Msg) { probes.Add(1); _ = a.Publish(m.Reply, bus.Msg{}) }); err != nil {
			t.Fatal(err)
		}
		retry(t, "interest reaches node 2", func() error {
			_, err := c.Request(ctx, probe, bus.Msg{})
			return err
		})
		// Published on node 2, which has no member: the servers split the
		// work between the members on nodes 1 and 3, each message once.
		// Node 3's queue interest may reach node 2 after the probe's
		// (nothing tells a client when), so rounds of n are sent until
		// both members had work, or 10 s.
		const n = 200
		sent := 0
		for deadline := time.Now().Add(10 * time.Second); ; {
			for i := range n {
				if err := c.Publish(subj, bus.Msg{Data: fmt.Appendf(nil, "%d", sent+i)}); err != nil {
					t.Fatal(err)
				}
			}
			sent += n
			retry(t, "all commands handled", func() error {
				if got := onA.Load() + onB.Load(); got != int64(sent) {
					return fmt.Errorf("%d of %d handled", got, sent)
				}
				return nil
			})
			if onA.Load() > 0 && onB.Load() > 0 || time.Now().After(deadline) {
				break
			}
		}
		if onA.Load() == 0 || onB.Load() == 0 {
			t.Fatalf("work not split across nodes: %d / %d", onA.Load(), onB.Load())
		}
		t.Logf("queue group split: node 1 %d, node 3 %d", onA.Load(), onB.Load())
	})

	t.Run("KV", func(t *testing.T) {
		var kva, kvb bus.KV
		retry(t, "create replicated bucket", func() error {
			var err error
			kva, err = a.KV(ctx, bus.KVConfig{Bucket: bus.BucketPresence, Replicas: 3, TTL: time.Minute})
			return err
		})
		retry(t, "bind bucket on node 3", func() error {
			var err error
			kvb, err = b.KV(ctx, bus.KVConfig{Bucket: bus.BucketPresence, Replicas: 3, TTL: time.Minute})
			return err
		})
		key, _ := bus.PresenceKey("ann", "s1")
		updates := make(chan bus.KVEntry, 8)
		w, err := kvb.Watch(ctx, ">", func(e bus.KVEntry) { updates <- e })
		if err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
		rev, err := kva.Put(ctx, key, []byte("online"))
		if err != nil {
			t.Fatal(err)
		}
		retry(t, "read on node 3", func() error {
			e, err := kvb.Get(ctx, key)
			if err != nil {
				return err
			}
			if string(e.Value) != "online" || e.Revision != rev {
				return fmt.Errorf("got %+v", e)
			}
			return nil
		})
		select {
		case e := <-updates:
			if e.Key != key || string(e.Value) != "online" {
				t.Fatalf("watch on node 3 saw %+v", e)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("watch on node 3 saw nothing")
		}
		// CAS across nodes: node 3 updates at the revision node 1 wrote.
		if _, err := kvb.Update(ctx, key, []byte("away"), rev); err != nil {
			t.Fatal(err)
		}
		if _, err := kva.Update(ctx, key, []byte("busy"), rev); err == nil {
			t.Fatal("stale update from node 1 succeeded")
		}
	})

	t.Run("WorkQueueRedelivery", func(t *testing.T) {
		cfg, _ := s.WorkQueue(bus.WorkWebhook)
		cfg.Replicas = 3
		cfg.AckWait = time.Second
		var qa, qb bus.WorkQueue
		retry(t, "create replicated work queue", func() error {
			var err error
			qa, err = a.WorkQueue(ctx, cfg)
			return err
		})
		retry(t, "bind work queue on node 3", func() error {
			var err error
			qb, err = b.WorkQueue(ctx, cfg)
			return err
		})
		// The first worker, on node 3, takes the job and never acks it
		// (as if its process hung); after AckWait the job is redelivered,
		// here to the worker on node 1.
		hold := make(chan struct{})
		defer close(hold)
		first := make(chan int, 1)
		cb, err := qb.Consume(ctx, func(ctx context.Context, j bus.Job) error {
			first <- j.Delivery()
			select {
			case <-hold:
			case <-ctx.Done():
			}
			return ctx.Err()
		}, bus.ConsumeConfig{})
		if err != nil {
			t.Fatal(err)
		}
		defer cb.Stop()
		if _, err := qa.Enqueue(ctx, bus.Msg{Data: []byte("POST /hook")}); err != nil {
			t.Fatal(err)
		}
		select {
		case d := <-first:
			if d != 1 {
				t.Fatalf("first delivery numbered %d", d)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("node 3 worker got no job")
		}
		var mu sync.Mutex
		var second []int
		done := make(chan struct{})
		ca, err := qa.Consume(ctx, func(_ context.Context, j bus.Job) error {
			mu.Lock()
			second = append(second, j.Delivery())
			mu.Unlock()
			if string(j.Msg().Data) == "POST /hook" {
				close(done)
			}
			return nil
		}, bus.ConsumeConfig{})
		if err != nil {
			t.Fatal(err)
		}
		defer ca.Stop()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Fatal("unacknowledged job was not redelivered")
		}
		mu.Lock()
		defer mu.Unlock()
		if len(second) != 1 || second[0] != 2 {
			t.Fatalf("redeliveries %v, want [2]", second)
		}
	})
}
