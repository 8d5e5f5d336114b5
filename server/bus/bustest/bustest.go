// Package bustest is the conformance suite of [bus.Bus]: every
// implementation (natsbus over a real embedded NATS server, membus in
// memory) runs the same tests, so code tested against membus behaves the
// same on NATS.
//
//	func TestConformance(t *testing.T) {
//		bustest.Run(t, func(t *testing.T) bus.Bus { return newBus(t) })
//	}
package bustest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/server/bus"
)

// Factory returns a fresh bus for one test and registers its cleanup with
// t.Cleanup.
type Factory func(t *testing.T) bus.Bus

// Timeout bounds every wait of the suite.
const Timeout = 10 * time.Second

// Run runs the conformance suite against buses made by newBus.
func Run(t *testing.T, newBus Factory) {
	tests := []struct {
		name string
		fn   func(t *testing.T, b bus.Bus)
	}{
		{"PubSub", testPubSub},
		{"Unsubscribe", testUnsubscribe},
		{"QueueGroup", testQueueGroup},
		{"Request", testRequest},
		{"InvalidSubjects", testInvalidSubjects},
		{"WorkQueue", testWorkQueue},
		{"WorkQueueRetry", testWorkQueueRetry},
		{"WorkQueueAckWait", testWorkQueueAckWait},
		{"WorkQueueDedupe", testWorkQueueDedupe},
		{"EventLog", testEventLog},
		{"EventLogFollow", testEventLogFollow},
		{"KV", testKV},
		{"KVWatch", testKVWatch},
		{"KVTTL", testKVTTL},
		{"Close", testClose},
		{"NoEcho", testNoEcho},
		{"Flush", testFlush},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, newBus(t)) })
	}
}

func subjects(t *testing.T) bus.Subjects {
	t.Helper()
	s, err := bus.NewSubjects("conf")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), Timeout)
	t.Cleanup(cancel)
	return c
}

// collector records received messages.
type collector struct {
	mu   sync.Mutex
	msgs []*bus.Msg
	got  chan struct{}
}

func newCollector() *collector { return &collector{got: make(chan struct{}, 1<<16)} }

func (c *collector) handle(m *bus.Msg) {
	c.mu.Lock()
	c.msgs = append(c.msgs, m)
	c.mu.Unlock()
	c.got <- struct{}{}
}

func (c *collector) wait(t *testing.T, n int) []*bus.Msg {
	t.Helper()
	deadline := time.After(Timeout)
	for {
		c.mu.Lock()
		got := len(c.msgs)
		msgs := slices.Clone(c.msgs)
		c.mu.Unlock()
		if got >= n {
			return msgs
		}
		select {
		case <-c.got:
		case <-deadline:
			t.Fatalf("received %d messages, want %d", got, n)
		}
	}
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.msgs)
}

