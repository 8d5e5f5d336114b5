package media

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/session"
	"github.com/jetstreamproto/jsp/wire"
)

// Mux defaults, used for zero [MuxConfig] fields.
const (
	// DefaultProbeInterval is how often the Mux measures the RTT with a
	// PING. The session's own heartbeat pings only from the client and
	// only every heartbeat interval; NACK pacing and the resend deadline
	// need a fresher estimate on both sides.
	DefaultProbeInterval = time.Second
	// DefaultIdleWake is the longest the clock goroutine sleeps when no
	// flow has anything scheduled; arrivals wake it sooner.
	DefaultIdleWake = time.Second
)

// MuxConfig configures a [Mux]. Zero fields take their defaults.
type MuxConfig struct {
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger receives debug logs. Default slog.Default().
	Logger *slog.Logger
	// ProbeInterval is the RTT probe period; negative disables probing
	// (the session's heartbeat RTT is then all there is). Default
	// DefaultProbeInterval.
	ProbeInterval time.Duration
}

func (c *MuxConfig) setDefaults() {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.ProbeInterval == 0 {
		c.ProbeInterval = DefaultProbeInterval
	}
}

// MuxStats counts datagrams the Mux could not hand to a flow.
type MuxStats struct {
	UnknownFlow    uint64 // media packets of a flow without a Receiver
	UnknownControl uint64 // control packets for a flow without a Sender, or of an unknown type
	BadControl     uint64 // control packets that did not parse
	UnknownNack    uint64 // NACKs for a flow without a Sender
}

// ErrMuxClosed is returned when adding a flow to a closed Mux.
var ErrMuxClosed = errors.New("media: mux closed")

// Mux runs the media flows of one session: it owns the session's
// ReceiveFlow and ReceiveNack loops and dispatches datagrams, receiver
// reports and NACKs to the flows' Receivers and Senders, runs their timers
// on one clock goroutine and probes the RTT.
//
// Goroutines, all joined by Close: the flow reader, the NACK reader, the
// clock and the RTT prober. Lock order: Mux.mu is never held while a flow's
// lock is taken; a Receiver's deliverMu is taken before its mu.
type Mux struct {
	sess Session
	cfg  MuxConfig
	log  *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	wake   chan struct{} // capacity 1: "a flow's schedule may have moved earlier"

	mu        sync.Mutex
	closed    bool                      // guarded by mu
	senders   map[wire.FlowID]*Sender   // guarded by mu
	receivers map[wire.FlowID]*Receiver // guarded by mu

	unknownFlow, unknownControl, badControl, unknownNack atomic.Uint64
}

// NewMux starts the media layer on sess. Only one Mux may run per session:
// it consumes every media datagram and NACK.
func NewMux(sess Session, cfg MuxConfig) *Mux {
	cfg.setDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	m := &Mux{
		sess:      sess,
		cfg:       cfg,
		log:       cfg.Logger,
		ctx:       ctx,
		cancel:    cancel,
		wake:      make(chan struct{}, 1),
		senders:   map[wire.FlowID]*Sender{},
		receivers: map[wire.FlowID]*Receiver{},
	}
	m.run(m.readFlows)
	m.run(m.readNacks)
	m.run(m.clock)
	if cfg.ProbeInterval > 0 {
		m.run(m.probe)
	}
	return m
}

func (m *Mux) run(f func()) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		f()
	}()
}

// Stats returns the Mux's counters.
func (m *Mux) Stats() MuxStats {
	return MuxStats{
		UnknownFlow:    m.unknownFlow.Load(),
		UnknownControl: m.unknownControl.Load(),
		BadControl:     m.badControl.Load(),
		UnknownNack:    m.unknownNack.Load(),
	}
}

func checkFlow(flow wire.FlowID) error {
	if flow < session.FirstMediaFlow {
		return jsperr.Newf(jsperr.BadRequest, "media: flow %d is reserved; media flows start at %d", flow, session.FirstMediaFlow)
	}
	return nil
}

// NewSender adds the sending side of a flow. One Sender per flow id.
func (m *Mux) NewSender(flow wire.FlowID, cfg SenderConfig) (*Sender, error) {
	if err := checkFlow(flow); err != nil {
		return nil, err
	}
	s, err := newSender(m, flow, cfg)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrMuxClosed
	}
	if _, dup := m.senders[flow]; dup {
		return nil, jsperr.Newf(jsperr.Conflict, "media: flow %d already has a sender", flow)
	}
	m.senders[flow] = s
	return s, nil
}

// NewReceiver adds the receiving side of a flow. One Receiver per flow id.
func (m *Mux) NewReceiver(flow wire.FlowID, cfg ReceiverConfig) (*Receiver, error) {
	if err := checkFlow(flow); err != nil {
		return nil, err
	}
	r, err := newReceiver(m, flow, cfg)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrMuxClosed
	}
	if _, dup := m.receivers[flow]; dup {
		return nil, jsperr.Newf(jsperr.Conflict, "media: flow %d already has a receiver", flow)
	}
	m.receivers[flow] = r
	return r, nil
}

