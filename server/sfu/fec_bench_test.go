package sfu

import (
	"fmt"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/reliability/mediapkt"
)

// BenchmarkVideoFEC100: one video track, 1,000-byte packets, 100
// subscribers, each reporting the given loss (so each runs its own
// encoder at the policy's shape: 0 % none, 5 % 8+3, 15 % 5+4 capped to
// 5+2). It reports the forwarding cost per source packet with per-
// subscriber FEC against none.
func BenchmarkVideoFEC100(b *testing.B) {
	for _, loss := range []uint64{0, 5, 15} {
		b.Run(fmt.Sprintf("loss=%d%%", loss), func(b *testing.B) {
			f, _ := newForwarder(b, Config{MaxSubscribers: 100})
			tr, err := f.Publish(TrackConfig{ID: "v", Kind: KindVideo})
			if err != nil {
				b.Fatal(err)
			}
			var subs []*DownTrack
			for range 100 {
				d, err := tr.subscribe(SubscriberConfig{FEC: true})
				if err != nil {
					b.Fatal(err)
				}
				d.OnReport(loss, 100)
				subs = append(subs, d)
			}
			payload := make([]byte, 1000-mediapkt.FixedHeaderLen)
			var pkt []byte
			lat := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for n := range b.N {
				fl := mediapkt.FlagEndOfFrame
				if n == 0 {
					fl |= mediapkt.FlagKeyFrame
				}
				h := mediapkt.Header{Flags: fl, Seq: mediapkt.Seq(n), Timestamp: uint32(3000 * n)}
				pkt, _ = mediapkt.AppendPacket(pkt[:0], &h, payload)
				t0 := time.Now()
				if err := tr.WritePacket(0, pkt); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
				for _, d := range subs {
					for {
						if _, ok := d.TryReceive(); !ok {
							break
						}
					}
				}
			}
			elapsed := time.Since(start)
			b.StopTimer()
			var parity uint64
			for _, d := range subs {
				st, _ := d.FECStats()
				parity += st.Parity
			}
			b.ReportMetric(float64(parity)/float64(max(b.N, 1)*100), "parity/src")
			benchReport(b, b.N*100, lat, elapsed)
		})
	}
}
