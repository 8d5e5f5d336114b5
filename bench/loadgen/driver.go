package loadgen

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jetstreamproto/jsp/internal/proccpu"
)

// Case is one fan-out shape: Channels channels with Subscribers
// subscribers each, every subscriber on a connection of its own.
type Case struct {
	Channels, Subscribers int
}

// ParseCase parses "CHANNELSxSUBSCRIBERS", e.g. "1000x10".
func ParseCase(s string) (Case, error) {
	a, b, ok := strings.Cut(s, "x")
	ch, err1 := strconv.Atoi(a)
	subs, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || ch < 1 || subs < 1 {
		return Case{}, fmt.Errorf("loadgen: case %q: want CHANNELSxSUBSCRIBERS, e.g. 1x100", s)
	}
	return Case{Channels: ch, Subscribers: subs}, nil
}

// String formats the case as ParseCase reads it.
func (c Case) String() string { return fmt.Sprintf("%dx%d", c.Channels, c.Subscribers) }

// Connections is the number of subscriber connections.
func (c Case) Connections() int { return c.Channels * c.Subscribers }

// ChannelName is the name of channel i in every system.
func ChannelName(i int) string { return "bench.c" + strconv.Itoa(i) }

// System is one system under test as a fan-out driver sees it.
type System interface {
	// Subscribe opens subscriber connection i, subscribes it to channel
	// and hands every payload it receives to rec.Deliver. It returns once
	// the subscription is active on the server.
	Subscribe(ctx context.Context, i int, channel string, rec *Recorder) (io.Closer, error)
	// Publisher opens the publishing connection.
	Publisher(ctx context.Context) (Target, io.Closer, error)
}

// DriverFlags are the flags every fan-out driver accepts, so that the
// orchestrator (bench/fanout) drives each system with the same arguments.
type DriverFlags struct {
	Addr        string
	Case        string
	Deliveries  float64
	Warmup      time.Duration
	Duration    time.Duration
	Drain       time.Duration
	Payload     int
	Workers     int
	Publishers  int
	Concurrency int
	Labels      string
	// CPUProfile, when set, is a file the driver writes a CPU profile of
	// the load phase to (the clients' side of the benchmark).
	CPUProfile string
}

// Register defines the flags on fs.
func (f *DriverFlags) Register(fs *flag.FlagSet) {
	fs.StringVar(&f.Addr, "addr", "", "server address or URL")
	fs.StringVar(&f.Case, "case", "1x100", "CHANNELSxSUBSCRIBERS")
	fs.Float64Var(&f.Deliveries, "deliveries", 20000, "offered deliveries per second (publish rate x subscribers per channel)")
	fs.DurationVar(&f.Warmup, "warmup", DefaultWarmup, "load before the measurement window")
	fs.DurationVar(&f.Duration, "duration", DefaultDuration, "measurement window")
	fs.DurationVar(&f.Drain, "drain", DefaultDrain, "wait for late messages after the load")
	fs.IntVar(&f.Payload, "payload", DefaultPayloadSize, "message body size in bytes")
	fs.IntVar(&f.Workers, "workers", DefaultWorkers, "publishing goroutines")
	fs.IntVar(&f.Publishers, "publishers", 4, "publishing connections; messages go to them in turn")
	fs.IntVar(&f.Concurrency, "connect-concurrency", 32, "subscriber connections opened at once")
	fs.StringVar(&f.Labels, "labels", "", "extra key=value,... fields for the result line")
	fs.StringVar(&f.CPUProfile, "cpuprofile", "", "write a CPU profile of the load phase to this file")
}

// Phase lines a driver prints around the load (schedule and drain).
const (
	PhaseLoadStart = "phase load-start"
	PhaseLoadEnd   = "phase load-end"
)

