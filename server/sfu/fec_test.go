package sfu

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/reliability/fec"
	"github.com/jetstreamproto/jsp/reliability/mediapkt"
)

// subscriberDecoder plays a subscriber's receiver: it drops the packets
// lost(i) says (i counts source packets), feeds the rest and the parity to
// an FEC decoder as media.Receiver does, and returns the source packets it
// got, by outgoing number, rebuilt ones included.
func subscriberDecoder(t *testing.T, pkts [][]byte, lost func(i int) bool) (got map[protocol.MediaSeq][]byte, rebuilt, parity int) {
	t.Helper()
	dec, err := fec.NewDecoder(fec.DecoderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	got = map[protocol.MediaSeq][]byte{}
	var src, rep mediapkt.Unwrapper
	i := 0
	for _, b := range pkts {
		h, payload, err := mediapkt.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		var rec []fec.Recovered
		if h.Flags.Has(mediapkt.FlagFEC) {
			parity++
			rep.Unwrap(h.Seq)
			hi, _ := src.Highest()
			rec, err = dec.AddParity(fec.Parity{
				Group: fec.Group{Base: mediapkt.Extend(hi, h.FEC.Base), K: int(h.FEC.K), M: int(h.FEC.M)},
				Index: int(h.FEC.Index), Data: payload,
			})
		} else {
			i++
			if lost(i - 1) {
				continue
			}
			seq := src.Unwrap(h.Seq)
			got[seq] = b
			clean := bytes.Clone(b)
			clean[0] &^= byte(mediapkt.FlagRetransmission) // as media.Receiver does
			rec, err = dec.AddSource(seq, clean)
		}
		if err != nil {
			t.Fatalf("decoder: %v", err)
		}
		for _, r := range rec {
			if _, dup := got[r.Seq]; !dup {
				got[r.Seq] = bytes.Clone(r.Packet)
				rebuilt++
			}
		}
	}
	return got, rebuilt, parity
}

// TestSubscriberFEC: a subscriber with FEC that reports 8 % loss gets
// parity in its own sequence space and rebuilds one loss per group; a
// subscriber without FEC, or on a clean path, gets none.
func TestSubscriberFEC(t *testing.T) {
	f, clk := newForwarder(t, Config{})
	tr, err := f.Publish(TrackConfig{ID: "a", Kind: KindAudio})
	if err != nil {
		t.Fatal(err)
	}
	lossy, _ := f.Subscribe("a", SubscriberConfig{ID: "lossy", FEC: true, InitialSeq: 65530, QueuePackets: 1000})
	clean, _ := f.Subscribe("a", SubscriberConfig{ID: "clean", FEC: true, QueuePackets: 1000})
	plain, _ := f.Subscribe("a", SubscriberConfig{ID: "plain", QueuePackets: 1000})
	lossy.OnReport(8, 100)
	clean.OnReport(0, 100)
	plain.OnReport(10, 100) // no FEC: ignored
	st, ok := lossy.FECStats()
	if !ok || st.Params != (fec.Params{K: 8, M: 3}) {
		t.Fatalf("lossy FEC %+v %v", st, ok)
	}
	const n = 80
	for i := range n {
		h := mediapkt.Header{Flags: mediapkt.FlagEndOfFrame, Seq: mediapkt.Seq(100 + i), Timestamp: uint32(960 * i)}
		if i == 17 {
			// A retransmission on the publisher's path is protected as
			// the receiver sees it, R clear.
			h.Flags |= mediapkt.FlagRetransmission
		}
		if err := tr.WritePacket(0, packet(t, h, byte(i), byte(i>>8), 0xAA)); err != nil {
			t.Fatal(err)
		}
		clk.Add(20 * time.Millisecond)
	}
	out := drain(lossy)
	if len(out) != n+n/8*3 {
		t.Fatalf("lossy subscriber got %d packets, want %d sources and %d parity", len(out), n, n/8*3)
	}
	// Lose packet 3 of every group of 8, and packets 0 and 5 of the
	// fourth: all come back.
	lost := func(i int) bool { return i%8 == 3 || i == 24 || i == 29 }
	got, rebuilt, parity := subscriberDecoder(t, out, lost)
	if parity != 30 || rebuilt != 12 || len(got) != n {
		t.Fatalf("parity %d, rebuilt %d, got %d of %d", parity, rebuilt, len(got), n)
	}
	for _, b := range out {
		h := parse(t, b)
		if h.Flags.Has(mediapkt.FlagFEC) {
			continue
		}
		seq := mediapkt.Extend(65530, h.Seq)
		want := bytes.Clone(b)
		want[0] &^= byte(mediapkt.FlagRetransmission)
		if !bytes.Equal(got[seq], want) && !bytes.Equal(got[seq], b) {
			t.Fatalf("packet %d rebuilt wrong: %x vs %x", seq, got[seq], b)
		}
	}
	for name, d := range map[string]*DownTrack{"clean": clean, "plain": plain} {
		for _, b := range drain(d) {
			if parse(t, b).Flags.Has(mediapkt.FlagFEC) {
				t.Fatalf("%s subscriber got parity", name)
			}
		}
	}
	if st, _ := lossy.FECStats(); st.Parity != 30 || st.Protected != n || st.Reports != 1 {
		t.Fatalf("stats %+v", st)
	}
	if _, ok := plain.FECStats(); ok {
		t.Fatal("plain subscriber has FEC")
	}
	var b strings.Builder
	if err := f.WritePrometheus(&b); err != nil || !strings.Contains(b.String(), "jsp_sfu_fec_parity_total 30\n") {
		t.Fatalf("metrics: %v\n%s", err, b.String())
	}
}

// TestSubscriberFECGroupDelay: a group that waits MaxGroupDelay is closed
// with the packets it has, by FlushFEC or by Receive, and sends parity at
// the full shape's rate.
func TestSubscriberFECGroupDelay(t *testing.T) {
	f, clk := newForwarder(t, Config{FEC: FECConfig{MaxGroupDelay: 40 * time.Millisecond}})
	tr, _ := f.Publish(TrackConfig{ID: "a", Kind: KindAudio})
	d, _ := f.Subscribe("a", SubscriberConfig{FEC: true})
	d.OnReport(3, 100) // 10+2
	for i := range 2 {
		_ = tr.WritePacket(0, packet(t, mediapkt.Header{Flags: mediapkt.FlagEndOfFrame, Seq: mediapkt.Seq(i), Timestamp: uint32(960 * i)}, 1))
	}
	if due, open := d.FlushFEC(clk.Now()); !open || due.Sub(clk.Now()) != 40*time.Millisecond {
		t.Fatalf("due %v open %v", due, open)
	}
	if got := drain(d); len(got) != 2 {
		t.Fatalf("before the delay: %d packets", len(got))
	}
	clk.Add(41 * time.Millisecond)
	if _, open := d.FlushFEC(clk.Now()); open {
		t.Fatal("group still open")
	}
	// A 2-packet group under 10+2 sends its share of parity: one.
	got := drain(d)
	if len(got) != 1 {
		t.Fatalf("after the delay: %d parity packets", len(got))
	}
	if st, _ := d.FECStats(); st.ParityTrimmed != 1 {
		t.Fatalf("stats %+v", st)
	}
	for i, b := range got {
		h := parse(t, b)
		if !h.Flags.Has(mediapkt.FlagFEC) || h.FEC.K != 2 || h.FEC.M != 2 || h.FEC.Base != 0 || h.Seq != mediapkt.Seq(i) || h.Timestamp != 960 {
			t.Fatalf("parity %d: %+v", i, h)
		}
	}
	// Receive flushes on its own once the delay has passed.
	_ = tr.WritePacket(0, packet(t, mediapkt.Header{Flags: mediapkt.FlagEndOfFrame, Seq: 2, Timestamp: 1920}, 1))
	if b, err := d.Receive(t.Context()); err != nil || parse(t, b).Flags.Has(mediapkt.FlagFEC) {
		t.Fatalf("first receive: %v", err)
	}
	clk.Add(41 * time.Millisecond)
	b, err := d.Receive(t.Context())
	if err != nil || !parse(t, b).Flags.Has(mediapkt.FlagFEC) || parse(t, b).FEC.K != 1 {
		t.Fatalf("receive after the delay: %v", err)
	}
}

func TestFECConfigValidate(t *testing.T) {
	for _, c := range []FECConfig{
		{MaxOverhead: 1.5},
		{MaxGroupDelay: -1},
		{Policy: fec.PolicyConfig{Alpha: 2}},
	} {
		if _, err := New(Config{FEC: c}); err == nil {
			t.Fatalf("config %+v accepted", c)
		}
	}
}

// TestSubscriberFECOverheadCap: a shape over Config.FEC.MaxOverhead keeps
// its K and gets M = floor(K * cap), at least 1.
func TestSubscriberFECOverheadCap(t *testing.T) {
	for _, tc := range []struct {
		cap  float64
		loss uint64
		want fec.Params
	}{
		{0, 20, fec.Params{K: 5, M: 2}},   // default cap 0.5 on 5+4
		{1, 20, fec.Params{K: 5, M: 4}},   // no cap
		{0.1, 3, fec.Params{K: 10, M: 1}}, // 10+2 capped to 10+1
		{0.1, 30, fec.Params{K: 4, M: 1}}, // at least 1
		{0, 0, fec.Params{}},              // clean path: none
	} {
		f, _ := newForwarder(t, Config{FEC: FECConfig{MaxOverhead: tc.cap}})
		if _, err := f.Publish(TrackConfig{ID: "a", Kind: KindAudio}); err != nil {
			t.Fatal(err)
		}
		d, _ := f.Subscribe("a", SubscriberConfig{FEC: true})
		d.OnReport(tc.loss, 100)
		if st, _ := d.FECStats(); st.Params != tc.want {
			t.Errorf("cap %v loss %d%%: %v, want %v", tc.cap, tc.loss, st.Params, tc.want)
		}
	}
}
