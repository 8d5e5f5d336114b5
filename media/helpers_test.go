package media

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/internal/testutil"
	"github.com/jetstreamproto/jsp/reliability/mediapkt"
	"github.com/jetstreamproto/jsp/session"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/transport/memtransport"
	"github.com/jetstreamproto/jsp/transport/mux"
	"github.com/jetstreamproto/jsp/wire"
)

func TestMain(m *testing.M) { testutil.VerifyTestMain(m) }

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// establishOn runs a session handshake over a connected transport pair,
// with caps offered on both sides, and closes both sessions at cleanup.
func establishOn(t *testing.T, cc, sc transport.Conn, caps []string) (cli, srv *session.Session) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// A deep flow queue: the tests count every packet, so the session
	// must not drop datagrams while a loaded machine stalls the Mux.
	cfg := session.Config{Logger: quietLogger(), Capabilities: caps, AcceptQueueLength: 4096}
	type res struct {
		s   *session.Session
		err error
	}
	ch := make(chan res, 1)
	go func() {
		s, err := session.Accept(ctx, sc, cfg, session.ServerOptions{})
		ch <- res{s, err}
	}()
	cli, err := session.Dial(ctx, cc, session.ClientInfo{Name: "media-test"}, cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatalf("Accept: %v", r.err)
	}
	t.Cleanup(func() {
		cli.Close()
		r.s.Close()
	})
	return cli, r.s
}

// memSessions returns a client and server session over memtransport.
func memSessions(t *testing.T, caps ...string) (cli, srv *session.Session) {
	t.Helper()
	// Likewise the link keeps queued datagrams however long the machine
	// stalls its writer: loss in these tests is only what they make.
	cc, sc := memtransport.NewPair(mux.Config{DatagramMaxAge: time.Minute, DatagramQueueLength: 4096, DatagramRecvQueueLength: 4096})
	t.Cleanup(func() {
		cc.CloseWithError(0, "")
		sc.CloseWithError(0, "")
	})
	return establishOn(t, cc, sc, caps)
}

// filterSession wraps a session and drops outgoing media datagrams and
// NACKs that a test chooses, so that loss happens at known packets.
type filterSession struct {
	*session.Session
	mu        sync.Mutex
	dropFlow  func(b []byte) bool // guarded by mu
	dropNacks bool                // guarded by mu
	dropped   int                 // guarded by mu
	maxLen    int                 // guarded by mu; longest media datagram sent
}

func (f *filterSession) SendFlow(flow wire.FlowID, b []byte, class protocol.Class) error {
	f.mu.Lock()
	drop := f.dropFlow != nil && f.dropFlow(b)
	f.maxLen = max(f.maxLen, len(b))
	if drop {
		f.dropped++
	}
	f.mu.Unlock()
	if drop {
		return nil
	}
	return f.Session.SendFlow(flow, b, class)
}

func (f *filterSession) SendNack(n *wire.Nack) error {
	f.mu.Lock()
	drop := f.dropNacks
	f.mu.Unlock()
	if drop {
		return nil
	}
	return f.Session.SendNack(n)
}

// dropOriginals returns a filter that drops the first transmission of the
// source packets with the given wire sequence numbers.
func dropOriginals(seqs ...mediapkt.Seq) func([]byte) bool {
	set := map[mediapkt.Seq]bool{}
	for _, s := range seqs {
		set[s] = true
	}
	return func(b []byte) bool {
		if IsControl(b) {
			return false
		}
		h, _, err := mediapkt.Parse(b)
		if err != nil || h.Flags&(mediapkt.FlagFEC|mediapkt.FlagRetransmission) != 0 {
			return false
		}
		return set[h.Seq]
	}
}

// dropRetransmissions returns a filter that drops every retransmission.
func dropRetransmissions(b []byte) bool {
	return !IsControl(b) && len(b) > 0 && mediapkt.Flags(b[0]).Has(mediapkt.FlagRetransmission)
}

// flowPair is a sender on the client side and a receiver on the server
// side of one media flow.
type flowPair struct {
	cli, srv   *filterSession
	cmux, smux *Mux
	tx         *Sender
	rx         *Receiver
}

const testFlow wire.FlowID = 7