// DriverMain runs one fan-out measurement of sys with the flags in args
// and prints one result line to out. name is the system's name in the
// line.
func DriverMain(name string, args []string, out io.Writer, open func(f *DriverFlags) (System, error)) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	var f DriverFlags
	f.Register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	c, err := ParseCase(f.Case)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	sys, err := open(&f)
	if err != nil {
		return err
	}
	rec := &Recorder{}
	t0 := time.Now()
	subs, err := ConnectAll(ctx, c.Connections(), f.Concurrency, func(ctx context.Context, i int) (io.Closer, error) {
		return Retry(ctx, 3, func(ctx context.Context) (io.Closer, error) {
			return sys.Subscribe(ctx, i, ChannelName(i%c.Channels), rec)
		})
	})
	defer closeAll(subs)
	if err != nil {
		return fmt.Errorf("%s: subscribers: %w", name, err)
	}
	connectTime := time.Since(t0)
	var targets []Target
	for range max(f.Publishers, 1) {
		t, pc, err := sys.Publisher(ctx)
		if err != nil {
			return fmt.Errorf("%s: publisher: %w", name, err)
		}
		defer pc.Close()
		targets = append(targets, t)
	}
	target := RoundRobin(targets)
	cfg := RunConfig{
		Rate: f.Deliveries / float64(c.Subscribers), Channels: c.Channels, Subscribers: c.Subscribers,
		Warmup: f.Warmup, Duration: f.Duration, Drain: f.Drain, PayloadSize: f.Payload, Workers: f.Workers,
	}
	// The phase lines let the orchestrator read the server's CPU time
	// for the load alone, without the connection set-up.
	fmt.Fprintln(out, PhaseLoadStart)
	if f.CPUProfile != "" {
		stopProfile, err := startCPUProfile(f.CPUProfile)
		if err != nil {
			return err
		}
		defer stopProfile()
	}
	var cpu0 = proccpu.Self()
	st, err := Run(ctx, cfg, target, rec)
	cpu := proccpu.Self() - cpu0
	fmt.Fprintln(out, PhaseLoadEnd)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	l := Line{}.Add("bench", "fanout").Add("system", name).Add("case", c.String()).
		Add("deliveries", f.Deliveries)
	for _, kv := range strings.Split(f.Labels, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			l = l.Add(k, v)
		}
	}
	l = StatsLine(l, st)
	l = l.Add("connect-s", connectTime.Seconds()).Add("client-cpu-s", cpu.Seconds()).
		Add("gomaxprocs", runtime.GOMAXPROCS(0))
	_, err = fmt.Fprintln(out, l.String())
	return err
}

// RoundRobin returns a Target that hands each publish to the next of ts.
func RoundRobin(ts []Target) Target {
	var next atomic.Uint64
	return TargetFunc(func(ctx context.Context, ch int, p []byte) error {
		i := next.Add(1) - 1
		return ts[i%uint64(len(ts))].Publish(ctx, ch, p)
	})
}

// ConnectAll opens n connections with connect, at most concurrency at a
// time, and returns them in order. On the first failure it stops opening
// new ones and returns those opened so far with the error.
func ConnectAll(ctx context.Context, n, concurrency int, connect func(ctx context.Context, i int) (io.Closer, error)) ([]io.Closer, error) {
	if concurrency < 1 {
		concurrency = 1
	}
	out := make([]io.Closer, n)
	var next atomic.Int64
	var failed atomic.Bool
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	for range min(concurrency, n) {
		wg.Go(func() {
			for !failed.Load() {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				c, err := connect(ctx, i)
				if err != nil {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("connection %d: %w", i, err)
					}
					mu.Unlock()
					failed.Store(true)
					return
				}
				out[i] = c
			}
		})
	}
	wg.Wait()
	if first != nil {
		return out, first
	}
	return out, ctx.Err()
}

// Retry calls fn up to attempts times, a second apart, until it succeeds;
// on a shared machine a handshake sometimes times out while thousands of
// others queue for the CPU, which says nothing about the steady state the
// benchmarks measure. It returns the last error.
func Retry[T any](ctx context.Context, attempts int, fn func(ctx context.Context) (T, error)) (T, error) {
	var v T
	var err error
	for a := range max(attempts, 1) {
		if a > 0 {
			select {
			case <-ctx.Done():
				return v, errors.Join(err, ctx.Err())
			case <-time.After(time.Second):
			}
		}
		if v, err = fn(ctx); err == nil {
			return v, nil
		}
	}
	return v, err
}

// closeAll closes every non-nil closer, a few hundred at a time so that
// tearing down ten thousand connections does not take minutes.
func closeAll(cs []io.Closer) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 256)
	for _, c := range cs {
		if c == nil {
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			_ = c.Close()
		})
	}
	wg.Wait()
}

// CloseAll closes every non-nil closer concurrently and waits.
func CloseAll(cs []io.Closer) { closeAll(cs) }

// ErrSkipped marks a system a driver cannot run in this build.
var ErrSkipped = errors.New("loadgen: system skipped")
