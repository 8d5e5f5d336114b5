package mux_test

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/transport/memtransport"
	"github.com/jetstreamproto/jsp/transport/mux"
	"github.com/jetstreamproto/jsp/wire"
)

// tryStream is the method a session's sender uses on a link stream for a
// fan-out delivery (D50).
type tryStream interface {
	TryWrite(p []byte) (bool, error)
}

// tryPipe is a pipe end that can also write without waiting, as a wss://
// connection on a record feed can: TryWrite writes to the pipe, or
// refuses, or fails, as told.
type tryPipe struct {
	*memtransport.PipeEnd

	mu       sync.Mutex
	refuse   bool
	fail     error
	during   func() // run once, by the next TryWrite, before it answers
	calls    int
	timeouts []time.Duration
}

func (p *tryPipe) TryWrite(b []byte, timeout time.Duration) (bool, error) {
	p.mu.Lock()
	p.calls++
	p.timeouts = append(p.timeouts, timeout)
	refuse, fail, during := p.refuse, p.fail, p.during
	p.during = nil
	p.mu.Unlock()
	if during != nil {
		during()
	}
	switch {
	case fail != nil:
		return true, fail
	case refuse:
		return false, nil
	}
	_, err := p.PipeEnd.Write(b)
	return true, err
}

func (p *tryPipe) set(refuse bool, fail error, during func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refuse, p.fail, p.during = refuse, fail, during
}

func (p *tryPipe) callCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls
}

// newTryRaw is newRaw (the link as client, on a pipe of bufSize bytes) over
// a byte stream with TryWrite.
func newTryRaw(t *testing.T, cfg mux.Config, bufSize int, read bool) (*rawPeer, *tryPipe) {
	t.Helper()
	a, b := memtransport.Pipe(bufSize)
	if cfg.CloseTimeout == 0 {
		cfg.CloseTimeout = 500 * time.Millisecond
	}
	tp := &tryPipe{PipeEnd: a}
	r := &rawPeer{t: t, end: b, got: make(chan struct{}, 1), done: make(chan struct{})}
	r.conn = mux.New(tp, cfg, true)
	t.Cleanup(func() {
		r.end.Close() // first: a test that failed may leave a write blocked on the pipe
		r.conn.Close()
		r.startReading()
		<-r.done
	})
	if read {
		r.startReading()
	}
	return r, tp
}

// streamBytes waits until the raw peer has n payload bytes of stream id
// and returns them, in the order of their frames.
func (r *rawPeer) streamBytes(id protocol.StreamID, n int) []byte {
	r.t.Helper()
	var b []byte
	r.waitFrame(func(f rawFrame) bool {
		if f.h.Type == wire.FrameStream && f.h.StreamID == id {
			b = append(b, f.payload...)
		}
		return len(b) >= n
	})
	return b
}

func openStream(t *testing.T, c *mux.Conn) transport.Stream {
	t.Helper()
	s, err := c.OpenStream(context.Background(), protocol.ClassChat)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestTryWrite checks that a stream's TryWrite on an idle link writes one
// STREAM frame through the byte stream's TryWrite, bounded by the link's
// WriteTimeout, and that when it cannot (the byte stream refuses or has
// no TryWrite, or p is empty) it writes nothing: a later Write's bytes
// are all the peer sees.
func TestTryWrite(t *testing.T) {
	const timeout = 7 * time.Second
	tests := []struct {
		name   string
		plain  bool // the byte stream has no TryWrite
		refuse bool
		p      string
		wrote  bool
		calls  int // of the byte stream's TryWrite
	}{
		{"writes", false, false, "fan-out delivery", true, 1},
		{"refused", false, true, "fan-out delivery", false, 1},
		{"empty", false, false, "", false, 0},
		{"plain byte stream", true, false, "fan-out delivery", false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := mux.Config{WriteTimeout: timeout}
			var r *rawPeer
			tp := &tryPipe{}
			if tt.plain {
				r = newRaw(t, cfg, true, 0, true)
			} else {
				r, tp = newTryRaw(t, cfg, 0, true)
				tp.set(tt.refuse, nil, nil)
			}
			s := openStream(t, r.conn)
			wrote, err := s.(tryStream).TryWrite([]byte(tt.p))
			if err != nil || wrote != tt.wrote {
				t.Fatalf("TryWrite = %v, %v; want %v, nil", wrote, err, tt.wrote)
			}
			if n := tp.callCount(); n != tt.calls {
				t.Fatalf("byte stream TryWrite called %d times, want %d", n, tt.calls)
			}
			if tt.calls > 0 && tp.timeouts[0] != timeout {
				t.Fatalf("byte stream TryWrite given timeout %v, want the link's %v", tp.timeouts[0], timeout)
			}
			want := "then queued"
			if tt.wrote {
				want = tt.p + want
			}
			if _, err := s.Write([]byte("then queued")); err != nil {
				t.Fatal(err)
			}
			if got := r.streamBytes(s.ID(), len(want)); string(got) != want {
				t.Fatalf("peer read %q, want %q", got, want)
			}
			through := uint64(0)
			if tt.wrote {
				through = 1
			}
			if st := r.conn.Stats(); st.WritesThrough != through {
				t.Fatalf("WritesThrough = %d, want %d", st.WritesThrough, through)
			}
		})
	}
}