func (m *Mux) removeSender(s *Sender) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.senders[s.flow] == s {
		delete(m.senders, s.flow)
	}
}

func (m *Mux) removeReceiver(r *Receiver) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.receivers[r.flow] == r {
		delete(m.receivers, r.flow)
	}
}

func (m *Mux) sender(flow wire.FlowID) *Sender {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.senders[flow]
}

func (m *Mux) receiver(flow wire.FlowID) *Receiver {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.receivers[flow]
}

func (m *Mux) signal() {
	select {
	case m.wake <- struct{}{}:
	default: // a wake-up is already pending
	}
}

// readFlows dispatches media-flow datagrams: control packets to the flow's
// Sender (they travel against the flow), media packets to its Receiver.
func (m *Mux) readFlows() {
	for {
		d, err := m.sess.ReceiveFlow(m.ctx)
		if err != nil {
			return // the Mux or the session closed
		}
		if IsControl(d.Data) {
			m.onControl(d)
			continue
		}
		r := m.receiver(d.Flow)
		if r == nil {
			m.unknownFlow.Add(1)
			continue
		}
		r.onDatagram(d.Data, m.cfg.Now())
		m.signal()
	}
}

func (m *Mux) onControl(d session.FlowDatagram) {
	rep, err := ParseReport(d.Data)
	switch {
	case errors.Is(err, ErrUnknownControl):
		// JSP §8.3: a control type from a newer version is skipped.
		m.unknownControl.Add(1)
		return
	case err != nil:
		m.badControl.Add(1)
		m.log.Debug("media: dropping malformed control packet", "flow", uint64(d.Flow), "err", err)
		return
	}
	s := m.sender(d.Flow)
	if s == nil {
		m.unknownControl.Add(1)
		return
	}
	s.onReport(rep)
}

// readNacks hands each NACK to the Sender of its flow.
func (m *Mux) readNacks() {
	for {
		n, err := m.sess.ReceiveNack(m.ctx)
		if err != nil {
			return
		}
		s := m.sender(n.Flow)
		if s == nil {
			m.unknownNack.Add(1)
			continue
		}
		s.onNack(n.Seqs)
	}
}

type ticker interface {
	tick(now time.Time) (time.Time, bool)
}

// clock runs every flow's timers: it ticks them all, then sleeps until the
// earliest deadline any of them returned, or until an arrival may have
// made something due sooner.
func (m *Mux) clock() {
	t := time.NewTimer(DefaultIdleWake)
	defer t.Stop()
	var flows []ticker
	for {
		flows = flows[:0]
		m.mu.Lock()
		for _, s := range m.senders {
			flows = append(flows, s)
		}
		for _, r := range m.receivers {
			flows = append(flows, r)
		}
		m.mu.Unlock()
		now := m.cfg.Now()
		wait := DefaultIdleWake
		for _, f := range flows {
			if next, ok := f.tick(now); ok {
				wait = min(wait, max(next.Sub(now), 0))
			}
		}
		clear(flows)
		t.Reset(wait)
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
		case <-m.wake:
			// Since Go 1.23 Reset discards a pending fire, so the timer
			// needs no draining here.
		}
	}
}

// probe keeps the session's RTT estimate fresh with PINGs.
func (m *Mux) probe() {
	t := time.NewTicker(m.cfg.ProbeInterval)
	defer t.Stop()
	for {
		ctx, cancel := context.WithTimeout(m.ctx, max(m.cfg.ProbeInterval, 5*time.Second))
		_, err := m.sess.Ping(ctx)
		cancel()
		if err != nil && m.ctx.Err() == nil && !errors.Is(err, context.DeadlineExceeded) {
			// The session ended; nothing more to measure.
			m.log.Debug("media: RTT probe stopped", "err", err)
			return
		}
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Close stops the Mux's goroutines and waits for them, then flushes and
// closes every Sender and closes every Receiver's Frames channel. It does
// not close the session.
func (m *Mux) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	m.mu.Unlock()
	m.cancel()
	m.wg.Wait()
	m.mu.Lock()
	senders := make([]*Sender, 0, len(m.senders))
	for _, s := range m.senders {
		senders = append(senders, s)
	}
	receivers := make([]*Receiver, 0, len(m.receivers))
	for _, r := range m.receivers {
		receivers = append(receivers, r)
	}
	m.mu.Unlock()
	for _, s := range senders {
		if err := s.Close(); err != nil {
			return fmt.Errorf("media: closing flow %d: %w", s.flow, err)
		}
	}
	for _, r := range receivers {
		_ = r.Close()
	}
	return nil
}
