package mux_test

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/transport/memtransport"
	"github.com/jetstreamproto/jsp/transport/mux"
	"github.com/jetstreamproto/jsp/wire"
)

// rawPeer speaks link frames by hand to a mux.Conn under test.
type rawPeer struct {
	t    *testing.T
	end  *memtransport.PipeEnd
	conn *mux.Conn

	readOnce sync.Once
	mu       sync.Mutex
	frames   []rawFrame
	got      chan struct{} // cap 1: a frame arrived
	done     chan struct{} // the reading goroutine ended
}

type rawFrame struct {
	h       wire.Header
	payload []byte
}

// newRaw starts a mux.Conn (as server unless muxIsClient) on one end of a
// pipe of bufSize bytes (0 = default) and returns the other end. If read
// is false nothing reads the raw end until startReading.
func newRaw(t *testing.T, cfg mux.Config, muxIsClient bool, bufSize int, read bool) *rawPeer {
	t.Helper()
	a, b := memtransport.Pipe(bufSize)
	if cfg.CloseTimeout == 0 {
		cfg.CloseTimeout = 500 * time.Millisecond
	}
	r := &rawPeer{t: t, end: b, got: make(chan struct{}, 1), done: make(chan struct{})}
	if usePump {
		r.conn = mux.NewPolled(newPollPipe(a), cfg, muxIsClient)
	} else {
		r.conn = mux.New(a, cfg, muxIsClient)
	}
	t.Cleanup(func() {
		r.conn.Close()
		r.end.Close()
		r.startReading() // no-op if started; makes done close either way
		<-r.done
	})
	if read {
		r.startReading()
	}
	return r
}

func (r *rawPeer) startReading() {
	r.readOnce.Do(r.startReadingOnce)
}

func (r *rawPeer) startReadingOnce() {
	go func() {
		defer close(r.done)
		fr := wire.NewFrameReader(r.end, 1<<30)
		for {
			h, p, err := fr.ReadFrame()
			if err != nil {
				return
			}
			r.mu.Lock()
			r.frames = append(r.frames, rawFrame{h, append([]byte(nil), p...)})
			r.mu.Unlock()
			select {
			case r.got <- struct{}{}:
			default:
			}
			if h.Type == wire.FrameLinkClose {
				// Answer the close as a peer does: close our end.
				r.end.Close()
			}
		}
	}()
}

func (r *rawPeer) send(b []byte) {
	r.t.Helper()
	if _, err := r.end.Write(b); err != nil {
		r.t.Fatalf("raw write: %v", err)
	}
}

// waitFrame waits for a frame that matches ok.
func (r *rawPeer) waitFrame(ok func(rawFrame) bool) rawFrame {
	r.t.Helper()
	deadline := time.After(10 * time.Second)
	seen := 0
	for {
		r.mu.Lock()
		for ; seen < len(r.frames); seen++ {
			if ok(r.frames[seen]) {
				f := r.frames[seen]
				r.mu.Unlock()
				return f
			}
		}
		r.mu.Unlock()
		select {
		case <-r.got:
		case <-r.done:
			r.mu.Lock()
			n := len(r.frames)
			r.mu.Unlock()
			if seen == n {
				r.t.Fatal("raw peer: link ended before the expected frame")
			}
		case <-deadline:
			r.t.Fatal("raw peer: timed out waiting for a frame")
		}
	}
}

func (r *rawPeer) count(t wire.FrameType) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, f := range r.frames {
		if f.h.Type == t {
			n++
		}
	}
	return n
}

// waitClosed waits for the Conn to close and returns its cause.
func waitClosed(t *testing.T, c *mux.Conn) *jsperr.Error {
	t.Helper()
	select {
	case <-c.Context().Done():
	case <-time.After(10 * time.Second):
		t.Fatal("link did not close")
	}
	var je *jsperr.Error
	if !errors.As(context.Cause(c.Context()), &je) {
		t.Fatalf("cause %v is not a *jsperr.Error", context.Cause(c.Context()))
	}
	return je
}

// Frame builders.

func frame(t wire.FrameType, f wire.Flags, sid protocol.StreamID, payload []byte) []byte {
	return wire.AppendFrame(nil, t, f, sid, payload)
}

func streamFrame(sid protocol.StreamID, data []byte, fin bool) []byte {
	f := wire.Flags(0).WithClass(protocol.ClassChat)
	if fin {
		f |= wire.FlagFIN
	}
	return frame(wire.FrameStream, f, sid, data)
}

func varintFrame(t wire.FrameType, sid protocol.StreamID, v uint64) []byte {
	return frame(t, 0, sid, wire.AppendVarint(nil, v))
}

func linkClose(code jsperr.Code, reason string) []byte {
	return frame(wire.FrameLinkClose, 0, 0, append(wire.AppendVarint(nil, uint64(code)), reason...))
}

func concat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func readAll(t *testing.T, r io.Reader) string {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(b)
}

func memtransportPipe() (*memtransport.PipeEnd, *memtransport.PipeEnd) { return memtransport.Pipe(0) }
