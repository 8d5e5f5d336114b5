package reliability_test

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/internal/simnet"
	"github.com/jetstreamproto/jsp/reliability/fec"
	"github.com/jetstreamproto/jsp/reliability/mediapkt"
	"github.com/jetstreamproto/jsp/reliability/nack"
	"github.com/jetstreamproto/jsp/reliability/reorder"
)

// The stream: 10,000 packets of 200 to 1,000 bytes, one every 5 ms (200
// packets per second, about 1 Mbit/s of video), numbered from just below
// the 16-bit wrap so that sequence extension is exercised on the way.
const (
	numPackets  = 10_000
	interval    = 5 * time.Millisecond
	firstSeq    = 60_000
	clockRate   = 90_000 // media clock, Hz
	oneWay      = 30 * time.Millisecond
	linkJitter  = 10 * time.Millisecond
	rtt         = 2 * (oneWay + linkJitter) // the worst case PING would measure
	playout     = 200 * time.Millisecond    // receiver delay: room for about two NACK rounds
	reportEvery = 100 * time.Millisecond
	tick        = time.Millisecond
	drain       = 2 * time.Second
)

var epoch = time.Unix(1_700_000_000, 0)

type origin uint8

const (
	fromNetwork origin = iota + 1 // the original transmission
	fromFEC                       // rebuilt from parity
	fromNACK                      // retransmitted after a NACK
)

// feedback is the receiver-to-sender report of this harness: a loss report
// for the last interval and a NACK list. Its encoding is the harness's own
// (the real NACK message is JSP §5.6): lost (8) | total (8) | n (2) | n x seq (8).
type feedback struct {
	lost, total uint64
	nacks       []protocol.MediaSeq
}

func (f *feedback) append(b []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, f.lost)
	b = binary.BigEndian.AppendUint64(b, f.total)
	b = binary.BigEndian.AppendUint16(b, uint16(len(f.nacks)))
	for _, s := range f.nacks {
		b = binary.BigEndian.AppendUint64(b, uint64(s))
	}
	return b
}

func parseFeedback(t *testing.T, b []byte) feedback {
	t.Helper()
	if len(b) < 18 {
		t.Fatalf("feedback of %d bytes", len(b))
	}
	f := feedback{lost: binary.BigEndian.Uint64(b), total: binary.BigEndian.Uint64(b[8:])}
	n := int(binary.BigEndian.Uint16(b[16:]))
	if len(b) != 18+8*n {
		t.Fatalf("feedback of %d bytes for %d NACKs", len(b), n)
	}
	for i := 0; i < n; i++ {
		f.nacks = append(f.nacks, protocol.MediaSeq(binary.BigEndian.Uint64(b[18+8*i:])))
	}
	return f
}

type sender struct {
	t         *testing.T
	link      *simnet.Link
	cache     *nack.Cache
	enc       *fec.Encoder
	policy    *fec.Policy
	rng       *rand.Rand
	repairSeq mediapkt.Seq
	parity    int // parity packets sent
	resent    int // retransmissions sent
	paramUse  map[fec.Params]int
}

func mediaTime(now time.Time) uint32 {
	return uint32(now.Sub(epoch) * clockRate / time.Second)
}

// send captures, protects and sends source packet i.
func (s *sender) send(i int, now time.Time) {
	seq := protocol.MediaSeq(firstSeq + i)
	h := mediapkt.Header{Flags: mediapkt.FlagEndOfFrame, Seq: mediapkt.SeqOf(seq), Timestamp: mediaTime(now)}
	if i%100 == 0 {
		h.Flags |= mediapkt.FlagKeyFrame
	}
	payload := make([]byte, 200+s.rng.IntN(801))
	for j := range payload {
		payload[j] = byte(s.rng.Uint32())
	}
	pkt, err := mediapkt.AppendPacket(nil, &h, payload)
	if err != nil {
		s.t.Fatal(err)
	}
	if err := s.cache.Add(seq, pkt, now); err != nil {
		s.t.Fatal(err)
	}
	s.link.Send(pkt, now)
	s.paramUse[s.enc.Params()]++
	par, err := s.enc.Add(seq, pkt)
	if err != nil {
		s.t.Fatal(err)
	}
	s.sendParity(par, h.Timestamp, now)
}

