package media

import (
	"bytes"
	"fmt"
	"sync"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/reliability/fec"
	"github.com/jetstreamproto/jsp/reliability/mediapkt"
	"github.com/jetstreamproto/jsp/reliability/nack"
	"github.com/jetstreamproto/jsp/reliability/reorder"
	"github.com/jetstreamproto/jsp/wire"
)

// Receiver defaults, used for zero [ReceiverConfig] fields.
const (
	// DefaultClockRate is the media clock assumed for timestamps: the
	// 90 kHz video clock.
	DefaultClockRate = 90_000
	// DefaultMinDelay is the floor of the playout delay: room for a NACK
	// round trip on a typical path.
	DefaultMinDelay = 100 * time.Millisecond
	// DefaultMaxDelay is the ceiling of the playout delay.
	DefaultMaxDelay = 400 * time.Millisecond
	// DefaultReportInterval is how often a receiver reports loss.
	DefaultReportInterval = 100 * time.Millisecond
	// DefaultFrameQueue is the capacity of the Frames channel.
	DefaultFrameQueue = 64
	// DefaultBufferPackets caps the packets the jitter buffer holds.
	DefaultBufferPackets = reorder.DefaultMaxPackets
	// DefaultMinReportPackets is the fewest sequence numbers a receiver
	// report covers: a loss fraction over fewer packets is mostly noise
	// (one lost packet of one is "100% loss"), and the sender's policy
	// would swing on it.
	DefaultMinReportPackets = 10
)

// trackWindow is how many sequence numbers back the receiver remembers
// whether an original arrived and whether a packet was declared lost, for
// its late/lost/recovered accounting. It exceeds the NACK window, so every
// packet the receiver can still hear about is covered.
const trackWindow = 4 * nack.DefaultWindow

// ReceiverConfig configures a [Receiver]. Zero fields take their defaults.
type ReceiverConfig struct {
	// ClockRate is the flow's media clock in Hz. Default
	// DefaultClockRate.
	ClockRate int
	// MinDelay and MaxDelay bound the jitter buffer's playout delay (JSP
	// §13.8). MinDelay should cover an RTT plus ReorderTolerance so NACK
	// can help. Defaults DefaultMinDelay, max(DefaultMaxDelay, MinDelay).
	MinDelay time.Duration
	MaxDelay time.Duration
	// Deadline is how long after a gap is detected its packets are still
	// NACKed. Default MaxDelay.
	Deadline time.Duration
	// ReorderTolerance delays the first NACK of a gap so a packet merely
	// overtaken is not requested. Default 0.
	ReorderTolerance time.Duration
	// MaxNackRetries caps the NACKs of one packet. Default
	// nack.DefaultMaxRetries.
	MaxNackRetries int
	// InitialRTT is the RTT assumed until the session measures one.
	// Default DefaultInitialRTT.
	InitialRTT time.Duration
	// ReportInterval is the receiver-report period (JSP §13.7); reports
	// are sent only with FEC negotiated. Default DefaultReportInterval.
	ReportInterval time.Duration
	// MinReportPackets is the fewest sequence numbers one report covers;
	// an interval with fewer is extended until it has them. Default
	// DefaultMinReportPackets.
	MinReportPackets int
	// BufferPackets caps the jitter buffer. Default DefaultBufferPackets.
	BufferPackets int
	// MaxFrameSize caps a reassembled frame; a longer one is dropped.
	// Default DefaultMaxFrameSize.
	MaxFrameSize int
	// SinglePacketFrames says every frame of the flow is one packet (as
	// for audio), so a packet with E after a loss is a whole frame.
	// Without it a receiver cannot tell where a frame starts after a
	// loss and drops packets until the next end of frame (JSP §13.3).
	SinglePacketFrames bool
	// FrameQueue is the capacity of the Frames channel; when the reader
	// falls behind the oldest frame is dropped. Default
	// DefaultFrameQueue.
	FrameQueue int
	// OnFrame, when set, receives frames instead of the Frames channel.
	// It is called from the Mux's clock goroutine, in order, and must
	// not block nor call the Receiver's Close (which waits for delivery
	// to finish).
	OnFrame func(ReceivedFrame)
}

