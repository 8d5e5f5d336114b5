package bench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// tlsEnv is the TLS configuration every test and benchmark uses.
var tlsEnv TLS

func TestMain(m *testing.M) {
	// quic-go warns once when the kernel caps UDP buffers below what it
	// asks for; both QUIC stacks run with the same buffers either way.
	os.Setenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING", "true")
	var err error
	if tlsEnv, err = NewTLS(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	goleak.VerifyTestMain(m)
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestStacks runs every workload once per stack with small sizes and checks
// what arrives: the harness must measure transfers that really happen.
func TestStacks(t *testing.T) {
	// Odd sizes exercise partial chunks and reads.
	data := randomBytes(3*ChunkSize+17, 3)
	for _, p := range Pairs() {
		for _, st := range []Stack{p.JSP, p.Raw} {
			t.Run(p.Transport+"/"+st.Name, func(t *testing.T) {
				ctx := testCtx(t)
				srv := serve(t, st)

				bulk := connect(t, ctx, st, srv)
				for _, verify := range []bool{true, false, true} {
					ack, err := bulk.Bulk(ctx, data, verify)
					if err != nil {
						t.Fatalf("Bulk(verify=%v): %v", verify, err)
					}
					if err := ack.Check(data, verify); err != nil {
						t.Fatal(err)
					}
					if !verify && ack.Digest != ([sha256.Size]byte{}) {
						t.Fatal("unverified transfer came back with a digest")
					}
				}
				// An empty transfer is acknowledged too.
				if ack, err := bulk.Bulk(ctx, nil, true); err != nil || ack.Check(nil, true) != nil {
					t.Fatalf("empty transfer: %+v %v", ack, err)
				}

				rtt := connect(t, ctx, st, srv)
				for _, n := range []int{1, 64, 1 << 10, 5000} {
					p := randomBytes(n, uint64(n))
					out := make([]byte, n)
					for range 3 {
						clear(out)
						if err := rtt.Echo(ctx, p, out); err != nil {
							t.Fatalf("Echo(%d bytes): %v", n, err)
						}
						if !bytes.Equal(out, p) {
							t.Fatalf("Echo(%d bytes) returned different bytes", n)
						}
					}
				}

				for range 2 {
					c, err := st.Connect(ctx, srv.Addr(), tlsEnv)
					if err != nil {
						t.Fatalf("handshake: %v", err)
					}
					if err := c.Close(); err != nil {
						t.Fatalf("close after handshake: %v", err)
					}
				}
				if err := bulk.Close(); err != nil {
					t.Fatal(err)
				}
				if err := rtt.Close(); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

// TestRawTLSModes checks that a raw TLS connection refuses to mix
// workloads, which its server could not tell apart.
func TestRawTLSModes(t *testing.T) {
	ctx := testCtx(t)
	st := RawTLS()
	c := connect(t, ctx, st, serve(t, st))
	p := []byte("ping")
	if err := c.Echo(ctx, p, make([]byte, len(p))); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Bulk(ctx, p, false); err == nil || !strings.Contains(err.Error(), "cannot do") {
		t.Fatalf("bulk on an echo connection: %v", err)
	}
}

func TestAckCheck(t *testing.T) {
	data := []byte("some data")
	good := Ack{Count: int64(len(data)), Digest: sha256.Sum256(data)}
	tests := []struct {
		name   string
		ack    Ack
		verify bool
		ok     bool
	}{
		{"verified", good, true, true},
		{"count only", Ack{Count: int64(len(data))}, false, true},
		{"short", Ack{Count: 3, Digest: good.Digest}, true, false},
		{"short unverified", Ack{Count: 3}, false, false},
		{"wrong digest", Ack{Count: good.Count, Digest: sha256.Sum256([]byte("other data"))}, true, false},
		{"missing digest", Ack{Count: good.Count}, true, false},
	}
	for _, tt := range tests {
		if err := tt.ack.Check(data, tt.verify); (err == nil) != tt.ok {
			t.Errorf("%s: Check = %v, want ok %v", tt.name, err, tt.ok)
		}
	}
	// The wire form round-trips.
	got, err := readAck(bytes.NewReader(good.append(nil)))
	if err != nil || got != good {
		t.Fatalf("readAck = %+v, %v", got, err)
	}
	if _, err := readAck(bytes.NewReader(good.append(nil)[:ackLen-1])); err == nil {
		t.Fatal("readAck accepted a truncated ack")
	}
}

func TestSink(t *testing.T) {
	data := randomBytes(2*ChunkSize+5, 4)
	tests := []struct {
		name    string
		limit   int64
		verify  bool
		want    int64
		wantErr bool
	}{
		{"to EOF", -1, true, int64(len(data)), false},
		{"to EOF unverified", -1, false, int64(len(data)), false},
		{"limit", ChunkSize + 1, true, ChunkSize + 1, false},
		{"limit past EOF", int64(len(data)) + 1, false, 0, true},
	}
	for _, tt := range tests {
		a, err := sink(bytes.NewReader(data), make([]byte, ChunkSize), tt.limit, tt.verify)
		if (err != nil) != tt.wantErr {
			t.Fatalf("%s: err %v", tt.name, err)
		}
		if err != nil {
			continue
		}
		if a.Count != tt.want {
			t.Fatalf("%s: count %d, want %d", tt.name, a.Count, tt.want)
		}
		if err := a.Check(data[:tt.want], tt.verify); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
	}
}

func TestLatencies(t *testing.T) {
	var l Latencies
	if l.Quantile(0.5) != 0 {
		t.Fatal("quantile without samples is not 0")
	}
	for i := 100; i >= 1; i-- {
		l.Add(time.Duration(i) * time.Microsecond)
	}
	tests := []struct {
		q    float64
		want time.Duration
	}{
		{0.01, 1 * time.Microsecond},
		{0.5, 50 * time.Microsecond},
		{0.99, 99 * time.Microsecond},
		{1, 100 * time.Microsecond},
		{0.001, 1 * time.Microsecond},
	}
	for _, tt := range tests {
		if got := l.Quantile(tt.q); got != tt.want {
			t.Errorf("Quantile(%v) = %v, want %v", tt.q, got, tt.want)
		}
	}
	l.Add(time.Millisecond) // unsorts; the next quantile sorts again
	if got := l.Quantile(1); got != time.Millisecond {
		t.Fatalf("max after Add = %v", got)
	}
	if l.Len() != 101 {
		t.Fatalf("Len = %d", l.Len())
	}
	l.Reset()
	if l.Len() != 0 || l.Quantile(0.5) != 0 {
		t.Fatal("Reset kept samples")
	}
	if Micros(1500*time.Nanosecond) != 1.5 {
		t.Fatal("Micros")
	}
}
