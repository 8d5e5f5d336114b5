package media

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/reliability/fec"
	"github.com/jetstreamproto/jsp/reliability/mediapkt"
	"github.com/jetstreamproto/jsp/reliability/nack"
	"github.com/jetstreamproto/jsp/wire"
)

// Sender defaults, used for zero [SenderConfig] fields.
const (
	// DefaultDeadline is how long after capture a packet is still worth
	// retransmitting.
	DefaultDeadline = nack.DefaultCacheMaxDelay
	// DefaultMaxFrameSize caps one frame's payload.
	DefaultMaxFrameSize = 256 << 10
	// DefaultMaxGroupDelay is how long an FEC group may stay open waiting
	// for packets before it is closed with the ones it has: a group only
	// repairs its first packet once its parity is out, so this bounds the
	// delay FEC adds on a slow flow.
	DefaultMaxGroupDelay = 40 * time.Millisecond
	// DefaultInitialRTT is the RTT assumed until the session has measured
	// one.
	DefaultInitialRTT = 100 * time.Millisecond
	// DefaultMaxParityOverhead caps parity at half the source packets.
	// Media datagrams share the connection's congestion window with
	// everything else (QUIC, RFC 9221 §5.4): on a path lossy enough to
	// want more parity, the window is small and extra parity displaces
	// source packets in the transport's queue, which the receiver then
	// reports as more loss. NACK repairs what a capped group cannot.
	DefaultMaxParityOverhead = 0.5
)

// MinPacketSize is the smallest SenderConfig.MaxPacketSize: room for the
// longest header and some payload after the FEC reserve.
const MinPacketSize = 64

// ParityReserve is how much shorter than the packet room a source packet
// is kept when FEC is on, so that its parity packet still fits: a parity
// packet is the 12-byte parity header plus a shard of 2 + the longest
// source packet of its group, header included (JSP §13.3, §13.4).
const ParityReserve = mediapkt.FixedHeaderLen + mediapkt.FECInfoLen + 2

// SenderConfig configures a [Sender]. Zero fields take their defaults.
type SenderConfig struct {
	// MaxPacketSize caps a media packet, header included. Default: the
	// room in one transport datagram (MediaPacketRoom), so that no packet
	// is fragmented by the session.
	MaxPacketSize int
	// MaxFrameSize caps a frame's payload. Default DefaultMaxFrameSize.
	MaxFrameSize int
	// Deadline is the media deadline: a packet captured at c is resent
	// only while a retransmission can arrive by c + Deadline. Set it to
	// about the receiver's playout delay plus the one-way delay. Default
	// DefaultDeadline.
	Deadline time.Duration
	// CachePackets and CacheBytes bound the retransmission cache. Defaults
	// nack.DefaultCachePackets and nack.DefaultCacheBytes.
	CachePackets int
	CacheBytes   protocol.ByteCount
	// DisableFEC keeps this flow free of parity even when the capability
	// is negotiated.
	DisableFEC bool
	// Policy maps reported loss to FEC group shape. Default: fec's
	// defaults.
	Policy fec.PolicyConfig
	// MaxGroupDelay closes an open FEC group this long after its first
	// packet. Default DefaultMaxGroupDelay.
	MaxGroupDelay time.Duration
	// InitialSeq is the sequence number of the flow's first packet.
	// Default 0.
	InitialSeq mediapkt.Seq
	// InitialRTT is used for the resend deadline check until the session
	// has an RTT sample. Default DefaultInitialRTT.
	InitialRTT time.Duration
	// MaxParityOverhead caps M/K of the shapes the policy picks: a
	// group over it keeps its K and gets M = floor(K * cap), at least 1.
	// Default DefaultMaxParityOverhead; at most 1 (the largest overhead
	// fec.DefaultTable uses).
	MaxParityOverhead float64
}

func (c *SenderConfig) setDefaults(room int) {
	if c.MaxPacketSize == 0 {
		c.MaxPacketSize = room
	}
	if c.MaxFrameSize == 0 {
		c.MaxFrameSize = DefaultMaxFrameSize
	}
	if c.Deadline == 0 {
		c.Deadline = DefaultDeadline
	}
	if c.MaxGroupDelay == 0 {
		c.MaxGroupDelay = DefaultMaxGroupDelay
	}
	if c.InitialRTT == 0 {
		c.InitialRTT = DefaultInitialRTT
	}
	if c.MaxParityOverhead == 0 {
		c.MaxParityOverhead = DefaultMaxParityOverhead
	}
}

