package sfu

import (
	"fmt"
	"time"

	"github.com/jetstreamproto/jsp/reliability/fec"
	"github.com/jetstreamproto/jsp/reliability/mediapkt"
)

// Per-subscriber FEC (JSP §13.4, §13.5). Parity from the publisher
// protects the publisher's path only; each subscriber's path gets its own
// parity, computed over the packets exactly as the subscriber receives them
// (rewritten sequence numbers and timestamps, R clear), shaped by
// fec.Policy from that subscriber's receiver reports. A subscriber on a
// clean path costs nothing: the policy starts at no FEC and the encoder
// keeps nothing until loss is reported.

// Defaults for zero [FECConfig] fields.
const (
	// DefaultFECGroupDelay closes an open group this long after its first
	// packet, as the SDK's sender does (media.DefaultMaxGroupDelay): a
	// group repairs nothing until its parity is out, so this bounds the
	// delay FEC adds to a slow flow such as 20 ms audio.
	DefaultFECGroupDelay = 40 * time.Millisecond
	// DefaultFECMaxOverhead caps parity at half the source packets, as
	// the SDK's sender does (media.DefaultMaxParityOverhead): the
	// subscriber's path is congested already when it is this lossy.
	DefaultFECMaxOverhead = 0.5
)

// FECConfig configures the FEC of subscribers that have it on
// (SubscriberConfig.FEC). Zero fields take their defaults.
type FECConfig struct {
	// Policy maps a subscriber's reported loss to the group shape.
	// Default: fec's defaults.
	Policy fec.PolicyConfig
	// MaxGroupDelay bounds how long a group stays open. Default
	// DefaultFECGroupDelay.
	MaxGroupDelay time.Duration
	// MaxOverhead caps M/K of the policy's shapes: a group over it keeps
	// its K and gets M = floor(K * MaxOverhead), at least 1. Default
	// DefaultFECMaxOverhead, in (0, 1].
	MaxOverhead float64
}

func (c *FECConfig) setDefaults() {
	if c.MaxGroupDelay == 0 {
		c.MaxGroupDelay = DefaultFECGroupDelay
	}
	if c.MaxOverhead == 0 {
		c.MaxOverhead = DefaultFECMaxOverhead
	}
}

func (c *FECConfig) validate() error {
	switch {
	case c.MaxGroupDelay < 0:
		return fmt.Errorf("sfu: negative FEC MaxGroupDelay")
	case !(c.MaxOverhead > 0 && c.MaxOverhead <= 1):
		return fmt.Errorf("sfu: FEC MaxOverhead %v outside (0, 1]", c.MaxOverhead)
	}
	_, err := fec.NewPolicy(c.Policy)
	return err
}

// FECStats counts a subscriber's FEC.
type FECStats struct {
	Reports       uint64     // receiver reports fed to the policy
	Protected     uint64     // source packets put into groups
	Unprotected   uint64     // source packets too long for a group
	Parity        uint64     // parity packets queued
	ParityTrimmed uint64     // parity packets of partial groups not sent (fec.ParityShare)
	ParityBytes   uint64     // their bytes
	LossEstimate  float64    // the policy's loss estimate (fraction)
	Params        fec.Params // the group shape in use
}

// downFEC is one subscriber's encoder; its DownTrack's mu guards it.
type downFEC struct {
	cfg       *FECConfig
	maxPkt    int
	policy    *fec.Policy
	enc       *fec.Encoder
	out       mediapkt.Unwrapper // extends outgoing numbers for the encoder
	repairSeq mediapkt.Seq       // parity's own sequence space (JSP §13.4)
	lastTS    uint32             // newest protected packet's timestamp
	open      bool               // a group has packets and no parity yet
	openedAt  time.Time
	stats     FECStats
}

func newDownFEC(cfg *FECConfig, maxPkt int) (*downFEC, error) {
	p, err := fec.NewPolicy(cfg.Policy)
	if err != nil {
		return nil, err
	}
	maxPkt = min(maxPkt, fec.MaxPacketSize)
	f := &downFEC{cfg: cfg, maxPkt: maxPkt, policy: p}
	if f.enc, err = fec.NewEncoder(fec.EncoderConfig{MaxPacketSize: maxPkt}); err != nil {
		return nil, err
	}
	return f, nil
}

// shape is the policy's group shape with M capped by MaxOverhead.
func (f *downFEC) shape() fec.Params {
	p := f.policy.Params()
	if p.Enabled() && p.Overhead() > f.cfg.MaxOverhead {
		p.M = max(1, int(float64(p.K)*f.cfg.MaxOverhead))
	}
	return p
}

// onReport feeds one receiver report of the subscriber's path.
func (f *downFEC) onReport(lost, total uint64) {
	f.stats.Reports++
	f.policy.Observe(lost, total)
	// The policy's shapes are validated when it is built, and capping M
	// keeps one valid.
	_ = f.enc.SetParams(f.shape())
}