func (s *sender) sendParity(par []fec.Parity, ts uint32, now time.Time) {
	for _, p := range par {
		h := mediapkt.Header{
			Flags:     mediapkt.FlagFEC,
			Seq:       s.repairSeq,
			Timestamp: ts,
			FEC:       mediapkt.FECInfo{Base: mediapkt.SeqOf(p.Group.Base), K: uint8(p.Group.K), M: uint8(p.Group.M), Index: uint8(p.Index)},
		}
		s.repairSeq++
		pkt, err := mediapkt.AppendPacket(nil, &h, p.Data)
		if err != nil {
			s.t.Fatal(err)
		}
		s.link.Send(pkt, now)
		s.parity++
	}
}

func (s *sender) onFeedback(b []byte, now time.Time) {
	f := parseFeedback(s.t, b)
	if f.total > 0 {
		s.policy.Observe(f.lost, f.total)
		if err := s.enc.SetParams(s.policy.Params()); err != nil {
			s.t.Fatal(err)
		}
	}
	for _, seq := range f.nacks {
		pkt, st := s.cache.Resend(seq, now, rtt)
		if st != nack.Resent {
			continue
		}
		rtx := bytes.Clone(pkt)
		if err := mediapkt.SetRetransmission(rtx, true); err != nil {
			s.t.Fatal(err)
		}
		s.link.Send(rtx, now)
		s.resent++
	}
}

type receiver struct {
	t      *testing.T
	link   *simnet.Link // feedback path
	unwrap mediapkt.Unwrapper
	tsRef  uint64
	nacks  *nack.Receiver
	dec    *fec.Decoder
	buf    *reorder.Buffer[origin]

	// Loss meter: originals received against sequence numbers advanced,
	// per report interval. Retransmissions and rebuilt packets do not
	// count, so the sender's FEC policy sees the path's loss before
	// repair.
	originals   uint64
	lastHighest protocol.MediaSeq
	nextReport  time.Time

	// Per-packet outcome, indexed by seq - firstSeq.
	gotOriginal [numPackets]bool
	late        [numPackets]bool
	released    [numPackets]origin
}

func (r *receiver) index(seq protocol.MediaSeq) int {
	i := int(seq) - firstSeq
	if i < 0 || i >= numPackets {
		r.t.Fatalf("sequence number %d outside the stream", seq)
	}
	return i
}

func (r *receiver) onDatagram(b []byte, now time.Time) {
	h, payload, err := mediapkt.Parse(b)
	if err != nil {
		r.t.Fatalf("parsing datagram: %v", err)
	}
	if h.Flags.Has(mediapkt.FlagFEC) {
		hi, ok := r.unwrap.Highest()
		if !ok {
			return // no source packet yet to place the group against
		}
		p := fec.Parity{
			Group: fec.Group{Base: mediapkt.Extend(hi, h.FEC.Base), K: int(h.FEC.K), M: int(h.FEC.M)},
			Index: int(h.FEC.Index),
			Data:  payload,
		}
		rec, err := r.dec.AddParity(p)
		if err != nil {
			r.t.Fatalf("parity: %v", err)
		}
		r.rebuilt(rec, now)
		return
	}
	seq := r.unwrap.Unwrap(h.Seq)
	o := fromNetwork
	clean := b
	if h.Flags.Has(mediapkt.FlagRetransmission) {
		o = fromNACK
		clean = bytes.Clone(b)
		if err := mediapkt.SetRetransmission(clean, false); err != nil {
			r.t.Fatal(err)
		}
	}
	r.source(seq, h, o, now)
	rec, err := r.dec.AddSource(seq, clean)
	if err != nil {
		r.t.Fatalf("FEC source: %v", err)
	}
	r.rebuilt(rec, now)
}

func (r *receiver) rebuilt(rec []fec.Recovered, now time.Time) {
	for _, p := range rec {
		h, _, err := mediapkt.Parse(p.Packet)
		if err != nil {
			r.t.Fatalf("rebuilt packet %d does not parse: %v", p.Seq, err)
		}
		if got := mediapkt.Extend(p.Seq, h.Seq); got != p.Seq {
			r.t.Fatalf("rebuilt packet %d carries seq %d", p.Seq, h.Seq)
		}
		r.source(p.Seq, h, fromFEC, now)
	}
}

func (r *receiver) source(seq protocol.MediaSeq, h mediapkt.Header, o origin, now time.Time) {
	i := r.index(seq)
	r.nacks.OnPacket(seq, now)
	r.tsRef = max(r.tsRef, mediapkt.ExtendTimestamp(r.tsRef, h.Timestamp))
	ts := mediapkt.ExtendTimestamp(r.tsRef, h.Timestamp)
	sent := time.Duration(ts) * time.Second / clockRate
	var v reorder.Verdict
	if o == fromNetwork {
		if !r.gotOriginal[i] {
			r.originals++
		}
		r.gotOriginal[i] = true
		v = r.buf.Push(seq, sent, now, o)
	} else {
		v = r.buf.PushRecovered(seq, sent, now, o)
	}
	if v == reorder.Late {
		r.late[i] = true
	}
}

