package bwe

import (
	"bytes"
	"context"
	"errors"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/simnet"
)

func TestProbeCodec(t *testing.T) {
	probes := []Probe{
		{Train: 1, Index: 0, Count: 1, Sent: 0, Size: ProbeHeaderLen},
		{Train: 0x7fff, Index: 59, Count: 60, Sent: 1 << 40, Down: TrainShape{Count: 100, Size: 1200, Rate: 20 * Mbps}, Size: 1000},
	}
	for _, p := range probes {
		b, err := AppendProbe(nil, p)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseProbe(b)
		if err != nil {
			t.Fatal(err)
		}
		if got != p {
			t.Fatalf("round trip: %+v vs %+v", got, p)
		}
		for i := range ProbeHeaderLen {
			if _, err := ParseProbe(b[:i]); err == nil {
				t.Fatalf("prefix of %d parsed", i)
			}
		}
	}
	bad := []Probe{
		{Index: 1, Count: 1, Size: 100},
		{Count: 1, Size: ProbeHeaderLen - 1},
		{Count: 1, Size: MaxProbePacketSize + 1},
		{Count: 1, Size: 100, Down: TrainShape{Count: 70000}},
	}
	for _, p := range bad {
		if _, err := AppendProbe(nil, p); !errors.Is(err, ErrProbeMalformed) {
			t.Errorf("%+v encoded: %v", p, err)
		}
	}
	r := ProbeReport{Train: 3, Received: 58, Bytes: 58000, Spread: 123456, Echo: 1 << 50, Hold: 7}
	b := r.Append(nil)
	if len(b) != ProbeReportLen {
		t.Fatalf("report length %d", len(b))
	}
	got, err := ParseProbeReport(b)
	if err != nil || got != r {
		t.Fatalf("report round trip: %+v %v", got, err)
	}
	for i := range len(b) {
		if _, err := ParseProbeReport(b[:i]); err == nil {
			t.Fatalf("report prefix of %d parsed", i)
		}
	}
	if _, err := ParseProbeReport(append(b, 0)); !errors.Is(err, ErrProbeMalformed) {
		t.Fatalf("trailing byte: %v", err)
	}
	if _, err := ParseProbe(b); !errors.Is(err, ErrNotProbe) {
		t.Fatalf("report parsed as probe: %v", err)
	}
	if _, err := ParseProbe([]byte{0xFF, 0x01, 0}); !errors.Is(err, ErrNotProbe) {
		t.Fatalf("receiver report parsed as probe: %v", err)
	}
}

func FuzzParseProbe(f *testing.F) {
	b, _ := AppendProbe(nil, Probe{Train: 1, Index: 2, Count: 3, Sent: 4, Down: TrainShape{Count: 5, Size: 600, Rate: Mbps}, Size: 40})
	f.Add(b)
	f.Add(ProbeReport{Train: 1, Received: 2}.Append(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		if p, err := ParseProbe(b); err == nil {
			again, err := AppendProbe(nil, p)
			if err != nil {
				t.Fatalf("parsed probe does not encode: %v", err)
			}
			// Padding is zero on encoding; compare the header.
			if !bytes.Equal(again[:ProbeHeaderLen], b[:ProbeHeaderLen]) || len(again) != len(b) {
				t.Fatal("probe re-encoding differs")
			}
		}
		if r, err := ParseProbeReport(b); err == nil && !bytes.Equal(r.Append(nil), b) {
			t.Fatal("report re-encoding differs")
		}
		var rf Reflector
		rf.cfg = ReflectorConfig{MaxTrainPackets: 10, MaxDownRate: Mbps, QuietGap: time.Millisecond}
		_ = rf.OnPacket(time.Unix(0, 0), b)
		rf.Poll(time.Unix(1, 0))
	})
}

// probeSim runs a prober and a reflector over two simulated links in
// virtual time.
func probeSim(t *testing.T, up, down simnet.Config, cfg ProbeConfig, rcfg ReflectorConfig, start time.Time) (ProbeResult, error, *Reflector) {
	t.Helper()
	ul, err := simnet.NewLink(up)
	if err != nil {
		t.Fatal(err)
	}
	dl, err := simnet.NewLink(down)
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewProber(cfg, start)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewReflector(rcfg)
	if err != nil {
		t.Fatal(err)
	}
	for now := start; now.Before(start.Add(10 * time.Second)); now = now.Add(100 * time.Microsecond) {
		out, _, done := p.Poll(now)
		for _, b := range out {
			ul.Send(b, now)
		}
		if done {
			break
		}
		for _, pk := range ul.Deliver(now) {
			_ = r.OnPacket(now, pk.Data)
		}
		out, _ = r.Poll(now)
		for _, b := range out {
			dl.Send(b, now)
		}
		for _, pk := range dl.Deliver(now) {
			if err := p.OnPacket(now, pk.Data); err != nil {
				t.Fatal(err)
			}
		}
	}
	res, err := p.Result()
	return res, err, r
}

func near(got, want, frac float64) bool { return math.Abs(got-want) <= frac*want }