// barrier publishes a marker on a private subject and waits for it, so
// that every message published before it on the same connection has been
// routed (NATS keeps per-connection publish order).
func barrier(t *testing.T, b bus.Bus, subject string) {
	t.Helper()
	c := newCollector()
	sub, err := b.Subscribe(subject, c.handle)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	// The subscription itself must be in place before the marker; retry
	// the marker until it arrives.
	deadline := time.Now().Add(Timeout)
	for c.count() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("barrier marker never arrived")
		}
		if err := b.Publish(subject, bus.Msg{}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func mustSub(t *testing.T, b bus.Bus, subject string, h bus.Handler) bus.Subscription {
	t.Helper()
	s, err := b.Subscribe(subject, h)
	if err != nil {
		t.Fatalf("subscribe %q: %v", subject, err)
	}
	return s
}

func testPubSub(t *testing.T, b bus.Bus) {
	s := subjects(t)
	room, err := s.Channel("room.1 ✓")
	if err != nil {
		t.Fatal(err)
	}
	exact, star, all := newCollector(), newCollector(), newCollector()
	mustSub(t, b, room, exact.handle)
	mustSub(t, b, "jsp.conf.ch.*", star.handle)
	mustSub(t, b, s.All(), all.handle)
	other, err := s.User("u1")
	if err != nil {
		t.Fatal(err)
	}
	barrier(t, b, "jsp.conf.barrier.pubsub")

	data := []byte("hello")
	if err := b.Publish(room, bus.Msg{Data: data, Header: bus.Header{"K": {"v"}}}); err != nil {
		t.Fatal(err)
	}
	data[0] = 'X' // the bus must have copied the payload
	if err := b.Publish(other, bus.Msg{Data: []byte("user")}); err != nil {
		t.Fatal(err)
	}
	got := exact.wait(t, 1)[0]
	if got.Subject != room || string(got.Data) != "hello" || got.Header.Get("K") != "v" {
		t.Fatalf("exact got subject %q data %q header %v", got.Subject, got.Data, got.Header)
	}
	star.wait(t, 1)
	all.wait(t, 2)
	barrier(t, b, "jsp.conf.barrier.pubsub2")
	if n := exact.count(); n != 1 {
		t.Fatalf("exact subscriber got %d messages, want 1", n)
	}
	if n := star.count(); n != 1 {
		t.Fatalf("'*' subscriber got %d messages, want 1 (the user subject must not match)", n)
	}
}

func testUnsubscribe(t *testing.T, b bus.Bus) {
	c := newCollector()
	sub := mustSub(t, b, "jsp.conf.unsub", c.handle)
	if sub.Subject() != "jsp.conf.unsub" {
		t.Fatalf("Subject() = %q", sub.Subject())
	}
	barrier(t, b, "jsp.conf.barrier.unsub")
	if err := b.Publish("jsp.conf.unsub", bus.Msg{Data: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	c.wait(t, 1)
	if err := sub.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	if err := sub.Unsubscribe(); err != nil {
		t.Fatalf("second Unsubscribe: %v", err)
	}
	if err := b.Publish("jsp.conf.unsub", bus.Msg{Data: []byte("2")}); err != nil {
		t.Fatal(err)
	}
	barrier(t, b, "jsp.conf.barrier.unsub2")
	if n := c.count(); n != 1 {
		t.Fatalf("got %d messages after unsubscribe, want 1", n)
	}
}

func testQueueGroup(t *testing.T, b bus.Bus) {
	s := subjects(t)
	subj := s.CoreCmd(3)
	var a, c atomic.Int64
	plain := newCollector()
	if _, err := b.QueueSubscribe(subj, bus.CoreQueue, func(*bus.Msg) { a.Add(1) }); err != nil {
		t.Fatal(err)
	}
	if _, err := b.QueueSubscribe(subj, bus.CoreQueue, func(*bus.Msg) { c.Add(1) }); err != nil {
		t.Fatal(err)
	}
	mustSub(t, b, subj, plain.handle)
	if _, err := b.QueueSubscribe(subj, "bad queue", func(*bus.Msg) {}); !errors.Is(err, bus.ErrInvalidName) {
		t.Fatalf("queue name with a space: err = %v, want ErrInvalidName", err)
	}
	barrier(t, b, "jsp.conf.barrier.queue")
	const n = 200
	for i := range n {
		if err := b.Publish(subj, bus.Msg{Data: fmt.Appendf(nil, "%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	plain.wait(t, n)
	deadline := time.Now().Add(Timeout)
	for a.Load()+c.Load() < n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	barrier(t, b, "jsp.conf.barrier.queue2")
	if got := a.Load() + c.Load(); got != n {
		t.Fatalf("queue group got %d messages, want exactly %d", got, n)
	}
	if a.Load() == 0 || c.Load() == 0 {
		t.Fatalf("work not split: %d / %d", a.Load(), c.Load())
	}
}

func testRequest(t *testing.T, b bus.Bus) {
	s := subjects(t)
	subj := s.CoreCmd(0)
	if _, err := b.QueueSubscribe(subj, bus.CoreQueue, func(m *bus.Msg) {
		if m.Reply == "" {
			return
		}
		_ = b.Publish(m.Reply, bus.Msg{Data: append([]byte("re:"), m.Data...), Header: bus.Header{"Status": {"ok"}}})
	}); err != nil {
		t.Fatal(err)
	}
	silent := s.CoreCmd(1)
	mustSub(t, b, silent, func(*bus.Msg) {})
	barrier(t, b, "jsp.conf.barrier.req")

	r, err := b.Request(ctx(t), subj, bus.Msg{Data: []byte("ping")})
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	if string(r.Data) != "re:ping" || r.Header.Get("Status") != "ok" {
		t.Fatalf("reply %q header %v", r.Data, r.Header)
	}

	_, err = b.Request(ctx(t), s.CoreCmd(2), bus.Msg{Data: []byte("nobody")})
	if !errors.Is(err, bus.ErrNoResponders) {
		t.Fatalf("request without responders: err = %v, want ErrNoResponders", err)
	}

	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = b.Request(short, silent, bus.Msg{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("request to a silent subscriber: err = %v, want DeadlineExceeded", err)
	}
}

func testInvalidSubjects(t *testing.T, b bus.Bus) {
	for _, subj := range []string{"", "a..b", "a.*", "a.>", "a b", ".a", "a."} {
		if err := b.Publish(subj, bus.Msg{}); !errors.Is(err, bus.ErrInvalidSubject) {
			t.Errorf("Publish(%q): err = %v, want ErrInvalidSubject", subj, err)
		}
	}
	for _, subj := range []string{"", "a..b", "a.>.b", "a b", "a.b*"} {
		if _, err := b.Subscribe(subj, func(*bus.Msg) {}); !errors.Is(err, bus.ErrInvalidSubject) {
			t.Errorf("Subscribe(%q): err = %v, want ErrInvalidSubject", subj, err)
		}
	}
}

func workQueue(t *testing.T, b bus.Bus, name string, edit func(*bus.WorkQueueConfig)) bus.WorkQueue {
	t.Helper()
	cfg, err := subjects(t).WorkQueue(name)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Memory = true
	cfg.AckWait = 5 * time.Second
	cfg.Backoff = []time.Duration{50 * time.Millisecond}
	if edit != nil {
		edit(&cfg)
	}
	q, err := b.WorkQueue(ctx(t), cfg)
	if err != nil {
		t.Fatalf("work queue %s: %v", name, err)
	}
	return q
}

func testWorkQueue(t *testing.T, b bus.Bus) {
	q := workQueue(t, b, "split", nil)
	if got := q.Config(); got.Stream != "JSP_WORK_SPLIT" || got.MaxDeliver != bus.DefaultMaxDeliver {
		t.Fatalf("config = %+v", got)
	}
	const n = 40
	for i := range n {
		seq, err := q.Enqueue(ctx(t), bus.Msg{Data: fmt.Appendf(nil, "%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		if seq != uint64(i+1) {
			t.Fatalf("enqueue %d: seq %d", i, seq)
		}
	}
	var mu sync.Mutex
	seen := map[string]int{}
	per := [2]atomic.Int64{}
	done := make(chan struct{})
	var total atomic.Int64
	handler := func(k int) bus.JobHandler {
		return func(_ context.Context, j bus.Job) error {
			if j.Delivery() != 1 {
				t.Errorf("job %d delivered %d times", j.Seq(), j.Delivery())
			}
			mu.Lock()
			seen[string(j.Msg().Data)]++
			mu.Unlock()
			per[k].Add(1)
			// Slow enough that the other consumer gets a share.
			time.Sleep(2 * time.Millisecond)
			if total.Add(1) == n {
				close(done)
			}
			return nil
		}
	}
	c1, err := q.Consume(ctx(t), handler(0), bus.ConsumeConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Stop()
	c2, err := q.Consume(ctx(t), handler(1), bus.ConsumeConfig{Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Stop()
	select {
	case <-done:
	case <-time.After(Timeout):
		t.Fatalf("processed %d of %d jobs", total.Load(), n)
	}
	c1.Stop()
	c2.Stop()
	c1.Stop() // idempotent
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != n {
		t.Fatalf("saw %d distinct jobs, want %d", len(seen), n)
	}
	for k, v := range seen {
		if v != 1 {
			t.Fatalf("job %s processed %d times", k, v)
		}
	}
	if per[0].Load() == 0 || per[1].Load() == 0 {
		t.Fatalf("work not split between consumers: %d / %d", per[0].Load(), per[1].Load())
	}
}

func testWorkQueueRetry(t *testing.T, b bus.Bus) {
	q := workQueue(t, b, "retry", func(c *bus.WorkQueueConfig) { c.MaxDeliver = 3 })
	type dead struct {
		data     string
		delivery int
		err      error
	}
	deadCh := make(chan dead, 4)
	okCh := make(chan int, 4)
	var mu sync.Mutex
	attempts := map[string][]int{}
	c, err := q.Consume(ctx(t), func(_ context.Context, j bus.Job) error {
		d := string(j.Msg().Data)
		mu.Lock()
		attempts[d] = append(attempts[d], j.Delivery())
		mu.Unlock()
		switch d {
		case "flaky":
			if j.Delivery() < 2 {
				return errors.New("try again")
			}
			okCh <- j.Delivery()
			return nil
		case "broken":
			return errors.New("always fails")
		case "poison":
			return bus.Terminal(errors.New("cannot parse"))
		}
		return nil
	}, bus.ConsumeConfig{OnDeadLetter: func(j bus.Job, err error) {
		deadCh <- dead{string(j.Msg().Data), j.Delivery(), err}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	for _, d := range []string{"flaky", "broken", "poison"} {
		if _, err := q.Enqueue(ctx(t), bus.Msg{Data: []byte(d)}); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case d := <-okCh:
		if d != 2 {
			t.Fatalf("flaky job succeeded on delivery %d, want 2", d)
		}
	case <-time.After(Timeout):
		t.Fatal("flaky job was not redelivered")
	}
	got := map[string]dead{}
	for len(got) < 2 {
		select {
		case d := <-deadCh:
			got[d.data] = d
		case <-time.After(Timeout):
			t.Fatalf("dead letters: %v", got)
		}
	}
	if d := got["broken"]; d.delivery != 3 || d.err == nil {
		t.Fatalf("broken job dead-lettered at delivery %d (err %v), want 3", d.delivery, d.err)
	}
	if d := got["poison"]; d.delivery != 1 || !errors.Is(d.err, bus.ErrTerminal) {
		t.Fatalf("poison job dead-lettered at delivery %d (err %v), want 1 and ErrTerminal", d.delivery, d.err)
	}
	// Nothing is delivered again after the dead letter.
	time.Sleep(300 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if a := attempts["broken"]; !slices.Equal(a, []int{1, 2, 3}) {
		t.Fatalf("broken attempts %v, want [1 2 3]", a)
	}
	if a := attempts["poison"]; !slices.Equal(a, []int{1}) {
		t.Fatalf("poison attempts %v, want [1]", a)
	}
}

func testWorkQueueAckWait(t *testing.T, b bus.Bus) {
	q := workQueue(t, b, "ackwait", func(c *bus.WorkQueueConfig) { c.AckWait = 500 * time.Millisecond })
	if _, err := q.Enqueue(ctx(t), bus.Msg{Data: []byte("slow")}); err != nil {
		t.Fatal(err)
	}
	deliveries := make(chan int, 4)
	release := make(chan struct{})
	c, err := q.Consume(ctx(t), func(ctx context.Context, j bus.Job) error {
		deliveries <- j.Delivery()
		if j.Delivery() == 1 {
			// Hold the job past AckWait without InProgress.
			select {
			case <-release:
			case <-ctx.Done():
			}
			return errors.New("gave up")
		}
		return nil
	}, bus.ConsumeConfig{Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	defer close(release)
	for want := 1; want <= 2; want++ {
		select {
		case d := <-deliveries:
			if d != want {
				t.Fatalf("delivery %d, want %d", d, want)
			}
		case <-time.After(Timeout):
			t.Fatalf("no delivery %d: an unacknowledged job must be redelivered after AckWait", want)
		}
	}
}

func testWorkQueueDedupe(t *testing.T, b bus.Bus) {
	q := workQueue(t, b, "dedupe", nil)
	h := bus.Header{}
	h.Set(bus.HeaderMsgID, "webhook-42")
	s1, err := q.Enqueue(ctx(t), bus.Msg{Header: h, Data: []byte("a")})
	if err != nil {
		t.Fatal(err)
	}
	s2, err := q.Enqueue(ctx(t), bus.Msg{Header: h, Data: []byte("a")})
	if err != nil {
		t.Fatal(err)
	}
	s3, err := q.Enqueue(ctx(t), bus.Msg{Data: []byte("b")})
	if err != nil {
		t.Fatal(err)
	}
	if s1 != s2 || s3 != s1+1 {
		t.Fatalf("sequences %d %d %d: a retried enqueue must return the first copy", s1, s2, s3)
	}
	full := workQueue(t, b, "full", func(c *bus.WorkQueueConfig) { c.MaxMsgs = 1 })
	if _, err := full.Enqueue(ctx(t), bus.Msg{Data: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	if _, err := full.Enqueue(ctx(t), bus.Msg{Data: []byte("2")}); !errors.Is(err, bus.ErrQueueFull) {
		t.Fatalf("enqueue past MaxMsgs: err = %v, want ErrQueueFull", err)
	}
}

func eventLog(t *testing.T, b bus.Bus) bus.EventLog {
	t.Helper()
	cfg := subjects(t).EventLog()
	cfg.Memory = true
	l, err := b.EventLog(ctx(t), cfg)
	if err != nil {
		t.Fatalf("event log: %v", err)
	}
	return l
}

func testEventLog(t *testing.T, b bus.Bus) {
	l := eventLog(t, b)
	if seq, err := l.LastSeq(ctx(t)); err != nil || seq != 0 {
		t.Fatalf("LastSeq of an empty log = %d, %v", seq, err)
	}
	if err := l.Replay(ctx(t), bus.ReplayOptions{}, func(e bus.Event) error {
		return fmt.Errorf("unexpected event %d", e.Seq)
	}); err != nil {
		t.Fatalf("replay of an empty log: %v", err)
	}
	kinds := []string{"chat.msg", "presence", "chat.msg", "member.join", "chat.msg"}
	for i, k := range kinds {
		seq, err := l.Append(ctx(t), k, bus.Msg{Data: fmt.Appendf(nil, "e%d", i+1)})
		if err != nil {
			t.Fatal(err)
		}
		if seq != uint64(i+1) {
			t.Fatalf("append %d: seq %d", i, seq)
		}
	}
	if seq, err := l.LastSeq(ctx(t)); err != nil || seq != 5 {
		t.Fatalf("LastSeq = %d, %v; want 5", seq, err)
	}
	replay := func(opt bus.ReplayOptions) []string {
		t.Helper()
		var got []string
		if err := l.Replay(ctx(t), opt, func(e bus.Event) error {
			got = append(got, fmt.Sprintf("%d:%s:%s", e.Seq, e.Kind, e.Msg.Data))
			if e.Time.IsZero() {
				t.Errorf("event %d has no time", e.Seq)
			}
			return nil
		}); err != nil {
			t.Fatalf("replay %+v: %v", opt, err)
		}
		return got
	}
	tests := []struct {
		opt  bus.ReplayOptions
		want []string
	}{
		{bus.ReplayOptions{}, []string{"1:chat.msg:e1", "2:presence:e2", "3:chat.msg:e3", "4:member.join:e4", "5:chat.msg:e5"}},
		{bus.ReplayOptions{From: 4}, []string{"4:member.join:e4", "5:chat.msg:e5"}},
		{bus.ReplayOptions{From: 2, Kinds: []string{"chat.msg"}}, []string{"3:chat.msg:e3", "5:chat.msg:e5"}},
		{bus.ReplayOptions{From: 9}, nil},
	}
	for _, tt := range tests {
		if got := replay(tt.opt); !slices.Equal(got, tt.want) {
			t.Errorf("replay %+v = %v, want %v", tt.opt, got, tt.want)
		}
	}
	stop := errors.New("enough")
	n := 0
	err := l.Replay(ctx(t), bus.ReplayOptions{}, func(bus.Event) error {
		n++
		if n == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 2 {
		t.Fatalf("replay stopping at 2: err %v after %d events", err, n)
	}
}

func testEventLogFollow(t *testing.T, b bus.Bus) {
	l := eventLog(t, b)
	if _, err := l.Append(ctx(t), "a", bus.Msg{Data: []byte("old")}); err != nil {
		t.Fatal(err)
	}
	got := make(chan bus.Event, 8)
	fctx, cancel := context.WithCancel(ctx(t))
	done := make(chan error, 1)
	go func() {
		done <- l.Replay(fctx, bus.ReplayOptions{Follow: true}, func(e bus.Event) error {
			got <- e
			return nil
		})
	}()
	next := func() bus.Event {
		select {
		case e := <-got:
			return e
		case <-time.After(Timeout):
			t.Fatal("follow replay delivered nothing")
		}
		return bus.Event{}
	}
	if e := next(); e.Seq != 1 {
		t.Fatalf("first event seq %d", e.Seq)
	}
	if _, err := l.Append(ctx(t), "b", bus.Msg{Data: []byte("new")}); err != nil {
		t.Fatal(err)
	}
	if e := next(); e.Seq != 2 || string(e.Msg.Data) != "new" || e.Kind != "b" {
		t.Fatalf("followed event %d %q %q", e.Seq, e.Kind, e.Msg.Data)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("follow replay ended with %v, want context.Canceled", err)
		}
	case <-time.After(Timeout):
		t.Fatal("follow replay did not stop on cancel")
	}
}

func kvBucket(t *testing.T, b bus.Bus, cfg bus.KVConfig) bus.KV {
	t.Helper()
	cfg.Memory = true
	kv, err := b.KV(ctx(t), cfg)
	if err != nil {
		t.Fatalf("kv %s: %v", cfg.Bucket, err)
	}
	return kv
}

func testKV(t *testing.T, b bus.Bus) {
	kv := kvBucket(t, b, bus.KVConfig{Bucket: bus.BucketSessions})
	c := ctx(t)
	key, err := bus.SessionKey("sess.1/α")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Get(c, key); !errors.Is(err, bus.ErrKeyNotFound) {
		t.Fatalf("get missing: %v", err)
	}
	r1, err := kv.Create(c, key, []byte("gw-1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Create(c, key, []byte("gw-2")); !errors.Is(err, bus.ErrKeyExists) {
		t.Fatalf("second create: %v, want ErrKeyExists", err)
	}
	e, err := kv.Get(c, key)
	if err != nil || string(e.Value) != "gw-1" || e.Revision != r1 || e.Op != bus.KVPut || e.Key != key {
		t.Fatalf("get = %+v, %v", e, err)
	}
	if _, err := kv.Update(c, key, []byte("gw-2"), r1+100); !errors.Is(err, bus.ErrRevisionMismatch) {
		t.Fatalf("update at a wrong revision: %v, want ErrRevisionMismatch", err)
	}
	r2, err := kv.Update(c, key, []byte("gw-2"), r1)
	if err != nil || r2 <= r1 {
		t.Fatalf("update = %d, %v", r2, err)
	}
	if _, err := kv.Update(c, key, []byte("gw-3"), r1); !errors.Is(err, bus.ErrRevisionMismatch) {
		t.Fatalf("update at a stale revision: %v", err)
	}
	if err := kv.Delete(c, key, r1); !errors.Is(err, bus.ErrRevisionMismatch) {
		t.Fatalf("delete at a stale revision: %v", err)
	}
	if err := kv.Delete(c, key, r2); err != nil {
		t.Fatalf("delete at the latest revision: %v", err)
	}
	if _, err := kv.Get(c, key); !errors.Is(err, bus.ErrKeyNotFound) {
		t.Fatalf("get deleted: %v", err)
	}
	if _, err := kv.Create(c, key, []byte("again")); err != nil {
		t.Fatalf("create after delete: %v", err)
	}
	r4, err := kv.Put(c, key, []byte("put"))
	if err != nil {
		t.Fatal(err)
	}
	if e, _ := kv.Get(c, key); string(e.Value) != "put" || e.Revision != r4 {
		t.Fatalf("get after put = %+v", e)
	}
	if err := kv.Delete(c, key, 0); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "a..b", "a b", "a*", ".a", "ü"} {
		if _, err := kv.Put(c, bad, nil); !errors.Is(err, bus.ErrInvalidName) {
			t.Errorf("put key %q: %v, want ErrInvalidName", bad, err)
		}
	}
}

func testKVWatch(t *testing.T, b bus.Bus) {
	kv := kvBucket(t, b, bus.KVConfig{Bucket: bus.BucketPresence})
	c := ctx(t)
	k := func(user, sess string) string {
		key, err := bus.PresenceKey(user, sess)
		if err != nil {
			t.Fatal(err)
		}
		return key
	}
	if _, err := kv.Put(c, k("ann", "s1"), []byte("online")); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(c, k("ann", "s2"), []byte("away")); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(c, k("bob", "s3"), []byte("online")); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(c, k("ann", "gone"), []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete(c, k("ann", "gone"), 0); err != nil {
		t.Fatal(err)
	}
	pattern, err := bus.PresencePattern("ann")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []string
	update := make(chan struct{}, 16)
	w, err := kv.Watch(c, pattern, func(e bus.KVEntry) {
		mu.Lock()
		seen = append(seen, fmt.Sprintf("%s:%s=%s", e.Op, e.Key, e.Value))
		mu.Unlock()
		update <- struct{}{}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	mu.Lock()
	initial := slices.Clone(seen)
	mu.Unlock()
	slices.Sort(initial)
	want := []string{"put:ann.s1=online", "put:ann.s2=away"}
	if !slices.Equal(initial, want) {
		t.Fatalf("initial entries when Watch returned: %v, want %v", initial, want)
	}
	if _, err := kv.Put(c, k("bob", "s3"), []byte("away")); err != nil { // not matched
		t.Fatal(err)
	}
	if _, err := kv.Put(c, k("ann", "s1"), []byte("busy")); err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete(c, k("ann", "s2"), 0); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(Timeout)
	for {
		mu.Lock()
		n := len(seen)
		mu.Unlock()
		if n >= 4 {
			break
		}
		select {
		case <-update:
		case <-deadline:
			t.Fatalf("watch updates: %v", seen)
		}
	}
	w.Stop()
	w.Stop()
	mu.Lock()
	defer mu.Unlock()
	if got := seen[2:]; !slices.Equal(got, []string{"put:ann.s1=busy", "delete:ann.s2="}) {
		t.Fatalf("updates %v", got)
	}
}

func testKVTTL(t *testing.T, b bus.Bus) {
	kv := kvBucket(t, b, bus.KVConfig{Bucket: "ttl", TTL: time.Second})
	keyed := kvBucket(t, b, bus.KVConfig{Bucket: "keyttl", KeyTTL: true})
	c := ctx(t)
	if _, err := kv.Put(c, "p", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if _, err := keyed.Create(c, "short", []byte("v"), bus.WithTTL(time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := keyed.Create(c, "forever", []byte("v")); err != nil {
		t.Fatal(err)
	}
	// Put with a TTL: a key written with one expires; a put without
	// the option is refused by a bucket without KeyTTL.
	if _, err := keyed.Put(c, "beat", []byte("v1"), bus.WithTTL(time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(c, "beat", []byte("v1"), bus.WithTTL(time.Second)); err == nil {
		t.Fatal("put with a TTL into a bucket without KeyTTL accepted")
	}
	if _, err := kv.Get(c, "p"); err != nil {
		t.Fatalf("get before the TTL: %v", err)
	}
	deadline := time.Now().Add(Timeout)
	for {
		_, err1 := kv.Get(c, "p")
		_, err2 := keyed.Get(c, "short")
		_, err3 := keyed.Get(c, "beat")
		if errors.Is(err1, bus.ErrKeyNotFound) && errors.Is(err2, bus.ErrKeyNotFound) && errors.Is(err3, bus.ErrKeyNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("keys did not expire: %v, %v, %v", err1, err2, err3)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := keyed.Get(c, "forever"); err != nil {
		t.Fatalf("key without TTL expired: %v", err)
	}
	if _, err := keyed.Create(c, "short", []byte("again")); err != nil {
		t.Fatalf("create after expiry: %v", err)
	}
}

func testClose(t *testing.T, b bus.Bus) {
	got := make(chan string, 4)
	mustSub(t, b, "jsp.conf.close", func(m *bus.Msg) { got <- string(m.Data) })
	barrier(t, b, "jsp.conf.barrier.close")
	q := workQueue(t, b, "close", nil)
	c, err := q.Consume(ctx(t), func(context.Context, bus.Job) error { return nil }, bus.ConsumeConfig{})
	if err != nil {
		t.Fatal(err)
	}
	_ = c
	if err := b.Publish("jsp.conf.close", bus.Msg{Data: []byte("last")}); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	select {
	case m := <-got:
		if m != "last" {
			t.Fatalf("got %q", m)
		}
	case <-time.After(Timeout):
		t.Fatal("a message published before Close was not delivered")
	}
	if err := b.Publish("jsp.conf.close", bus.Msg{}); !errors.Is(err, bus.ErrClosed) {
		t.Fatalf("publish after close: %v, want ErrClosed", err)
	}
	if _, err := b.Subscribe("jsp.conf.close", func(*bus.Msg) {}); !errors.Is(err, bus.ErrClosed) {
		t.Fatalf("subscribe after close: %v, want ErrClosed", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}
