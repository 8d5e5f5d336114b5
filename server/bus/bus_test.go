package bus_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/server/bus"
)

func TestRolePermissions(t *testing.T) {
	s, _ := bus.NewSubjects("c")
	gw, err := bus.RolePermissions(s, bus.RoleGateway, "g1")
	if err != nil {
		t.Fatal(err)
	}
	core, err := bus.RolePermissions(s, bus.RoleCore, "k1")
	if err != nil {
		t.Fatal(err)
	}
	ch, _ := s.Channel("room")
	user, _ := s.User("ann")
	gwKick, _ := s.Gateway("g1", "kick")
	otherGw, _ := s.Gateway("g2", "kick")
	tests := []struct {
		name    string
		perm    bus.SubjectPermission
		subject string
		want    bool
	}{
		{"gateway publishes commands", gw.Publish, s.CoreCmd(3), true},
		{"gateway may not publish channel events", gw.Publish, ch, false},
		{"gateway may not publish user routes", gw.Publish, user, false},
		{"gateway may not publish to gateways", gw.Publish, otherGw, false},
		{"gateway subscribes channels", gw.Subscribe, ch, true},
		{"gateway subscribes users", gw.Subscribe, user, true},
		{"gateway subscribes its inbox", gw.Subscribe, gwKick, true},
		{"gateway may not read another's inbox", gw.Subscribe, otherGw, false},
		{"gateway may not take commands", gw.Subscribe, s.CoreCmd(3), false},
		{"core publishes channel events", core.Publish, ch, true},
		{"core publishes user routes", core.Publish, user, true},
		{"core publishes to a gateway", core.Publish, otherGw, true},
		{"core may not publish commands", core.Publish, s.CoreCmd(0), false},
		{"core takes commands", core.Subscribe, s.CoreCmd(0), true},
		{"core may not subscribe channels", core.Subscribe, ch, false},
	}
	for _, tt := range tests {
		if got := tt.perm.Allows(tt.subject); got != tt.want {
			t.Errorf("%s: Allows(%q) = %v", tt.name, tt.subject, got)
		}
	}
	if gw.Inbox != "jsp.c.gw.g1.reply" || !gw.Subscribe.Allows(gw.Inbox+".abc.1") {
		t.Errorf("gateway inbox %q not covered by its subscribe permission", gw.Inbox)
	}
	if !core.Subscribe.Allows(core.Inbox + ".abc.1") {
		t.Errorf("core inbox %q not covered by its subscribe permission", core.Inbox)
	}
	if len(gw.Streams) != 0 || !slices.Equal(gw.Buckets, []string{bus.BucketSessions, bus.BucketPresence}) {
		t.Errorf("gateway streams %v buckets %v", gw.Streams, gw.Buckets)
	}
	if !slices.Equal(core.Streams, []string{"JSP_EVENTS", "JSP_WORK_WEBHOOK", "JSP_WORK_PUSH"}) {
		t.Errorf("core streams %v", core.Streams)
	}
	deny := bus.SubjectPermission{Allow: []string{"a.>"}, Deny: []string{"a.secret"}}
	if deny.Allows("a.secret") || !deny.Allows("a.public") {
		t.Error("deny list not applied")
	}
	if _, err := bus.RolePermissions(s, "admin", "x"); err == nil {
		t.Error("unknown role accepted")
	}
	if _, err := bus.RolePermissions(s, bus.RoleCore, "k1", "bad.queue"); err == nil {
		t.Error("bad work queue accepted")
	}
}

func TestWorkQueueConfig(t *testing.T) {
	s, _ := bus.NewSubjects("c")
	cfg, err := s.WorkQueue("push")
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cfg.SetDefaults()
	if cfg.Consumer != bus.DefaultConsumer || cfg.MaxDeliver != bus.DefaultMaxDeliver || cfg.AckWait != bus.DefaultAckWait ||
		cfg.MaxPending != bus.DefaultMaxPending || cfg.MaxAge != bus.DefaultWorkMaxAge ||
		cfg.DuplicateWindow != bus.DefaultDuplicateWindow || cfg.Replicas != 1 || !slices.Equal(cfg.Backoff, bus.DefaultBackoff) {
		t.Fatalf("defaults %+v", cfg)
	}
	for i, want := range []time.Duration{time.Second, time.Second, 5 * time.Second, 30 * time.Second, 2 * time.Minute, 2 * time.Minute} {
		if got := cfg.BackoffFor(i); got != want {
			t.Errorf("BackoffFor(%d) = %v, want %v", i, got, want)
		}
	}
	bad := []func(*bus.WorkQueueConfig){
		func(c *bus.WorkQueueConfig) { c.Stream = "" },
		func(c *bus.WorkQueueConfig) { c.Stream = "a.b" },
		func(c *bus.WorkQueueConfig) { c.Subject = "a.*" },
		func(c *bus.WorkQueueConfig) { c.Consumer = "x y" },
		func(c *bus.WorkQueueConfig) { c.MaxDeliver = -1 },
		func(c *bus.WorkQueueConfig) { c.AckWait = -1 },
		func(c *bus.WorkQueueConfig) { c.Replicas = 6 },
		func(c *bus.WorkQueueConfig) { c.Backoff = []time.Duration{-1} },
	}
	for i, edit := range bad {
		c, _ := s.WorkQueue("push")
		edit(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("bad config %d accepted: %+v", i, c)
		}
	}
}

func TestEventLogAndKVConfig(t *testing.T) {
	s, _ := bus.NewSubjects("c")
	el := s.EventLog()
	if err := el.Validate(); err != nil {
		t.Fatal(err)
	}
	el.SetDefaults()
	if el.MaxAge != bus.DefaultEventMaxAge || el.Replicas != 1 || el.DuplicateWindow != bus.DefaultDuplicateWindow {
		t.Fatalf("event log defaults %+v", el)
	}
	el.MaxMsgs = -1
	if err := el.Validate(); err == nil {
		t.Error("negative MaxMsgs accepted")
	}
	kv := bus.KVConfig{Bucket: bus.BucketSessions}
	if err := kv.Validate(); err != nil {
		t.Fatal(err)
	}
	kv.SetDefaults()
	if kv.History != 1 || kv.Replicas != 1 {
		t.Fatalf("kv defaults %+v", kv)
	}
	for _, c := range []bus.KVConfig{
		{Bucket: ""}, {Bucket: "a.b"}, {Bucket: "ok", History: 65}, {Bucket: "ok", TTL: -1}, {Bucket: "ok", Replicas: 9},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("bad kv config accepted: %+v", c)
		}
	}
}

func TestTerminal(t *testing.T) {
	base := errors.New("bad payload")
	err := bus.Terminal(base)
	if !errors.Is(err, bus.ErrTerminal) || !errors.Is(err, base) {
		t.Fatalf("Terminal(%v) = %v", base, err)
	}
	h := bus.Header{}
	h.Set("a", "1")
	if h.Get("a") != "1" || h.Get("b") != "" {
		t.Fatal("Header get/set")
	}
	if bus.KVPut.String() != "put" || bus.KVDelete.String() != "delete" || bus.KVOp(9).String() != "KVOp(9)" {
		t.Fatal("KVOp strings")
	}
	if o := bus.ApplyKVOptions([]bus.KVOption{bus.WithTTL(time.Minute)}); o.TTL != time.Minute {
		t.Fatal("WithTTL")
	}
}