// add protects pkt, sent to the subscriber as seq with timestamp ts, and
// returns the parity packets it completes.
func (f *downFEC) add(seq mediapkt.Seq, ts uint32, pkt []byte, now time.Time) [][]byte {
	ext := f.out.Unwrap(seq)
	if len(pkt) > f.maxPkt {
		// Too long to protect: close the open group so the next starts
		// after this packet.
		f.stats.Unprotected++
		return f.flush()
	}
	if mediapkt.Flags(pkt[0]).Has(mediapkt.FlagRetransmission) {
		// A retransmission on the publisher's path keeps R on the way
		// out; parity covers the packet as a receiver feeds its decoder,
		// R clear (JSP §13.4). The encoder copies it.
		clean := make([]byte, len(pkt))
		copy(clean, pkt)
		clean[0] &^= byte(mediapkt.FlagRetransmission)
		pkt = clean
	}
	before := f.enc.Stats().Source
	par, err := f.enc.Add(ext, pkt)
	if err != nil {
		f.stats.Unprotected++
		return nil
	}
	kept := f.enc.Stats().Source > before
	if kept {
		f.stats.Protected++
		f.lastTS = ts
	}
	closedMine := false
	for _, p := range par {
		if p.Group.Contains(ext) {
			closedMine = true
		}
	}
	switch {
	case kept && !closedMine && !f.open:
		f.open, f.openedAt = true, now
	case !kept || closedMine:
		f.open = false
	}
	return f.packets(par)
}

// due reports when the open group must be flushed.
func (f *downFEC) due() (time.Time, bool) {
	if !f.open {
		return time.Time{}, false
	}
	return f.openedAt.Add(f.cfg.MaxGroupDelay), true
}

// flush closes the open group and returns its parity packets.
func (f *downFEC) flush() [][]byte {
	f.open = false
	par, err := f.enc.Flush()
	if err != nil {
		return nil
	}
	return f.packets(par)
}

// packets builds parity media packets (JSP §13.4): repair-space sequence
// numbers, the group's newest timestamp, the group in the FEC fields.
func (f *downFEC) packets(par []fec.Parity) [][]byte {
	if len(par) == 0 {
		return nil
	}
	out := make([][]byte, 0, len(par))
	for _, p := range par {
		if !p.InShare() {
			// Parity beyond a partial group's share: not sent
			// (fec.ParityShare).
			f.stats.ParityTrimmed++
			continue
		}
		h := mediapkt.Header{
			Flags:     mediapkt.FlagFEC,
			Seq:       f.repairSeq,
			Timestamp: f.lastTS,
			FEC: mediapkt.FECInfo{
				Base: mediapkt.SeqOf(p.Group.Base), K: uint8(p.Group.K), M: uint8(p.Group.M), Index: uint8(p.Index),
			},
		}
		b, err := mediapkt.AppendPacket(make([]byte, 0, h.Len()+len(p.Data)), &h, p.Data)
		if err != nil {
			continue
		}
		f.repairSeq++
		f.stats.Parity++
		f.stats.ParityBytes += uint64(len(b))
		out = append(out, b)
	}
	return out
}

func (f *downFEC) snapshot() FECStats {
	s := f.stats
	s.LossEstimate = f.policy.Loss()
	s.Params = f.enc.Params()
	return s
}

// OnReport feeds a receiver report of the subscriber's path (JSP §13.7:
// lost of total source packets missing on first arrival) to its FEC
// policy. It does nothing for a subscriber without FEC.
func (d *DownTrack) OnReport(lost, total uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fec != nil && !d.closed {
		d.fec.onReport(lost, total)
	}
}

// FECStats returns the subscriber's FEC counters and whether it has FEC.
func (d *DownTrack) FECStats() (FECStats, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fec == nil {
		return FECStats{}, false
	}
	return d.fec.snapshot(), true
}

// FlushFEC closes the subscriber's open FEC group if it has waited
// MaxGroupDelay at now, queueing its parity, and returns when it must be
// called next (false: no group open). The subscriber's writer calls it;
// Receive does on its own.
func (d *DownTrack) FlushFEC(now time.Time) (time.Time, bool) {
	d.mu.Lock()
	if d.fec == nil || d.closed {
		d.mu.Unlock()
		return time.Time{}, false
	}
	due, open := d.fec.due()
	if !open {
		d.mu.Unlock()
		return time.Time{}, false
	}
	if now.Before(due) {
		d.mu.Unlock()
		return due, true
	}
	par := d.fec.flush()
	d.mu.Unlock()
	for _, p := range par {
		d.queue.push(p)
	}
	return time.Time{}, false
}