// tick sends NACKs and loss reports that are due and plays out what is due.
func (r *receiver) tick(now time.Time) {
	var f feedback
	f.nacks = r.nacks.Nacks(now, nil)
	if !now.Before(r.nextReport) {
		r.nextReport = now.Add(reportEvery)
		if hi, ok := r.nacks.Highest(); ok {
			if r.lastHighest != 0 {
				f.total = uint64(hi - r.lastHighest)
				f.lost = f.total - min(f.total, r.originals)
			}
			r.lastHighest, r.originals = hi, 0
		}
	}
	if len(f.nacks) > 0 || f.total > 0 {
		r.link.Send(f.append(nil), now)
	}
	for _, it := range r.buf.Release(now, nil) {
		r.released[r.index(it.Seq)] = it.Value
	}
}

// outcome classifies every packet of the stream, as a fraction of it. A
// packet whose original transmission arrived counts as delivered even when
// a repair overtook it (early); one whose original was lost counts by what
// played it out (fec or nack), or as late (only a copy that came after its
// turn) or lost (nothing came).
type outcome struct {
	rawLoss                float64 // originals that never arrived
	fec, nack, late, lost  float64 // what became of those
	early                  float64 // delivered packets played out from a repair that overtook the original
	parityOverhead, resent float64 // extra packets per source packet
	params                 map[fec.Params]int
	fwd, rev               simnet.Stats
}

func (o outcome) residual() float64 { return o.late + o.lost }

// must unwraps a constructor's result; the harness's configurations are
// constants, so an error is a bug in the test.
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// stream runs the whole pipeline over a forward and a feedback link with
// the given impairments, on a 1 ms virtual clock.
func stream(t *testing.T, seed uint64, fwdCfg, revCfg simnet.Config) outcome {
	fwdCfg.Seed, revCfg.Seed = seed, seed+1
	tx := &sender{
		t:        t,
		link:     must(simnet.NewLink(fwdCfg)),
		cache:    must(nack.NewCache(nack.CacheConfig{MaxDelay: oneWay + playout})),
		enc:      must(fec.NewEncoder(fec.EncoderConfig{})),
		policy:   must(fec.NewPolicy(fec.PolicyConfig{})),
		rng:      rand.New(rand.NewPCG(seed, 99)),
		paramUse: map[fec.Params]int{},
	}
	rx := &receiver{
		t:    t,
		link: must(simnet.NewLink(revCfg)),
		nacks: must(nack.NewReceiver(nack.ReceiverConfig{
			InitialRTT:       rtt,
			MaxDelay:         playout,
			ReorderTolerance: linkJitter,
		})),
		dec:        must(fec.NewDecoder(fec.DecoderConfig{})),
		buf:        must(reorder.New[origin](reorder.Config{MinDelay: playout, MaxDelay: 2 * playout})),
		nextReport: epoch.Add(reportEvery),
	}
	end := time.Duration(numPackets)*interval + drain
	sent := 0
	for at := time.Duration(0); at <= end; at += tick {
		now := epoch.Add(at)
		if sent < numPackets && at == time.Duration(sent)*interval {
			tx.send(sent, now)
			sent++
			if sent == numPackets {
				par, err := tx.enc.Flush()
				if err != nil {
					t.Fatal(err)
				}
				tx.sendParity(par, mediaTime(now), now)
			}
		}
		for _, p := range tx.link.Deliver(now) {
			rx.onDatagram(p.Data, now)
		}
		for _, p := range rx.link.Deliver(now) {
			tx.onFeedback(p.Data, now)
		}
		rx.tick(now)
	}

	var o outcome
	var raw, byFEC, byNACK, late, lost, early int
	for i := 0; i < numPackets; i++ {
		switch {
		case rx.released[i] == 0 && rx.late[i]:
			late++
		case rx.released[i] == 0:
			lost++
		case rx.gotOriginal[i] && rx.released[i] != fromNetwork:
			early++
		case rx.released[i] == fromFEC:
			byFEC++
		case rx.released[i] == fromNACK:
			byNACK++
		}
		if !rx.gotOriginal[i] {
			raw++
		}
	}
	n := float64(numPackets)
	o.rawLoss = float64(raw) / n
	o.fec, o.nack, o.late, o.lost = float64(byFEC)/n, float64(byNACK)/n, float64(late)/n, float64(lost)/n
	o.early = float64(early) / n
	if raw != byFEC+byNACK+late+lost {
		t.Errorf("%d originals lost, but %d rebuilt + %d resent + %d late + %d lost", raw, byFEC, byNACK, late, lost)
	}
	o.parityOverhead = float64(tx.parity) / n
	o.resent = float64(tx.resent) / n
	o.params = tx.paramUse
	o.fwd, o.rev = tx.link.Stats(), rx.link.Stats()
	if st := rx.buf.Stats(); st.Overflow != 0 {
		t.Errorf("reorder buffer overflowed %d times", st.Overflow)
	}
	return o
}

