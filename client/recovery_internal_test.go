package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/wire"
)

// trackerHarness is a Client reduced to what a seqTracker uses, with one
// subscription that records what it is handed.
type trackerHarness struct {
	c      *Client
	t      *seqTracker
	cancel context.CancelFunc
	gaps   [][2]uint64

	mu  sync.Mutex
	got []uint64
}

func newTrackerHarness(t testing.TB, ro RecoveryOptions, fetch func(context.Context, HistoryQuery) (HistoryPage, error)) *trackerHarness {
	t.Helper()
	h := &trackerHarness{}
	ro.AckEvery, ro.AckDelay = 1<<30, time.Hour // no ACK is sent: there is no session
	ro.OnGap = func(_ string, from, to uint64) { h.gaps = append(h.gaps, [2]uint64{from, to}) }
	ro.setDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	c := &Client{
		opts: Options{Recovery: ro, HandlerQueueLength: 4096, HandlerPatience: time.Second},
		log:  slog.New(slog.DiscardHandler), dispatchCtx: ctx,
		subs: map[string][]*Subscription{}, runners: map[stopper]struct{}{},
		order: map[string]*seqTracker{},
	}
	c.mu.Lock()
	r, err := startRunnerLocked(c, func(e Event) {
		h.mu.Lock()
		h.got = append(h.got, e.Seq)
		h.mu.Unlock()
	})
	c.subs["ch"] = []*Subscription{{c: c, channel: "ch", r: r}}
	c.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	h.c, h.cancel = c, cancel
	h.t = newSeqTracker(c, "ch", 0, false)
	if fetch != nil {
		h.t.fetch = fetch
	}
	t.Cleanup(func() {
		cancel()
		c.mu.Lock()
		if c.ackTimer != nil {
			c.ackTimer.Stop()
		}
		r.stop()
		c.mu.Unlock()
		c.wg.Wait()
	})
	return h
}

func ev(seq uint64) *wire.Envelope {
	return &wire.Envelope{Seq: seq, Route: wire.Route{Kind: wire.RouteChannel, Name: "ch"}, Body: fmt.Appendf(nil, "m%d", seq)}
}

func (h *trackerHarness) waitGot(t *testing.T, want []uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		h.mu.Lock()
		got := slices.Clone(h.got)
		h.mu.Unlock()
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) || len(got) > len(want) {
			t.Fatalf("delivered %v, want %v", got, want)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func pageOf(seqs ...uint64) HistoryPage {
	var p HistoryPage
	for _, s := range seqs {
		p.envs = append(p.envs, ev(s))
	}
	return p
}

func TestSeqTracker(t *testing.T) {
	tests := []struct {
		name     string
		ro       RecoveryOptions
		fetch    func(context.Context, HistoryQuery) (HistoryPage, error)
		push     []uint64
		want     []uint64
		wantGaps [][2]uint64
		dups     uint64
	}{
		{"in order", RecoveryOptions{}, nil, []uint64{5, 6, 7}, []uint64{5, 6, 7}, nil, 0},
		{"duplicates dropped", RecoveryOptions{}, nil, []uint64{1, 2, 2, 1, 3, 3}, []uint64{1, 2, 3}, nil, 3},
		{"gap repaired from history", RecoveryOptions{},
			func(_ context.Context, q HistoryQuery) (HistoryPage, error) {
				if q.After != 1 {
					return HistoryPage{}, fmt.Errorf("after %d", q.After)
				}
				return pageOf(2, 3, 4), nil
			},
			[]uint64{1, 4, 5}, []uint64{1, 2, 3, 4, 5}, nil, 1},
		{"unrepairable gap skipped and reported", RecoveryOptions{},
			func(context.Context, HistoryQuery) (HistoryPage, error) { return HistoryPage{}, errors.New("down") },
			[]uint64{1, 4, 5}, []uint64{1, 4, 5}, [][2]uint64{{2, 3}}, 0},
		{"repair bounded by RepairTimeout", RecoveryOptions{RepairTimeout: 20 * time.Millisecond},
			func(ctx context.Context, _ HistoryQuery) (HistoryPage, error) {
				<-ctx.Done()
				return HistoryPage{}, ctx.Err()
			},
			[]uint64{1, 3}, []uint64{1, 3}, [][2]uint64{{2, 2}}, 0},
		{"ReorderLimit skips the gap", RecoveryOptions{ReorderLimit: 2},
			func(ctx context.Context, _ HistoryQuery) (HistoryPage, error) {
				<-ctx.Done()
				return HistoryPage{}, ctx.Err()
			},
			[]uint64{1, 5, 6, 7}, []uint64{1, 5, 6, 7}, [][2]uint64{{2, 4}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newTrackerHarness(t, tt.ro, tt.fetch)
			for _, s := range tt.push {
				h.t.push(ev(s))
			}
			h.waitGot(t, tt.want)
			h.cancel() // ends a repair still waiting
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(2 * time.Millisecond) {
				h.t.mu.Lock()
				busy := h.t.repairing
				h.t.mu.Unlock()
				if !busy {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("repair did not end")
				}
			}
			if !slices.Equal(h.gaps, tt.wantGaps) {
				t.Fatalf("gaps %v, want %v", h.gaps, tt.wantGaps)
			}
			if d := h.c.duplicates.Load(); d != tt.dups {
				t.Fatalf("duplicates %d, want %d", d, tt.dups)
			}
		})
	}
}

// After RECOVERY_IMPOSSIBLE the latest history follows what was
// delivered, then the live events that waited.
func TestSeqTrackerRecoveryFailed(t *testing.T) {
	release := make(chan struct{})
	h := newTrackerHarness(t, RecoveryOptions{}, func(_ context.Context, q HistoryQuery) (HistoryPage, error) {
		<-release
		if !q.Latest {
			return HistoryPage{}, errors.New("want latest")
		}
		return pageOf(8, 9, 10), nil
	})
	h.t.push(ev(1))
	h.waitGot(t, []uint64{1})
	h.t.recoveryFailed()
	h.t.push(ev(11)) // live, waits for the history
	h.t.push(ev(12))
	close(release)
	h.waitGot(t, []uint64{1, 8, 9, 10, 11, 12})
	if h.c.recoveryFailures.Load() != 1 {
		t.Fatal("recovery failure not counted")
	}
}

func TestRecoveryOptionsDefaults(t *testing.T) {
	var r RecoveryOptions
	r.setDefaults()
	if r.AckEvery != DefaultAckEvery || r.AckDelay != DefaultAckDelay || r.ReorderLimit != DefaultReorderLimit ||
		r.RepairTimeout != DefaultRepairTimeout || r.RecoveryHistory != DefaultRecoveryHistory {
		t.Fatalf("defaults %+v", r)
	}
}
