package quic

import (
	"context"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
)

// TestContextMadeOnDemand: a Conn makes its mapped context only when asked
// (D34), and either way the context ends with the mapped cause: asked
// before the close (the AfterFunc path) or after it.
func TestContextMadeOnDemand(t *testing.T) {
	for _, before := range []bool{true, false} {
		name := "asked after the close"
		if before {
			name = "asked before the close"
		}
		t.Run(name, func(t *testing.T) {
			client, server := pair(t, Config{}, Config{})
			server.ctxMu.Lock()
			made := server.ctx != nil
			server.ctxMu.Unlock()
			if made {
				t.Fatal("the server Conn made its context before anyone asked")
			}
			if before {
				_ = server.Context()
			}
			if err := client.CloseWithError(jsperr.GoingAway, "bye"); err != nil {
				t.Fatal(err)
			}
			if !before {
				// Wait for quic-go to see the close first.
				waitDone(t, server.qc.Context(), 5*time.Second)
			}
			waitDone(t, server.Context(), 5*time.Second)
			wantJSPError(t, context.Cause(server.Context()), jsperr.GoingAway, true)
		})
	}
}

// TestStreamPeek: Peek waits for data without consuming it; Read returns
// the same bytes; after the peer closes the connection Peek fails with
// the mapped error.
func TestStreamPeek(t *testing.T) {
	client, server := pair(t, Config{}, Config{})
	ctx := testCtx(t, 10*time.Second)
	cs, err := client.OpenStream(ctx, protocol.ClassChat)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	st, err := server.AcceptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ss := st.(*Stream)
	var one [1]byte
	if n, err := ss.Peek(one[:]); n != 1 || err != nil || one[0] != 'h' {
		t.Fatalf("Peek = %d %q %v, want 1 \"h\" nil", n, one[:n], err)
	}
	buf := make([]byte, 2)
	if n, err := ss.Read(buf); n != 2 || err != nil || string(buf) != "hi" {
		t.Fatalf("Read = %d %q %v after Peek, want 2 \"hi\" nil", n, buf[:n], err)
	}
	peeked := make(chan error, 1)
	go func() {
		_, err := ss.Peek(one[:])
		peeked <- err
	}()
	if err := client.CloseWithError(jsperr.RateLimited, "slow down"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-peeked:
		wantJSPError(t, err, jsperr.RateLimited, true)
	case <-time.After(5 * time.Second):
		t.Fatal("Peek still waiting after the peer closed the connection")
	}
}

// TestDatagramQueueMadeOnDemand: a Conn makes its datagram send queue on
// its first SendDatagram (D38); a datagram sent after CloseWithError fails
// and makes none.
func TestDatagramQueueMadeOnDemand(t *testing.T) {
	client, server := pair(t, Config{}, Config{})
	if client.dgrams.Load() != nil || server.dgrams.Load() != nil {
		t.Fatal("a datagram queue was made before the first datagram")
	}
	if err := client.SendDatagram([]byte("x"), protocol.ClassMedia); err != nil {
		t.Fatal(err)
	}
	if client.dgrams.Load() == nil {
		t.Fatal("SendDatagram made no queue")
	}
	b, err := server.ReceiveDatagram(testCtx(t, 5*time.Second))
	if err != nil || string(b) != "x" {
		t.Fatalf("ReceiveDatagram = %q, %v", b, err)
	}
	if err := server.CloseWithError(jsperr.NoError, ""); err != nil {
		t.Fatal(err)
	}
	if err := server.SendDatagram([]byte("y"), protocol.ClassMedia); err == nil {
		t.Fatal("SendDatagram after CloseWithError succeeded")
	}
	if server.dgrams.Load() != nil {
		t.Fatal("SendDatagram after CloseWithError made a queue")
	}
}