func (c *ReceiverConfig) setDefaults() {
	if c.ClockRate == 0 {
		c.ClockRate = DefaultClockRate
	}
	if c.MinDelay == 0 {
		c.MinDelay = DefaultMinDelay
	}
	if c.MaxDelay == 0 {
		c.MaxDelay = max(DefaultMaxDelay, c.MinDelay)
	}
	if c.Deadline == 0 {
		c.Deadline = c.MaxDelay
	}
	if c.MaxNackRetries == 0 {
		c.MaxNackRetries = nack.DefaultMaxRetries
	}
	if c.InitialRTT == 0 {
		c.InitialRTT = DefaultInitialRTT
	}
	if c.ReportInterval == 0 {
		c.ReportInterval = DefaultReportInterval
	}
	if c.MinReportPackets == 0 {
		c.MinReportPackets = DefaultMinReportPackets
	}
	if c.BufferPackets == 0 {
		c.BufferPackets = DefaultBufferPackets
	}
	if c.MaxFrameSize == 0 {
		c.MaxFrameSize = DefaultMaxFrameSize
	}
	if c.FrameQueue == 0 {
		c.FrameQueue = DefaultFrameQueue
	}
}

func (c *ReceiverConfig) validate() error {
	switch {
	case c.ClockRate < 1:
		return fmt.Errorf("media: ClockRate %d below 1", c.ClockRate)
	case c.MinDelay < 0 || c.MaxDelay < c.MinDelay:
		return fmt.Errorf("media: delays must satisfy 0 <= MinDelay (%v) <= MaxDelay (%v)", c.MinDelay, c.MaxDelay)
	case c.Deadline < 0 || c.ReorderTolerance < 0 || c.InitialRTT < 0 || c.ReportInterval < 0:
		return fmt.Errorf("media: negative duration in receiver config")
	case c.MaxFrameSize < 1 || c.FrameQueue < 1 || c.BufferPackets < 1 || c.MinReportPackets < 1:
		return fmt.Errorf("media: MaxFrameSize, FrameQueue, BufferPackets and MinReportPackets must be positive")
	}
	return nil
}

// ReceiverStats counts what a [Receiver] saw. Every source packet the
// receiver learns of ends in exactly one of: played out as received
// (Received less what arrived only after being played from a repair or
// too late), RecoveredFEC, RecoveredNACK, Late or Lost.
type ReceiverStats struct {
	Received        uint64        // distinct source packets whose original transmission arrived
	Retransmissions uint64        // retransmitted packets that arrived, duplicates included
	Parity          uint64        // parity packets that arrived
	Duplicates      uint64        // packets dropped as already held or played
	Malformed       uint64        // datagrams that did not parse or did not fit
	RecoveredFEC    uint64        // packets played out from an FEC rebuild, their original missing
	RecoveredNACK   uint64        // packets played out from a retransmission, their original missing
	Late            uint64        // packets that first arrived after their playout turn
	Lost            uint64        // packets that never arrived in any form before being given up
	NacksSent       uint64        // NACK messages sent
	NackedSeqs      uint64        // sequence numbers listed in them
	Reports         uint64        // receiver reports sent
	Frames          uint64        // whole frames delivered
	FramesDropped   uint64        // frames of which packets were played but which were incomplete
	FramesOverflow  uint64        // delivered frames dropped because Frames was not read
	Jitter          time.Duration // interarrival jitter estimate (RFC 3550)
	Delay           time.Duration // current playout delay
}

type origin uint8

const (
	fromNetwork origin = iota + 1
	fromFEC
	fromNACK
)

// rxPacket is a source packet waiting in the jitter buffer.
type rxPacket struct {
	h       mediapkt.Header
	payload []byte
	origin  origin
}

