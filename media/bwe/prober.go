package bwe

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/session"
	"github.com/jetstreamproto/jsp/wire"
)

// ProbeConfig configures a [Prober]. Zero fields take their defaults.
type ProbeConfig struct {
	// Up is the train the prober sends; Down the one it asks for (Down
	// with Count -1 asks for none). Zero fields take DefaultProbeCount,
	// DefaultProbeSize and DefaultProbeRate.
	Up, Down TrainShape
	// Timeout bounds the test. Default DefaultProbeTimeout.
	Timeout time.Duration
	// QuietGap ends the down train when its packets stop. Default
	// DefaultQuietGap.
	QuietGap time.Duration
	// Train is the up train's id (1..0x7FFF); default 1. Use a new one
	// per test on one flow so that late packets of an old test are not
	// counted.
	Train uint16
}

func (s *TrainShape) setDefaults() {
	if s.Count == 0 {
		s.Count = DefaultProbeCount
	}
	if s.Size == 0 {
		s.Size = DefaultProbeSize
	}
	if s.Rate == 0 {
		s.Rate = DefaultProbeRate
	}
}

func (s TrainShape) validate(what string) error {
	if s.Count < 1 || s.Count > 0xFFFF || s.Size < probeMinPacketLen || s.Size > MaxProbePacketSize || s.Rate < Kbps {
		return fmt.Errorf("bwe: %s train %+v out of range (count 1..65535, size %d..%d, rate >= 1 kbit/s)",
			what, s, probeMinPacketLen, MaxProbePacketSize)
	}
	return nil
}

// ProbeResult is what a bandwidth test measured.
type ProbeResult struct {
	Up, Down                Bitrate       // throughput from the trains' dispersion
	RTT                     time.Duration // from the up train's report
	UpLoss, DownLoss        float64       // lost fraction of each train
	UpSent, UpReceived      int
	DownSent, DownReceived  int
	Duration                time.Duration // how long the test took
	GotReport, GotDownTrain bool
}

// Prober runs one bandwidth test as the asking side. It has no clock and
// no goroutines: the caller passes the time and moves the packets
// ([RunProbe] does both for a real connection).
type Prober struct {
	cfg      ProbeConfig
	epoch    time.Time
	up       pacer
	down     trainMeter
	res      ProbeResult
	finished bool
	err      error
}

// NewProber prepares a test starting at now.
func NewProber(cfg ProbeConfig, now time.Time) (*Prober, error) {
	noDown := cfg.Down.Count < 0
	cfg.Up.setDefaults()
	if noDown {
		cfg.Down = TrainShape{}
	} else {
		cfg.Down.setDefaults()
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultProbeTimeout
	}
	if cfg.QuietGap == 0 {
		cfg.QuietGap = DefaultQuietGap
	}
	if cfg.Train == 0 {
		cfg.Train = 1
	}
	if err := cfg.Up.validate("up"); err != nil {
		return nil, err
	}
	if !noDown {
		if err := cfg.Down.validate("down"); err != nil {
			return nil, err
		}
	}
	if cfg.Train&downTrainBit != 0 || cfg.Timeout < 0 || cfg.QuietGap < 0 {
		return nil, fmt.Errorf("bwe: probe train id %#x or durations out of range", cfg.Train)
	}
	p := &Prober{cfg: cfg, epoch: now}
	p.up = pacer{shape: cfg.Up, train: cfg.Train, at: now, down: cfg.Down}
	p.res.UpSent = cfg.Up.Count
	p.res.DownSent = cfg.Down.Count
	if !noDown {
		p.down.start(cfg.Train|downTrainBit, cfg.Down.Count)
	}
	return p, nil
}

