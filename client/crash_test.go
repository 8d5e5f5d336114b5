package client_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/client"
	"github.com/jetstreamproto/jsp/security/token"
	"github.com/jetstreamproto/jsp/transport/tlsconf"
)

// The crash test runs the real server, `jsp server` (embedded NATS, the
// core and SQLite under one data directory), as a child process, kills it
// with SIGKILL while clients publish and subscribe, and restarts it on the
// same data directory and port. The clients reconnect by themselves; the
// restarted server does not know their sessions (SESSION_NOT_FOUND), so
// they start new ones, subscribe again with Since and resend the PUBLISHes
// not yet acknowledged. Every acknowledged message must then be stored
// once and delivered to every subscriber exactly once, in order.

// lockedBuffer collects a child's output.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// buildJSP builds cmd/jsp into a temporary directory.
func buildJSP(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "jsp")
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		gobin = "go"
	}
	cmd := exec.Command(gobin, "build", "-o", bin, "github.com/jetstreamproto/jsp/cmd/jsp")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build cmd/jsp: %v\n%s", err, out)
	}
	return bin
}

// jspProcess is one run of `jsp server`.
type jspProcess struct {
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
}

func startJSP(t *testing.T, bin string, args []string) *jspProcess {
	t.Helper()
	p := &jspProcess{cmd: exec.Command(bin, args...), out: &lockedBuffer{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(p.kill)
	deadline := time.Now().Add(testTimeout)
	for !strings.Contains(p.out.String(), "SPKI pin") {
		select {
		case <-p.done:
			t.Fatalf("jsp server exited:\n%s", p.out.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("jsp server did not start:\n%s", p.out.String())
		}
	}
	return p
}

// kill sends SIGKILL and reaps the process.
func (p *jspProcess) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs `jsp server` as a child process")
	}
	bin := buildJSP(t)
	dir := t.TempDir()
	key, err := token.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM, err := token.MarshalPublicKeyPEM(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "token.pub")
	if err := os.WriteFile(keyFile, pubPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	args := []string{"server", "--data-dir", dir, "--quic", "127.0.0.1:" + port, "--tcp", "127.0.0.1:" + port,
		"--ws", "off", "--auth", "token", "--token-keys", keyFile, "--audience", "crash-test",
		"--log-level", "error", "--drain-grace", "100ms"}
	proc := startJSP(t, bin, args)
	m := regexp.MustCompile(`SPKI pin +(\S+)`).FindStringSubmatch(proc.out.String())
	pin, err := tlsconf.ParseFingerprint(m[1])
	if err != nil {
		t.Fatal(err)
	}

	options := func(user string) client.Options {
		tok, err := token.Sign(key, token.Claims{Audience: "crash-test", Subject: user,
			NotBefore: time.Now().Add(-time.Minute), Expiry: time.Now().Add(30 * time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		o := client.Options{Pins: []tlsconf.Fingerprint{pin}, Logger: quietLogger(), DialTimeout: 5 * time.Second}
		// A killed server sends no close; over QUIC the client notices
		// by its idle timeout, kept short here.
		o.Session.IdleTimeout = 1500 * time.Millisecond
		o.Info.Auth = []byte(tok)
		o.Reconnect.Enabled = true
		o.Reconnect.InitialBackoff = 20 * time.Millisecond
		o.Reconnect.MaxBackoff = 200 * time.Millisecond
		o.Recovery.AckDelay = 50 * time.Millisecond
		return o
	}
	dial := func(user, scheme string) *client.Client {
		c, err := client.Dial(ctxT(t), scheme+"://127.0.0.1:"+port, options(user))
		if err != nil {
			t.Fatalf("Dial %s: %v", user, err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}

	const (
		channel    = "crash"
		publishers = 3
		perPub     = 80
		kills      = 3
		total      = publishers * perPub
	)
	subs := []*client.Client{dial("sub0", client.SchemeTCP), dial("sub1", client.SchemeQUIC)}
	got := make([]*received, len(subs))
	for i, c := range subs {
		got[i] = newReceived()
		if _, err := c.Subscribe(ctxT(t), channel, got[i].handler, client.Since(0)); err != nil {
			t.Fatal(err)
		}
	}
	var acked atomic.Int64
	errs := make(chan error, publishers)
	var wg sync.WaitGroup
	pubs := make([]*client.Client, publishers)
	for p := range publishers {
		scheme := client.SchemeTCP
		if p == 0 {
			scheme = client.SchemeQUIC
		}
		pubs[p] = dial(fmt.Sprint("pub", p), scheme)
		wg.Go(func() {
			for n := range perPub {
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				err := pubs[p].PublishAcked(ctx, channel, fmt.Appendf(nil, "p%d-%03d", p, n))
				cancel()
				if err != nil {
					errs <- fmt.Errorf("publisher %d message %d: %w", p, n, err)
					return
				}
				acked.Add(1)
			}
		})
	}

	// kill -9 the server each time another share of the messages was
	// acknowledged, and restart it on the same data directory and port.
	start := time.Now()
	for k := 1; k <= kills; k++ {
		for acked.Load() < int64(k*total/(kills+1)) {
			select {
			case err := <-errs:
				t.Fatal(err)
			case <-time.After(5 * time.Millisecond):
			}
		}
		proc.kill()
		proc = startJSP(t, bin, args)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// The store, read back through the history service, holds each
	// message once, each publisher's in the order it published them.
	var stored []string
	for after := uint64(0); ; {
		page, err := subs[0].History(ctxT(t), client.HistoryQuery{Channel: channel, After: after, Limit: 500})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page.Events {
			if e.Seq != uint64(len(stored))+1 {
				t.Fatalf("stored seq %d after %d", e.Seq, len(stored))
			}
			stored = append(stored, string(e.Body))
			after = e.Seq
		}
		if !page.More {
			break
		}
	}
	if len(stored) != total {
		t.Fatalf("stored %d messages, want %d (each acknowledged message once)", len(stored), total)
	}
	next := make([]int, publishers)
	for _, b := range stored {
		var p, n int
		if _, err := fmt.Sscanf(b, "p%d-%d", &p, &n); err != nil || n != next[p] {
			t.Fatalf("stored %q out of order (want p%d-%03d)", b, p, next[p])
		}
		next[p]++
	}
	// Every subscriber received exactly the stored sequence.
	for i, g := range got {
		g.waitCount(t, total)
		g.checkContiguous(t, 1, total)
		g.mu.Lock()
		same := slices.Equal(g.body, stored)
		g.mu.Unlock()
		if !same {
			t.Fatalf("subscriber %d received another sequence than the store's", i)
		}
	}
	var resent, dups uint64
	for _, c := range pubs {
		resent += c.Stats().Resent
	}
	for _, c := range subs {
		dups += c.Stats().Duplicates
	}
	t.Logf("crash: %d kill -9 cycles in %v; %d messages published and acknowledged, %d stored; "+
		"each of %d subscribers received %d in order; PUBLISHes resent %d (de-duplicated by the server); duplicate events dropped by subscribers %d",
		kills, time.Since(start).Round(time.Millisecond), total, len(stored), len(subs), total, resent, dups)
}
