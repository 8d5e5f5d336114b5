package sfu

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"github.com/jetstreamproto/jsp/media/bwe"
	"github.com/jetstreamproto/jsp/media/simulcast"
	"github.com/jetstreamproto/jsp/reliability/mediapkt"
	"github.com/jetstreamproto/jsp/reliability/nack"
)

// SubscriberConfig configures a [DownTrack]. Zero fields take their
// defaults.
type SubscriberConfig struct {
	// ID names the subscriber in stats and logs.
	ID string
	// QueuePackets overrides the forwarder's queue length for this
	// subscriber.
	QueuePackets int
	// Selector configures layer selection (simulcast tracks).
	Selector simulcast.SelectorConfig
	// InitialSeq and InitialTimestamp start the subscriber's spaces.
	InitialSeq       mediapkt.Seq
	InitialTimestamp uint32
	// FEC protects the subscriber's packets with parity of its own,
	// shaped by its receiver reports (OnReport) under the forwarder's
	// Config.FEC. Set it when the subscriber's session negotiated FEC
	// (JSP §13.5).
	FEC bool
}

// DownTrackStats counts what a [DownTrack] did.
type DownTrackStats struct {
	Forwarded     uint64 // packets queued for the subscriber (first sends)
	Filtered      uint64 // packets of layers it does not get, or before its first key frame
	Dropped       uint64 // packets dropped from its full queue
	Retransmitted uint64 // packets resent after its NACKs
	NackNotCached uint64 // NACKed numbers not in the history or cache
	NackTooLate   uint64 // NACKed packets too old to arrive in time
	NackLimited   uint64 // NACKed numbers refused by the rate limit or the per-call cap
	FECParity     uint64 // parity packets queued (subscribers with FEC; FECStats has more)
	FECBytes      uint64 // their bytes
	Queued        int    // packets waiting now
	Current       int    // layer being forwarded (simulcast.NoLayer before the first key frame)
	Target        int    // layer the selector wants
}

// DownTrack is one subscriber's view of a track: the packets it gets, in
// its own sequence and timestamp spaces, in a bounded queue.
type DownTrack struct {
	t     *Track
	cfg   SubscriberConfig
	queue *queue

	mu        sync.Mutex
	sel       *simulcast.Selector // guarded by mu; nil for single-layer tracks
	rw        *simulcast.Rewriter // guarded by mu
	tokens    float64             // guarded by mu: NACK token bucket
	tokensAt  time.Time           // guarded by mu
	closed    bool                // guarded by mu
	stats     DownTrackStats      // guarded by mu
	forwarded bool                // guarded by mu: single-layer tracks: anything forwarded yet
	fec       *downFEC            // guarded by mu; nil without FEC
}

func newDownTrack(t *Track, sc SubscriberConfig) (*DownTrack, error) {
	if sc.QueuePackets == 0 {
		sc.QueuePackets = t.f.cfg.QueuePackets
	}
	if sc.QueuePackets < 1 {
		return nil, fmt.Errorf("sfu: subscriber %q: QueuePackets %d below 1", sc.ID, sc.QueuePackets)
	}
	rw, err := simulcast.NewRewriter(simulcast.RewriterConfig{ClockRate: t.cfg.ClockRate,
		History: t.f.cfg.Cache.MaxPackets, InitialSeq: sc.InitialSeq, InitialTimestamp: sc.InitialTimestamp})
	if err != nil {
		return nil, fmt.Errorf("sfu: subscriber %q: %w", sc.ID, err)
	}
	d := &DownTrack{t: t, cfg: sc, queue: newQueue(sc.QueuePackets), rw: rw, tokens: float64(t.f.cfg.NackBurst)}
	if sc.FEC {
		if d.fec, err = newDownFEC(&t.f.cfg.FEC, t.f.cfg.MaxPacketSize); err != nil {
			return nil, fmt.Errorf("sfu: subscriber %q: %w", sc.ID, err)
		}
	}
	if len(t.cfg.Layers) > 1 {
		if d.sel, err = simulcast.NewSelector(t.cfg.Layers, sc.Selector); err != nil {
			return nil, fmt.Errorf("sfu: subscriber %q: %w", sc.ID, err)
		}
	}
	return d, nil
}

// Track returns the track the subscriber gets.
func (d *DownTrack) Track() *Track { return d.t }

