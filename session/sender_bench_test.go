package session

import (
	"context"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/wire"
)

// oneQueuedFrame queues one chat frame the way a fan-out delivery does (no
// write-through) and waits until the run goroutine that wrote it ended.
func oneQueuedFrame(tb testing.TB, s *sender, frame []byte) {
	if err := s.enqueue(protocol.ClassChat, frame, time.Time{}, false); err != nil {
		tb.Fatal(err)
	}
	s.wg.Wait()
}

// BenchmarkSenderQueuedFrame measures a queued frame that is the only one
// to send: the run goroutine starts, writes it alone and ends, as for each
// event of a fan-out channel at a few events per second per session.
func BenchmarkSenderQueuedFrame(b *testing.B) {
	gs := &discardStream{newGateStream()}
	s := newSender(gs, Config{}.withDefaults())
	s.onError = func(err error) { b.Errorf("write: %v", err) }
	ctx, cancel := context.WithCancel(context.Background())
	done := runSender(b, ctx, s)
	frame := frameOf(wire.FrameMessage, protocol.ClassChat, 40)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		oneQueuedFrame(b, s, frame)
	}
	b.StopTimer()
	cancel()
	<-done
}

// discardStream is a gateStream whose writes go nowhere.
type discardStream struct{ *gateStream }

func (d *discardStream) Write(p []byte) (int, error) { return len(p), nil }
