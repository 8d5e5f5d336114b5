package natsbus_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/server/bus/natsbus"
)

// asyncErrs collects what a connection's OnAsyncError receives.
type asyncErrs struct {
	mu   sync.Mutex
	errs []error
	ch   chan struct{}
}

func newAsyncErrs() *asyncErrs { return &asyncErrs{ch: make(chan struct{}, 64)} }

func (a *asyncErrs) add(err error) {
	a.mu.Lock()
	a.errs = append(a.errs, err)
	a.mu.Unlock()
	select {
	case a.ch <- struct{}{}:
	default:
	}
}

func (a *asyncErrs) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-a.ch:
	case <-time.After(5 * time.Second):
		t.Fatal("no asynchronous error arrived")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.errs[len(a.errs)-1]
}

type roleSetup struct {
	srv           *natsbus.Server
	gw, core      *natsbus.Bus
	gwErrs        *asyncErrs
	subjects      bus.Subjects
	gwPerm, cPerm bus.Permissions
}

func startWithRoles(t *testing.T) *roleSetup {
	t.Helper()
	s, err := bus.NewSubjects("prod")
	if err != nil {
		t.Fatal(err)
	}
	gwPerm, err := bus.RolePermissions(s, bus.RoleGateway, "gw-1")
	if err != nil {
		t.Fatal(err)
	}
	cPerm, err := bus.RolePermissions(s, bus.RoleCore, "core-1")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := natsbus.StartServer(natsbus.ServerConfig{
		DataDir: t.TempDir(),
		Listen:  "127.0.0.1:0",
		Users: []*server.User{
			natsbus.UserFor("gw-1", "gw-secret", gwPerm),
			natsbus.UserFor("core-1", "core-secret", cPerm),
		},
		Logger: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	rs := &roleSetup{srv: srv, subjects: s, gwPerm: gwPerm, cPerm: cPerm, gwErrs: newAsyncErrs()}
	// The gateway connects over TCP, the core in-process: permissions
	// apply to both alike.
	gcfg := natsbus.ClientFor("gw-1", "gw-secret", gwPerm)
	gcfg.Logger, gcfg.OnAsyncError = quiet, rs.gwErrs.add
	rs.gw, err = natsbus.Connect([]string{srv.ClientURL()}, gcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rs.gw.Close() })
	ccfg := natsbus.ClientFor("core-1", "core-secret", cPerm)
	ccfg.Logger = quiet
	rs.core, err = srv.Connect(ccfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rs.core.Close() })
	return rs
}

func TestPermissionsDenyGatewayPublishingCoreSubjects(t *testing.T) {
	rs := startWithRoles(t)
	ch, _ := rs.subjects.Channel("room.1")
	got := make(chan *bus.Msg, 4)
	if _, err := rs.gw.Subscribe(ch, func(m *bus.Msg) { got <- m }); err != nil {
		t.Fatal(err)
	}
	// Publish is asynchronous in NATS; the violation comes back as an
	// asynchronous error.
	if err := rs.gw.Publish(ch, bus.Msg{Data: []byte("forged")}); err != nil {
		t.Fatalf("publish: %v", err)
	}
	err := rs.gwErrs.wait(t)
	if !errors.Is(err, bus.ErrPermission) {
		t.Fatalf("async error %v, want ErrPermission (a permissions violation)", err)
	}
	// The core may publish there, and the gateway receives it, but never
	// the forged message.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if err := rs.core.Publish(ch, bus.Msg{Data: []byte("real")}); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-got:
			if string(m.Data) != "real" {
				t.Fatalf("gateway received %q", m.Data)
			}
			return
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("core publish never reached the gateway")
		}
	}
}

func TestPermissionsDenyGatewayTakingCommands(t *testing.T) {
	rs := startWithRoles(t)
	if _, err := rs.gw.QueueSubscribe(rs.subjects.CoreCmds(), bus.CoreQueue, func(*bus.Msg) {}); err != nil {
		t.Fatalf("subscribe: %v", err) // refused asynchronously
	}
	if err := rs.gwErrs.wait(t); !errors.Is(err, bus.ErrPermission) {
		t.Fatalf("async error %v, want ErrPermission", err)
	}
	// No JetStream stream of the core is reachable: the request is refused
	// and times out.
	cfg, _ := rs.subjects.WorkQueue(bus.WorkWebhook)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if _, err := rs.gw.WorkQueue(ctx, cfg); err == nil {
		t.Fatal("gateway created a core work queue")
	}
}

