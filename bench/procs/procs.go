// Package procs starts and stops the server processes of the fan-out and
// idle-connection benchmarks (`jsp server`, Centrifugo, NATS, the bare
// floors), writes their configuration and certificates, and reads their
// CPU time and memory from /proc.
package procs

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Proc is a running server process.
type Proc struct {
	Name string
	Cmd  *exec.Cmd
	log  *syncBuffer
	done chan struct{}
}

// PID returns the process id.
func (p *Proc) PID() int { return p.Cmd.Process.Pid }

// Log returns what the process printed so far.
func (p *Proc) Log() string { return p.log.String() }

// Stop asks the process to end with SIGTERM and kills it after grace.
func (p *Proc) Stop(grace time.Duration) {
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.Cmd.Process.Kill()
		<-p.done
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b.Len() < 1<<20 {
		s.b.Write(p)
	}
	return len(p), nil
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Start runs bin with args and waits until ready returns true for the
// output so far (stdout and stderr together) or timeout passes.
func Start(name, bin string, args []string, ready func(out string) bool, timeout time.Duration) (*Proc, error) {
	cmd := exec.Command(bin, args...)
	buf := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = buf, buf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{Name: name, Cmd: cmd, log: buf, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	deadline := time.Now().Add(timeout)
	for !ready(buf.String()) {
		select {
		case <-p.done:
			return nil, fmt.Errorf("%s exited before it was ready: %s", name, tail(buf.String()))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.Stop(time.Second)
			return nil, fmt.Errorf("%s not ready after %v: %s", name, timeout, tail(buf.String()))
		}
	}
	return p, nil
}

func tail(s string) string {
	if len(s) > 2000 {
		return s[len(s)-2000:]
	}
	return s
}

// Listening returns a readiness check that dials addr over TCP.
func Listening(addr string) func(string) bool {
	return func(string) bool {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			return false
		}
		_ = c.Close()
		return true
	}
}

// Printed returns a readiness check that looks for s in the output.
func Printed(s string) func(string) bool {
	return func(out string) bool { return strings.Contains(out, s) }
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago and
// whose UDP twin was free too (QUIC and TCP share a port number in JSP).
func FreePort() (int, error) {
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		_ = l.Close()
		if err == nil {
			_ = u.Close()
			return port, nil
		}
	}
	return 0, errors.New("no free port")
}

// WriteCert creates a self-signed ECDSA P-256 certificate for 127.0.0.1
// and localhost in dir and returns the paths of its PEM certificate and
// key. Every server in a run uses it, so that TLS costs the same.
func WriteCert(dir string) (certFile, keyFile string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "bench"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", "", err
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return "", "", err
	}
	return certFile, keyFile, nil
}

// CentrifugoConfig returns a Centrifugo v6 configuration: memory broker
// (the default), anonymous clients allowed to subscribe and publish,
// WebSocket on addr, TLS when certFile is set, logs at error level, and
// Prometheus metrics (which include the Go heap) on the same port.
func CentrifugoConfig(addr, certFile, keyFile string) ([]byte, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	var p int
	if _, err := fmt.Sscan(port, &p); err != nil {
		return nil, err
	}
	httpServer := map[string]any{"address": host, "port": p}
	if certFile != "" {
		httpServer["tls"] = map[string]any{"enabled": true, "cert_pem": certFile, "key_pem": keyFile}
	}
	cfg := map[string]any{
		"log":         map[string]any{"level": "error"},
		"http_server": httpServer,
		"client": map[string]any{
			"insecure":        true,
			"allowed_origins": []string{"*"},
		},
		"channel": map[string]any{
			"without_namespace": map[string]any{
				"allow_subscribe_for_client": true,
				"allow_publish_for_client":   true,
			},
		},
		"prometheus": map[string]any{"enabled": true},
	}
	return json.MarshalIndent(cfg, "", "  ")
}

// RunDriver runs a driver process to completion and returns its result
// lines' text (stdout); stderr is returned in the error on failure.
func RunDriver(ctx context.Context, bin string, args []string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", filepath.Base(bin), strings.Join(args, " "), err, tail(stderr.String()))
	}
	return string(out), nil
}

// RunDriverPhases runs a driver process to completion like RunDriver and
// calls onLine for each line of its output as it arrives, so that the
// caller can sample the server at phase lines.
func RunDriverPhases(ctx context.Context, bin string, args []string, onLine func(string)) (string, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	var out strings.Builder
	ScanLines(stdout, func(l string) bool {
		out.WriteString(l)
		out.WriteByte('\n')
		onLine(l)
		return true
	})
	if err := cmd.Wait(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", filepath.Base(bin), strings.Join(args, " "), err, tail(stderr.String()))
	}
	return out.String(), nil
}

// ScanLines calls fn for each line r produces until it returns false.
func ScanLines(r io.Reader, fn func(string) bool) {
	s := bufio.NewScanner(r)
	for s.Scan() && fn(s.Text()) {
	}
}

// Workspace is what an orchestrator runs in: its own executable (started
// again as a driver or server), a scratch directory holding the TLS
// certificate every server of the run uses (WriteCert), and the result
// file lines are appended to (nil when none was asked for).
type Workspace struct {
	Self, Dir, Cert, Key string
	Out                  *os.File
}

// OpenWorkspace creates a workspace with a scratch directory named after
// prefix and, when outPath is not empty, opens outPath for appending.
// Close removes the directory and closes the file.
func OpenWorkspace(prefix, outPath string) (*Workspace, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	w := &Workspace{Self: self}
	if w.Dir, err = os.MkdirTemp("", prefix); err != nil {
		return nil, err
	}
	if w.Cert, w.Key, err = WriteCert(w.Dir); err != nil {
		w.Close()
		return nil, err
	}
	if outPath != "" {
		if w.Out, err = os.OpenFile(outPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); err != nil {
			w.Close()
			return nil, err
		}
	}
	return w, nil
}

// Close removes the scratch directory and closes the result file.
func (w *Workspace) Close() {
	if w.Out != nil {
		_ = w.Out.Close()
	}
	_ = os.RemoveAll(w.Dir)
}