// Poll returns the packets to send now, when to call again (zero: only
// on a packet), and whether the test is over.
func (p *Prober) Poll(now time.Time) (out [][]byte, wake time.Time, done bool) {
	if p.finished {
		return nil, time.Time{}, true
	}
	probes, next := p.up.due(now, p.epoch)
	for _, pr := range probes {
		b, err := AppendProbe(nil, pr)
		if err != nil {
			p.finish(err)
			return out, time.Time{}, true
		}
		out = append(out, b)
	}
	downDone := !p.down.active || p.down.done(now, p.cfg.QuietGap)
	if p.res.GotReport && downDone {
		p.finish(nil)
		return out, time.Time{}, true
	}
	deadline := p.epoch.Add(p.cfg.Timeout)
	if !now.Before(deadline) {
		p.finish(ErrProbeTimeout)
		return out, time.Time{}, true
	}
	wake = deadline
	if !next.IsZero() && next.Before(wake) {
		wake = next
	}
	if p.down.active && p.down.received > 0 && p.down.received < p.down.count {
		if q := p.down.last.Add(p.cfg.QuietGap); q.Before(wake) {
			wake = q
		}
	}
	return out, wake, false
}

func (p *Prober) finish(err error) {
	p.finished, p.err = true, err
	if p.down.active {
		p.res.DownReceived = p.down.received
		p.res.Down = p.down.rate()
		p.res.DownLoss = 1 - float64(p.down.received)/float64(p.down.count)
		p.res.GotDownTrain = p.down.received > 0
	}
}

// OnPacket takes one packet from the peer. Packets that are not probe
// traffic of this test are ignored.
func (p *Prober) OnPacket(now time.Time, b []byte) error {
	if p.finished {
		return nil
	}
	if r, err := ParseProbeReport(b); err == nil {
		if r.Train != p.cfg.Train || p.res.GotReport {
			return nil
		}
		p.res.GotReport = true
		p.res.UpReceived = int(r.Received)
		p.res.UpLoss = 1 - float64(r.Received)/float64(p.cfg.Up.Count)
		if r.Received >= 2 && r.Spread > 0 && int(r.Bytes) >= p.cfg.Up.Size {
			// The first packet's bytes arrived before the spread
			// began; every up packet has the same size.
			p.res.Up = bytesOver(int64(r.Bytes)-int64(p.cfg.Up.Size), time.Duration(r.Spread)*time.Microsecond)
		}
		rtt := now.Sub(p.epoch) - time.Duration(r.Echo)*time.Microsecond - time.Duration(r.Hold)*time.Microsecond
		p.res.RTT = max(rtt, 0)
		p.res.Duration = now.Sub(p.epoch)
		return nil
	} else if !errors.Is(err, ErrNotProbe) {
		return err
	}
	pr, err := ParseProbe(b)
	if err != nil {
		return err
	}
	if p.down.active && pr.Train == p.down.train {
		if p.down.received == 0 && int(pr.Count) != p.down.count {
			// The reflector cut the train to its own cap: measure
			// loss against what it sends.
			p.down.start(p.down.train, int(pr.Count))
			p.res.DownSent = int(pr.Count)
		}
		p.down.add(pr, now)
		p.res.Duration = now.Sub(p.epoch)
	}
	return nil
}

// Result returns the measurements; the error is ErrProbeTimeout when the
// test did not complete (the result then holds what was measured).
func (p *Prober) Result() (ProbeResult, error) { return p.res, p.err }

// ReflectorConfig configures a [Reflector]. Zero fields take their
// defaults.
type ReflectorConfig struct {
	// MaxTrainPackets caps a train measured or sent. Default
	// DefaultMaxTrainPackets.
	MaxTrainPackets int
	// MaxDownRate caps a down train's pace. Default DefaultMaxDownRate.
	MaxDownRate Bitrate
	// MinTrainInterval spaces down trains; a request sooner is measured
	// and reported but gets no down train. Default
	// DefaultMinTrainInterval.
	MinTrainInterval time.Duration
	// QuietGap ends an up train when its packets stop. Default
	// DefaultQuietGap.
	QuietGap time.Duration
}

// ReflectorStats counts what a [Reflector] did.
type ReflectorStats struct {
	Trains     uint64 // up trains measured and reported
	DownTrains uint64 // down trains sent
	Refused    uint64 // down trains refused by MinTrainInterval
	TooLong    uint64 // probe packets of trains over MaxTrainPackets, dropped
	Malformed  uint64 // probe packets that did not parse
}

