package quic

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
)

func newUDP(t testing.TB) *net.UDPConn {
	t.Helper()
	uc, err := net.ListenUDP("udp", nil)
	if err != nil {
		t.Fatalf("ListenUDP: %v", err)
	}
	return uc
}

// TestMigrateMidTransfer moves a client to new sockets twice while it sends
// a stream, and checks the data arrives whole, the connection survives and
// the sockets it moved off are closed.
func TestMigrateMidTransfer(t *testing.T) {
	for _, tc := range []struct {
		name     string
		callerPC bool // the first socket comes from Config.PacketConn
	}{
		{"own socket", false},
		{"caller's socket", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Migratable: true}
			if tc.callerPC {
				cfg.PacketConn = newUDP(t)
				t.Cleanup(func() { cfg.PacketConn.Close() })
			}
			cc, sc := pair(t, cfg, Config{})
			ctx := testCtx(t, 20*time.Second)
			payload := make([]byte, 3<<20)
			rand.Read(payload)
			want := sha256.Sum256(payload)

			got := make(chan [32]byte, 1)
			rerr := make(chan error, 1)
			go func() {
				st, err := sc.AcceptStream(ctx)
				if err != nil {
					rerr <- err
					return
				}
				h := sha256.New()
				if _, err := io.Copy(h, st); err != nil {
					rerr <- err
					return
				}
				var sum [32]byte
				copy(sum[:], h.Sum(nil))
				got <- sum
			}()
			st, err := cc.OpenStream(ctx, protocol.ClassBulk)
			if err != nil {
				t.Fatalf("OpenStream: %v", err)
			}
			firstLocal := cc.LocalAddr().String()
			chunk := len(payload) / 3
			var retired []*retirableConn
			for i := range 3 {
				if _, err := st.Write(payload[i*chunk : (i+1)*chunk]); err != nil {
					t.Fatalf("Write part %d: %v", i, err)
				}
				if i == 2 {
					break
				}
				cc.migrateMu.Lock()
				if cur := cc.current; cur != nil && cur.owned {
					retired = append(retired, cur.pc)
				}
				cc.migrateMu.Unlock()
				if err := cc.Migrate(ctx, newUDP(t)); err != nil {
					t.Fatalf("Migrate %d: %v", i, err)
				}
			}
			if err := st.Close(); err != nil {
				t.Fatalf("Close stream: %v", err)
			}
			select {
			case sum := <-got:
				if !bytes.Equal(sum[:], want[:]) {
					t.Fatalf("SHA-256 %x, want %x", sum, want)
				}
			case err := <-rerr:
				t.Fatalf("server read: %v", err)
			case <-ctx.Done():
				t.Fatal("transfer did not complete")
			}
			if err := cc.Context().Err(); err != nil {
				t.Fatalf("connection ended: %v", err)
			}
			wantRetired := 2
			if tc.callerPC {
				wantRetired = 1 // the caller's socket is the caller's to close
			}
			if len(retired) != wantRetired {
				t.Fatalf("%d retired sockets, want %d", len(retired), wantRetired)
			}
			{
				for i, r := range retired {
					if _, err := r.PacketConn.WriteTo([]byte{0}, sc.LocalAddr()); !errors.Is(err, net.ErrClosed) {
						t.Fatalf("old socket %d still open: write error %v", i, err)
					}
				}
			}
			if tc.callerPC {
				if _, err := cfg.PacketConn.WriteTo([]byte{0}, cfg.PacketConn.LocalAddr()); err != nil {
					t.Fatalf("the caller's socket was closed: %v", err)
				}
			}
			if sc.RemoteAddr().String() == firstLocal {
				t.Fatalf("server still sees the first address %s", firstLocal)
			}
		})
	}
}

// TestMigrateRefused fails without touching the connection and closes the
// offered socket.
func TestMigrateRefused(t *testing.T) {
	for _, tc := range []struct {
		name       string
		migratable bool
		closeFirst bool
		want       error
	}{
		{"not migratable", false, false, ErrNotMigratable},
		{"closed", true, true, ErrMigrationClosed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc, sc := pair(t, Config{Migratable: tc.migratable}, Config{})
			if tc.closeFirst {
				if err := cc.CloseWithError(jsperr.NoError, ""); err != nil {
					t.Fatalf("CloseWithError: %v", err)
				}
			}
			uc := newUDP(t)
			if err := cc.Migrate(testCtx(t, 5*time.Second), uc); !errors.Is(err, tc.want) {
				t.Fatalf("Migrate: %v, want %v", err, tc.want)
			}
			if _, err := uc.WriteTo([]byte{0}, uc.LocalAddr()); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("offered socket not closed: %v", err)
			}
			if !tc.closeFirst && cc.Context().Err() != nil {
				t.Fatal("refused Migrate ended the connection")
			}
			// The server side never migrates.
			uc2 := newUDP(t)
			if err := sc.Migrate(testCtx(t, 5*time.Second), uc2); !errors.Is(err, ErrNotMigratable) {
				t.Fatalf("server Migrate: %v, want ErrNotMigratable", err)
			}
		})
	}
}
