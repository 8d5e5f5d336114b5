package quic

import (
	"crypto/tls"
	"io"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
)

// earlyClientTLS is the test client configuration with a session ticket
// cache, which 0-RTT needs.
func earlyClientTLS() *tls.Config {
	c := clientTLS.Clone()
	c.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	return c
}

// echoOnce accepts one stream on sc and echoes what it reads until EOF.
func echoOnce(t *testing.T, sc *Conn, done chan<- []byte) {
	st, err := sc.AcceptStream(testCtx(t, 10*time.Second))
	if err != nil {
		done <- nil
		return
	}
	b, _ := io.ReadAll(st)
	_, _ = st.Write(b)
	_ = st.Close()
	done <- b
}

// TestZeroRTT: with Allow0RTT on both sides, a second connection resumes
// with a session ticket and sends its first stream data as 0-RTT; Dial
// and Accept return before the handshake completes, HandshakeComplete
// closes once it has, and Used0RTT reports the resumption. Without
// Allow0RTT on the listener the same client gets a full handshake.
func TestZeroRTT(t *testing.T) {
	tests := []struct {
		name     string
		server   bool // listener Allow0RTT
		want0RTT bool
	}{
		{"accepted", true, true},
		{"listener without 0-RTT", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln := listen(t, Config{Allow0RTT: tt.server})
			tc := earlyClientTLS()
			for round := range 2 {
				ctx := testCtx(t, 10*time.Second)
				accepted := make(chan *Conn, 1)
				go func() {
					c, err := ln.Accept(ctx)
					if err != nil {
						accepted <- nil
						return
					}
					accepted <- c.(*Conn)
				}()
				cc, err := Dial(ctx, ln.Addr().String(), tc, Config{Allow0RTT: true})
				if err != nil {
					t.Fatalf("round %d: Dial: %v", round, err)
				}
				c := cc.(*Conn)
				st, err := c.OpenStream(ctx, protocol.ClassSystem)
				if err != nil {
					t.Fatal(err)
				}
				msg := []byte("first flight")
				if _, err := st.Write(msg); err != nil {
					t.Fatal(err)
				}
				_ = st.Close()
				sc := <-accepted
				if sc == nil {
					t.Fatalf("round %d: Accept failed", round)
				}
				got := make(chan []byte, 1)
				go echoOnce(t, sc, got)
				back, err := io.ReadAll(st)
				if err != nil || string(back) != string(msg) || string(<-got) != string(msg) {
					t.Fatalf("round %d: echo %q, %v", round, back, err)
				}
				for _, hc := range []<-chan struct{}{c.HandshakeComplete(), sc.HandshakeComplete()} {
					select {
					case <-hc:
					case <-ctx.Done():
						t.Fatal("handshake never completed")
					}
				}
				want := tt.want0RTT && round == 1
				if c.Used0RTT() != want || sc.Used0RTT() != want {
					t.Fatalf("round %d: Used0RTT client %v server %v, want %v", round, c.Used0RTT(), sc.Used0RTT(), want)
				}
				_ = c.CloseWithError(jsperr.NoError, "")
				_ = sc.CloseWithError(jsperr.NoError, "")
			}
		})
	}
}
