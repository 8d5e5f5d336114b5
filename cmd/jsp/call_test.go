package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/media/ogg"
	"github.com/jetstreamproto/jsp/security/token"
	"github.com/jetstreamproto/jsp/services/voice/voiceproto"
)

// writeOpusFile writes n 20 ms Opus packets (TOC 0xF8: CELT full band,
// 20 ms, mono, one frame) with distinct payloads.
func writeOpusFile(t *testing.T, path string, n int) {
	t.Helper()
	var b bytes.Buffer
	w, err := ogg.NewOpusWriter(&b, ogg.OpusWriterConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := w.WritePacket(append([]byte{0xF8}, bytes.Repeat([]byte{byte(i)}, 40)...)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestCallTwoTerminals runs the single-process server and two `jsp call`s:
// bob records, alice publishes an Ogg/Opus file; bob's recording has
// alice's packets.
func TestCallTwoTerminals(t *testing.T) {
	node := startTokenNode(t, "call-test")
	ctx, addr, pin, key := node.ctx, node.addr, node.pin, node.key
	dir := t.TempDir()
	flags := func(user string) *callFlags {
		tok, err := token.Sign(key, token.Claims{Audience: "call-test", Subject: user, NotBefore: time.Now().Add(-time.Minute), Expiry: time.Now().Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		tokFile := filepath.Join(dir, user+".tok")
		if err := os.WriteFile(tokFile, []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return &callFlags{dialFlags: dialFlags{pins: []string{pin}, timeout: 10 * time.Second, logLevel: "error"},
			token: "@" + tokFile, room: "standup", linger: time.Second}
	}
	rec := filepath.Join(dir, "rec")
	bf := flags("bob")
	bf.record = rec
	bctx, bcancel := context.WithCancel(ctx)
	defer bcancel()
	bobOut := &syncBuffer{}
	bobDone := make(chan error, 1)
	go func() { bobDone <- runCall(bctx, bf, "jsp+tcp://"+addr, bobOut, io.Discard) }()
	waitOutput(t, bobOut, "joined standup")

	in := filepath.Join(dir, "hello.opus")
	const packets = 50
	writeOpusFile(t, in, packets)
	af := flags("alice")
	af.oggIn = in
	aliceOut := &syncBuffer{}
	if err := runCall(ctx, af, "jsp+tcp://"+addr, aliceOut, io.Discard); err != nil {
		t.Fatalf("alice: %v\n%s", err, aliceOut.String())
	}
	waitOutput(t, aliceOut, "sent 50 Opus packets")
	waitOutput(t, bobOut, "participant.left: alice")
	bcancel()
	if err := <-bobDone; err != nil {
		t.Fatalf("bob: %v", err)
	}
	got := waitOutput(t, bobOut, "recorded ")
	m := regexp.MustCompile(`recorded (\S+): (\d+) frames to (\S+)`).FindStringSubmatch(got)
	if m == nil {
		t.Fatalf("no recording line in\n%s", got)
	}
	fr, err := os.Open(m[3])
	if err != nil {
		t.Fatal(err)
	}
	defer fr.Close()
	r, err := ogg.NewOpusReader(fr, ogg.OpusReaderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		p, err := r.ReadPacket()
		if err != nil {
			break
		}
		if p.Data[0] != 0xF8 || len(p.Data) != 41 {
			t.Fatalf("packet %d: % x", n, p.Data[:2])
		}
		n++
	}
	if n < packets-5 {
		t.Fatalf("bob recorded %d of %d packets\n%s", n, packets, bobOut.String())
	}
	if recordName(voiceproto.Track{ID: "s/cam", Codec: "vp8"}) != "s-cam.ivf" {
		t.Errorf("record name")
	}
	node.stop(t)
}

// TestServerVoiceLimits: --voice-max-participants reaches the rooms
// service: with 2, a third participant is refused with ROOM_FULL while the
// first two stay in the room.
func TestServerVoiceLimits(t *testing.T) {
	node := startTokenNodeWith(t, "call-limit", func(f *serverFlags) {
		f.node.voice = voiceFlags{maxRooms: 10, maxParticipants: 2, maxTracks: 4}
	})
	dir := t.TempDir()
	flags := func(user string) *callFlags {
		tok, err := token.Sign(node.key, token.Claims{Audience: "call-limit", Subject: user, NotBefore: time.Now().Add(-time.Minute), Expiry: time.Now().Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		tokFile := filepath.Join(dir, user+".tok")
		if err := os.WriteFile(tokFile, []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return &callFlags{dialFlags: dialFlags{pins: []string{node.pin}, timeout: 10 * time.Second, logLevel: "error"},
			token: "@" + tokFile, room: "small", linger: time.Second}
	}
	ctx, cancel := context.WithCancel(node.ctx)
	defer cancel()
	var done []chan error
	for _, user := range []string{"bob", "carol"} {
		out := &syncBuffer{}
		ch := make(chan error, 1)
		done = append(done, ch)
		go func() { ch <- runCall(ctx, flags(user), "jsp+tcp://"+node.addr, out, io.Discard) }()
		waitOutput(t, out, "joined small")
	}
	err := runCall(node.ctx, flags("dave"), "jsp+tcp://"+node.addr, io.Discard, io.Discard)
	if jsperr.CodeOf(err) != jsperr.RoomFull {
		t.Fatalf("third participant: %v, want ROOM_FULL", err)
	}
	cancel()
	for _, ch := range done {
		if err := <-ch; err != nil {
			t.Fatalf("participant: %v", err)
		}
	}
	node.stop(t)
}