// TestTryWriteCredit checks that TryWrite takes flow-control credit only
// for what it writes: a refused TryWrite gives it back, so the accepted
// ones use the stream's whole window, and then, with no credit left,
// TryWrite reports false without trying the byte stream. More than one
// chunk never goes through TryWrite, and TryWrite does not wait for a
// Write of the same stream.
func TestTryWriteCredit(t *testing.T) {
	r, tp := newTryRaw(t, mux.Config{}, 0, true)
	s := openStream(t, r.conn)
	ts := s.(tryStream)
	chunk := int(protocol.DefaultMaxLinkChunk)
	n := int(protocol.DefaultStreamWindow) / chunk
	var want []byte
	for i := range n {
		if i == n/2 {
			tp.set(true, nil, nil)
			if wrote, err := ts.TryWrite(bytes.Repeat([]byte{'x'}, chunk)); wrote || err != nil {
				t.Fatalf("refused TryWrite = %v, %v", wrote, err)
			}
			tp.set(false, nil, nil)
		}
		p := bytes.Repeat([]byte{byte('a' + i)}, chunk)
		if wrote, err := ts.TryWrite(p); !wrote || err != nil {
			t.Fatalf("TryWrite of chunk %d of the window = %v, %v; want true", i, wrote, err)
		}
		want = append(want, p...)
	}
	calls := tp.callCount()
	if wrote, err := ts.TryWrite([]byte{'y'}); wrote || err != nil {
		t.Fatalf("TryWrite with the window used up = %v, %v; want false", wrote, err)
	}
	s2 := openStream(t, r.conn)
	if wrote, err := s2.(tryStream).TryWrite(make([]byte, chunk+1)); wrote || err != nil {
		t.Fatalf("TryWrite of more than a chunk = %v, %v; want false", wrote, err)
	}
	if tp.callCount() != calls {
		t.Fatal("TryWrite tried the byte stream without credit for p")
	}
	if got := r.streamBytes(s.ID(), len(want)); !bytes.Equal(got, want) {
		t.Fatalf("peer read %d bytes that differ from the %d accepted", len(got), len(want))
	}
	if st := r.conn.Stats(); st.WritesThrough != uint64(n) {
		t.Fatalf("WritesThrough = %d, want %d", st.WritesThrough, n)
	}
	// A Write waiting for credit holds the stream: TryWrite does not wait
	// behind it.
	blocked := make(chan error, 1)
	go func() {
		_, err := s.Write([]byte("waits for credit"))
		blocked <- err
	}()
	for deadline := time.Now().Add(5 * time.Second); r.conn.Stats().WritesBlockedOnCredit == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the Write did not wait for credit")
		}
		time.Sleep(100 * time.Microsecond)
	}
	tried := make(chan bool, 1)
	go func() {
		wrote, _ := ts.TryWrite([]byte{'z'})
		tried <- wrote
	}()
	select {
	case wrote := <-tried:
		if wrote {
			t.Fatal("TryWrite wrote while a Write waits for credit")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("TryWrite waited behind a Write")
	}
	r.send(varintFrame(wire.FrameWindowUpdate, s.ID(), 1000))
	if err := <-blocked; err != nil {
		t.Fatal(err)
	}
	if got := r.streamBytes(s.ID(), len(want)+len("waits for credit")); string(got[len(want):]) != "waits for credit" {
		t.Fatalf("peer read %q after the window", got[len(want):])
	}
}