func (c *SenderConfig) validate() error {
	switch {
	case c.MaxPacketSize < MinPacketSize || c.MaxPacketSize > fec.MaxPacketSize:
		return fmt.Errorf("media: MaxPacketSize %d outside %d..%d", c.MaxPacketSize, MinPacketSize, fec.MaxPacketSize)
	case c.MaxFrameSize < 1:
		return fmt.Errorf("media: MaxFrameSize %d below 1", c.MaxFrameSize)
	case c.Deadline < 0 || c.MaxGroupDelay < 0 || c.InitialRTT < 0:
		return fmt.Errorf("media: negative duration in sender config")
	case !(c.MaxParityOverhead > 0 && c.MaxParityOverhead <= 1):
		return fmt.Errorf("media: MaxParityOverhead %v outside (0, 1]", c.MaxParityOverhead)
	}
	return nil
}

// SenderStats counts what a [Sender] did.
type SenderStats struct {
	Frames          uint64     // frames written
	Packets         uint64     // source packets sent (first transmissions)
	Bytes           uint64     // source packet bytes sent
	Parity          uint64     // FEC parity packets sent
	ParityBytes     uint64     // parity packet bytes sent
	ParityTrimmed   uint64     // parity of groups closed early left unsent (fec.ParityShare)
	Retransmitted   uint64     // packets resent after a NACK
	NackedTooLate   uint64     // NACKed packets not resent: past their deadline
	NackedNotCached uint64     // NACKed packets not resent: expired, evicted or unknown
	Expired         uint64     // packets that left the cache unrequested (deadline or bounds)
	Reports         uint64     // receiver reports received
	SendErrors      uint64     // datagrams the session refused
	LossEstimate    float64    // the FEC policy's loss estimate (fraction)
	FEC             fec.Params // the group shape in use
}

// ErrSenderClosed is returned by WriteFrame after Close.
var ErrSenderClosed = errors.New("media: sender closed")

// Sender packetizes, protects and sends the frames of one media flow
// (JSP §13). Create it with [Mux.NewSender]. WriteFrame may be called from
// any goroutine; the Mux feeds it NACKs and receiver reports.
type Sender struct {
	flow   wire.FlowID
	sess   Session
	mux    *Mux
	now    func() time.Time
	cfg    SenderConfig
	fecOn  bool
	srcMax int // longest source packet

	mu         sync.Mutex
	closed     bool              // guarded by mu
	next       protocol.MediaSeq // guarded by mu; extended seq of the next packet
	sentAny    bool              // guarded by mu
	repairSeq  mediapkt.Seq      // guarded by mu
	cache      *nack.Cache       // guarded by mu
	enc        *fec.Encoder      // guarded by mu; nil without FEC
	policy     *fec.Policy       // guarded by mu
	groupOpen  bool              // guarded by mu
	groupStart time.Time         // guarded by mu
	lastTS     uint32            // guarded by mu; timestamp of the newest source packet
	stats      SenderStats       // guarded by mu
}

func newSender(m *Mux, flow wire.FlowID, cfg SenderConfig) (*Sender, error) {
	room := MediaPacketRoom(m.sess.Conn().MaxDatagramSize(), flow)
	cfg.setDefaults(room)
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Sender{
		flow:  flow,
		sess:  m.sess,
		mux:   m,
		now:   m.cfg.Now,
		cfg:   cfg,
		fecOn: !cfg.DisableFEC && m.sess.HasCapability(CapFEC),
		next:  protocol.MediaSeq(cfg.InitialSeq),
	}
	var err error
	if s.cache, err = nack.NewCache(nack.CacheConfig{MaxPackets: cfg.CachePackets, MaxBytes: cfg.CacheBytes, MaxDelay: cfg.Deadline}); err != nil {
		return nil, fmt.Errorf("media: flow %d: %w", flow, err)
	}
	if s.policy, err = fec.NewPolicy(cfg.Policy); err != nil {
		return nil, fmt.Errorf("media: flow %d: %w", flow, err)
	}
	s.srcMax = cfg.MaxPacketSize
	if s.fecOn {
		s.srcMax -= ParityReserve
		if s.enc, err = fec.NewEncoder(fec.EncoderConfig{Params: s.shape(), MaxPacketSize: s.srcMax}); err != nil {
			return nil, fmt.Errorf("media: flow %d: %w", flow, err)
		}
	}
	return s, nil
}

