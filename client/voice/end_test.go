package voice_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/client/voice"
	"github.com/jetstreamproto/jsp/media"
)

// TestEndDropsMembers: when the owner ends a room, bob (on the other
// gateway) gets the ended event, then nothing more: not the events of a
// new room under the same name, which he has not joined, and not the
// media alice goes on writing.
func TestEndDropsMembers(t *testing.T) {
	cl := newCluster(t, 2)
	ctx := ctxT(t)
	var evB events
	alice, err := voice.Join(ctx, cl.connect("alice", 0, nil), "retro", voice.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close(ctx)
	bob, err := voice.Join(ctx, cl.connect("bob", 1, nil), "retro", voice.Options{OnEvent: evB.add})
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close(ctx)
	mic, err := alice.PublishTrack(ctx, voice.TrackOptions{Name: "mic", Kind: voice.KindAudio, Codec: "opus"})
	if err != nil {
		t.Fatal(err)
	}
	var frames atomic.Int64
	if _, err := bob.Subscribe(ctx, mic.ID(), func(media.ReceivedFrame) { frames.Add(1) }); err != nil {
		t.Fatal(err)
	}
	ts := uint32(0)
	write := func(n int) {
		for range n {
			if err := mic.WriteFrame(0, media.Frame{Timestamp: ts, Payload: []byte{1, 2, 3}}); err != nil {
				t.Fatal(err)
			}
			ts += 960
			time.Sleep(20 * time.Millisecond)
		}
	}
	write(10)
	waitFor(t, "audio at bob", func() bool { return frames.Load() > 0 })

	if err := alice.End(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "bob sees the end", func() bool { return evB.has("room.ended", nil) })
	// The drop follows the ended event on the same channel; its media
	// binding ends with it.
	time.Sleep(300 * time.Millisecond)
	before := frames.Load()
	write(15)
	// A new room under the same name: carol's join is an event on the
	// channel bob was subscribed to.
	carol, err := voice.Join(ctx, cl.connect("carol", 1, nil), "retro", voice.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer carol.Close(ctx)
	time.Sleep(500 * time.Millisecond)
	if got := frames.Load(); got != before {
		t.Fatalf("bob got %d frames after the end", got-before)
	}
	if evB.has("participant.joined", func(e voice.Event) bool { return e.Participant != nil && e.Participant.User == "carol" }) {
		t.Fatal("bob got an event of the next room")
	}
}