// Reflector answers bandwidth tests: it measures up trains, reports them
// and sends the down trains asked for, within its limits. Like [Prober]
// it has no clock; [ServeProbes] drives it on a real connection.
type Reflector struct {
	cfg       ReflectorConfig
	meter     trainMeter
	reported  uint16
	anyReport bool
	down      *pacer
	epoch     time.Time
	lastDown  time.Time
	pending   [][]byte
	stats     ReflectorStats
	downShape TrainShape
}

// NewReflector returns a reflector.
func NewReflector(cfg ReflectorConfig) (*Reflector, error) {
	if cfg.MaxTrainPackets == 0 {
		cfg.MaxTrainPackets = DefaultMaxTrainPackets
	}
	if cfg.MaxDownRate == 0 {
		cfg.MaxDownRate = DefaultMaxDownRate
	}
	if cfg.MinTrainInterval == 0 {
		cfg.MinTrainInterval = DefaultMinTrainInterval
	}
	if cfg.QuietGap == 0 {
		cfg.QuietGap = DefaultQuietGap
	}
	if cfg.MaxTrainPackets < 1 || cfg.MaxTrainPackets > 0xFFFF || cfg.MaxDownRate < Kbps || cfg.MinTrainInterval < 0 || cfg.QuietGap < 0 {
		return nil, fmt.Errorf("bwe: reflector config %+v out of range", cfg)
	}
	return &Reflector{cfg: cfg}, nil
}

// Stats returns the reflector's counters.
func (r *Reflector) Stats() ReflectorStats { return r.stats }

// OnPacket takes one packet from a prober.
func (r *Reflector) OnPacket(now time.Time, b []byte) error {
	p, err := ParseProbe(b)
	if err != nil {
		if !errors.Is(err, ErrNotProbe) {
			r.stats.Malformed++
		}
		return err
	}
	if p.Train&downTrainBit != 0 || int(p.Count) > r.cfg.MaxTrainPackets {
		r.stats.TooLong++
		return nil
	}
	if r.anyReport && p.Train == r.reported {
		return nil // a late packet of a train already reported
	}
	if !r.meter.active || r.meter.train != p.Train || r.meter.count != int(p.Count) {
		if r.meter.active && r.meter.received > 0 {
			r.reportLocked(now)
		}
		r.meter.start(p.Train, int(p.Count))
	}
	r.meter.add(p, now)
	r.downShape = p.Down
	return nil
}

// Poll returns the packets to send now and when to call again (zero: only
// on a packet).
func (r *Reflector) Poll(now time.Time) ([][]byte, time.Time) {
	if r.meter.active && r.meter.done(now, r.cfg.QuietGap) {
		r.reportLocked(now)
	}
	out := r.pending
	r.pending = nil
	var wake time.Time
	if r.down != nil {
		probes, next := r.down.due(now, r.epoch)
		for _, p := range probes {
			if b, err := AppendProbe(nil, p); err == nil {
				out = append(out, b)
			}
		}
		if next.IsZero() {
			r.down = nil
		}
		wake = next
	}
	if r.meter.active && r.meter.received > 0 {
		if q := r.meter.last.Add(r.cfg.QuietGap); wake.IsZero() || q.Before(wake) {
			wake = q
		}
	}
	return out, wake
}

// reportLocked reports the current up train and starts its down train.
func (r *Reflector) reportLocked(now time.Time) {
	rep := r.meter.report(now)
	r.pending = append(r.pending, rep.Append(nil))
	r.stats.Trains++
	r.reported, r.anyReport = r.meter.train, true
	r.meter.active = false
	d := r.downShape
	if d.Count == 0 {
		return
	}
	if !r.lastDown.IsZero() && now.Sub(r.lastDown) < r.cfg.MinTrainInterval {
		r.stats.Refused++
		return
	}
	d.Count = min(d.Count, r.cfg.MaxTrainPackets)
	d.Size = max(probeMinPacketLen, min(d.Size, MaxProbePacketSize))
	d.Rate = max(Kbps, min(d.Rate, r.cfg.MaxDownRate))
	r.down = &pacer{shape: d, train: rep.Train | downTrainBit, at: now}
	r.epoch = now
	r.lastDown = now
	r.stats.DownTrains++
}

