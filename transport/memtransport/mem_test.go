package memtransport_test

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/transport/memtransport"
	"github.com/jetstreamproto/jsp/transport/mux"
	"github.com/jetstreamproto/jsp/transport/transporttest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConformancePair(t *testing.T) {
	transporttest.Run(t, func(t *testing.T) (transport.Conn, transport.Conn) {
		c, s := memtransport.NewPair(mux.Config{})
		return c, s
	})
}

func TestConformanceListenDial(t *testing.T) {
	l, err := memtransport.Listen("conformance", mux.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	transporttest.Run(t, func(t *testing.T) (transport.Conn, transport.Conn) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := memtransport.Dial(ctx, "conformance", mux.Config{})
		if err != nil {
			t.Fatal(err)
		}
		s, err := l.Accept(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return c, s
	})
}

func TestListenerLifecycle(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := memtransport.Dial(ctx, "nobody", mux.Config{}); err == nil {
		t.Fatal("Dial to an unknown name succeeded")
	}
	l, err := memtransport.Listen("life", mux.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := memtransport.Listen("life", mux.Config{}); err == nil {
		t.Fatal("two listeners share a name")
	}
	if l.Addr().String() != "life" || l.Addr().Network() != "mem" {
		t.Fatalf("Addr = %v", l.Addr())
	}
	// A dialed connection never accepted is refused when the listener
	// closes: the client sees its link end.
	c, err := memtransport.Dial(ctx, "life", mux.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseWithError(0, "")
	l.Close()
	select {
	case <-c.Context().Done():
	case <-ctx.Done():
		t.Fatal("pending connection stayed open")
	}
	if jsperr.CodeOf(context.Cause(c.Context())) != jsperr.TransportClosed {
		t.Fatalf("cause %v", context.Cause(c.Context()))
	}
	if _, err := l.Accept(ctx); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("Accept after Close: %v", err)
	}
	// The name is free again.
	l2, err := memtransport.Listen("life", mux.Config{})
	if err != nil {
		t.Fatal(err)
	}
	l2.Close()
}

func TestPipe(t *testing.T) {
	t.Run("ordered and buffered", func(t *testing.T) {
		a, b := memtransport.Pipe(16)
		defer a.Close()
		defer b.Close()
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				a.Write([]byte{byte(i), byte(i), byte(i)}) // wraps the 16-byte ring
			}
			a.CloseWrite()
		}()
		got, err := io.ReadAll(b)
		wg.Wait()
		if err != nil || len(got) != 300 {
			t.Fatalf("read %d bytes, %v", len(got), err)
		}
		for i := range got {
			if got[i] != byte(i/3) {
				t.Fatalf("byte %d = %d", i, got[i])
			}
		}
	})
	t.Run("half close keeps the other direction", func(t *testing.T) {
		a, b := memtransport.Pipe(0)
		defer a.Close()
		defer b.Close()
		a.Write([]byte("req"))
		a.CloseWrite()
		if got, _ := io.ReadAll(b); string(got) != "req" {
			t.Fatalf("read %q", got)
		}
		b.Write([]byte("resp"))
		buf := make([]byte, 4)
		if _, err := io.ReadFull(a, buf); err != nil || string(buf) != "resp" {
			t.Fatalf("read %q %v", buf, err)
		}
		if _, err := a.Write([]byte("x")); err == nil {
			t.Fatal("Write after CloseWrite succeeded")
		}
	})
	t.Run("close unblocks and fails the peer's writes", func(t *testing.T) {
		a, b := memtransport.Pipe(4)
		errc := make(chan error, 1)
		go func() {
			_, err := a.Write(make([]byte, 100)) // blocks: nobody reads
			errc <- err
		}()
		time.Sleep(10 * time.Millisecond)
		b.Close()
		if err := <-errc; !errors.Is(err, io.ErrClosedPipe) {
			t.Fatalf("blocked Write after peer Close: %v", err)
		}
		if _, err := b.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Read after own Close: %v", err)
		}
		if n, err := a.Read(make([]byte, 1)); n != 0 || err != io.EOF {
			t.Fatalf("Read after peer Close: %d %v", n, err)
		}
		a.Close()
	})
	t.Run("empty read does not block", func(t *testing.T) {
		a, b := memtransport.Pipe(0)
		defer a.Close()
		defer b.Close()
		if n, err := b.Read(nil); n != 0 || err != nil {
			t.Fatalf("Read(nil) = %d %v", n, err)
		}
	})
}