// forward decides and queues one packet; it returns a layer that needs a
// key frame, if any. follow are the layer's packets after pkt when pkt is
// a key frame's first packet that arrived late: a subscriber that starts
// the layer at pkt gets them after it, as it got none of them before.
func (d *DownTrack) forward(now time.Time, layer int, h *mediapkt.Header, pkt []byte, keyStart bool, follow [][]byte) (int, bool) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return 0, false
	}
	ok, starts := true, false
	if d.sel != nil {
		d.sel.Tick(now)
		before := d.sel.Current()
		ok = d.sel.OnPacket(layer, keyStart)
		starts = ok && before != layer
	} else if !d.forwarded && d.t.cfg.Kind == KindVideo {
		// A single-layer video subscriber starts at a key frame too.
		ok, starts = keyStart, keyStart
	}
	var out, parity [][]byte
	if ok {
		out, parity = d.rewriteLocked(now, layer, h.Seq, h.Timestamp, pkt, out, parity)
		if starts {
			for _, b := range follow {
				fh, _, err := mediapkt.ParseHeader(b)
				if err != nil || (d.sel != nil && !d.sel.OnPacket(layer, false)) {
					continue
				}
				out, parity = d.rewriteLocked(now, layer, fh.Seq, fh.Timestamp, b, out, parity)
			}
		}
	} else {
		d.stats.Filtered++
	}
	kl, need := d.needKeyFrameLocked()
	d.mu.Unlock()
	for _, p := range out {
		d.queue.push(p)
	}
	for _, p := range parity {
		d.queue.push(p)
	}
	return kl, need
}

// rewriteLocked maps one packet to the subscriber's spaces and appends
// the copy, and any parity it completes, to out and parity.
func (d *DownTrack) rewriteLocked(now time.Time, layer int, seq mediapkt.Seq, ts uint32, pkt []byte, out, parity [][]byte) ([][]byte, [][]byte) {
	oseq, ots, fine := d.rw.Rewrite(now, layer, seq, ts)
	if !fine {
		return out, parity
	}
	d.forwarded = true
	b := rewrite(pkt, oseq, ots, false)
	d.stats.Forwarded++
	out = append(out, b)
	if d.fec != nil {
		parity = append(parity, d.fec.add(oseq, ots, b, now)...)
	}
	return out, parity
}

// rewrite copies a media packet with a new sequence number and timestamp
// (bytes 1-2 and 3-6 of the header, JSP §13.1), and sets R when asked.
func rewrite(pkt []byte, seq mediapkt.Seq, ts uint32, retransmission bool) []byte {
	out := make([]byte, len(pkt))
	copy(out, pkt)
	binary.BigEndian.PutUint16(out[1:], uint16(seq))
	binary.BigEndian.PutUint32(out[3:], ts)
	if retransmission {
		out[0] |= byte(mediapkt.FlagRetransmission)
	}
	return out
}

func (d *DownTrack) needKeyFrame() (int, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.needKeyFrameLocked()
}

func (d *DownTrack) needKeyFrameLocked() (int, bool) {
	if d.sel != nil {
		return d.sel.NeedKeyFrame()
	}
	if d.t.cfg.Kind == KindVideo && !d.forwarded {
		return 0, true
	}
	return 0, false
}

func (d *DownTrack) target() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.sel == nil {
		return 0
	}
	return d.sel.Target()
}

// SetEstimate gives the subscriber's bandwidth estimate to its layer
// selector (simulcast tracks); a change of target asks for a key frame.
func (d *DownTrack) SetEstimate(b bwe.Bitrate) {
	d.update(func(now time.Time) { d.sel.SetEstimate(now, b) })
}

// SetRequestedSize limits the layers to those no larger than w x h.
func (d *DownTrack) SetRequestedSize(w, h int) {
	d.update(func(now time.Time) { d.sel.SetRequestedSize(now, w, h) })
}

// SetLayerActive tells the selector a layer was paused or resumed by the
// publisher.
func (d *DownTrack) SetLayerActive(layer int, active bool) {
	d.update(func(now time.Time) { d.sel.SetLayerActive(now, layer, active) })
}

