package chat_test

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	chatsdk "github.com/jetstreamproto/jsp/client/chat"
	"github.com/jetstreamproto/jsp/services/chatevents"
)

// latencies collects post-to-deliver times.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

func (l *latencies) report(b *testing.B) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return
	}
	slices.Sort(l.d)
	q := func(p float64) float64 { return float64(l.d[int(p*float64(len(l.d)-1))]) / float64(time.Millisecond) }
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
}

// benchRun posts b.N messages with posters concurrent posters and waits
// until every expected delivery arrived; post(i) posts message i, whose
// text is its index, and deliveries counts what each post should reach.
func benchRun(b *testing.B, posters int, perPost int, post func(i int) error, sent []atomic.Int64, got *atomic.Int64) {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	b.ResetTimer()
	for range posters {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					return
				}
				sent[i].Store(time.Now().UnixNano())
				if err := post(i); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	want := int64(b.N * perPost)
	deadline := time.Now().Add(60 * time.Second)
	for got.Load() < want && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	if got.Load() < want {
		b.Fatalf("%d of %d deliveries", got.Load(), want)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(want)/elapsed.Seconds(), "deliveries/s")
}

// deliver records the latency of a message.created event whose text is a
// message index.
func deliver(e chatsdk.Event, sent []atomic.Int64, lat *latencies, got *atomic.Int64) {
	if e.Type != chatevents.MessageCreated {
		return
	}
	i, err := strconv.Atoi(e.Message.Text)
	if err != nil || i >= len(sent) {
		return
	}
	lat.add(time.Duration(time.Now().UnixNano() - sent[i].Load()))
	got.Add(1)
}

// BenchmarkGroup50 measures the messages per second one node (gateway,
// core, SQLite) sustains in a 50-member group: 8 members post
// concurrently, all 50 receive every message; latency is post call to
// delivery at each member.
func BenchmarkGroup50(b *testing.B) {
	e := newEnv(b, benchBackend().dsn(b))
	ctx := ctxT(b)
	const n, posters = 50, 8
	users := make([]*user, n)
	var names []string
	for i := range n {
		users[i] = e.connect(fmt.Sprintf("b%02d", i))
		names = append(names, users[i].name)
	}
	g, err := users[0].chat.Create(ctx, chatevents.KindGroup, "bench", "", names[1:]...)
	must(b, err)
	sent := make([]atomic.Int64, b.N)
	var lat latencies
	var got atomic.Int64
	for _, u := range users {
		if _, err := u.chat.Subscribe(ctx, g.ID, 0, func(ev chatsdk.Event) { deliver(ev, sent, &lat, &got) }); err != nil {
			b.Fatal(err)
		}
	}
	benchRun(b, posters, n, func(i int) error {
		_, err := users[i%posters].chat.Post(ctx, g.ID, strconv.Itoa(i))
		return err
	}, sent, &got)
	lat.report(b)
}

// BenchmarkDirect100 measures 100 direct chats at once: 100 senders post
// to their own peer concurrently; latency is post call to delivery.
func BenchmarkDirect100(b *testing.B) {
	e := newEnv(b, benchBackend().dsn(b))
	ctx := ctxT(b)
	const pairs = 100
	senders := make([]*user, pairs)
	convs := make([]string, pairs)
	sent := make([]atomic.Int64, b.N)
	var lat latencies
	var got atomic.Int64
	for i := range pairs {
		senders[i] = e.connect(fmt.Sprintf("s%03d", i))
		r := e.connect(fmt.Sprintf("r%03d", i))
		p, err := senders[i].chat.SendDirect(ctx, r.name, "open")
		must(b, err)
		convs[i] = p.Event.Conversation
		if _, err := r.chat.Subscribe(ctx, convs[i], 0, func(ev chatsdk.Event) { deliver(ev, sent, &lat, &got) }); err != nil {
			b.Fatal(err)
		}
	}
	benchRun(b, pairs, 1, func(i int) error {
		k := i % pairs
		_, err := senders[k].chat.Post(ctx, convs[k], strconv.Itoa(i))
		return err
	}, sent, &got)
	lat.report(b)
}

// benchBackend is the backend the benchmarks use: SQLite on disk, or the
// one JSP_CHAT_BENCH_BACKEND names (sqlite-memory, postgres).
func benchBackend() backend {
	name := os.Getenv("JSP_CHAT_BENCH_BACKEND")
	for _, b := range backends {
		if b.name == name {
			return b
		}
	}
	return backends[0]
}
