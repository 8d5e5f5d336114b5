package pubsub

import (
	"sync"
	"testing"

	"github.com/jetstreamproto/jsp/jsperr"
)

// TestSinkSubscriber: a sink subscriber receives each delivery in order on
// the publishing goroutine, and refusing one drops it with SLOW_CONSUMER
// without affecting the other subscribers.
func TestSinkSubscriber(t *testing.T) {
	tests := []struct {
		name    string
		refuse  int // refuse the delivery with this seq; 0 never
		want    []uint64
		dropped bool
	}{
		{"takes all", 0, []uint64{1, 2, 3}, false},
		{"refuses second", 2, []uint64{1, 2}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHub(t, Config{})
			var (
				mu  sync.Mutex
				got []uint64
			)
			s := h.NewSinkSubscriber("sink", func(d Delivery[string]) bool {
				mu.Lock()
				defer mu.Unlock()
				got = append(got, d.Seq)
				return int(d.Seq) != tt.refuse
			})
			defer s.Close()
			q := h.NewSubscriber("queue")
			defer q.Close()
			for _, sub := range []*Subscriber[string]{s, q} {
				if err := sub.Subscribe("c"); err != nil {
					t.Fatal(err)
				}
			}
			for i := range 3 {
				if _, err := h.Publish("c", "m"); err != nil {
					t.Fatalf("publish %d: %v", i, err)
				}
			}
			mu.Lock()
			if len(got) != len(tt.want) {
				t.Fatalf("sink got %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("sink got %v, want %v", got, tt.want)
				}
			}
			mu.Unlock()
			if q.Len() != 3 {
				t.Fatalf("queue subscriber has %d deliveries, want 3", q.Len())
			}
			if s.Len() != 0 {
				t.Fatalf("sink subscriber queued %d deliveries", s.Len())
			}
			err := s.Err()
			if tt.dropped != (jsperr.CodeOf(err) == jsperr.SlowConsumer) {
				t.Fatalf("sink Err = %v, dropped want %v", err, tt.dropped)
			}
			if st := h.Stats(); tt.dropped != (st.Dropped == 1) {
				t.Fatalf("Stats.Dropped = %d", st.Dropped)
			}
		})
	}
}