// TestTryWriteBehindWriter checks that TryWrite writes nothing while the
// link's writer holds queued frames, so it never overtakes them, and
// succeeds once the link is idle again.
func TestTryWriteBehindWriter(t *testing.T) {
	r, tp := newTryRaw(t, mux.Config{MaxChunk: 1000}, 1024, false)
	big, small := openStream(t, r.conn), openStream(t, r.conn)
	// More than the pipe holds: queued for the writer, which blocks on
	// the pipe the raw peer does not read yet.
	payload := bytes.Repeat([]byte{'b'}, 20_000)
	if _, err := big.Write(payload); err != nil {
		t.Fatal(err)
	}
	if wrote, err := small.(tryStream).TryWrite([]byte("overtake")); wrote || err != nil {
		t.Fatalf("TryWrite behind the writer = %v, %v; want false", wrote, err)
	}
	if n := tp.callCount(); n != 0 {
		t.Fatalf("the byte stream's TryWrite was called %d times with the writer busy", n)
	}
	r.startReading()
	if got := r.streamBytes(big.ID(), len(payload)); !bytes.Equal(got, payload) {
		t.Fatal("the queued data arrived changed")
	}
	for deadline := time.Now().Add(5 * time.Second); ; {
		wrote, err := small.(tryStream).TryWrite([]byte("after"))
		if err != nil {
			t.Fatal(err)
		}
		if wrote {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("TryWrite kept failing on an idle link")
		}
		time.Sleep(time.Millisecond)
	}
	if got := r.streamBytes(small.ID(), len("after")); string(got) != "after" {
		t.Fatalf("peer read %q on the small stream, want \"after\"", got)
	}
}

// TestTryWriteHandsOff checks that frames queued while TryWrite holds the
// writing side are written afterwards, by a writer the TryWrite starts,
// whether the byte stream took the frame or refused it.
func TestTryWriteHandsOff(t *testing.T) {
	for _, refuse := range []bool{false, true} {
		name := "written"
		if refuse {
			name = "refused"
		}
		t.Run(name, func(t *testing.T) {
			r, tp := newTryRaw(t, mux.Config{}, 0, true)
			s, other := openStream(t, r.conn), openStream(t, r.conn)
			queued := make(chan error, 1)
			tp.set(refuse, nil, func() {
				_, err := other.Write([]byte("queued meanwhile"))
				queued <- err
			})
			wrote, err := s.(tryStream).TryWrite([]byte("tried"))
			if err != nil || wrote == refuse {
				t.Fatalf("TryWrite = %v, %v; want %v", wrote, err, !refuse)
			}
			if err := <-queued; err != nil {
				t.Fatal(err)
			}
			if got := r.streamBytes(other.ID(), len("queued meanwhile")); string(got) != "queued meanwhile" {
				t.Fatalf("peer read %q", got)
			}
		})
	}
}

// TestTryWriteErrors checks that TryWrite reports a closed stream, and
// that a failure of the byte stream closes the link.
func TestTryWriteErrors(t *testing.T) {
	r, tp := newTryRaw(t, mux.Config{}, 0, true)
	s := openStream(t, r.conn)
	s.Close()
	if wrote, err := s.(tryStream).TryWrite([]byte("x")); err == nil {
		t.Fatalf("TryWrite after Close = %v, nil; want an error", wrote)
	}

	r, tp = newTryRaw(t, mux.Config{}, 0, true)
	s = openStream(t, r.conn)
	boom := errors.New("socket failed")
	tp.set(false, boom, nil)
	wrote, err := s.(tryStream).TryWrite([]byte("x"))
	if !wrote || !errors.Is(err, boom) {
		t.Fatalf("TryWrite on a failing byte stream = %v, %v; want true and the failure", wrote, err)
	}
	waitClosed(t, r.conn)
	if wrote, err := s.(tryStream).TryWrite([]byte("x")); err == nil {
		t.Fatalf("TryWrite on a closed link = %v, nil; want an error", wrote)
	}
}