// seqSet remembers membership of recent extended sequence numbers in a
// fixed ring: slot seq%len holds seq+1, so a newer number overwrites an
// older one and zero means empty.
type seqSet []uint64

func (s seqSet) add(q protocol.MediaSeq) { s[uint64(q)%uint64(len(s))] = uint64(q) + 1 }
func (s seqSet) has(q protocol.MediaSeq) bool {
	return s[uint64(q)%uint64(len(s))] == uint64(q)+1
}
func (s seqSet) del(q protocol.MediaSeq) {
	if s.has(q) {
		s[uint64(q)%uint64(len(s))] = 0
	}
}

// Receiver reassembles, repairs and plays out one media flow (JSP §13).
// Create it with [Mux.NewReceiver]; the Mux feeds it datagrams and runs its
// timers.
type Receiver struct {
	flow  wire.FlowID
	sess  Session
	mux   *Mux
	cfg   ReceiverConfig
	fecOn bool

	mu         sync.Mutex
	unwrap     mediapkt.Unwrapper        // guarded by mu
	tsRef      uint64                    // guarded by mu; newest extended timestamp
	nacks      *nack.Receiver            // guarded by mu
	dec        *fec.Decoder              // guarded by mu; nil without FEC
	buf        *reorder.Buffer[rxPacket] // guarded by mu
	original   seqSet                    // guarded by mu; originals that arrived
	declared   seqSet                    // guarded by mu; declared lost, not yet arrived
	originals  uint64                    // guarded by mu; originals this report interval
	lastHi     protocol.MediaSeq         // guarded by mu
	haveLastHi bool                      // guarded by mu
	nextReport time.Time                 // guarded by mu
	asm        assembler                 // guarded by mu
	stats      ReceiverStats             // guarded by mu
	out        []ReceivedFrame           // guarded by mu; frames to deliver
	released   []reorder.Item[rxPacket]  // guarded by mu; scratch

	deliverMu sync.Mutex // serialises delivery with Close; taken without mu
	closed    bool       // guarded by deliverMu
	frames    chan ReceivedFrame
}

func newReceiver(m *Mux, flow wire.FlowID, cfg ReceiverConfig) (*Receiver, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	r := &Receiver{
		flow:     flow,
		sess:     m.sess,
		mux:      m,
		cfg:      cfg,
		fecOn:    m.sess.HasCapability(CapFEC),
		original: make(seqSet, trackWindow),
		declared: make(seqSet, trackWindow),
		frames:   make(chan ReceivedFrame, cfg.FrameQueue),
	}
	r.asm.synced = true
	var err error
	r.nacks, err = nack.NewReceiver(nack.ReceiverConfig{
		MaxRetries:       cfg.MaxNackRetries,
		MaxDelay:         cfg.Deadline,
		InitialRTT:       cfg.InitialRTT,
		ReorderTolerance: cfg.ReorderTolerance,
	})
	if err != nil {
		return nil, fmt.Errorf("media: flow %d: %w", flow, err)
	}
	if r.fecOn {
		if r.dec, err = fec.NewDecoder(fec.DecoderConfig{}); err != nil {
			return nil, fmt.Errorf("media: flow %d: %w", flow, err)
		}
	}
	r.buf, err = reorder.New[rxPacket](reorder.Config{MinDelay: cfg.MinDelay, MaxDelay: cfg.MaxDelay, MaxPackets: cfg.BufferPackets})
	if err != nil {
		return nil, fmt.Errorf("media: flow %d: %w", flow, err)
	}
	return r, nil
}

// Flow returns the flow id.
func (r *Receiver) Flow() wire.FlowID { return r.flow }

// Frames returns the channel of delivered frames (unused when
// ReceiverConfig.OnFrame is set). It is closed when the receiver or its
// Mux closes.
func (r *Receiver) Frames() <-chan ReceivedFrame { return r.frames }

// Stats returns the receiver's counters.
func (r *Receiver) Stats() ReceiverStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.stats
	st.Jitter = r.buf.Jitter()
	st.Delay = r.buf.Delay()
	return st
}

