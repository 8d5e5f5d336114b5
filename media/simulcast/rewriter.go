package simulcast

import (
	"fmt"
	"time"

	"github.com/jetstreamproto/jsp/reliability/mediapkt"
)

// Rewriter defaults, used for zero [RewriterConfig] fields.
const (
	// DefaultClockRate is the video media clock (JSP §13.2).
	DefaultClockRate = 90000
	// DefaultHistory is how many forwarded packets Lookup remembers:
	// the packets a NACK may still ask for (the sender cache default,
	// JSP §13.10).
	DefaultHistory = 1024
	// MaxHistory caps RewriterConfig.History.
	MaxHistory = 1 << 16
)

// RewriterConfig configures a [Rewriter]. Zero fields take their defaults.
type RewriterConfig struct {
	// ClockRate is the timestamps' clock in Hz. Default DefaultClockRate.
	ClockRate int
	// History is the number of forwarded packets Lookup can map back,
	// 1..MaxHistory. Default DefaultHistory.
	History int
	// InitialSeq is the first outgoing sequence number.
	InitialSeq mediapkt.Seq
	// InitialTimestamp is the first outgoing timestamp.
	InitialTimestamp uint32
}

// Source is where a forwarded packet came from.
type Source struct {
	Layer int
	Seq   mediapkt.Seq
}

type histEntry struct {
	out   mediapkt.Seq
	ts    uint32 // outgoing timestamp
	src   Source
	valid bool
}

// Rewriter maps the packets of whatever layer a subscriber is getting onto
// one outgoing sequence and timestamp space: within a layer, outgoing =
// incoming + offset (so a loss upstream stays a gap the subscriber can
// NACK); at a switch, the new layer's first packet gets the next outgoing
// number after the last one sent and a timestamp advanced by the wall-clock
// time since the last packet, so the subscriber sees neither a gap nor a
// jump back. It is not safe for concurrent use.
type Rewriter struct {
	cfg      RewriterConfig
	started  bool
	layer    int
	seqOff   mediapkt.Seq // out = in + seqOff
	tsOff    uint32       // out = in + tsOff
	firstIn  mediapkt.Seq // first incoming seq of the current layer
	lastOut  mediapkt.Seq // newest outgoing seq
	lastTS   uint32       // newest outgoing timestamp
	lastAt   time.Time
	hist     []histEntry
	switches uint64
	dropped  uint64
}

// NewRewriter returns a rewriter.
func NewRewriter(cfg RewriterConfig) (*Rewriter, error) {
	if cfg.ClockRate == 0 {
		cfg.ClockRate = DefaultClockRate
	}
	if cfg.History == 0 {
		cfg.History = DefaultHistory
	}
	if cfg.ClockRate < 1 || cfg.History < 1 || cfg.History > MaxHistory {
		return nil, fmt.Errorf("simulcast: rewriter config %+v out of range", cfg)
	}
	return &Rewriter{cfg: cfg, hist: make([]histEntry, cfg.History)}, nil
}

// Rewrite maps one packet of layer to the outgoing spaces. ok is false when
// the packet must be dropped: an old packet of the current layer from
// before the switch to it (its outgoing number would collide with the
// previous layer's). A packet of another layer than the current one is a
// switch: the caller passes only packets its Selector forwards.
func (r *Rewriter) Rewrite(now time.Time, layer int, seq mediapkt.Seq, ts uint32) (mediapkt.Seq, uint32, bool) {
	switch {
	case !r.started:
		r.started = true
		r.layer, r.firstIn = layer, seq
		r.seqOff = r.cfg.InitialSeq - seq
		r.tsOff = r.cfg.InitialTimestamp - ts
		r.lastOut, r.lastTS, r.lastAt = seq+r.seqOff, ts+r.tsOff, now
	case layer != r.layer:
		r.switches++
		r.layer, r.firstIn = layer, seq
		r.seqOff = r.lastOut + 1 - seq
		// Advance by the time since the last packet, at least one tick,
		// so that timestamps keep increasing across the switch; the new
		// layer's own timestamps then run on from there.
		adv := max(uint32(now.Sub(r.lastAt).Seconds()*float64(r.cfg.ClockRate)), 1)
		r.tsOff = r.lastTS + adv - ts
	case seq.Diff(r.firstIn) < 0:
		r.dropped++
		return 0, 0, false
	}
	out, ots := seq+r.seqOff, ts+r.tsOff
	if out.Diff(r.lastOut) > 0 {
		r.lastOut = out
	}
	if int32(ots-r.lastTS) > 0 {
		r.lastTS = ots
	}
	if !now.Before(r.lastAt) {
		r.lastAt = now
	}
	r.hist[int(out)%len(r.hist)] = histEntry{out: out, ts: ots, src: Source{Layer: layer, Seq: seq}, valid: true}
	return out, ots, true
}

// Lookup maps an outgoing sequence number (from a subscriber's NACK) back
// to the packet it was made from and the outgoing timestamp it was given,
// while it is within the history.
func (r *Rewriter) Lookup(out mediapkt.Seq) (Source, uint32, bool) {
	e := r.hist[int(out)%len(r.hist)]
	if !e.valid || e.out != out {
		return Source{}, 0, false
	}
	return e.src, e.ts, true
}

// Layer returns the layer of the last packet rewritten.
func (r *Rewriter) Layer() int { return r.layer }

// Switches returns the number of layer switches; Dropped the packets
// refused as older than the current layer's first.
func (r *Rewriter) Switches() uint64 { return r.switches }

// Dropped returns the number of packets refused by Rewrite.
func (r *Rewriter) Dropped() uint64 { return r.dropped }
