package client

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestRunnerDeliversInOrder(t *testing.T) {
	var wg sync.WaitGroup
	var drops atomic.Uint64
	got := make(chan int, 100)
	r := newRunner(func(v int) { got <- v }, 4, time.Second, &drops)
	r.start(&wg)
	for i := range 100 {
		if !r.offer(i) {
			t.Fatalf("offer(%d) dropped", i)
		}
	}
	for i := range 100 {
		if v := <-got; v != i {
			t.Fatalf("handler got %d, want %d", v, i)
		}
	}
	r.stop()
	wg.Wait()
	if drops.Load() != 0 {
		t.Fatalf("%d drops, want 0", drops.Load())
	}
}

func TestRunnerBoundsAStuckHandler(t *testing.T) {
	var wg sync.WaitGroup
	var drops atomic.Uint64
	release := make(chan struct{})
	entered := make(chan int, 16)
	const queueLen = 2
	r := newRunner(func(v int) { entered <- v; <-release }, queueLen, 20*time.Millisecond, &drops)
	r.start(&wg)

	if !r.offer(0) {
		t.Fatal("first offer dropped")
	}
	<-entered // the handler is now stuck on value 0
	for i := 1; i <= queueLen; i++ {
		if !r.offer(i) {
			t.Fatalf("offer(%d) dropped with room in the queue", i)
		}
	}
	// The queue is full: this offer waits for the patience, then drops.
	if r.offer(100) {
		t.Fatal("offer to a full queue of a stuck handler succeeded")
	}
	if !r.stalled.Load() {
		t.Fatal("runner not marked stalled")
	}
	// Stalled: further offers drop without waiting. A long patience makes
	// a wait visible as a test timeout rather than a timing assertion.
	r.patience = time.Hour
	for i := range 5 {
		if r.offer(200 + i) {
			t.Fatal("offer to a stalled runner succeeded")
		}
	}
	if got := drops.Load(); got != 6 {
		t.Fatalf("%d drops, want 6", got)
	}
	// Unstick: the queued values arrive in order, and the runner recovers
	// once its queue drains.
	close(release)
	for i := 1; i <= queueLen; i++ {
		if v := <-entered; v != i {
			t.Fatalf("handler got %d, want %d", v, i)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for r.stalled.Load() {
		if time.Now().After(deadline) {
			t.Fatal("runner still stalled after its queue drained")
		}
		time.Sleep(time.Millisecond)
	}
	if !r.offer(300) {
		t.Fatal("offer after recovery dropped")
	}
	if v := <-entered; v != 300 {
		t.Fatalf("handler got %d, want 300", v)
	}
	r.stop()
	wg.Wait()
}

func TestRunnerStopDiscardsQueued(t *testing.T) {
	var wg sync.WaitGroup
	var drops atomic.Uint64
	release := make(chan struct{})
	var calls atomic.Int32
	r := newRunner(func(int) { calls.Add(1); <-release }, 8, time.Second, &drops)
	r.start(&wg)
	r.offer(1)
	for calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	r.offer(2)
	r.offer(3)
	r.stop()
	close(release)
	r.wait()
	wg.Wait()
	if n := calls.Load(); n != 1 {
		t.Fatalf("handler called %d times, want 1 (queued values discarded after stop)", n)
	}
	if r.offer(4) {
		t.Fatal("offer after stop succeeded")
	}
}
