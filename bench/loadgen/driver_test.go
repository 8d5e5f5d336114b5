package loadgen

import (
	"context"
	"errors"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseCase(t *testing.T) {
	tests := []struct {
		in      string
		want    Case
		wantErr bool
	}{
		{"1x100", Case{1, 100}, false},
		{"1000x10", Case{1000, 10}, false},
		{"0x5", Case{}, true},
		{"5", Case{}, true},
		{"ax1", Case{}, true},
		{"1x-1", Case{}, true},
	}
	for _, tt := range tests {
		got, err := ParseCase(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseCase(%q) = %v, %v; want %v, err %v", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err == nil && got.String() != tt.in {
			t.Errorf("String() = %q, want %q", got.String(), tt.in)
		}
	}
	if c := (Case{1000, 10}); c.Connections() != 10000 {
		t.Errorf("Connections() = %d", c.Connections())
	}
}

type nopCloser struct{ closed *atomic.Int64 }

func (c nopCloser) Close() error { c.closed.Add(1); return nil }

func TestConnectAll(t *testing.T) {
	var closed atomic.Int64
	var inFlight, peak atomic.Int64
	cs, err := ConnectAll(context.Background(), 50, 4, func(_ context.Context, i int) (io.Closer, error) {
		n := inFlight.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(time.Millisecond)
		inFlight.Add(-1)
		return nopCloser{&closed}, nil
	})
	if err != nil || len(cs) != 50 {
		t.Fatalf("ConnectAll = %d, %v", len(cs), err)
	}
	if peak.Load() > 4 {
		t.Fatalf("%d connections opened at once, want at most 4", peak.Load())
	}
	CloseAll(cs)
	if closed.Load() != 50 {
		t.Fatalf("closed %d, want 50", closed.Load())
	}

	boom := errors.New("boom")
	cs, err = ConnectAll(context.Background(), 100, 2, func(_ context.Context, i int) (io.Closer, error) {
		if i == 10 {
			return nil, boom
		}
		return nopCloser{&closed}, nil
	})
	if !errors.Is(err, boom) {
		t.Fatalf("error %v, want boom", err)
	}
	CloseAll(cs) // nil entries are skipped
}

func TestRoundRobin(t *testing.T) {
	var hits [3]int
	var ts []Target
	for i := range hits {
		ts = append(ts, TargetFunc(func(context.Context, int, []byte) error { hits[i]++; return nil }))
	}
	rr := RoundRobin(ts)
	for range 9 {
		_ = rr.Publish(context.Background(), 0, nil)
	}
	if hits != [3]int{3, 3, 3} {
		t.Fatalf("hits %v, want 3 each", hits)
	}
}

func TestProcStatParsers(t *testing.T) {
	stat := "1234 (my (odd) name) S 1 2 3 4 5 6 7 8 9 10 250 75 0 0 20 0 1 0 100 1000 200"
	got, err := parseStatCPU(stat)
	if err != nil || got != 3250*time.Millisecond {
		t.Fatalf("parseStatCPU = %v, %v; want 3.25s", got, err)
	}
	if _, err := parseStatCPU("garbage"); err == nil {
		t.Fatal("parseStatCPU accepted garbage")
	}
	rss, err := parseVmRSS("Name:\tx\nVmRSS:\t  2048 kB\nVmSwap: 0 kB\n")
	if err != nil || rss != 2048*1024 {
		t.Fatalf("parseVmRSS = %d, %v", rss, err)
	}
	if _, err := parseVmRSS("Name: x\n"); err == nil {
		t.Fatal("parseVmRSS without VmRSS succeeded")
	}
	// This process's own figures are readable and positive.
	if rss, err := PIDRSS(os.Getpid()); err != nil || rss <= 0 {
		t.Fatalf("PIDRSS(self) = %d, %v", rss, err)
	}
	if _, err := PIDCPU(os.Getpid()); err != nil {
		t.Fatalf("PIDCPU(self): %v", err)
	}
}

// fakeSystem delivers every publish to the subscribers of its channel.
// Subscribers connect concurrently (ConnectAll), so subs is guarded.
type fakeSystem struct {
	mu   sync.Mutex
	subs map[string][]*Recorder // guarded by mu
}

func (f *fakeSystem) Subscribe(_ context.Context, _ int, channel string, rec *Recorder) (io.Closer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.subs[channel] = append(f.subs[channel], rec)
	return io.NopCloser(nil), nil
}

func (f *fakeSystem) Publisher(context.Context) (Target, io.Closer, error) {
	return TargetFunc(func(_ context.Context, ch int, p []byte) error {
		f.mu.Lock()
		subs := f.subs[ChannelName(ch)]
		f.mu.Unlock()
		for _, r := range subs {
			r.Deliver(p)
		}
		return nil
	}), io.NopCloser(nil), nil
}

func TestDriverMain(t *testing.T) {
	out, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	sys := &fakeSystem{subs: map[string][]*Recorder{}}
	err = DriverMain("fake", []string{"-case", "3x2", "-deliveries", "600", "-warmup", "20ms", "-duration", "100ms",
		"-drain", "1s", "-labels", "run=7"}, out, func(*DriverFlags) (System, error) { return sys, nil })
	if err != nil {
		t.Fatal(err)
	}
	if len(sys.subs) != 3 || len(sys.subs[ChannelName(2)]) != 2 {
		t.Fatalf("subscriptions %v, want 3 channels with 2 each", sys.subs)
	}
	b, _ := os.ReadFile(out.Name())
	ls := ParseLines(string(b))
	if len(ls) != 1 {
		t.Fatalf("output %q, want one result line", b)
	}
	l := ls[0]
	for k, want := range map[string]string{"bench": "fanout", "system": "fake", "case": "3x2", "run": "7", "lost": "0", "expected": "60"} {
		if got := l.Get(k); got != want {
			t.Errorf("%s = %q, want %q (line %s)", k, got, want, l)
		}
	}
}

func TestRetry(t *testing.T) {
	calls := 0
	v, err := Retry(context.Background(), 3, func(context.Context) (int, error) {
		calls++
		if calls < 2 {
			return 0, errors.New("busy")
		}
		return 7, nil
	})
	if err != nil || v != 7 || calls != 2 {
		t.Fatalf("Retry = %d, %v after %d calls", v, err, calls)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	calls = 0
	if _, err := Retry(ctx, 5, func(context.Context) (int, error) { calls++; return 0, errors.New("no") }); err == nil || calls != 1 {
		t.Fatalf("cancelled Retry: %v after %d calls", err, calls)
	}
}
