package tcptls

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/transport/transporttest"
)

// tlsFeedPair returns a TLS server over a record feed, the feed, and the
// TLS client at the other end, handshaken. The feed reads in blocking
// mode, as during the upgrade of a wss:// connection.
func tlsFeedPair(t *testing.T) (*tls.Conn, *Feed, *tls.Conn) {
	t.Helper()
	f, peer := feedPair(t)
	serverTLS, clientTLS := transporttest.TLSConfigs(t)
	srv, cli := tls.Server(f, serverTLS), tls.Client(peer, clientTLS)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- srv.HandshakeContext(ctx) }()
	if err := cli.HandshakeContext(ctx); err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("server handshake: %v", err)
	}
	return srv, f, cli
}

// readPlain reads len(want) bytes of plaintext from c and compares them.
func readPlain(t *testing.T, c *tls.Conn, want []byte) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("peer read: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("peer read %d bytes that differ from the %d written", len(got), len(want))
	}
}

// within runs f and fails if it does not return within 10 seconds: the
// calls it is given must never wait for long.
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s blocked", what)
	}
}

// TestFeedTryCork: TryCork refuses without waiting, and taking nothing,
// while the feed or its socket is busy; otherwise it corks the feed and
// holds the socket, and UncorkHeld sends what crypto/tls wrote meanwhile.
func TestFeedTryCork(t *testing.T) {
	tests := []struct {
		name string
		// busy makes the feed busy and returns what makes it idle again.
		busy func(f *Feed) (release func() error)
	}{
		{"idle", nil},
		{"socket held", func(f *Feed) func() error {
			if !f.sock.TryHold() {
				return nil
			}
			return func() error { return f.sock.WriteHeld(nil, time.Second) }
		}},
		{"feed corked", func(f *Feed) func() error {
			f.Cork()
			return f.Uncork
		}},
		{"feed writing", func(f *Feed) func() error {
			f.wmu.Lock() // as a Write does while it waits for the socket
			return func() error { f.wmu.Unlock(); return nil }
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, f, cli := tlsFeedPair(t)
			if tt.busy != nil {
				release := tt.busy(f)
				if release == nil {
					t.Fatal("the feed could not be made busy")
				}
				var corked bool
				within(t, "TryCork on a busy feed", func() { corked = f.TryCork() })
				if corked {
					t.Fatal("TryCork succeeded on a busy feed")
				}
				var err error
				within(t, "making the feed idle", func() { err = release() })
				if err != nil {
					t.Fatal(err)
				}
				// The refused TryCork took neither the cork nor the
				// socket.
				if f.cork != nil {
					t.Fatal("a refused TryCork left the feed corked")
				}
				if !f.sock.TryHold() {
					t.Fatal("a refused TryCork left the socket held")
				}
				f.sock.WriteHeld(nil, time.Second)
			}
			if !f.TryCork() {
				t.Fatal("TryCork failed on an idle feed")
			}
			if f.sock.TryHold() {
				t.Fatal("the socket is not held after TryCork")
			}
			msg := []byte("one held record, " + tt.name)
			if _, err := srv.Write(msg); err != nil {
				t.Fatal(err)
			}
			if len(*f.cork) == 0 {
				t.Fatal("the cork holds nothing after a write through crypto/tls")
			}
			var err error
			within(t, "UncorkHeld", func() { err = f.UncorkHeld(time.Second) })
			if err != nil {
				t.Fatal(err)
			}
			if f.cork != nil {
				t.Fatal("the feed is still corked after UncorkHeld")
			}
			readPlain(t, cli, msg)
			if f.sock.Tails() != 0 {
				t.Fatalf("Tails() = %d after one small record", f.sock.Tails())
			}
			// The feed is free again: a plain write goes straight out.
			if _, err := srv.Write([]byte("after")); err != nil {
				t.Fatal(err)
			}
			readPlain(t, cli, []byte("after"))
		})
	}
}

// TestFeedUncorkHeldTail: UncorkHeld returns at once with records the
// socket cannot take now, to a peer that reads nothing; TryCork refuses
// while their tail is pending, a plain write waits for it, and the peer
// reads every byte in order.
func TestFeedUncorkHeldTail(t *testing.T) {
	srv, f, cli := tlsFeedPair(t)
	// Socket buffers of about 450 KiB between them, well under what is
	// written.
	if err := f.sock.Conn().(*net.TCPConn).SetWriteBuffer(128 << 10); err != nil {
		t.Fatal(err)
	}
	if err := cli.NetConn().(*net.TCPConn).SetReadBuffer(128 << 10); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 2<<20)
	rand.Read(big)
	if !f.TryCork() {
		t.Fatal("TryCork failed on an idle feed")
	}
	if _, err := srv.Write(big); err != nil {
		t.Fatal(err)
	}
	var err error
	within(t, "UncorkHeld to a peer that reads nothing", func() { err = f.UncorkHeld(time.Minute) })
	if err != nil {
		t.Fatal(err)
	}
	if n := f.sock.Tails(); n != 1 {
		t.Fatalf("Tails() = %d, want 1", n)
	}
	if f.TryCork() {
		t.Fatal("TryCork succeeded while a tail is pending")
	}
	// A plain write waits for the tail and follows it.
	wrote := make(chan error, 1)
	go func() {
		_, err := srv.Write([]byte("after the tail"))
		wrote <- err
	}()
	readPlain(t, cli, big)
	readPlain(t, cli, []byte("after the tail"))
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	// Everything was read: the tail's writer releases the socket.
	for deadline := time.Now().Add(10 * time.Second); !f.TryCork(); {
		if time.Now().After(deadline) {
			t.Fatal("TryCork kept failing after the tail was read")
		}
		time.Sleep(time.Millisecond)
	}
	if err := f.UncorkHeld(time.Second); err != nil {
		t.Fatal(err)
	}
}
