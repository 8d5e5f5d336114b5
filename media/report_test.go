package media

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/reliability/fec"
	"github.com/jetstreamproto/jsp/reliability/mediapkt"
	"github.com/jetstreamproto/jsp/session"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/wire"
)

var reportSamples = []Report{
	{},
	{Total: 23, Lost: 23},
	{Total: 24, Lost: 1, Jitter: time.Microsecond},
	{Total: 1000, Lost: 64, Jitter: 12 * time.Millisecond},
	{Total: MaxReportTotal, Lost: 0, Jitter: MaxReportJitter},
}

// TestReportRoundTrip checks Len, the round trip, and that no proper
// prefix of an encoding parses.
func TestReportRoundTrip(t *testing.T) {
	for _, r := range reportSamples {
		b, err := r.Append([]byte{0xaa})
		if err != nil {
			t.Fatalf("%+v: %v", r, err)
		}
		b = b[1:]
		if len(b) != r.Len() {
			t.Fatalf("%+v: %d bytes, Len %d", r, len(b), r.Len())
		}
		if !IsControl(b) {
			t.Fatalf("%+v: encoding %x is not a control packet", r, b)
		}
		got, err := ParseReport(b)
		if err != nil || got != r {
			t.Fatalf("%+v: parsed %+v, %v", r, got, err)
		}
		for k := range len(b) {
			if _, err := ParseReport(b[:k]); err == nil {
				t.Fatalf("%+v: prefix of %d bytes parsed", r, k)
			}
		}
	}
}

func TestReportValidate(t *testing.T) {
	tests := []struct {
		name string
		r    Report
	}{
		{"lost over total", Report{Total: 1, Lost: 2}},
		{"total over cap", Report{Total: MaxReportTotal + 1}},
		{"negative jitter", Report{Total: 1, Jitter: -1}},
		{"jitter over cap", Report{Total: 1, Jitter: MaxReportJitter + time.Microsecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.r.Append(nil); !errors.Is(err, ErrBadReport) {
				t.Fatalf("Append(%+v) = %v, want ErrBadReport", tt.r, err)
			}
		})
	}
}

// TestMediaPacketsAreNotControl checks the marker's premise: no valid
// media header starts with 0xFF.
func TestMediaPacketsAreNotControl(t *testing.T) {
	for f := 0; f < 256; f++ {
		h := mediapkt.Header{Flags: mediapkt.Flags(f), FEC: mediapkt.FECInfo{K: 1, M: 1}}
		b, err := h.Append(nil)
		if err == nil && IsControl(b) {
			t.Fatalf("flags %#x encode a media header that reads as a control packet", f)
		}
	}
}

// FuzzParseReport checks that whatever parses re-encodes to something that
// parses to the same report, and that parsing never panics.
func FuzzParseReport(f *testing.F) {
	for _, r := range reportSamples {
		b, _ := r.Append(nil)
		f.Add(b)
	}
	f.Add([]byte("\xff\x01\xa3\x01\x0a\x02\x01\x18\x63\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseReport(b)
		if err != nil {
			if jsperr.CodeOf(err) == jsperr.NoError {
				t.Fatalf("error without a registry code: %v", err)
			}
			return
		}
		again, err := r.Append(nil)
		if err != nil {
			t.Fatalf("parsed %+v does not encode: %v", r, err)
		}
		if r2, err := ParseReport(again); err != nil || r2 != r {
			t.Fatalf("re-encoded %x parses to %+v, %v; want %+v", again, r2, err, r)
		}
	})
}

// stubSession is a Session with no peer, for driving a Receiver directly:
// what it would send is counted and dropped.
type stubSession struct{ fec bool }

func (stubSession) SendFlow(wire.FlowID, []byte, protocol.Class) error { return nil }
func (stubSession) ReceiveFlow(ctx context.Context) (session.FlowDatagram, error) {
	<-ctx.Done()
	return session.FlowDatagram{}, ctx.Err()
}
func (stubSession) SendNack(*wire.Nack) error { return nil }
func (stubSession) ReceiveNack(ctx context.Context) (*wire.Nack, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}
func (stubSession) RTT() (time.Duration, time.Duration)         { return 0, 0 }
func (stubSession) Ping(context.Context) (time.Duration, error) { return 0, nil }
func (s stubSession) HasCapability(c string) bool               { return s.fec && c == CapFEC }
func (stubSession) Conn() transport.Conn                        { return nil }