// mediaTime converts an extended timestamp into a duration of media time
// without overflowing: whole seconds and the remainder separately.
func (r *Receiver) mediaTime(ts uint64) time.Duration {
	rate := uint64(r.cfg.ClockRate)
	return time.Duration(ts/rate)*time.Second + time.Duration(ts%rate)*time.Second/time.Duration(rate)
}

// onDatagram handles one media packet of the flow that arrived at now.
func (r *Receiver) onDatagram(b []byte, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	h, payload, err := mediapkt.Parse(b)
	if err != nil {
		r.stats.Malformed++
		return
	}
	if h.Flags.Has(mediapkt.FlagFEC) {
		r.onParityLocked(h, payload, now)
		return
	}
	seq := r.unwrap.Unwrap(h.Seq)
	o := fromNetwork
	// The buffer keeps the packet past this call; the session may reuse
	// nothing, but a copy keeps ownership simple and is one datagram.
	clean := bytes.Clone(b)
	if h.Flags.Has(mediapkt.FlagRetransmission) {
		o = fromNACK
		r.stats.Retransmissions++
		// FEC protects packets as first sent (JSP §13.4).
		_ = mediapkt.SetRetransmission(clean, false)
	}
	r.sourceLocked(seq, h, clean[len(b)-len(payload):], o, now)
	if r.dec != nil {
		rec, err := r.dec.AddSource(seq, clean)
		if err != nil {
			r.stats.Malformed++
		}
		r.rebuiltLocked(rec, now)
	}
}

func (r *Receiver) onParityLocked(h mediapkt.Header, payload []byte, now time.Time) {
	if r.dec == nil {
		// FEC not negotiated: the peer should not send parity (JSP §13.5).
		r.stats.Malformed++
		return
	}
	hi, ok := r.unwrap.Highest()
	if !ok {
		return // nothing to place the group against yet
	}
	r.stats.Parity++
	rec, err := r.dec.AddParity(fec.Parity{
		Group: fec.Group{Base: mediapkt.Extend(hi, h.FEC.Base), K: int(h.FEC.K), M: int(h.FEC.M)},
		Index: int(h.FEC.Index),
		Data:  payload,
	})
	if err != nil {
		r.stats.Malformed++
	}
	r.rebuiltLocked(rec, now)
}

func (r *Receiver) rebuiltLocked(rec []fec.Recovered, now time.Time) {
	for _, p := range rec {
		h, payload, err := mediapkt.Parse(p.Packet)
		if err != nil || h.Flags.Has(mediapkt.FlagFEC) || mediapkt.Extend(p.Seq, h.Seq) != p.Seq {
			// The rebuilt bytes are not the packet the group says:
			// the peer's parity is inconsistent.
			r.stats.Malformed++
			continue
		}
		r.sourceLocked(p.Seq, h, payload, fromFEC, now)
	}
}

// sourceLocked records a source packet, whatever brought it, and pushes it
// into the jitter buffer.
func (r *Receiver) sourceLocked(seq protocol.MediaSeq, h mediapkt.Header, payload []byte, o origin, now time.Time) {
	r.nacks.OnPacket(seq, now)
	r.tsRef = max(r.tsRef, mediapkt.ExtendTimestamp(r.tsRef, h.Timestamp))
	sent := r.mediaTime(mediapkt.ExtendTimestamp(r.tsRef, h.Timestamp))
	p := rxPacket{h: h, payload: payload, origin: o}
	var v reorder.Verdict
	if o == fromNetwork {
		if !r.original.has(seq) {
			r.original.add(seq)
			r.originals++
			r.stats.Received++
		}
		v = r.buf.Push(seq, sent, now, p)
	} else {
		v = r.buf.PushRecovered(seq, sent, now, p)
	}
	switch v {
	case reorder.Late:
		if r.declared.has(seq) {
			// First arrival of a packet already given up: late, not
			// lost.
			r.declared.del(seq)
			r.stats.Lost--
			r.stats.Late++
		} else {
			r.stats.Duplicates++
		}
	case reorder.Duplicate:
		r.stats.Duplicates++
	}
}

