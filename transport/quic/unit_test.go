package quic

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	quicgo "github.com/quic-go/quic-go"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
)

func TestConfigDefaults(t *testing.T) {
	c, err := resolve(Config{})
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		KeepAlivePeriod:                DefaultKeepAlivePeriod,
		MaxIdleTimeout:                 DefaultMaxIdleTimeout,
		HandshakeIdleTimeout:           DefaultHandshakeIdleTimeout,
		MaxDatagramSize:                protocol.DefaultMaxDatagramPayload,
		DatagramSendQueue:              DefaultDatagramSendQueue,
		MaxIncomingStreams:             protocol.DefaultMaxStreams,
		InitialStreamReceiveWindow:     DefaultInitialStreamReceiveWindow,
		MaxStreamReceiveWindow:         DefaultMaxStreamReceiveWindow,
		InitialConnectionReceiveWindow: DefaultInitialConnectionReceiveWindow,
		MaxConnectionReceiveWindow:     DefaultMaxConnectionReceiveWindow,
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("defaults\n got %+v\nwant %+v", c, want)
	}
	q := c.quicConfig()
	if q.KeepAlivePeriod != 15*time.Second || q.MaxIdleTimeout != 45*time.Second ||
		q.HandshakeIdleTimeout != 10*time.Second || !q.EnableDatagrams ||
		q.MaxIncomingStreams != 256 || q.MaxIncomingUniStreams >= 0 || q.Allow0RTT {
		t.Fatalf("quic-go config %+v", q)
	}
}

func TestConfigValidation(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"zero", Config{}, true},
		{"keep-alive off", Config{KeepAlivePeriod: -1}, true},
		{"datagram at limit", Config{MaxDatagramSize: MaxDatagramSizeLimit}, true},
		{"datagram over limit", Config{MaxDatagramSize: MaxDatagramSizeLimit + 1}, false},
		{"negative datagram", Config{MaxDatagramSize: -1}, false},
		{"negative idle", Config{MaxIdleTimeout: -time.Second}, false},
		{"negative handshake", Config{HandshakeIdleTimeout: -time.Second}, false},
		{"negative streams", Config{MaxIncomingStreams: -1}, false},
		{"negative queue", Config{DatagramSendQueue: -1}, false},
		{"negative window", Config{InitialStreamReceiveWindow: -1}, false},
		{"initial above max stream window", Config{InitialStreamReceiveWindow: 2 << 20, MaxStreamReceiveWindow: 1 << 20}, false},
		{"initial above max conn window", Config{InitialConnectionReceiveWindow: 2 << 20, MaxConnectionReceiveWindow: 1 << 20}, false},
		{"big initial raises default max", Config{InitialStreamReceiveWindow: 8 << 20}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := resolve(tt.cfg)
			if (err == nil) != tt.ok {
				t.Fatalf("resolve: %v, want ok=%v", err, tt.ok)
			}
			if err == nil && c.InitialStreamReceiveWindow > c.MaxStreamReceiveWindow {
				t.Fatal("resolved initial window above maximum")
			}
		})
	}
	if q := (&Config{KeepAlivePeriod: -1}).quicConfig(); q.KeepAlivePeriod != 0 {
		t.Fatalf("negative keep-alive became %v, want 0 (off)", q.KeepAlivePeriod)
	}
}

func TestConnErrorMapping(t *testing.T) {
	tests := []struct {
		name   string
		in     error
		code   jsperr.Code
		remote bool
		reason string
	}{
		{"remote app close", &quicgo.ApplicationError{Remote: true, ErrorCode: 0x302, ErrorMessage: "slow"}, jsperr.RateLimited, true, "slow"},
		{"local app close", &quicgo.ApplicationError{ErrorCode: 0x103, ErrorMessage: "bye"}, jsperr.GoingAway, false, "bye"},
		{"idle", &quicgo.IdleTimeoutError{}, jsperr.IdleTimeout, false, ""},
		{"handshake timeout", &quicgo.HandshakeTimeoutError{}, jsperr.HandshakeTimeout, false, ""},
		{"tls alert", &quicgo.TransportError{Remote: true, ErrorCode: 0x100 + 120}, jsperr.TlsRequired, true, ""},
		{"flow control", &quicgo.TransportError{ErrorCode: quicgo.FlowControlError}, jsperr.FlowControlError, false, ""},
		{"stream limit", &quicgo.TransportError{Remote: true, ErrorCode: quicgo.StreamLimitError}, jsperr.StreamLimit, true, ""},
		{"protocol violation", &quicgo.TransportError{ErrorCode: quicgo.ProtocolViolation}, jsperr.ProtocolViolation, false, ""},
		{"other transport", &quicgo.TransportError{ErrorCode: quicgo.InternalError}, jsperr.TransportClosed, false, ""},
		{"stateless reset", &quicgo.StatelessResetError{}, jsperr.TransportClosed, false, ""},
		{"wrapped", fmt.Errorf("ctx: %w", &quicgo.IdleTimeoutError{}), jsperr.IdleTimeout, false, ""},
		{"plain", net.ErrClosed, jsperr.TransportClosed, false, ""},
		{"already jsp", jsperr.New(jsperr.Blocked, "no"), jsperr.Blocked, false, "no"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := connError(tt.in)
			je, ok := errors.AsType[*jsperr.Error](got)
			if !ok {
				t.Fatalf("connError(%v) = %v, no *jsperr.Error", tt.in, got)
			}
			if je.Code != tt.code || je.Remote != tt.remote {
				t.Fatalf("code %s remote %v, want %s remote %v", je.Code, je.Remote, tt.code, tt.remote)
			}
			if tt.reason != "" && je.Reason != tt.reason {
				t.Fatalf("reason %q, want %q", je.Reason, tt.reason)
			}
			if !errors.Is(got, tt.in) {
				t.Fatalf("mapped error lost its cause %v", tt.in)
			}
		})
	}
	if connError(nil) != nil {
		t.Fatal("connError(nil) != nil")
	}
}

