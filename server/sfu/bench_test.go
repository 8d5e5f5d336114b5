package sfu

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/media/bwe"
	"github.com/jetstreamproto/jsp/media/simulcast"
	"github.com/jetstreamproto/jsp/reliability/mediapkt"
)

// benchReport adds forwarded packets per second and the p50/p99 time of
// one WritePacket (the latency of its last subscriber's copy).
func benchReport(b *testing.B, forwarded int, lat []time.Duration, elapsed time.Duration) {
	b.ReportMetric(float64(forwarded)/elapsed.Seconds(), "pkts/s")
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(max(forwarded, 1)), "ns/pkt")
	if len(lat) > 0 {
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	}
}

// BenchmarkAudio10x100: 10 audio publishers, each track with 100
// subscribers. One op publishes one 80-byte Opus packet on each track
// (1,000 forwarded packets) and drains every subscriber's queue, as the
// subscribers' writers would.
func BenchmarkAudio10x100(b *testing.B) {
	f, _ := newForwarder(b, Config{MaxSubscribers: 100})
	var tracks []*Track
	var subs []*DownTrack
	for i := range 10 {
		tr, err := f.Publish(TrackConfig{ID: TrackID(fmt.Sprint("a", i)), Kind: KindAudio, Participant: fmt.Sprint("p", i)})
		if err != nil {
			b.Fatal(err)
		}
		tracks = append(tracks, tr)
		for range 100 {
			d, err := tr.subscribe(SubscriberConfig{})
			if err != nil {
				b.Fatal(err)
			}
			subs = append(subs, d)
		}
	}
	pkts := make([][]byte, 10)
	lat := make([]time.Duration, 0, b.N*10)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for n := range b.N {
		for i, tr := range tracks {
			h := mediapkt.Header{Flags: mediapkt.FlagEndOfFrame | mediapkt.FlagAudioLevel, Seq: mediapkt.Seq(n), Timestamp: uint32(960 * n),
				AudioLevel: mediapkt.AudioLevel{Voice: true, Level: uint8(20 + i)}}
			pkts[i], _ = mediapkt.AppendPacket(pkts[i][:0], &h, make([]byte, 80))
			t0 := time.Now()
			if err := tr.WritePacket(0, pkts[i]); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
		}
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
	benchReport(b, b.N*1000, lat, elapsed)
}

// BenchmarkVideo3Layers200: one video publisher with three simulcast
// layers and 200 subscribers, a third on each layer. One op publishes one
// 1,000-byte packet on each layer (200 forwarded packets).
func BenchmarkVideo3Layers200(b *testing.B) {
	f, _ := newForwarder(b, Config{MaxSubscribers: 200})
	layers := []simulcast.Layer{
		{Bitrate: 150 * bwe.Kbps, Width: 320, Height: 180},
		{Bitrate: 500 * bwe.Kbps, Width: 640, Height: 360},
		{Bitrate: 1500 * bwe.Kbps, Width: 1280, Height: 720},
	}
	tr, err := f.Publish(TrackConfig{ID: "v", Kind: KindVideo, Layers: layers})
	if err != nil {
		b.Fatal(err)
	}
	est := []bwe.Bitrate{200 * bwe.Kbps, 700 * bwe.Kbps, 3 * bwe.Mbps}
	var subs []*DownTrack
	for i := range 200 {
		d, err := tr.subscribe(SubscriberConfig{Selector: simulcast.SelectorConfig{UpHold: -1, DownHold: -1}})
		if err != nil {
			b.Fatal(err)
		}
		d.SetEstimate(est[i%3])
		subs = append(subs, d)
	}
	payload := make([]byte, 1000-mediapkt.FixedHeaderLen)
	var pkt []byte
	lat := make([]time.Duration, 0, b.N*3)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for n := range b.N {
		for l := range 3 {
			fl := mediapkt.FlagEndOfFrame
			if n == 0 {
				fl |= mediapkt.FlagKeyFrame
			}
			h := mediapkt.Header{Flags: fl, Seq: mediapkt.Seq(n), Timestamp: uint32(3000 * n)}
			pkt, _ = mediapkt.AppendPacket(pkt[:0], &h, payload)
			t0 := time.Now()
			if err := tr.WritePacket(l, pkt); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
		}
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
	var fwd uint64
	for _, d := range subs {
		fwd += d.Stats().Forwarded
	}
	if b.N > 1 && fwd < uint64(b.N)*200-200 {
		b.Fatalf("forwarded %d, want about %d", fwd, b.N*200)
	}
	benchReport(b, int(fwd), lat, elapsed)
}