// tick does what is due at now (NACKs, the loss report, playout) and
// returns when it next has something to do.
func (r *Receiver) tick(now time.Time) (time.Time, bool) {
	r.mu.Lock()
	if rtt, _ := r.sess.RTT(); rtt > 0 {
		r.nacks.SetRTT(rtt)
	}
	if seqs := r.nacks.Nacks(now, nil); len(seqs) > 0 {
		n := &wire.Nack{Flow: r.flow, Seqs: make([]uint64, len(seqs))}
		for i, s := range seqs {
			// JSP §13.6: NACKs carry the 16-bit wire numbers; the
			// sender extends them against what it sent.
			n.Seqs[i] = uint64(mediapkt.SeqOf(s))
		}
		if r.sess.SendNack(n) == nil {
			r.stats.NacksSent++
			r.stats.NackedSeqs += uint64(len(seqs))
		}
	}
	r.reportLocked(now)
	r.released = r.buf.Release(now, r.released[:0])
	for _, it := range r.released {
		r.playLocked(it, now)
	}
	clear(r.released)
	next, ok := r.nacks.NextNack(now)
	if t, has := r.buf.NextRelease(); has && (!ok || t.Before(next)) {
		next, ok = t, true
	}
	if r.reporting() && !r.nextReport.IsZero() && (!ok || r.nextReport.Before(next)) {
		next, ok = r.nextReport, true
	}
	out := r.out
	r.out = nil
	r.mu.Unlock()
	r.deliver(out)
	return next, ok
}

func (r *Receiver) reporting() bool { return r.fecOn }

// reportLocked sends the loss report that is due (JSP §13.7): the sequence
// numbers the newest packet advanced by this interval against the
// originals that arrived.
func (r *Receiver) reportLocked(now time.Time) {
	if !r.reporting() {
		return
	}
	hi, ok := r.nacks.Highest()
	if !ok {
		return
	}
	if r.nextReport.IsZero() {
		r.nextReport = now.Add(r.cfg.ReportInterval)
		r.lastHi, r.haveLastHi, r.originals = hi, true, 0
		return
	}
	if now.Before(r.nextReport) {
		return
	}
	r.nextReport = now.Add(r.cfg.ReportInterval)
	total := uint64(hi - r.lastHi)
	if total < uint64(r.cfg.MinReportPackets) {
		// Too few to measure: the interval goes on.
		return
	}
	rep := Report{Total: min(total, MaxReportTotal), Lost: min(total-min(total, r.originals), MaxReportTotal), Jitter: min(r.buf.Jitter(), MaxReportJitter)}
	r.lastHi, r.originals = hi, 0
	b, err := rep.Append(nil)
	if err != nil {
		return
	}
	if r.sess.SendFlow(r.flow, b, protocol.ClassMedia) == nil {
		r.stats.Reports++
	}
}

// playLocked accounts for one packet leaving the jitter buffer and feeds it
// to frame reassembly.
func (r *Receiver) playLocked(it reorder.Item[rxPacket], now time.Time) {
	if it.LostBefore > 0 {
		r.stats.Lost += it.LostBefore
		for i := uint64(1); i <= min(it.LostBefore, trackWindow); i++ {
			r.declared.add(it.Seq - protocol.MediaSeq(i))
		}
	}
	p := it.Value
	if p.origin != fromNetwork && !r.original.has(it.Seq) {
		if p.origin == fromFEC {
			r.stats.RecoveredFEC++
		} else {
			r.stats.RecoveredNACK++
		}
	}
	if f, ok := r.asm.add(it, r.cfg, now, &r.stats); ok {
		r.stats.Frames++
		r.out = append(r.out, f)
	}
}