func TestStreamErrorMapping(t *testing.T) {
	reset := &quicgo.StreamError{StreamID: 4, ErrorCode: quicgo.StreamErrorCode(jsperr.Forbidden), Remote: true}
	got := streamError(reset)
	je, ok := errors.AsType[*jsperr.Error](got)
	if !ok || je.Code != jsperr.StreamReset || !je.Remote {
		t.Fatalf("streamError(reset) = %#v", got)
	}
	if code, ok := ResetCode(got); !ok || code != jsperr.Forbidden {
		t.Fatalf("ResetCode = %v, %v", code, ok)
	}
	if _, ok := ResetCode(io.EOF); ok {
		t.Fatal("ResetCode(io.EOF) reported a reset")
	}
	for _, pass := range []error{io.EOF, os.ErrDeadlineExceeded, quicgo.ErrStreamClosed} {
		if got := streamError(pass); got != pass {
			t.Errorf("streamError(%v) = %v, want unchanged", pass, got)
		}
	}
	if got := streamError(&quicgo.IdleTimeoutError{}); jsperr.CodeOf(got) != jsperr.IdleTimeout {
		t.Errorf("idle timeout on a stream mapped to %v", got)
	}
}

func TestDatagramQueueDropsOldest(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	var got []string
	send := func(b []byte) error {
		<-release // a QUIC stack whose own queue is full
		mu.Lock()
		got = append(got, string(b))
		mu.Unlock()
		return nil
	}
	q := newDatagramQueue(3, send)

	buf := []byte("d0")
	q.push(buf)
	// Wait until the runner holds d0 inside send, so that the queue below
	// is exactly what waits behind it.
	for q.len() != 0 {
		time.Sleep(time.Millisecond)
	}
	buf[1] = 'X' // the queue must have copied
	for i := 1; i <= 5; i++ {
		q.push(fmt.Appendf(nil, "d%d", i))
	}
	if q.len() != 3 || q.dropped.Load() != 2 {
		t.Fatalf("queued %d dropped %d, want 3 and 2", q.len(), q.dropped.Load())
	}
	close(release)
	for q.sent.Load() != 4 {
		time.Sleep(time.Millisecond)
	}
	q.close()
	want := []string{"d0", "d3", "d4", "d5"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("sent %v, want %v (oldest dropped, order kept)", got, want)
	}
}

func TestDatagramQueueCountsRefusals(t *testing.T) {
	q := newDatagramQueue(4, func([]byte) error { return &quicgo.DatagramTooLargeError{MaxDatagramPayloadSize: 10} })
	q.push([]byte("a"))
	q.push([]byte("b"))
	for q.dropped.Load() != 2 {
		time.Sleep(time.Millisecond)
	}
	q.close()
	if q.sent.Load() != 0 {
		t.Fatalf("sent %d", q.sent.Load())
	}
}

// TestDatagramQueueRunsOnDemand: the queue's goroutine exists only while
// datagrams wait, and a push after it ended starts another (D27).
func TestDatagramQueueRunsOnDemand(t *testing.T) {
	var sent atomic.Int32
	q := newDatagramQueue(4, func([]byte) error { sent.Add(1); return nil })
	running := func() bool {
		q.mu.Lock()
		defer q.mu.Unlock()
		return q.running
	}
	if running() || q.ring != nil {
		t.Fatal("a fresh queue holds a goroutine or its ring")
	}
	for round := int32(1); round <= 3; round++ {
		q.push([]byte("x"))
		deadline := time.Now().Add(10 * time.Second)
		for (sent.Load() != round || running()) && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if sent.Load() != round || running() {
			t.Fatalf("round %d: sent %d, running %v; want %d sent and no goroutine", round, sent.Load(), running(), round)
		}
	}
	q.close()
	q.push([]byte("late"))
	if running() {
		t.Fatal("a push after close started a goroutine")
	}
}
