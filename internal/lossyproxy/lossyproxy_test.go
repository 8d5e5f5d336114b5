package lossyproxy

import (
	"net"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/simnet"
	"github.com/jetstreamproto/jsp/internal/testutil"
)

func TestMain(m *testing.M) { testutil.VerifyTestMain(m) }

// echoServer answers every UDP packet with the same bytes until the test
// ends.
func echoServer(t *testing.T) *net.UDPConn {
	t.Helper()
	srv, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			n, addr, err := srv.ReadFromUDP(buf)
			if err != nil {
				return
			}
			srv.WriteToUDP(buf[:n], addr)
		}
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return srv
}

func startProxy(t *testing.T, cfg Config) *Proxy {
	t.Helper()
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Error(err)
		}
	})
	return p
}

func dialProxy(t *testing.T, p *Proxy) *net.UDPConn {
	t.Helper()
	c, err := net.DialUDP("udp", nil, p.Addr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// exchange sends n short-header packets, one every gap, and counts the
// echoes that come back within a second of the last one.
func exchange(t *testing.T, c *net.UDPConn, n int, gap time.Duration) int {
	t.Helper()
	got := make(chan int, 1)
	go func() {
		buf := make([]byte, 2048)
		k := 0
		for {
			c.SetReadDeadline(time.Now().Add(time.Second))
			if _, err := c.Read(buf); err != nil {
				got <- k
				return
			}
			k++
		}
	}()
	for i := 0; i < n; i++ {
		// 0x40: a QUIC short header (first bit clear), so the links apply.
		if _, err := c.Write([]byte{0x40, byte(i), byte(i >> 8)}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(gap)
	}
	return <-got
}

func TestForwardsWithoutLoss(t *testing.T) {
	srv := echoServer(t)
	p := startProxy(t, Config{Target: srv.LocalAddr().String(), Up: simnet.Config{Seed: 1}, Down: simnet.Config{Seed: 2}})
	c := dialProxy(t, p)
	if got := exchange(t, c, 50, time.Millisecond); got != 50 {
		t.Fatalf("%d of 50 echoes came back through a lossless proxy", got)
	}
	st := p.Stats()
	if st.Up.Delivered != 50 || st.Down.Delivered != 50 {
		t.Fatalf("links delivered %d up, %d down; want 50 each", st.Up.Delivered, st.Down.Delivered)
	}
}

// TestLoss checks that the configured loss is applied in both directions:
// with 30% each way, an echo survives with probability 0.49. The links'
// own counters are exact, so the test asserts them against the packets
// seen at the ends, and the rate only loosely (400 packets: 3 sigma is
// about 7 points).
func TestLoss(t *testing.T) {
	srv := echoServer(t)
	p := startProxy(t, Config{
		Target: srv.LocalAddr().String(),
		Up:     simnet.Config{Seed: 3, Loss: 0.3},
		Down:   simnet.Config{Seed: 4, Loss: 0.3},
	})
	c := dialProxy(t, p)
	const n = 400
	got := exchange(t, c, n, 200*time.Microsecond)
	st := p.Stats()
	if st.Up.Sent != n || st.Up.Lost+st.Up.Delivered != n {
		t.Fatalf("up link: sent %d, lost %d, delivered %d; want %d sent, all accounted", st.Up.Sent, st.Up.Lost, st.Up.Delivered, n)
	}
	if uint64(got) != st.Down.Delivered {
		t.Fatalf("client got %d echoes, down link delivered %d", got, st.Down.Delivered)
	}
	rate := float64(got) / n
	if rate < 0.40 || rate > 0.58 {
		t.Fatalf("%.2f of echoes survived two 30%% links; want about 0.49", rate)
	}
	t.Logf("up lost %d, down lost %d, %d of %d echoes", st.Up.Lost, st.Down.Lost, got, n)
}

// TestDelay checks the configured one-way delay as a lower bound on the
// round trip: the proxy never delivers early. It asserts no upper bound.
func TestDelay(t *testing.T) {
	srv := echoServer(t)
	const oneWay = 20 * time.Millisecond
	p := startProxy(t, Config{
		Target: srv.LocalAddr().String(),
		Up:     simnet.Config{Seed: 5, Delay: oneWay, Jitter: 5 * time.Millisecond},
		Down:   simnet.Config{Seed: 6, Delay: oneWay},
	})
	c := dialProxy(t, p)
	buf := make([]byte, 16)
	for i := 0; i < 5; i++ {
		start := time.Now()
		if _, err := c.Write([]byte{0x40, byte(i)}); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(buf); err != nil {
			t.Fatal(err)
		}
		if rtt := time.Since(start); rtt < 2*oneWay {
			t.Fatalf("round trip %v shorter than twice the %v one-way delay", rtt, oneWay)
		}
	}
}

// TestLongHeaderBypass checks that QUIC long-header packets pass a link
// that drops everything, unless ImpairHandshake is set.
func TestLongHeaderBypass(t *testing.T) {
	for _, impair := range []bool{false, true} {
		srv := echoServer(t)
		p := startProxy(t, Config{
			Target:          srv.LocalAddr().String(),
			Up:              simnet.Config{Seed: 7, Loss: 1},
			Down:            simnet.Config{Seed: 8, Loss: 1},
			ImpairHandshake: impair,
		})
		c := dialProxy(t, p)
		c.Write([]byte{0xc0, 1}) // long header
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		_, err := c.Read(make([]byte, 16))
		if arrived := err == nil; arrived == impair {
			t.Fatalf("ImpairHandshake=%v: long-header echo arrived=%v", impair, arrived)
		}
		if st := p.Stats(); !impair && (st.UpBypassed != 1 || st.DownBypassed != 1) {
			t.Fatalf("bypass counters %d/%d, want 1/1", st.UpBypassed, st.DownBypassed)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no target", Config{}},
		{"bad loss", Config{Target: "127.0.0.1:1", Up: simnet.Config{Loss: 2}}},
		{"negative clients", Config{Target: "127.0.0.1:1", MaxClients: -1}},
		{"bad target", Config{Target: "not an address"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if p, err := New(tt.cfg); err == nil {
				p.Close()
				t.Fatal("New accepted the config")
			}
		})
	}
}

func TestMaxClients(t *testing.T) {
	srv := echoServer(t)
	p := startProxy(t, Config{Target: srv.LocalAddr().String(), MaxClients: 1})
	a, b := dialProxy(t, p), dialProxy(t, p)
	a.Write([]byte{0x40})
	a.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := a.Read(make([]byte, 4)); err != nil {
		t.Fatal(err)
	}
	b.Write([]byte{0x40})
	b.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := b.Read(make([]byte, 4)); err == nil {
		t.Fatal("second client forwarded over MaxClients 1")
	}
	if st := p.Stats(); st.DroppedClients != 1 {
		t.Fatalf("DroppedClients %d, want 1", st.DroppedClients)
	}
}