// FuzzReceiver feeds a Receiver arbitrary datagrams (length-prefixed in the
// input) on a virtual clock and checks it never panics and its counters
// stay consistent. Seeds are real packets: a stream with parity and a
// retransmission.
func FuzzReceiver(f *testing.F) {
	var seed []byte
	enc, _ := fec.NewEncoder(fec.EncoderConfig{Params: fec.Params{K: 2, M: 1}})
	for i := 0; i < 4; i++ {
		h := mediapkt.Header{Flags: mediapkt.FlagEndOfFrame, Seq: mediapkt.Seq(65534 + i), Timestamp: uint32(i * 3000)}
		pkt, _ := mediapkt.AppendPacket(nil, &h, []byte{byte(i), 1, 2, 3})
		seed = append(seed, byte(len(pkt)))
		seed = append(seed, pkt...)
		par, _ := enc.Add(protocol.MediaSeq(65534+i), pkt)
		for _, p := range par {
			ph := mediapkt.Header{Flags: mediapkt.FlagFEC, Timestamp: h.Timestamp,
				FEC: mediapkt.FECInfo{Base: mediapkt.SeqOf(p.Group.Base), K: uint8(p.Group.K), M: uint8(p.Group.M), Index: uint8(p.Index)}}
			pp, _ := mediapkt.AppendPacket(nil, &ph, p.Data)
			seed = append(seed, byte(len(pp)))
			seed = append(seed, pp...)
		}
	}
	f.Add(seed)
	f.Fuzz(func(t *testing.T, in []byte) {
		m := &Mux{sess: stubSession{fec: true}, cfg: MuxConfig{Now: time.Now}}
		m.cfg.setDefaults()
		r, err := newReceiver(m, testFlow, ReceiverConfig{MinDelay: 10 * time.Millisecond, SinglePacketFrames: len(in)%2 == 0, FrameQueue: 1 << 12})
		if err != nil {
			t.Fatal(err)
		}
		now := time.Unix(1_700_000_000, 0)
		for len(in) > 0 {
			n := min(int(in[0]), len(in)-1)
			r.onDatagram(in[1:1+n], now)
			in = in[1+n:]
			now = now.Add(3 * time.Millisecond)
			r.tick(now)
		}
		r.tick(now.Add(time.Hour))
		st := r.Stats()
		if st.Lost > 1<<40 || st.Late > 1<<40 {
			t.Fatalf("counter underflow: %+v", st)
		}
	})
}

// TestReceiverAccounting drives a Receiver directly on a virtual clock with
// random loss, reordering and duplicates, and checks that every source
// packet ends in exactly one outcome.
func TestReceiverAccounting(t *testing.T) {
	m := &Mux{sess: stubSession{}, cfg: MuxConfig{Now: time.Now}}
	m.cfg.setDefaults()
	r, err := newReceiver(m, testFlow, ReceiverConfig{MinDelay: 20 * time.Millisecond, SinglePacketFrames: true, FrameQueue: 4096})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	t0 := time.Unix(1_700_000_000, 0)
	const n = 2000
	type arrival struct {
		at  time.Time
		pkt []byte
	}
	var arrivals []arrival
	lostOrig := 0
	for i := 0; i < n; i++ {
		h := mediapkt.Header{Flags: mediapkt.FlagEndOfFrame, Seq: mediapkt.Seq(i), Timestamp: uint32(i * 90)} // 1 ms apart
		pkt, _ := mediapkt.AppendPacket(nil, &h, []byte{byte(i)})
		sent := t0.Add(time.Duration(i) * time.Millisecond)
		// The first and last packets always arrive, so the buffer knows
		// the whole range.
		if i > 0 && i < n-5 && rng.Float64() < 0.1 {
			lostOrig++
			if rng.Float64() < 0.5 {
				// A retransmission, sometimes after the playout time.
				rtx := append([]byte(nil), pkt...)
				mediapkt.SetRetransmission(rtx, true)
				arrivals = append(arrivals, arrival{sent.Add(time.Duration(5+rng.IntN(40)) * time.Millisecond), rtx})
			}
			continue
		}
		arrivals = append(arrivals, arrival{sent.Add(time.Duration(rng.IntN(8)) * time.Millisecond), pkt})
		if rng.Float64() < 0.02 {
			arrivals = append(arrivals, arrival{sent.Add(time.Duration(rng.IntN(60)) * time.Millisecond), pkt})
		}
	}
	// Deliver in arrival order on a 1 ms virtual clock.
	for now := t0; now.Before(t0.Add(n*time.Millisecond + time.Second)); now = now.Add(time.Millisecond) {
		for i := 0; i < len(arrivals); {
			if !arrivals[i].at.After(now) {
				r.onDatagram(arrivals[i].pkt, now)
				arrivals = append(arrivals[:i], arrivals[i+1:]...)
				continue
			}
			i++
		}
		r.tick(now)
	}
	st := r.Stats()
	// One packet per frame: every number is played, late or lost.
	if st.Frames+st.Late+st.Lost != n {
		t.Fatalf("played %d + late %d + lost %d != %d: %+v", st.Frames, st.Late, st.Lost, n, st)
	}
	// What played is an original or a retransmission.
	if st.RecoveredNACK > st.Frames || st.Frames-st.RecoveredNACK > st.Received || st.Received != uint64(n-lostOrig) {
		t.Fatalf("received %d (want %d), recovered by NACK %d, played %d", st.Received, n-lostOrig, st.RecoveredNACK, st.Frames)
	}
	if st.RecoveredNACK == 0 || st.Late == 0 || st.Lost == 0 || st.Duplicates == 0 {
		t.Fatalf("want every outcome exercised: %+v", st)
	}
}