// TestEndToEnd streams 10,000 media packets through mediapkt, the FEC
// encoder and policy, the NACK cache and receiver, the FEC decoder and the
// reorder buffer, over simulated links whose loss also hits the feedback
// path, and checks the residual loss (packets never played out: lost or
// late) of each loss profile against a bound.
//
// The bounds. Independent loss p hits a source packet, its FEC group and,
// separately, each NACK and retransmission. FEC first: at the policy's
// shape for p (fec.DefaultTable), the share of lost packets a group cannot
// rebuild is about 10% at 5% loss (10+2 or 8+3), 7% at 10% (8+3 or 6+3) and
// 6% at 20% (5+4). NACK then: with a 200 ms playout delay and an 80 ms RTT,
// a packet gets about two NACK rounds, each failing when the NACK or the
// retransmission is lost, 1-(1-p)^2; both rounds fail with probability
// (1-(1-p)^2)^2: 1% at 5%, 4% at 10%, 13% at 20%. The product, times p, is
// the expected residual: 0.005% at 5%, 0.03% at 10%, 0.15% at 20%. The
// first report interval runs without FEC and the loss estimate lags, so
// each bound is about four times the estimate, rounded up: 0.05%, 0.2%,
// 0.8%. The burst profile loses about 6% on average but in runs of about
// four packets at 70% loss, which defeat a 10+2 group and make the NACK
// and its retransmission likelier to fall in the same bad spell; its bound
// of 0.5% allows for that.
func TestEndToEnd(t *testing.T) {
	base := simnet.Config{Delay: oneWay, Jitter: linkJitter, Rate: 2_000_000}
	random := func(p float64) (simnet.Config, simnet.Config) {
		c := base
		c.Loss = p
		return c, c
	}
	burst := func() (simnet.Config, simnet.Config) {
		c := base
		c.Burst = &simnet.GilbertElliott{PGoodToBad: 0.02, PBadToGood: 0.25, LossGood: 0.01, LossBad: 0.7}
		return c, c
	}
	profiles := []struct {
		name        string
		links       func() (simnet.Config, simnet.Config)
		maxResidual float64
	}{
		{"random 5%", func() (simnet.Config, simnet.Config) { return random(0.05) }, 0.0005},
		{"random 10%", func() (simnet.Config, simnet.Config) { return random(0.10) }, 0.002},
		{"random 20%", func() (simnet.Config, simnet.Config) { return random(0.20) }, 0.008},
		{"burst (Gilbert-Elliott, ~6%)", burst, 0.005},
	}
	for i, p := range profiles {
		t.Run(p.name, func(t *testing.T) {
			fwd, rev := p.links()
			o := stream(t, uint64(1000+i), fwd, rev)
			t.Logf("%s: raw loss %.2f%% | recovered by FEC %.2f%%, by NACK %.2f%% | late %.2f%%, lost %.2f%% | residual %.3f%% (bound %.2f%%)",
				p.name, 100*o.rawLoss, 100*o.fec, 100*o.nack, 100*o.late, 100*o.lost, 100*o.residual(), 100*p.maxResidual)
			t.Logf("%s: parity %.1f%% and retransmissions %.1f%% of source packets; %.2f%% played from a repair that overtook the original; FEC shapes used (source packets): %v",
				p.name, 100*o.parityOverhead, 100*o.resent, 100*o.early, o.params)
			if o.residual() > p.maxResidual {
				t.Errorf("residual loss %.3f%% over the %.2f%% bound", 100*o.residual(), 100*p.maxResidual)
			}
			if o.fec == 0 || o.nack == 0 {
				t.Errorf("FEC recovered %.2f%%, NACK %.2f%%: both should contribute", 100*o.fec, 100*o.nack)
			}
		})
	}
}