func newFlowPair(t *testing.T, caps []string, scfg SenderConfig, rcfg ReceiverConfig) *flowPair {
	t.Helper()
	cs, ss := memSessions(t, caps...)
	p := &flowPair{cli: &filterSession{Session: cs}, srv: &filterSession{Session: ss}}
	p.cmux = NewMux(p.cli, MuxConfig{Logger: quietLogger()})
	p.smux = NewMux(p.srv, MuxConfig{Logger: quietLogger()})
	t.Cleanup(func() {
		p.cmux.Close()
		p.smux.Close()
	})
	if rcfg.FrameQueue == 0 {
		// The tests read frames after sending them all.
		rcfg.FrameQueue = 1024
	}
	var err error
	if p.rx, err = p.smux.NewReceiver(testFlow, rcfg); err != nil {
		t.Fatal(err)
	}
	if p.tx, err = p.cmux.NewSender(testFlow, scfg); err != nil {
		t.Fatal(err)
	}
	return p
}

// sizes is the range of frame payload sizes of a test stream.
type sizes struct{ min, max int }

// testFrame is frame i of a deterministic stream: sizes drawn from sz, a
// key frame every 30, timestamps on a 90 kHz clock advancing by interval.
func testFrame(rng *rand.Rand, i int, interval time.Duration, sz sizes) Frame {
	n := sz.min + rng.IntN(sz.max-sz.min+1)
	p := make([]byte, n)
	for j := range p {
		p[j] = byte(rng.Uint32())
	}
	return Frame{
		Timestamp: uint32(int64(i) * int64(interval) * 90_000 / int64(time.Second)),
		KeyFrame:  i%30 == 0,
		Payload:   p,
	}
}

// stream writes n frames, one per interval, and returns them. A frame's
// timestamp is its capture time on the wall clock, as a live source's is:
// when the machine is slow and the ticker skips, media time follows, so
// the receiver's playout schedule stays true.
func stream(t *testing.T, tx *Sender, n int, interval time.Duration, sz sizes, seed uint64) []Frame {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	frames := make([]Frame, n)
	tk := time.NewTicker(interval)
	defer tk.Stop()
	start := time.Now()
	for i := range frames {
		frames[i] = testFrame(rng, i, interval, sz)
		frames[i].Timestamp = uint32(time.Since(start) * 90_000 / time.Second)
		if err := tx.WriteFrame(frames[i]); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		<-tk.C
	}
	return frames
}

// collect reads frames until want have arrived or nothing has come for
// quiet.
func collect(t *testing.T, rx *Receiver, want int, quiet time.Duration) []ReceivedFrame {
	t.Helper()
	var got []ReceivedFrame
	timer := time.NewTimer(quiet)
	defer timer.Stop()
	for len(got) < want {
		select {
		case f, ok := <-rx.Frames():
			if !ok {
				return got
			}
			got = append(got, f)
			timer.Reset(quiet)
		case <-timer.C:
			return got
		}
	}
	return got
}

// checkFrames checks that got is sent minus the frames at the indexes in
// missing, in order and byte for byte, and returns the received frames by
// sent index.
func checkFrames(t *testing.T, sent []Frame, got []ReceivedFrame, missing map[int]bool) map[int]ReceivedFrame {
	t.Helper()
	byIndex := map[int]ReceivedFrame{}
	j := 0
	for i, f := range sent {
		if missing[i] {
			continue
		}
		if j >= len(got) {
			t.Fatalf("only %d frames delivered; frame %d (ts %d) missing", len(got), i, f.Timestamp)
		}
		g := got[j]
		if g.Timestamp != f.Timestamp || g.KeyFrame != f.KeyFrame || !bytes.Equal(g.Payload, f.Payload) ||
			g.HasAudioLevel != f.HasAudioLevel || g.AudioLevel != f.AudioLevel {
			t.Fatalf("delivered frame %d (ts %d, %d bytes) differs from sent frame %d (ts %d, %d bytes)",
				j, g.Timestamp, len(g.Payload), i, f.Timestamp, len(f.Payload))
		}
		byIndex[i] = g
		j++
	}
	if j != len(got) {
		t.Fatalf("%d frames delivered, want %d", len(got), j)
	}
	return byIndex
}
