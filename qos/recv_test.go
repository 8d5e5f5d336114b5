package qos

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
)

func TestRecvOutcomes(t *testing.T) {
	tests := []struct {
		class   protocol.Class
		want    Outcome
		wantErr jsperr.Code
	}{
		{protocol.ClassSystem, Refused, jsperr.QueueFull},
		{protocol.ClassMedia, AcceptedDroppedOldest, jsperr.NoError},
		{protocol.ClassChat, Refused, jsperr.QueueFull},
		{protocol.ClassBulk, Refused, jsperr.QueueFull},
	}
	for _, tc := range tests {
		t.Run(tc.class.String(), func(t *testing.T) {
			var cfg Config
			cfg.QueueLength[tc.class] = 1
			q := NewRecvQueues[string](cfg)
			if out, d, err := q.Push(Item[string]{Class: tc.class, Value: "first"}); out != Accepted || d != nil || err != nil {
				t.Fatalf("first push: %v %v %v", out, d, err)
			}
			out, dropped, err := q.Push(Item[string]{Class: tc.class, Value: "second"})
			if out != tc.want || jsperr.CodeOf(err) != tc.wantErr {
				t.Fatalf("second push: %v %v, want %v %v", out, err, tc.want, tc.wantErr)
			}
			if tc.want == AcceptedDroppedOldest && (len(dropped) != 1 || dropped[0].Value != "first") {
				t.Fatalf("dropped %v, want [first]", dropped)
			}
			st := q.Stats()[tc.class]
			if st.Len != 1 || st.Dropped+st.Refused != 1 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

func TestRecvPopOrderAndBlocking(t *testing.T) {
	q := NewRecvQueues[string](Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got := make(chan string)
	go func() {
		it, err := q.Pop(ctx)
		if err != nil {
			got <- err.Error()
			return
		}
		got <- it.Value
	}()
	// The popper is (most likely) waiting; a push must wake it.
	if _, _, err := q.Push(Item[string]{Class: protocol.ClassBulk, Value: "wake"}); err != nil {
		t.Fatal(err)
	}
	if v := <-got; v != "wake" {
		t.Fatalf("blocked Pop returned %q", v)
	}
	q.Push(Item[string]{Class: protocol.ClassBulk, Value: "bulk"})
	q.Push(Item[string]{Class: protocol.ClassChat, Value: "chat"})
	q.Push(Item[string]{Class: protocol.ClassSystem, Value: "system"})
	it, err := q.Pop(ctx)
	if err != nil || it.Value != "system" {
		t.Fatalf("Pop = %v %v, want system first", it.Value, err)
	}
	if q.Len() != 2 || q.LenClass(protocol.ClassChat) != 1 || q.Bytes() != 0 {
		t.Fatalf("Len %d", q.Len())
	}
}

func TestRecvDeadlineUsesClock(t *testing.T) {
	now := t0
	q := NewRecvQueues[string](Config{Now: func() time.Time { return now }})
	var expired []string
	q.OnExpire(func(it Item[string]) { expired = append(expired, it.Value) })
	q.Push(Item[string]{Class: protocol.ClassMedia, Deadline: t0.Add(time.Millisecond), Value: "late"})
	q.Push(Item[string]{Class: protocol.ClassMedia, Value: "ok"})
	now = t0.Add(time.Second)
	it, ok := q.TryPop()
	if !ok || it.Value != "ok" || len(expired) != 1 {
		t.Fatalf("TryPop = %v %v, expired %v", it.Value, ok, expired)
	}
	if _, ok := q.TryPop(); ok {
		t.Fatal("TryPop on empty queues succeeded")
	}
}

func TestRecvCloseAndCancel(t *testing.T) {
	q := NewRecvQueues[int](Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := q.Pop(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Pop with cancelled ctx: %v", err)
	}
	q.Push(Item[int]{Class: protocol.ClassChat, Value: 7})
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if _, err := q.Pop(context.Background()); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	time.Sleep(10 * time.Millisecond) // let the poppers drain and block
	q.Close()
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Pop after Close: %v", err)
		}
	}
	if out, _, err := q.Push(Item[int]{}); out != Refused || !errors.Is(err, ErrClosed) {
		t.Fatalf("Push after Close: %v %v", out, err)
	}
	if q.Stats()[protocol.ClassChat].Sent != 1 {
		t.Fatal("the queued item was not delivered before close")
	}
}

func TestRecvConcurrent(t *testing.T) {
	q := NewRecvQueues[int](Config{})
	const producers, per = 4, 500
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			for i := 0; i < per; {
				// Chat refuses when full: back off and retry, as a caller
				// applying backpressure would.
				if _, _, err := q.Push(Item[int]{Class: protocol.Class(p % protocol.NumClasses), Size: 1, Value: i}); err != nil {
					time.Sleep(time.Millisecond)
					continue
				}
				i++
			}
		}(p)
	}
	got := 0
	for got < producers*per {
		if _, err := q.Pop(ctx); err != nil {
			t.Fatalf("after %d items: %v", got, err)
		}
		got++
	}
	wg.Wait()
	q.Close()
}

func BenchmarkRecvQueuesPushPop(b *testing.B) {
	q := NewRecvQueues[int](Config{})
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		q.Push(Item[int]{Class: protocol.Class(i % protocol.NumClasses), Size: 100})
		if _, err := q.Pop(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