// Flow returns the flow id.
func (s *Sender) Flow() wire.FlowID { return s.flow }

// FECEnabled reports whether this flow sends parity: the capability is
// negotiated and the config did not disable it.
func (s *Sender) FECEnabled() bool { return s.fecOn }

// Stats returns the sender's counters.
func (s *Sender) Stats() SenderStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	cs := s.cache.Stats()
	st.Expired = cs.Expired + cs.Evicted
	st.LossEstimate = s.policy.Loss()
	if s.enc != nil {
		st.FEC = s.enc.Params()
	}
	return st
}

// WriteFrame packetizes f (JSP §13.3), sends its packets, keeps them for
// retransmission and adds them to the open FEC group, sending parity when
// a group closes. Media datagrams are unreliable: a nil error means the
// packets were handed to the session, not that they will arrive.
func (s *Sender) WriteFrame(f Frame) error {
	if len(f.Payload) > s.cfg.MaxFrameSize {
		return jsperr.Newf(jsperr.MessageTooLarge, "media: flow %d: frame of %d bytes over the %d-byte limit", s.flow, len(f.Payload), s.cfg.MaxFrameSize)
	}
	if f.HasAudioLevel && f.AudioLevel.Level > mediapkt.MaxAudioLevel {
		return fmt.Errorf("media: flow %d: %w", s.flow, mediapkt.ErrBadAudioLevel)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrSenderClosed
	}
	now := s.now()
	var base mediapkt.Flags
	hdrLen := mediapkt.FixedHeaderLen
	if f.KeyFrame {
		base |= mediapkt.FlagKeyFrame
	}
	if f.HasAudioLevel {
		base |= mediapkt.FlagAudioLevel
		hdrLen += mediapkt.AudioLevelLen
	}
	chunk := s.srcMax - hdrLen
	rest := f.Payload
	s.stats.Frames++
	for first := true; first || len(rest) > 0; first = false {
		n := min(chunk, len(rest))
		h := mediapkt.Header{Flags: base, Seq: mediapkt.SeqOf(s.next), Timestamp: f.Timestamp, AudioLevel: f.AudioLevel}
		if n == len(rest) {
			h.Flags |= mediapkt.FlagEndOfFrame
		}
		pkt, err := mediapkt.AppendPacket(make([]byte, 0, hdrLen+n), &h, rest[:n])
		if err != nil {
			return fmt.Errorf("media: flow %d: %w", s.flow, err)
		}
		rest = rest[n:]
		if err := s.sendSourceLocked(pkt, f.Timestamp, now); err != nil {
			return err
		}
	}
	return nil
}

// sendSourceLocked sends one source packet, caches it and feeds it to the
// FEC encoder.
func (s *Sender) sendSourceLocked(pkt []byte, ts uint32, now time.Time) error {
	seq := s.next
	s.next++
	s.sentAny = true
	s.lastTS = ts
	if err := s.cache.Add(seq, pkt, now); err != nil {
		return fmt.Errorf("media: flow %d: %w", s.flow, err)
	}
	if err := s.sess.SendFlow(s.flow, pkt, protocol.ClassMedia); err != nil {
		s.stats.SendErrors++
		return fmt.Errorf("media: flow %d: sending packet %d: %w", s.flow, seq, err)
	}
	s.stats.Packets++
	s.stats.Bytes += uint64(len(pkt))
	if s.enc == nil {
		return nil
	}
	// Whether Add kept the packet (FEC on for the open group) and whether
	// it closed the group tell if a group is still open, which the
	// encoder does not expose.
	kept := s.enc.Stats().Source
	par, err := s.enc.Add(seq, pkt)
	if err != nil {
		return fmt.Errorf("media: flow %d: FEC: %w", s.flow, err)
	}
	closed := false
	for _, p := range par {
		if p.Group.Contains(seq) {
			closed = true
		}
	}
	if s.enc.Stats().Source > kept && !closed {
		if !s.groupOpen {
			s.groupOpen, s.groupStart = true, now
			// The clock may be asleep with nothing scheduled.
			s.mux.signal()
		}
	} else {
		s.groupOpen = false
	}
	return s.sendParityLocked(par)
}

