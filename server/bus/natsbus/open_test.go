package natsbus_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/server/bus/natsbus"
)

// restartable is a 3-node cluster whose nodes keep their data
// directories and ports across restarts, as the processes of a deployment
// do.
type restartable struct {
	t     *testing.T
	cfgs  []natsbus.ServerConfig
	mu    sync.Mutex
	nodes []*natsbus.Server // guarded by mu; nil while a node is down
}

func newRestartable(t *testing.T, n int) *restartable {
	t.Helper()
	ports := freePorts(t, 2*n)
	var routes []string
	for i := range n {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", ports[n+i]))
	}
	c := &restartable{t: t, nodes: make([]*natsbus.Server, n)}
	for i := range n {
		c.cfgs = append(c.cfgs, natsbus.ServerConfig{
			DataDir: t.TempDir(),
			Name:    fmt.Sprintf("node-%d", i+1),
			Listen:  fmt.Sprintf("127.0.0.1:%d", ports[i]),
			Cluster: natsbus.ClusterConfig{
				Name:   "jsp-open",
				Listen: fmt.Sprintf("127.0.0.1:%d", ports[n+i]),
				Routes: routes,
			},
			Logger: quiet,
		})
	}
	t.Cleanup(func() { c.stop() })
	return c
}

// start starts the nodes numbered idx (all when none), together.
func (c *restartable) start(idx ...int) {
	c.t.Helper()
	if len(idx) == 0 {
		for i := range c.cfgs {
			idx = append(idx, i)
		}
	}
	errs := make([]error, len(idx))
	var wg sync.WaitGroup
	for k, i := range idx {
		wg.Go(func() {
			srv, err := natsbus.StartServer(c.cfgs[i])
			errs[k] = err
			c.mu.Lock()
			c.nodes[i] = srv
			c.mu.Unlock()
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		c.t.Fatal(err)
	}
}

// stop shuts the nodes numbered idx down (all when none).
func (c *restartable) stop(idx ...int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(idx) == 0 {
		for i := range c.nodes {
			idx = append(idx, i)
		}
	}
	for _, i := range idx {
		if c.nodes[i] != nil {
			c.nodes[i].Shutdown()
			c.nodes[i] = nil
		}
	}
}

// waitJetStream waits until every running node's JetStream is current.
func (c *restartable) waitJetStream() {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c.mu.Lock()
	nodes := append([]*natsbus.Server(nil), c.nodes...)
	c.mu.Unlock()
	for _, n := range nodes {
		if n != nil {
			if err := n.WaitJetStream(ctx); err != nil {
				c.t.Fatal(err)
			}
		}
	}
}

func (c *restartable) urls() []string {
	var urls []string
	for _, cfg := range c.cfgs {
		urls = append(urls, "nats://"+cfg.Listen)
	}
	return urls
}

// connect connects a bus with three replicas of everything to the
// cluster; a server that is down is skipped.
func (c *restartable) connect(name string, wait time.Duration, log *syncBuffer) *natsbus.Bus {
	c.t.Helper()
	cfg := natsbus.ClientConfig{Name: name, Logger: quiet, ReconnectWait: 50 * time.Millisecond,
		Replicas: natsbus.Replicas{KV: 3, EventLog: 3, WorkQueue: 3}, OpenWait: wait,
		OpenAttemptTimeout: time.Second}
	if log != nil {
		cfg.Logger = slog.New(slog.NewTextHandler(log, nil))
	}
	b, err := natsbus.Connect(c.urls(), cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { _ = b.Close() })
	return b
}

// opened is the outcome of opening the R3 resources of a node's start-up.
type opened struct {
	kv   bus.KV
	log  bus.EventLog
	q    bus.WorkQueue
	cons bus.Consumer
	jobs chan string
	err  error
}

// openAll opens what a core opens at start: a KV bucket, the event log, a
// work queue and a consumer of it.
func openAll(ctx context.Context, b *natsbus.Bus, s bus.Subjects) (o opened) {
	o.jobs = make(chan string, 16)
	if o.kv, o.err = b.KV(ctx, bus.KVConfig{Bucket: bus.BucketSessions}); o.err != nil {
		return o
	}
	if o.log, o.err = b.EventLog(ctx, s.EventLog()); o.err != nil {
		return o
	}
	wcfg, _ := s.WorkQueue(bus.WorkWebhook)
	if o.q, o.err = b.WorkQueue(ctx, wcfg); o.err != nil {
		return o
	}
	o.cons, o.err = o.q.Consume(ctx, func(_ context.Context, j bus.Job) error {
		o.jobs <- string(j.Msg().Data)
		return nil
	}, bus.ConsumeConfig{})
	return o
}

// TestOpenWaitsForQuorum restarts a cluster whose R3 resources are in
// use. A node starting while only one server is back (no quorum, no
// leaders) does not fail: its opens retry, the bus reports them not
// ready meanwhile, and they succeed once the other servers are back. The
// watcher and the worker opened before the restart recover by
// themselves once the leaders are elected.
func TestOpenWaitsForQuorum(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	t.Parallel()
	c := newRestartable(t, 3)
	c.start()
	c.waitJetStream()
	s, _ := bus.NewSubjects("op")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	// A node that ran before the restart: its worker and its watcher
	// stay on through it.
	before := c.connect("before", 0, nil)
	var o opened
	retry(t, "open on a fresh cluster", func() error {
		if o.cons != nil {
			o.cons.Stop()
		}
		o = openAll(ctx, before, s)
		return o.err
	})
	defer o.cons.Stop()
	watched := make(chan string, 16)
	w, err := o.kv.Watch(ctx, ">", func(e bus.KVEntry) { watched <- string(e.Value) })
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	// A second watcher is stopped while the cluster has no quorum: the
	// server cannot answer the delete of its consumer, and Stop does not
	// wait for that request's timeout.
	w2, err := o.kv.Watch(ctx, ">", func(bus.KVEntry) {})
	if err != nil {
		t.Fatal(err)
	}

	c.stop()
	c.start(0) // one of three: no quorum, no leaders
	stopStart := time.Now()
	w2.Stop()
	if took := time.Since(stopStart); took >= natsbus.DefaultAPITimeout {
		t.Errorf("stopping a watcher without a quorum took %v", took)
	}
	var logs syncBuffer
	b := c.connect("after", 0, &logs)
	done := make(chan opened, 1)
	go func() { done <- openAll(ctx, b, s) }()
	eventually(t, 20*time.Second, "the bus reports a resource not open", func() bool {
		err := b.Ping(ctx)
		return errors.Is(err, natsbus.ErrNotReady) && strings.Contains(err.Error(), "kv "+bus.BucketSessions)
	})
	select {
	case o := <-done:
		t.Fatalf("open returned without a quorum: %v", o.err)
	default:
	}
	c.start(1, 2)
	var got opened
	select {
	case got = <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("open did not succeed after the cluster came back")
	}
	if got.err != nil {
		t.Fatalf("open after the cluster came back: %v", got.err)
	}
	// Only the worker from before the restart takes jobs from here on.
	got.cons.Stop()
	if err := b.Ping(ctx); err != nil {
		t.Fatalf("ready after the opens: %v", err)
	}
	if l := logs.String(); !strings.Contains(l, "JetStream not ready; retrying") || !strings.Contains(l, "opened after retries") {
		t.Errorf("retries not logged:\n%s", l)
	}
	retry(t, "enqueue", func() error {
		_, err := got.q.Enqueue(ctx, bus.Msg{Data: []byte("job-1")})
		return err
	})
	select {
	case j := <-o.jobs:
		if j != "job-1" {
			t.Fatalf("worker got %q", j)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the worker from before the restart got no job")
	}
	key, _ := bus.PresenceKey("ann", "s1")
	retry(t, "put", func() error {
		_, err := got.kv.Put(ctx, key, []byte("on"))
		return err
	})
	select {
	case v := <-watched:
		if v != "on" {
			t.Fatalf("watcher saw %q", v)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the watcher from before the restart saw nothing")
	}
}

// TestOpenWaitBounded checks the bounded wait: without a quorum the open
// fails after OpenWait with ErrNotReady, naming the resource and the last
// error, and the bus is no longer listed as opening it.
func TestOpenWaitBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	t.Parallel()
	c := newRestartable(t, 3)
	c.start(0) // alone: its JetStream never has a meta leader
	b := c.connect("core", 700*time.Millisecond, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	_, err := b.KV(ctx, bus.KVConfig{Bucket: bus.BucketPresence})
	took := time.Since(start)
	if !errors.Is(err, natsbus.ErrNotReady) || !strings.Contains(err.Error(), "kv "+bus.BucketPresence) ||
		!strings.Contains(err.Error(), "last error") {
		t.Fatalf("err = %v", err)
	}
	t.Logf("gave up after %v: %v", took.Round(time.Millisecond), err)
	if took < 700*time.Millisecond {
		t.Fatalf("gave up after %v, before OpenWait", took)
	}
	if o := b.Opening(); len(o) != 0 {
		t.Fatalf("still opening: %v", o)
	}
	// A caller's shorter deadline ends the wait first, with its cause.
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelShort()
	_, err = b.EventLog(short, bus.EventLogConfig{Stream: "EV", SubjectPrefix: "ev"})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "event log EV") {
		t.Fatalf("short deadline: %v", err)
	}
}

// TestOpenRefusedAtOnce checks that a permanent refusal is not retried:
// a work queue whose subject another stream already holds fails at once
// with ErrRefused, whatever OpenWait is.
func TestOpenRefusedAtOnce(t *testing.T) {
	b := embedded(t, func(c *natsbus.EmbeddedConfig) { c.Client.OpenWait = time.Minute })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := b.WorkQueue(ctx, bus.WorkQueueConfig{Stream: "Q1", Subject: "q.jobs", Consumer: "w"}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := b.WorkQueue(ctx, bus.WorkQueueConfig{Stream: "Q2", Subject: "q.jobs", Consumer: "w"})
	if !errors.Is(err, natsbus.ErrRefused) || !strings.Contains(err.Error(), "work queue Q2") {
		t.Fatalf("overlapping work queue: %v", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("refusal took %v: it was retried", took)
	}
	if err := b.Ping(ctx); err != nil {
		t.Fatalf("ping after a refusal: %v", err)
	}
}

// eventually polls cond every 50 ms until it holds or d has passed.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
