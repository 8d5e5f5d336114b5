package integrationtests

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/transport/tlsconf"
)

// startTimeout bounds the start of one process until it reports ready.
const startTimeout = 60 * time.Second

// buildJSP builds cmd/jsp into dir and returns the binary's path.
func buildJSP(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "jsp")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/jetstreamproto/jsp/cmd/jsp")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build cmd/jsp: %v\n%s", err, out)
	}
	return bin
}

// freePort returns a TCP port that was free a moment ago on 127.0.0.1.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// lockedBuffer collects a process's output.
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

// proc is one process of the test; it can be started again after it
// ended, with the same arguments.
type proc struct {
	name string
	path string
	args []string
	env  []string

	mu   sync.Mutex
	cmd  *exec.Cmd     // guarded by mu
	out  *lockedBuffer // guarded by mu: output of the current run
	done chan error    // guarded by mu: receives the exit of the current run
	logs []string      // guarded by mu: output of earlier runs
}

// start starts the process and waits until its output contains ready.
func (p *proc) start(t *testing.T, ready string) {
	t.Helper()
	if err := p.startErr(ready); err != nil {
		t.Fatal(err)
	}
}

// startErr is start for goroutines other than the test's.
func (p *proc) startErr(ready string) error {
	cmd := exec.Command(p.path, p.args...)
	cmd.Env = append(os.Environ(), p.env...)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: start: %w", p.name, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	p.mu.Lock()
	if p.out != nil {
		p.logs = append(p.logs, p.out.String())
	}
	p.cmd, p.out, p.done = cmd, out, done
	p.mu.Unlock()
	deadline := time.Now().Add(startTimeout)
	for !strings.Contains(out.String(), ready) {
		select {
		case err := <-done:
			done <- err
			return fmt.Errorf("%s exited before it was ready: %v\n%s", p.name, err, out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %v:\n%s", p.name, startTimeout, out.String())
		}
	}
	return nil
}

// output returns the current run's output.
func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.out == nil {
		return ""
	}
	return p.out.String()
}

// kill sends SIGKILL and waits for the process to end.
func (p *proc) kill(t *testing.T) {
	t.Helper()
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
	done <- nil
}

// stop sends SIGTERM and waits for a clean exit; it fails the test when
// the process does not exit with status 0 in time.
func (p *proc) stop(t *testing.T, timeout time.Duration) {
	t.Helper()
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case err := <-done:
		done <- err // already gone
		return
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		done <- err
		if err != nil {
			t.Errorf("%s: exit after SIGTERM: %v\n%s", p.name, err, p.output())
		}
	case <-time.After(timeout):
		_ = cmd.Process.Signal(syscall.SIGKILL)
		err := <-done
		done <- err
		t.Errorf("%s did not stop within %v after SIGTERM\n%s", p.name, timeout, p.output())
	}
}

// alive reports whether the current run has not ended.
func (p *proc) alive() bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case err := <-done:
		done <- err
		return false
	default:
		return true
	}
}

// pinOf reads the SPKI pin from a gateway's banner.
func pinOf(t *testing.T, banner string) tlsconf.Fingerprint {
	t.Helper()
	m := regexp.MustCompile(`SPKI pin +(\S+)`).FindStringSubmatch(banner)
	if m == nil {
		t.Fatalf("no pin in banner:\n%s", banner)
	}
	fp, err := tlsconf.ParseFingerprint(m[1])
	if err != nil {
		t.Fatal(err)
	}
	return fp
}

// httpGet returns the status and body of a GET on an operations
// listener.
func httpGet(ctx context.Context, addr, path string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String(), nil
}

// eventually polls cond every 20 ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func addr(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

func natsURLs(ports []int) string {
	var us []string
	for _, p := range ports {
		us = append(us, fmt.Sprintf("nats://127.0.0.1:%d", p))
	}
	return strings.Join(us, ",")
}
