package gateway

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/media"
	"github.com/jetstreamproto/jsp/reliability/fec"
	"github.com/jetstreamproto/jsp/reliability/mediapkt"
	"github.com/jetstreamproto/jsp/reliability/nack"
)

func TestMediaCapabilities(t *testing.T) {
	in := []string{"zstd"}
	out := mediaCapabilities(in)
	if !slices.Equal(out, []string{"zstd", media.CapFEC}) || len(in) != 1 {
		t.Fatalf("got %v (input %v)", out, in)
	}
	if again := mediaCapabilities(out); len(again) != 2 {
		t.Fatalf("added twice: %v", again)
	}
}

// TestUpstreamFEC: a publisher's flow with FEC rebuilds a lost packet
// from parity (marking it received, so it is not NACKed) and reports the
// loss of originals.
func TestUpstreamFEC(t *testing.T) {
	nr, err := nack.NewReceiver(nack.ReceiverConfig{})
	if err != nil {
		t.Fatal(err)
	}
	up, err := newUpFEC()
	if err != nil {
		t.Fatal(err)
	}
	pf := &pubFlow{nack: nr, up: up}
	enc, err := fec.NewEncoder(fec.EncoderConfig{Params: fec.Params{K: 4, M: 1}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(100, 0)
	var pkts [][]byte
	var parity []fec.Parity
	for i := range 8 {
		h := mediapkt.Header{Flags: mediapkt.FlagEndOfFrame, Seq: mediapkt.Seq(i), Timestamp: uint32(960 * i)}
		b, _ := mediapkt.AppendPacket(nil, &h, []byte{byte(i), 7, 7})
		pkts = append(pkts, b)
		par, err := enc.Add(protocol.MediaSeq(i), b)
		if err != nil {
			t.Fatal(err)
		}
		parity = append(parity, par...)
	}
	feed := func(b []byte) [][]byte {
		h, _, err := mediapkt.ParseHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		return pf.onPacketLocked(&h, b, now)
	}
	// Packets 0-3 and their parity, then 4, 5, 7 and the parity of 4-7:
	// packet 6 is rebuilt.
	for _, i := range []int{0, 1, 2, 3} {
		feed(pkts[i])
	}
	var rebuilt [][]byte
	for _, i := range []int{4, 5, 7} {
		rebuilt = append(rebuilt, feed(pkts[i])...)
	}
	for _, p := range parity {
		h := mediapkt.Header{Flags: mediapkt.FlagFEC, Seq: mediapkt.Seq(p.Group.Base / 4),
			FEC: mediapkt.FECInfo{Base: mediapkt.SeqOf(p.Group.Base), K: uint8(p.Group.K), M: uint8(p.Group.M), Index: uint8(p.Index)}}
		b, _ := mediapkt.AppendPacket(nil, &h, p.Data)
		rebuilt = append(rebuilt, feed(b)...)
	}
	if len(rebuilt) != 1 || !bytes.Equal(rebuilt[0], pkts[6]) {
		t.Fatalf("rebuilt %x", rebuilt)
	}
	if nr.Pending() != 0 || up.recovered != 1 {
		t.Fatalf("pending %d, recovered %d", nr.Pending(), up.recovered)
	}
	// Reports: the first call sets the baseline; one interval later, 8
	// numbers are too few; after 12 more with 2 lost, a report.
	if pf.reportLocked(now) != nil {
		t.Fatal("report before the baseline")
	}
	now = now.Add(media.DefaultReportInterval)
	if pf.reportLocked(now) != nil {
		t.Fatal("report without new packets")
	}
	for i := 8; i < 20; i++ {
		if i == 10 || i == 15 {
			continue
		}
		h := mediapkt.Header{Flags: mediapkt.FlagEndOfFrame, Seq: mediapkt.Seq(i)}
		b, _ := mediapkt.AppendPacket(nil, &h, []byte{1})
		feed(b)
	}
	now = now.Add(media.DefaultReportInterval)
	b := pf.reportLocked(now)
	if b == nil {
		t.Fatal("no report")
	}
	r, err := media.ParseReport(b)
	if err != nil || r.Total != 12 || r.Lost != 2 {
		t.Fatalf("report %+v %v", r, err)
	}
	// Without FEC negotiated: no decoder, no reports.
	plain := &pubFlow{nack: nr}
	h := mediapkt.Header{Flags: mediapkt.FlagEndOfFrame, Seq: 20}
	pb, _ := mediapkt.AppendPacket(nil, &h, []byte{1})
	if out := plain.onPacketLocked(&h, pb, now); out != nil || plain.reportLocked(now.Add(time.Second)) != nil {
		t.Fatal("flow without FEC rebuilt or reported")
	}
}