func (d *DownTrack) update(f func(time.Time)) {
	if d.sel == nil {
		return
	}
	now := d.t.f.cfg.Now()
	d.mu.Lock()
	f(now)
	l, need := d.needKeyFrameLocked()
	d.mu.Unlock()
	if need {
		d.t.requestKeyFrame(l, now)
	}
}

// OnNack answers the subscriber's NACK for outgoing sequence numbers: each
// still in the history and the cache, and within the rate limit, is queued
// again with R set. rtt is the subscriber path's round-trip time, for the
// deadline check (JSP §13.6). It returns the number resent.
func (d *DownTrack) OnNack(seqs []mediapkt.Seq, rtt time.Duration) int {
	now := d.t.f.cfg.Now()
	type want struct {
		out mediapkt.Seq
		ts  uint32
		src simulcast.Source
	}
	var wants []want
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return 0
	}
	if len(seqs) > MaxNackSeqs {
		d.stats.NackLimited += uint64(len(seqs) - MaxNackSeqs)
		seqs = seqs[:MaxNackSeqs]
	}
	// Refill the token bucket.
	cfg := d.t.f.cfg
	if !d.tokensAt.IsZero() {
		d.tokens = min(float64(cfg.NackBurst), d.tokens+now.Sub(d.tokensAt).Seconds()*float64(cfg.NackRate))
	}
	d.tokensAt = now
	for _, s := range seqs {
		src, ts, ok := d.rw.Lookup(s)
		if !ok {
			d.stats.NackNotCached++
			continue
		}
		if d.tokens < 1 {
			d.stats.NackLimited++
			continue
		}
		d.tokens--
		wants = append(wants, want{s, ts, src})
	}
	d.mu.Unlock()

	var resent, notCached, tooLate uint64
	for _, w := range wants {
		b, st := d.t.resend(w.src.Layer, w.src.Seq, now, rtt)
		switch st {
		case nack.Resent:
			// The cached copy is ours: rewrite it in place.
			binary.BigEndian.PutUint16(b[1:], uint16(w.out))
			binary.BigEndian.PutUint32(b[3:], w.ts)
			b[0] |= byte(mediapkt.FlagRetransmission)
			d.queue.push(b)
			resent++
		case nack.TooLate:
			tooLate++
		default:
			notCached++
		}
	}
	d.mu.Lock()
	d.stats.Retransmitted += resent
	d.stats.NackNotCached += notCached
	d.stats.NackTooLate += tooLate
	d.mu.Unlock()
	return int(resent)
}

// Receive returns the next packet for the subscriber, waiting until one
// is queued, the down track is closed (ErrClosed once the queue is empty)
// or ctx ends. The packet is the caller's. While the subscriber's FEC
// group is open it waits no longer than the group's deadline, and then
// returns the group's parity.
func (d *DownTrack) Receive(ctx context.Context) ([]byte, error) {
	for {
		b, ok, closed := d.queue.tryPop()
		if ok {
			return b, nil
		}
		if closed {
			return nil, ErrClosed
		}
		now := d.t.f.cfg.Now()
		due, open := d.FlushFEC(now)
		if !open {
			return d.queue.pop(ctx)
		}
		if err := d.queue.wait(ctx, due.Sub(now)); err != nil {
			return nil, err
		}
	}
}

// TryReceive returns the next packet if one is queued.
func (d *DownTrack) TryReceive() ([]byte, bool) {
	b, ok, _ := d.queue.tryPop()
	return b, ok
}

// Stats returns the down track's counters.
func (d *DownTrack) Stats() DownTrackStats {
	d.mu.Lock()
	s := d.stats
	s.Current, s.Target = 0, 0
	if d.sel != nil {
		s.Current, s.Target = d.sel.Current(), d.sel.Target()
	}
	if d.fec != nil {
		s.FECParity, s.FECBytes = d.fec.stats.Parity, d.fec.stats.ParityBytes
	}
	d.mu.Unlock()
	s.Dropped = d.queue.drops()
	s.Queued = d.queue.len()
	return s
}

// Close unsubscribes: the track stops forwarding to d, and Receive returns
// what is queued, then ErrClosed.
func (d *DownTrack) Close() {
	if d.t.unsubscribe(d) {
		d.closeQueue()
		d.t.f.retireDown(d.Stats())
	}
}

func (d *DownTrack) closeQueue() {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	d.queue.close()
}
