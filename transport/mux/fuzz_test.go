package mux_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/transport/memtransport"
	"github.com/jetstreamproto/jsp/transport/mux"
	"github.com/jetstreamproto/jsp/wire"
)

// FuzzLinkReader feeds arbitrary bytes to a link's reader, readLoop or
// the pump. Whatever the
// input, the link must not panic and must end with a *jsperr.Error: a
// protocol code for bad input, TRANSPORT_CLOSED when the input ends
// cleanly.
func FuzzLinkReader(f *testing.F) {
	seeds := [][]byte{
		streamFrame(1, []byte("hello"), true),
		concat(streamFrame(1, []byte("a"), false), varintFrame(wire.FrameWindowUpdate, 0, 1000), varintFrame(wire.FrameWindowUpdate, 1, 5)),
		concat(streamFrame(3, []byte("x"), false), varintFrame(wire.FrameResetStream, 3, uint64(jsperr.Cancelled))),
		concat(streamFrame(5, nil, false), varintFrame(wire.FrameStopSending, 5, 1)),
		frame(wire.FrameLinkDatagram, wire.Flags(0).WithClass(protocol.ClassMedia), 0, []byte("datagram")),
		linkClose(jsperr.GoingAway, "bye"),
		frame(0x2a, 0, 9, []byte("unknown")),
		frame(wire.FrameHello, 0, 0, nil),
		{0x40, 0x01},
		{0xc0},
		wire.AppendHeader(nil, wire.Header{Type: wire.FrameStream, StreamID: 1, Length: 1 << 40}),
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// The first byte picks the reader: readLoop or the pump
		// (NewPolled), which must agree on every input.
		polled := len(data) > 0 && data[0]&1 == 1
		a, b := memtransport.Pipe(0)
		cfg := mux.Config{MaxStreams: 8, CloseTimeout: 100 * time.Millisecond, WriteTimeout: time.Second}
		var c *mux.Conn
		if polled {
			c = mux.NewPolled(newPollPipe(a), cfg, false)
		} else {
			c = mux.New(a, cfg, false)
		}
		drained := make(chan struct{})
		go func() {
			io.Copy(io.Discard, b)
			close(drained)
		}()
		// Accept and read whatever streams appear, as an application would.
		ctx, cancel := context.WithCancel(context.Background())
		accepted := make(chan struct{})
		go func() {
			defer close(accepted)
			for {
				s, err := c.AcceptStream(ctx)
				if err != nil {
					return
				}
				go io.Copy(io.Discard, s)
			}
		}()
		b.Write(data)
		b.CloseWrite()
		select {
		case <-c.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("link did not end after its input ended")
		}
		var je *jsperr.Error
		if cause := context.Cause(c.Context()); !errors.As(cause, &je) {
			t.Fatalf("cause %v is not a *jsperr.Error", cause)
		}
		cancel()
		<-accepted
		b.Close()
		<-drained
	})
}
