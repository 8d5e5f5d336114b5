package session

import (
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/qos"
)

// TestSchedPoolReuse checks that a scheduler given back by one sender and
// taken by another has the taker's queue limits and reports expired media
// frames to the taker only.
func TestSchedPoolReuse(t *testing.T) {
	tests := []struct {
		name           string
		firstLen, next int
	}{
		{"same limits", 64, 64},
		{"other limits", 64, 16},
		{"default limits", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
			first := newSender(newGateStream(), Config{Now: clk.Now, SendQueueLength: tt.firstLen}.withDefaults())
			putSched(first.newSched())
			s := newSender(newGateStream(), Config{Now: clk.Now, SendQueueLength: tt.next}.withDefaults())
			sc := s.newSched()
			for c := range protocol.NumClasses {
				if got := sc.Cap(protocol.Class(c)); got != s.queueLen {
					t.Fatalf("class %d holds %d frames, want %d", c, got, s.queueLen)
				}
			}
			if _, err := sc.Push(qos.Item[[]byte]{Class: protocol.ClassMedia, Size: 1, Deadline: clk.Now(), Value: []byte{1}}); err != nil {
				t.Fatal(err)
			}
			clk.Advance(time.Second)
			if _, ok := sc.Pop(clk.Now()); ok {
				t.Fatal("expired media frame was popped")
			}
			if got := s.mediaDropped.Load(); got != 1 {
				t.Fatalf("taker counted %d expired frames, want 1", got)
			}
			if got := first.mediaDropped.Load(); got != 0 {
				t.Fatalf("giver counted %d expired frames, want 0", got)
			}
		})
	}
}

// TestSchedPoolKeepsQueued checks that a scheduler still holding frames is
// not pooled: its frames and expiry hook stay with its sender.
func TestSchedPoolKeepsQueued(t *testing.T) {
	s := newSender(newGateStream(), Config{}.withDefaults())
	sc := s.newSched()
	if _, err := sc.Push(qos.Item[[]byte]{Class: protocol.ClassChat, Size: 1, Value: []byte{1}}); err != nil {
		t.Fatal(err)
	}
	putSched(sc)
	for range 8 {
		if got, ok := schedPool.Get().(*qos.Scheduler[[]byte]); ok && got == sc {
			t.Fatal("a scheduler holding a frame was pooled")
		}
	}
	if sc.Len() != 1 {
		t.Fatalf("queued frames = %d, want 1", sc.Len())
	}
}
