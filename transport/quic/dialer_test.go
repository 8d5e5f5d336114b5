package quic

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
)

// TestDialerSharesSocket: connections dialed through one Dialer share its
// socket and work side by side; a migratable Config is refused; closing
// the Dialer after its connections leaves the socket to its owner.
func TestDialerSharesSocket(t *testing.T) {
	if _, err := NewDialer(nil, Config{Migratable: true}); !errors.Is(err, ErrMigratableDialer) {
		t.Fatalf("NewDialer(Migratable) = %v, want ErrMigratableDialer", err)
	}
	ln := listen(t, Config{})
	uc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	d, err := NewDialer(uc, Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t, 10*time.Second)
	var clients, servers []*Conn
	for range 2 {
		cc, err := d.Dial(ctx, ln.Addr().String(), clientTLS)
		if err != nil {
			t.Fatal(err)
		}
		sc, err := ln.Accept(ctx)
		if err != nil {
			t.Fatal(err)
		}
		clients, servers = append(clients, cc.(*Conn)), append(servers, sc.(*Conn))
	}
	for i, cc := range clients {
		if cc.LocalAddr().String() != uc.LocalAddr().String() {
			t.Fatalf("connection %d on %v, want the Dialer's socket %v", i, cc.LocalAddr(), uc.LocalAddr())
		}
		st, err := cc.OpenStream(ctx, protocol.ClassChat)
		if err != nil {
			t.Fatal(err)
		}
		msg := []byte{'a' + byte(i)}
		if _, err := st.Write(msg); err != nil {
			t.Fatal(err)
		}
		_ = st.Close()
		ss, err := servers[i].AcceptStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(ss)
		if err != nil || string(got) != string(msg) {
			t.Fatalf("connection %d: server read %q, %v; want %q", i, got, err, msg)
		}
	}
	for i := range clients {
		_ = clients[i].CloseWithError(jsperr.NoError, "")
		_ = servers[i].CloseWithError(jsperr.NoError, "")
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := uc.WriteTo([]byte{0}, uc.LocalAddr()); err != nil {
		t.Fatalf("the Dialer closed the caller's socket: %v", err)
	}
}
