package session

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/wire"
)

// TestSendShared: one SharedFrame queued on several sessions reaches each
// of them intact, compressed for a peer that offered zstd and plain for
// one that did not, and the frame's bytes are not changed by the sending.
func TestSendShared(t *testing.T) {
	tests := []struct {
		name       string
		body       []byte
		noZstd     bool
		compressed bool
	}{
		{"small", []byte("hello"), false, false},
		{"large text zstd", []byte(strings.Repeat("fan-out to every subscriber. ", 100)), false, true},
		{"large text plain peer", []byte(strings.Repeat("fan-out to every subscriber. ", 100)), true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := &wire.Envelope{ID: []byte("e1"), Kind: wire.KindEvent, Route: wire.Route{Kind: wire.RouteChannel, Name: "room"},
				Class: protocol.ClassChat, Seq: 7, Body: tt.body}
			f := NewSharedEnvelope(wire.FrameEvent, env, time.UnixMilli(1000))
			before := bytes.Clone(f.frame)
			const sessions = 3
			for i := range sessions {
				cli, srv := establish(t, Config{DisableCompression: tt.noZstd}, Config{}, ClientInfo{})
				if err := srv.SendShared(f); err != nil {
					t.Fatalf("session %d: SendShared: %v", i, err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				in, err := cli.Recv(ctx)
				cancel()
				if err != nil {
					t.Fatalf("session %d: Recv: %v", i, err)
				}
				if in.Type != wire.FrameEvent || in.Envelope.Seq != 7 || !bytes.Equal(in.Envelope.Body, tt.body) {
					t.Fatalf("session %d: got %s seq %d body %d bytes", i, in.Type, in.Envelope.Seq, len(in.Envelope.Body))
				}
				if in.Envelope.Timestamp != 1000 {
					t.Fatalf("session %d: timestamp %d, want 1000", i, in.Envelope.Timestamp)
				}
				if got := in.Flags.Has(wire.FlagCompressed); got != tt.compressed {
					t.Fatalf("session %d: compressed = %v, want %v", i, got, tt.compressed)
				}
			}
			if !bytes.Equal(f.frame, before) {
				t.Fatal("sending changed the shared frame")
			}
		})
	}
}

// TestSendSharedLimits: the receiving session's size limit applies, and a
// full chat queue reports QUEUE_FULL instead of blocking.
func TestSendSharedLimits(t *testing.T) {
	_, srv := establish(t, Config{}, Config{MaxMessageSize: 16}, ClientInfo{})
	big := NewSharedEnvelope(wire.FrameEvent, &wire.Envelope{Class: protocol.ClassChat, Body: make([]byte, 17)}, time.Now())
	if err := srv.SendShared(big); jsperr.CodeOf(err) != jsperr.MessageTooLarge {
		t.Fatalf("oversize body: %v, want MESSAGE_TOO_LARGE", err)
	}

	// The client never calls Recv, so its receive queue and then the
	// server's send queue fill.
	_, srv = establish(t, Config{}, Config{SendQueueLength: 4}, ClientInfo{})
	// A well-formed EVENT: the client decodes what it reads, and an
	// envelope without kind or route would close the session before the
	// queue fills.
	f := NewSharedEnvelope(wire.FrameEvent, &wire.Envelope{ID: []byte("q"), Kind: wire.KindEvent,
		Route: wire.Route{Kind: wire.RouteChannel, Name: "room"}, Class: protocol.ClassChat, Seq: 1, Body: make([]byte, 4096)}, time.Now())
	var err error
	for range 10000 {
		if err = srv.SendShared(f); err != nil {
			break
		}
	}
	if jsperr.CodeOf(err) != jsperr.QueueFull {
		t.Fatalf("filling the queue: %v, want QUEUE_FULL", err)
	}
}

// TestJoinShared: a joined frame carries its parts back to back and
// arrives as separate messages, each compressed as it would be alone; parts
// of different classes are not joined.
func TestJoinShared(t *testing.T) {
	big := []byte(strings.Repeat("a run of events for every subscriber. ", 40))
	mk := func(seq uint64, body []byte, class protocol.Class) *SharedFrame {
		return NewSharedEnvelope(wire.FrameEvent, &wire.Envelope{ID: []byte{byte(seq)}, Kind: wire.KindEvent,
			Route: wire.Route{Kind: wire.RouteChannel, Name: "room"}, Class: class, Seq: seq, Body: body}, time.UnixMilli(1))
	}
	if JoinShared() != nil {
		t.Fatal("joined nothing")
	}
	if JoinShared(mk(1, []byte("x"), protocol.ClassChat), mk(2, []byte("y"), protocol.ClassBulk)) != nil {
		t.Fatal("joined frames of different classes")
	}
	for _, noZstd := range []bool{false, true} {
		parts := []*SharedFrame{mk(1, []byte("small"), protocol.ClassChat), mk(2, big, protocol.ClassChat), mk(3, []byte("tail"), protocol.ClassChat)}
		run := JoinShared(parts...)
		if run == nil || run.Len() != parts[0].Len()+parts[1].Len()+parts[2].Len() {
			t.Fatal("joined frame has the wrong size")
		}
		cli, srv := establish(t, Config{DisableCompression: noZstd}, Config{}, ClientInfo{})
		if err := srv.SendShared(run); err != nil {
			t.Fatal(err)
		}
		for i, want := range [][]byte{[]byte("small"), big, []byte("tail")} {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			in, err := cli.Recv(ctx)
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			if in.Envelope.Seq != uint64(i+1) || !bytes.Equal(in.Envelope.Body, want) {
				t.Fatalf("message %d: seq %d, %d bytes", i, in.Envelope.Seq, len(in.Envelope.Body))
			}
			if compressed := in.Flags.Has(wire.FlagCompressed); compressed != (i == 1 && !noZstd) {
				t.Fatalf("message %d (zstd off %v): compressed = %v", i, noZstd, compressed)
			}
		}
	}
}
