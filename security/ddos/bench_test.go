package ddos

import (
	"context"
	"crypto/tls"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/jetstreamproto/jsp/internal/proccpu"
)

// BenchmarkRefusedPacket is the CPU cost of refusing one flood packet at
// the edge, before any transport state exists: a blocked source (CIDR
// block list) and a source over its per-/24 handshake cap.
func BenchmarkRefusedPacket(b *testing.B) {
	b.Run("blocked", func(b *testing.B) {
		f, err := New(Config{Block: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
		if err != nil {
			b.Fatal(err)
		}
		ip := netip.MustParseAddr("10.1.2.3")
		cpu := proccpu.Self()
		for b.Loop() {
			if f.Check(ip) == nil {
				b.Fatal("blocked address admitted")
			}
		}
		b.ReportMetric(float64(proccpu.Self()-cpu)/float64(b.N), "cpu-ns/packet")
	})
	b.Run("over-cap", func(b *testing.B) {
		f, err := New(Config{MaxHandshakesPerIP: 1})
		if err != nil {
			b.Fatal(err)
		}
		ip := netip.MustParseAddr("192.0.2.7")
		s, err := f.BeginHandshake(ip)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Release()
		cpu := proccpu.Self()
		for b.Loop() {
			if _, err := f.BeginHandshake(ip); err == nil {
				b.Fatal("handshake over the cap admitted")
			}
		}
		b.ReportMetric(float64(proccpu.Self()-cpu)/float64(b.N), "cpu-ns/packet")
	})
}

// quicServer is a quic-go listener on loopback whose Transport requires
// address validation (Retry) for every attempt when retry is set.
type quicServer struct {
	udp *net.UDPConn
	tr  *quic.Transport
	ln  *quic.Listener
	wg  sync.WaitGroup
}

func startQUIC(tb testing.TB, retry bool, cert tls.Certificate) *quicServer {
	tb.Helper()
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	s := &quicServer{udp: udp}
	s.tr = &quic.Transport{Conn: udp, VerifySourceAddress: func(net.Addr) bool { return retry }}
	s.ln, err = s.tr.Listen(&tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"jsp-bench"}},
		&quic.Config{HandshakeIdleTimeout: 30 * time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	s.wg.Go(func() {
		for {
			// The client closes each connection once its handshake is
			// done; closing here could beat the client's own completion.
			if _, err := s.ln.Accept(context.Background()); err != nil {
				return
			}
		}
	})
	return s
}

func (s *quicServer) close() {
	s.ln.Close()
	s.tr.Close()
	s.udp.Close()
	s.wg.Wait()
}

// BenchmarkQUICHandshake measures full QUIC handshakes (TLS 1.3, ECDSA
// P-256, X25519MLKEM768) one after another on loopback, client and server
// in this process, with and without a Retry round trip for address
// validation.
func BenchmarkQUICHandshake(b *testing.B) {
	cert := selfSigned(&testing.T{})
	for _, retry := range []bool{false, true} {
		name := "no-retry"
		if retry {
			name = "retry"
		}
		b.Run(name, func(b *testing.B) {
			s := startQUIC(b, retry, cert)
			defer s.close()
			ctx := context.Background()
			ctc := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"jsp-bench"}}
			n := 0
			cpu := proccpu.Self()
			for b.Loop() {
				conn, err := quic.DialAddr(ctx, s.udp.LocalAddr().String(), ctc, nil)
				if err != nil {
					b.Fatal(err)
				}
				conn.CloseWithError(0, "")
				n++
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "handshakes/s")
			// Client and server share this process: the CPU time is that
			// of both ends of one handshake.
			b.ReportMetric(float64(proccpu.Self()-cpu)/float64(n)/1e3, "cpu-µs/handshake")
		})
	}
}

// captureInitials records n client Initial datagrams, each of a separate
// dial (its own connection id), by dialling a socket that only listens.
func captureInitials(tb testing.TB, n int) [][]byte {
	tb.Helper()
	sink, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	defer sink.Close()
	ctc := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"jsp-bench"}}
	out := make([][]byte, 0, n)
	buf := make([]byte, 2048)
	for range n {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, _ = quic.DialAddr(ctx, sink.LocalAddr().String(), ctc, nil)
		}()
		k, _, err := sink.ReadFromUDP(buf)
		cancel()
		<-done
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, append([]byte(nil), buf[:k]...))
	}
	return out
}

// BenchmarkHalfOpenHandshakeMemory measures the server heap held per
// half-open QUIC handshake: a flood of client Initials (each a real
// ClientHello with its own connection id, from its own port) that never
// answer the server's handshake. With Retry the server answers statelessly
// and holds nothing.
func BenchmarkHalfOpenHandshakeMemory(b *testing.B) {
	const flood = 200
	cert := selfSigned(&testing.T{})
	initials := captureInitials(b, flood)
	for _, retry := range []bool{false, true} {
		name := "no-retry"
		if retry {
			name = "retry"
		}
		b.Run(name, func(b *testing.B) {
			var perConn float64
			for b.Loop() {
				s := startQUIC(b, retry, cert)
				socks := make([]*net.UDPConn, 0, flood)
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				for _, p := range initials {
					c, err := net.DialUDP("udp", nil, s.udp.LocalAddr().(*net.UDPAddr))
					if err != nil {
						b.Fatal(err)
					}
					socks = append(socks, c)
					if _, err := c.Write(p); err != nil {
						b.Fatal(err)
					}
				}
				// Let the server process every Initial and answer it.
				time.Sleep(300 * time.Millisecond)
				runtime.GC()
				runtime.ReadMemStats(&after)
				perConn = (float64(after.HeapAlloc) - float64(before.HeapAlloc)) / flood
				for _, c := range socks {
					c.Close()
				}
				s.close()
			}
			b.ReportMetric(perConn, "heap-B/half-open")
		})
	}
}