// PacketConn carries probe packets between the two sides: a media flow of
// a session ([FlowConn]) or anything else that moves datagrams.
type PacketConn interface {
	// Send sends one datagram.
	Send(b []byte) error
	// Receive returns the next datagram.
	Receive(ctx context.Context) ([]byte, error)
}

// FlowSession is what [FlowConn] needs of a session; *session.Session
// implements it.
type FlowSession interface {
	SendFlow(flow wire.FlowID, b []byte, class protocol.Class) error
	ReceiveFlow(ctx context.Context) (session.FlowDatagram, error)
}

var _ FlowSession = (*session.Session)(nil)

// FlowConn runs probes on one media flow of a session (class media, JSP
// §5.13). Datagrams of other flows are dropped, so a session used for a
// bandwidth test must not have a media.Mux reading its flows at the same
// time: the test belongs before media starts, or on a session of its own.
type FlowConn struct {
	Session FlowSession
	Flow    wire.FlowID
}

// Send implements PacketConn.
func (c FlowConn) Send(b []byte) error { return c.Session.SendFlow(c.Flow, b, protocol.ClassMedia) }

// Receive implements PacketConn.
func (c FlowConn) Receive(ctx context.Context) ([]byte, error) {
	for {
		d, err := c.Session.ReceiveFlow(ctx)
		if err != nil {
			return nil, err
		}
		if d.Flow == c.Flow {
			return d.Data, nil
		}
	}
}

// pump reads conn into a channel until ctx ends; the caller waits on the
// returned done channel after cancelling.
func pump(ctx context.Context, conn PacketConn) (<-chan []byte, <-chan struct{}) {
	ch := make(chan []byte, 64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			b, err := conn.Receive(ctx)
			if err != nil {
				return
			}
			select {
			case ch <- b:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch, done
}

// drive runs a poll/packet loop on the real clock until poll says done or
// ctx ends.
func drive(ctx context.Context, conn PacketConn, poll func(time.Time) ([][]byte, time.Time, bool), onPacket func(time.Time, []byte)) error {
	ctx, cancel := context.WithCancel(ctx)
	in, stopped := pump(ctx, conn)
	defer func() { cancel(); <-stopped }()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		out, wake, done := poll(time.Now())
		for _, b := range out {
			if err := conn.Send(b); err != nil {
				return fmt.Errorf("bwe: sending probe traffic: %w", err)
			}
		}
		if done {
			return nil
		}
		d := time.Hour
		if !wake.IsZero() {
			d = max(time.Until(wake), 0)
		}
		timer.Reset(d)
		select {
		case b := <-in:
			onPacket(time.Now(), b)
		case <-timer.C:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// RunProbe runs one bandwidth test over conn against a peer running
// [ServeProbes] and returns what it measured.
func RunProbe(ctx context.Context, conn PacketConn, cfg ProbeConfig) (ProbeResult, error) {
	p, err := NewProber(cfg, time.Now())
	if err != nil {
		return ProbeResult{}, err
	}
	err = drive(ctx, conn, p.Poll, func(now time.Time, b []byte) { _ = p.OnPacket(now, b) })
	if err != nil {
		return ProbeResult{}, err
	}
	return p.Result()
}

// ServeProbes answers bandwidth tests on conn until ctx ends, and returns
// the reflector's counters.
func ServeProbes(ctx context.Context, conn PacketConn, cfg ReflectorConfig) (ReflectorStats, error) {
	r, err := NewReflector(cfg)
	if err != nil {
		return ReflectorStats{}, err
	}
	poll := func(now time.Time) ([][]byte, time.Time, bool) {
		out, wake := r.Poll(now)
		return out, wake, false
	}
	err = drive(ctx, conn, poll, func(now time.Time, b []byte) { _ = r.OnPacket(now, b) })
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return r.Stats(), err
}