// TestProbeMeasures: 2 Mbit/s up, 8 Mbit/s down with 5 % loss, 25 ms each
// way. Throughput within ±10 %, RTT within 5 ms of 50 ms, loss exact.
func TestProbeMeasures(t *testing.T) {
	up := simnet.Config{Seed: 1, Delay: 25 * time.Millisecond, Rate: 2_000_000 / 8, QueueDelay: time.Second}
	down := simnet.Config{Seed: 2, Delay: 25 * time.Millisecond, Rate: 8_000_000 / 8, QueueDelay: time.Second, Loss: 0.05}
	res, err, r := probeSim(t, up, down, ProbeConfig{Down: TrainShape{Count: 200}}, ReflectorConfig{}, time.Unix(100, 0))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("result %+v", res)
	if !near(float64(res.Up), 2e6, 0.10) || !near(float64(res.Down), 8e6, 0.10) {
		t.Errorf("throughput up %v down %v", res.Up, res.Down)
	}
	if res.RTT < 50*time.Millisecond || res.RTT > 55*time.Millisecond {
		t.Errorf("RTT %v", res.RTT)
	}
	if res.UpLoss != 0 || res.DownReceived+int(math.Round(res.DownLoss*200)) != 200 || res.DownLoss < 0.02 || res.DownLoss > 0.10 {
		t.Errorf("loss up %v down %v (%d of 200)", res.UpLoss, res.DownLoss, res.DownReceived)
	}
	if st := r.Stats(); st.Trains != 1 || st.DownTrains != 1 {
		t.Errorf("reflector %+v", st)
	}
}

// TestProbeLimits: the reflector caps trains and spaces down trains.
func TestProbeLimits(t *testing.T) {
	link := simnet.Config{Delay: 5 * time.Millisecond}
	// A down train over the reflector's cap is cut to the cap.
	res, err, _ := probeSim(t, link, link, ProbeConfig{Up: TrainShape{Count: 10}, Down: TrainShape{Count: 300, Rate: 100 * Mbps}},
		ReflectorConfig{MaxTrainPackets: 50, MaxDownRate: 10 * Mbps}, time.Unix(0, 0))
	if !errors.Is(err, ErrProbeTimeout) && err != nil {
		t.Fatal(err)
	}
	if res.DownReceived != 50 {
		t.Fatalf("down train of %d packets, cap 50", res.DownReceived)
	}
	// The pace cap shows in the measured rate (no link limit here).
	if res.Down > 11*Mbps {
		t.Fatalf("down train at %v, cap 10 Mbit/s", res.Down)
	}
	// An up train over the cap is not measured: the prober times out.
	_, err, r := probeSim(t, link, link, ProbeConfig{Up: TrainShape{Count: 60}, Down: TrainShape{Count: -1}, Timeout: time.Second},
		ReflectorConfig{MaxTrainPackets: 50}, time.Unix(0, 0))
	if !errors.Is(err, ErrProbeTimeout) || r.Stats().TooLong != 60 {
		t.Fatalf("long up train: %v, %+v", err, r.Stats())
	}
	// Two tests within MinTrainInterval: the second gets no down train.
	r, _ = NewReflector(ReflectorConfig{MinTrainInterval: time.Second})
	now := time.Unix(0, 0)
	for train := uint16(1); train <= 2; train++ {
		b, _ := AppendProbe(nil, Probe{Train: train, Count: 1, Size: 100, Down: TrainShape{Count: 5, Size: 100, Rate: Mbps}})
		_ = r.OnPacket(now, b)
		r.Poll(now)
		now = now.Add(100 * time.Millisecond)
	}
	if st := r.Stats(); st.Trains != 2 || st.DownTrains != 1 || st.Refused != 1 {
		t.Fatalf("spacing: %+v", st)
	}
	if _, err := NewProber(ProbeConfig{Up: TrainShape{Size: 10}}, now); err == nil {
		t.Fatal("tiny probe size accepted")
	}
	if _, err := NewReflector(ReflectorConfig{MaxTrainPackets: -1}); err == nil {
		t.Fatal("negative cap accepted")
	}
}

// chanConn is one end of an in-memory datagram pipe.
type chanConn struct {
	in  chan []byte
	out chan []byte
}

func (c chanConn) Send(b []byte) error {
	select {
	case c.out <- bytes.Clone(b):
	default: // a full pipe drops, like a datagram path
	}
	return nil
}

func (c chanConn) Receive(ctx context.Context) ([]byte, error) {
	select {
	case b := <-c.in:
		return b, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// TestRunProbe runs the real-clock drivers against each other over an
// in-memory pipe. Timing on a shared machine is not asserted; counts are.
func TestRunProbe(t *testing.T) {
	a2b, b2a := make(chan []byte, 1024), make(chan []byte, 1024)
	cli, srv := chanConn{in: b2a, out: a2b}, chanConn{in: a2b, out: b2a}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var st ReflectorStats
	var serveErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		st, serveErr = ServeProbes(ctx, srv, ReflectorConfig{})
	}()
	res, err := RunProbe(ctx, cli, ProbeConfig{Up: TrainShape{Count: 20}, Down: TrainShape{Count: 20}})
	cancel()
	wg.Wait()
	if err != nil || serveErr != nil {
		t.Fatalf("probe: %v, serve: %v", err, serveErr)
	}
	if res.UpReceived != 20 || res.DownReceived != 20 || !res.GotReport || res.RTT <= 0 || res.Up <= 0 || res.Down <= 0 {
		t.Fatalf("result %+v", res)
	}
	if st.Trains != 1 || st.DownTrains != 1 {
		t.Fatalf("reflector %+v", st)
	}
}