// sendParityLocked sends parity packets (JSP §13.4): repair-space sequence
// numbers, the group's newest timestamp, the group in the FEC fields. Of
// a group closed early only its share at the shape's rate is sent
// (fec.ParityShare), as the SFU does for its subscribers.
func (s *Sender) sendParityLocked(par []fec.Parity) error {
	for _, p := range par {
		if !p.InShare() {
			s.stats.ParityTrimmed++
			continue
		}
		h := mediapkt.Header{
			Flags:     mediapkt.FlagFEC,
			Seq:       s.repairSeq,
			Timestamp: s.lastTS,
			FEC: mediapkt.FECInfo{
				Base:  mediapkt.SeqOf(p.Group.Base),
				K:     uint8(p.Group.K),
				M:     uint8(p.Group.M),
				Index: uint8(p.Index),
			},
		}
		s.repairSeq++
		pkt, err := mediapkt.AppendPacket(make([]byte, 0, h.Len()+len(p.Data)), &h, p.Data)
		if err != nil {
			return fmt.Errorf("media: flow %d: parity: %w", s.flow, err)
		}
		if err := s.sess.SendFlow(s.flow, pkt, protocol.ClassMedia); err != nil {
			s.stats.SendErrors++
			return fmt.Errorf("media: flow %d: sending parity: %w", s.flow, err)
		}
		s.stats.Parity++
		s.stats.ParityBytes += uint64(len(pkt))
	}
	return nil
}

// rtt returns the session's smoothed RTT, or the configured initial one.
func (s *Sender) rtt() time.Duration {
	if r, _ := s.sess.RTT(); r > 0 {
		return r
	}
	return s.cfg.InitialRTT
}

// onNack answers a NACK (JSP §13.6): each listed number is reduced to its
// 16 bits and extended against the newest number sent, and the packet is
// resent with the R flag if it is cached and can still arrive by its
// deadline.
func (s *Sender) onNack(seqs []uint64) {
	rtt := s.rtt()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || !s.sentAny {
		return
	}
	now := s.now()
	newest := s.next - 1
	for _, v := range seqs {
		seq := mediapkt.Extend(newest, mediapkt.Seq(uint16(v)))
		pkt, st := s.cache.Resend(seq, now, rtt)
		switch st {
		case nack.TooLate:
			s.stats.NackedTooLate++
			continue
		case nack.NotCached:
			s.stats.NackedNotCached++
			continue
		}
		// The cache's copy is what FEC protected; resend a clone with R
		// set so the cached packet stays as first sent.
		rtx := bytes.Clone(pkt)
		if err := mediapkt.SetRetransmission(rtx, true); err != nil {
			continue
		}
		if err := s.sess.SendFlow(s.flow, rtx, protocol.ClassMedia); err != nil {
			s.stats.SendErrors++
			return
		}
		s.stats.Retransmitted++
	}
}

// onReport feeds a receiver report to the FEC policy (JSP §13.5, §13.7).
func (s *Sender) onReport(r Report) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Reports++
	s.policy.Observe(r.Lost, r.Total)
	if s.enc != nil {
		// The policy's shapes are validated when it is built, and
		// capping M keeps one valid.
		_ = s.enc.SetParams(s.shape())
	}
}

// shape returns the policy's group shape with M capped by
// MaxParityOverhead.
func (s *Sender) shape() fec.Params {
	p := s.policy.Params()
	if p.Enabled() && p.Overhead() > s.cfg.MaxParityOverhead {
		p.M = max(1, int(float64(p.K)*s.cfg.MaxParityOverhead))
	}
	return p
}

// tick closes an FEC group that has waited MaxGroupDelay and returns when
// it next needs to run.
func (s *Sender) tick(now time.Time) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.groupOpen {
		return time.Time{}, false
	}
	due := s.groupStart.Add(s.cfg.MaxGroupDelay)
	if now.Before(due) {
		return due, true
	}
	s.flushLocked()
	return time.Time{}, false
}

func (s *Sender) flushLocked() {
	s.groupOpen = false
	if s.enc == nil {
		return
	}
	par, err := s.enc.Flush()
	if err == nil {
		_ = s.sendParityLocked(par)
	}
}

// Close flushes the open FEC group, stops the sender and removes it from
// its Mux. Further WriteFrame calls fail with ErrSenderClosed.
func (s *Sender) Close() error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		s.flushLocked()
	}
	s.mu.Unlock()
	s.mux.removeSender(s)
	return nil
}
