package sfu

import (
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/reliability/mediapkt"
)

// TestDownTrackContinuation: a subscriber moved to a new Track of the
// same track id (its publisher bound again) continues in its own spaces:
// the next sequence number and the timestamp advanced by the time since.
func TestDownTrackContinuation(t *testing.T) {
	f, clk := newForwarder(t, Config{})
	send := func(tr *Track, seq mediapkt.Seq, ts uint32) {
		t.Helper()
		if err := tr.WritePacket(0, packet(t, mediapkt.Header{Flags: mediapkt.FlagEndOfFrame, Seq: seq, Timestamp: ts}, 1)); err != nil {
			t.Fatal(err)
		}
	}
	tr, err := f.Publish(TrackConfig{ID: "a", Kind: KindAudio})
	if err != nil {
		t.Fatal(err)
	}
	d1, err := f.Subscribe("a", SubscriberConfig{InitialSeq: 65534, InitialTimestamp: 100})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, ok := d1.Continuation(); ok {
		t.Fatal("continuation before any packet")
	}
	for i := range 3 {
		send(tr, mediapkt.Seq(500+i), uint32(960*i))
		clk.Add(20 * time.Millisecond)
	}
	got := drain(d1)
	last := parse(t, got[len(got)-1])
	if last.Seq != 0 || last.Timestamp != 100+2*960 {
		t.Fatalf("last packet %+v", last)
	}
	clk.Add(30 * time.Millisecond) // 50 ms since the last packet
	seq, ts, ok := d1.Continuation()
	if !ok || seq != 1 || ts != last.Timestamp+2400 {
		t.Fatalf("continuation %d, %d, %v", seq, ts, ok)
	}
	if err := f.Unpublish("a"); err != nil {
		t.Fatal(err)
	}
	tr2, err := f.Publish(TrackConfig{ID: "a", Kind: KindAudio})
	if err != nil {
		t.Fatal(err)
	}
	d2, err := f.Subscribe("a", SubscriberConfig{InitialSeq: seq, InitialTimestamp: ts})
	if err != nil {
		t.Fatal(err)
	}
	send(tr2, 9000, 77)
	if h := parse(t, drain(d2)[0]); h.Seq != 1 || h.Timestamp != ts {
		t.Fatalf("moved subscriber's first packet %+v, want seq 1 ts %d", h, ts)
	}
}
