package client

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/transport"
)

// fakeConn records whether the race discarded it.
type fakeConn struct {
	name string
	mu   sync.Mutex
	shut bool
}

func (f *fakeConn) close() { f.mu.Lock(); f.shut = true; f.mu.Unlock() }
func (f *fakeConn) closed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.shut
}

// step is the scripted behaviour of one fake attempt.
type step struct {
	after   time.Duration // how long the attempt takes
	err     error         // its failure, or nil for success
	ignores bool          // completes even after cancellation
}

func fakeDial(s step, conn *fakeConn, started chan<- string) func(ctx context.Context) (*fakeConn, error) {
	return func(ctx context.Context) (*fakeConn, error) {
		started <- conn.name
		t := time.NewTimer(s.after)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			if !s.ignores {
				return nil, ctx.Err()
			}
			<-t.C
		}
		if s.err != nil {
			return nil, s.err
		}
		return conn, nil
	}
}

var errFatal = errors.New("fatal")

func TestRace(t *testing.T) {
	errQUIC := errors.New("quic failed")
	errTCP := errors.New("tcp failed")
	long := time.Hour
	tests := []struct {
		name        string
		quic, tcp   step
		headStart   time.Duration
		wantWinner  transport.Kind
		wantStarted int
		wantErr     error  // errors.Is target when no winner
		wantClosed  string // a loser that completed and must have been closed
	}{
		{name: "quic wins within head start", quic: step{after: 0}, tcp: step{after: 0}, headStart: long,
			wantWinner: transport.KindQUIC, wantStarted: 1},
		{name: "quic fails fast, tcp starts at once", quic: step{err: errQUIC}, tcp: step{after: 0}, headStart: long,
			wantWinner: transport.KindTCP, wantStarted: 2},
		{name: "quic hangs, tcp wins after head start", quic: step{after: long}, tcp: step{after: 0}, headStart: time.Millisecond,
			wantWinner: transport.KindTCP, wantStarted: 2},
		{name: "both fail", quic: step{err: errQUIC}, tcp: step{err: errTCP}, headStart: long,
			wantErr: errTCP, wantStarted: 2},
		{name: "fatal error stops the race", quic: step{after: long}, tcp: step{err: errFatal}, headStart: time.Millisecond,
			wantErr: errFatal, wantStarted: 2},
		{name: "late loser is closed", quic: step{after: 50 * time.Millisecond, ignores: true}, tcp: step{after: 0}, headStart: time.Millisecond,
			wantWinner: transport.KindTCP, wantStarted: 2, wantClosed: "quic"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			started := make(chan string, 2)
			q, c := &fakeConn{name: "quic"}, &fakeConn{name: "tcp"}
			attempts := []attempt[*fakeConn]{
				{kind: transport.KindQUIC, dial: fakeDial(tt.quic, q, started)},
				{kind: transport.KindTCP, headStart: tt.headStart, dial: fakeDial(tt.tcp, c, started)},
			}
			got, kind, err := race(context.Background(), attempts,
				func(err error) bool { return errors.Is(err, errFatal) },
				func(f *fakeConn) { f.close() })
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("race error = %v, want %v", err, tt.wantErr)
				}
			} else {
				if err != nil {
					t.Fatalf("race: %v", err)
				}
				if kind != tt.wantWinner || got.name != string(tt.wantWinner) {
					t.Fatalf("winner = %s (%s), want %s", kind, got.name, tt.wantWinner)
				}
				if got.closed() {
					t.Fatal("winner was closed")
				}
			}
			if n := len(started); n != tt.wantStarted {
				t.Fatalf("%d attempts started, want %d", n, tt.wantStarted)
			}
			if tt.wantClosed != "" {
				loser := map[string]*fakeConn{"quic": q, "tcp": c}[tt.wantClosed]
				if !loser.closed() {
					t.Fatalf("loser %s completed but was not closed", tt.wantClosed)
				}
			}
		})
	}
}

func TestRaceParentCancelled(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	cause := errors.New("caller gave up")
	started := make(chan string, 2)
	attempts := []attempt[*fakeConn]{
		{kind: transport.KindQUIC, dial: fakeDial(step{after: time.Hour}, &fakeConn{name: "quic"}, started)},
	}
	go func() { <-started; cancel(cause) }()
	_, _, err := race(ctx, attempts, nil, func(*fakeConn) {})
	if !errors.Is(err, cause) {
		t.Fatalf("race error = %v, want %v", err, cause)
	}
}

func TestRaceNoAttempts(t *testing.T) {
	if _, _, err := race[*fakeConn](context.Background(), nil, nil, nil); err == nil {
		t.Fatal("race with no attempts succeeded")
	}
}