// TestPermissionsAllowRoleWork checks that the rendered permissions are
// enough for what each role does: commands with replies, channel events,
// KV with watches for both, work queues and the event log for the core.
func TestPermissionsAllowRoleWork(t *testing.T) {
	rs := startWithRoles(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// Core serves commands; the gateway requests through its own inbox.
	if _, err := rs.core.QueueSubscribe(rs.subjects.CoreCmds(), bus.CoreQueue, func(m *bus.Msg) {
		_ = rs.core.Publish(m.Reply, bus.Msg{Data: append([]byte("ack:"), m.Data...)})
	}); err != nil {
		t.Fatal(err)
	}
	var reply *bus.Msg
	var err error
	for range 50 { // until the core's subscription is registered
		reply, err = rs.gw.Request(ctx, rs.subjects.CoreCmd(bus.ShardOf("room.1", 16)), bus.Msg{Data: []byte("publish")})
		if !errors.Is(err, bus.ErrNoResponders) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil || string(reply.Data) != "ack:publish" {
		t.Fatalf("gateway request: %v, %v", reply, err)
	}

	// Both roles share the session registry.
	gkv, err := rs.gw.KV(ctx, bus.KVConfig{Bucket: bus.BucketSessions, Memory: true})
	if err != nil {
		t.Fatalf("gateway kv: %v", err)
	}
	ckv, err := rs.core.KV(ctx, bus.KVConfig{Bucket: bus.BucketSessions, Memory: true})
	if err != nil {
		t.Fatalf("core kv: %v", err)
	}
	seen := make(chan bus.KVEntry, 4)
	w, err := ckv.Watch(ctx, ">", func(e bus.KVEntry) { seen <- e })
	if err != nil {
		t.Fatalf("core watch: %v", err)
	}
	defer w.Stop()
	key, _ := bus.SessionKey("s-1")
	rev, err := gkv.Create(ctx, key, []byte("gw-1"))
	if err != nil {
		t.Fatalf("gateway create: %v", err)
	}
	if _, err := gkv.Update(ctx, key, []byte("gw-1 resumed"), rev); err != nil {
		t.Fatalf("gateway update: %v", err)
	}
	if e, err := ckv.Get(ctx, key); err != nil || string(e.Value) != "gw-1 resumed" {
		t.Fatalf("core get: %+v, %v", e, err)
	}
	select {
	case e := <-seen:
		if e.Key != key {
			t.Fatalf("watch saw %q", e.Key)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("core watch saw nothing")
	}

	// The core's durable streams.
	wcfg, _ := rs.subjects.WorkQueue(bus.WorkPush)
	wcfg.Memory = true
	q, err := rs.core.WorkQueue(ctx, wcfg)
	if err != nil {
		t.Fatalf("core work queue: %v", err)
	}
	if _, err := q.Enqueue(ctx, bus.Msg{Data: []byte("push")}); err != nil {
		t.Fatalf("enqueue: %v", err)
	}
	done := make(chan struct{})
	c, err := q.Consume(ctx, func(context.Context, bus.Job) error { close(done); return nil }, bus.ConsumeConfig{})
	if err != nil {
		t.Fatalf("consume: %v", err)
	}
	defer c.Stop()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("core consumer got no job")
	}
	elcfg := rs.subjects.EventLog()
	elcfg.Memory = true
	el, err := rs.core.EventLog(ctx, elcfg)
	if err != nil {
		t.Fatalf("core event log: %v", err)
	}
	if _, err := el.Append(ctx, "chat", bus.Msg{Data: []byte("e")}); err != nil {
		t.Fatalf("append: %v", err)
	}
	n := 0
	if err := el.Replay(ctx, bus.ReplayOptions{}, func(bus.Event) error { n++; return nil }); err != nil || n != 1 {
		t.Fatalf("replay: %d events, %v", n, err)
	}
	rs.gwErrs.mu.Lock()
	defer rs.gwErrs.mu.Unlock()
	if len(rs.gwErrs.errs) > 0 {
		t.Fatalf("gateway hit permission errors doing its own work: %v", rs.gwErrs.errs)
	}
}

func TestWrongPasswordRefused(t *testing.T) {
	rs := startWithRoles(t)
	cfg := natsbus.ClientFor("gw-1", "wrong", rs.gwPerm)
	cfg.Logger, cfg.NoReconnect = quiet, true
	if _, err := natsbus.Connect([]string{rs.srv.ClientURL()}, cfg); !errors.Is(err, bus.ErrPermission) {
		t.Fatalf("connect with a wrong password: %v, want ErrPermission", err)
	}
}