// deliver hands frames to OnFrame or the Frames channel, dropping the
// oldest queued frame when the channel is full. Only the Mux's clock
// goroutine calls it.
func (r *Receiver) deliver(frames []ReceivedFrame) {
	if len(frames) == 0 {
		return
	}
	r.deliverMu.Lock()
	defer r.deliverMu.Unlock()
	if r.closed {
		return
	}
	for _, f := range frames {
		if r.cfg.OnFrame != nil {
			r.cfg.OnFrame(f)
			continue
		}
		for {
			select {
			case r.frames <- f:
			default:
				select {
				case <-r.frames:
					r.mu.Lock()
					r.stats.FramesOverflow++
					r.mu.Unlock()
				default:
				}
				continue
			}
			break
		}
	}
}

// closeFrames closes the Frames channel once.
func (r *Receiver) closeFrames() {
	r.deliverMu.Lock()
	defer r.deliverMu.Unlock()
	if !r.closed {
		r.closed = true
		close(r.frames)
	}
}

// Close removes the receiver from its Mux and closes Frames.
func (r *Receiver) Close() error {
	r.mux.removeReceiver(r)
	r.closeFrames()
	return nil
}

// assembler rebuilds frames from packets released in order (JSP §13.3).
type assembler struct {
	synced   bool // the next packet starts a frame
	discont  bool // something was lost since the last delivered frame
	cur      []rxPacket
	first    protocol.MediaSeq
	size     int
	repaired bool
	dropTS   uint32 // timestamp of the last frame counted as dropped
	dropped  bool   // dropTS is valid
}

func (a *assembler) countDrop(ts uint32, st *ReceiverStats) {
	if !a.dropped || ts != a.dropTS {
		st.FramesDropped++
		a.dropTS, a.dropped = ts, true
	}
	a.discont = true
}

func (a *assembler) reset() {
	clear(a.cur)
	a.cur = a.cur[:0]
	a.size = 0
	a.repaired = false
}

func (a *assembler) add(it reorder.Item[rxPacket], cfg ReceiverConfig, now time.Time, st *ReceiverStats) (ReceivedFrame, bool) {
	p := it.Value
	end := p.h.Flags.Has(mediapkt.FlagEndOfFrame)
	if it.LostBefore > 0 {
		a.discont = true
		if len(a.cur) > 0 {
			a.countDrop(a.cur[0].h.Timestamp, st)
			a.reset()
		}
		// Where the next frame starts is unknown: the lost packets may
		// have been its first ones. Only a single-packet flow knows.
		a.synced = cfg.SinglePacketFrames
	}
	if !a.synced {
		a.countDrop(p.h.Timestamp, st)
		a.synced = end
		return ReceivedFrame{}, false
	}
	if len(a.cur) > 0 && p.h.Timestamp != a.cur[0].h.Timestamp {
		// A new timestamp without an end mark: the sender broke the
		// frame rule; what we hold cannot be whole.
		a.countDrop(a.cur[0].h.Timestamp, st)
		a.reset()
	}
	if len(a.cur) == 0 {
		a.first = it.Seq
	}
	a.cur = append(a.cur, p)
	a.size += len(p.payload)
	a.repaired = a.repaired || p.origin != fromNetwork
	if a.size > cfg.MaxFrameSize {
		a.countDrop(p.h.Timestamp, st)
		a.reset()
		a.synced = end
		return ReceivedFrame{}, false
	}
	if !end {
		return ReceivedFrame{}, false
	}
	h := a.cur[0].h
	payload := make([]byte, 0, a.size)
	for _, q := range a.cur {
		payload = append(payload, q.payload...)
	}
	f := ReceivedFrame{
		Frame: Frame{
			Timestamp:     h.Timestamp,
			KeyFrame:      h.Flags.Has(mediapkt.FlagKeyFrame),
			AudioLevel:    h.AudioLevel,
			HasAudioLevel: h.Flags.Has(mediapkt.FlagAudioLevel),
			Payload:       payload,
		},
		FirstSeq:      a.first,
		Packets:       len(a.cur),
		Repaired:      a.repaired,
		Discontinuity: a.discont,
		PlayedAt:      now,
	}
	a.discont = false
	a.reset()
	return f, true
}
