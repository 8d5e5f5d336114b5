package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/session"
	"github.com/jetstreamproto/jsp/transport/mux"
	"github.com/jetstreamproto/jsp/transport/tcptls"
	"github.com/jetstreamproto/jsp/transport/tlsconf"
	"github.com/jetstreamproto/jsp/wire"
)

func TestParseFileStatus(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	tests := []struct {
		line    string
		want    fileStatus
		wantErr string
	}{
		{line: "OK 12 " + sum + "\n", want: fileStatus{size: 12, sha256: sum}},
		{line: "OK 0 " + strings.ToUpper(sum) + "\r\n", want: fileStatus{size: 0, sha256: sum}},
		{line: "ERR NOT_FOUND no such file\n", wantErr: "server refused: NOT_FOUND no such file"},
		{line: "OK -1 " + sum, wantErr: "bad size"},
		{line: "OK x " + sum, wantErr: "bad size"},
		{line: "OK 1 abc", wantErr: "bad SHA-256"},
		{line: "OK 1 " + strings.Repeat("zz", 32), wantErr: "bad SHA-256"},
		{line: "OK 1", wantErr: "unexpected status"},
		{line: "HELLO", wantErr: "unexpected status"},
		{line: "", wantErr: "unexpected status"},
	}
	for _, tt := range tests {
		got, err := parseFileStatus(tt.line)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseFileStatus(%q) error = %v, want containing %q", tt.line, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("parseFileStatus(%q) = %+v, %v, want %+v", tt.line, got, err, tt.want)
		}
	}
}

func TestReadStatusLine(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr string
	}{
		{name: "line", in: "OK 1 x\nrest", want: "OK 1 x\n"},
		{name: "long but allowed", in: strings.Repeat("a", maxStatusLine-1) + "\n", want: strings.Repeat("a", maxStatusLine-1) + "\n"},
		{name: "too long", in: strings.Repeat("a", maxStatusLine+1) + "\n", wantErr: "longer than"},
		{name: "no newline", in: "OK 1", wantErr: "cut short"},
		{name: "empty", in: "", wantErr: "EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A small buffer exercises lines longer than one ReadSlice.
			got, err := readStatusLine(bufio.NewReaderSize(strings.NewReader(tt.in), 16))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v", got, err)
			}
		})
	}
}

// TestSendRecvRoundTrip uploads a file with `jsp send`, downloads it with
// `jsp recv` over each transport and compares.
func TestSendRecvRoundTrip(t *testing.T) {
	checkLeaks(t)
	srv := startCLIServer(t)
	dir := t.TempDir()
	data := make([]byte, 3<<20+123)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	src := filepath.Join(dir, "blob.bin")
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}

	out, errOut, err := runCLI(t, newSendCmd(), src, srv.url("jsp"), "--pin", srv.pin)
	if err != nil {
		t.Fatalf("send: %v\n%s", err, errOut)
	}
	if !strings.Contains(out, "verified by the server") || !strings.Contains(out, hex.EncodeToString(sum[:])) {
		t.Fatalf("send output:\n%s", out)
	}
	if !strings.Contains(errOut, "\rupload") || !strings.Contains(errOut, "100%") {
		t.Fatalf("no progress bar on stderr: %q", errOut)
	}
	stored, err := os.ReadFile(filepath.Join(srv.dir, "files", "blob.bin"))
	if err != nil || !bytes.Equal(stored, data) {
		t.Fatalf("server stored %d bytes (%v), want the %d sent", len(stored), err, len(data))
	}

	for _, scheme := range []string{"jsp+quic", "jsp+tcp", "wss"} {
		t.Run(scheme, func(t *testing.T) {
			dst := filepath.Join(dir, "out-"+strings.ReplaceAll(scheme, "+", "-"))
			out, errOut, err := runCLI(t, newRecvCmd(), "blob.bin", srv.url(scheme), "--pin", srv.pin, "-o", dst)
			if err != nil {
				t.Fatalf("recv: %v\n%s", err, errOut)
			}
			got, err := os.ReadFile(dst)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("downloaded %d bytes (%v), want the %d uploaded", len(got), err, len(data))
			}
			if !strings.Contains(out, "verified") || !strings.Contains(errOut, "\rdownload") {
				t.Fatalf("recv output %q, stderr %q", out, errOut)
			}
		})
	}

	// -o - writes the file to stdout and the report to stderr; --quiet
	// drops the bar.
	out, errOut, err = runCLI(t, newRecvCmd(), "blob.bin", srv.url("jsp+tcp"), "--pin", srv.pin, "-o", "-", "-q")
	if err != nil {
		t.Fatalf("recv -o -: %v", err)
	}
	if out != string(data) {
		t.Fatalf("stdout carries %d bytes, want the file's %d", len(out), len(data))
	}
	if strings.Contains(errOut, "\r") || !strings.Contains(errOut, "verified") {
		t.Fatalf("stderr with --quiet: %q", errOut)
	}
}

func TestSendRefused(t *testing.T) {
	checkLeaks(t)
	srv := startCLIServer(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "f.txt")
	if err := os.WriteFile(src, []byte("content"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The files service refuses names that could leave its directory.
	_, _, err := runCLI(t, newSendCmd(), src, srv.url("jsp+tcp"), "--pin", srv.pin, "--name", "../escape", "-q")
	if err == nil || !strings.Contains(err.Error(), "server refused") {
		t.Fatalf("send with a bad name: %v, want the server's refusal", err)
	}
	if _, _, err := runCLI(t, newSendCmd(), dir, srv.url("jsp+tcp"), "--pin", srv.pin); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("send of a directory: %v", err)
	}
	if _, _, err := runCLI(t, newSendCmd(), filepath.Join(dir, "missing"), srv.url("jsp+tcp"), "--pin", srv.pin); err == nil {
		t.Fatal("send of a missing file succeeded")
	}
}

// fakeFileServer is a bare JSP server over TLS/TCP whose files service
// answers what the test scripts, to check that the client does not take
// the server's word for it.
type fakeFileServer struct {
	url, pin string
	wg       sync.WaitGroup
}

// startFakeFileServer serves one connection: "stat" commands reply stat;
// file.put and file.get streams are handed to onStream.
func startFakeFileServer(t *testing.T, stat string, onStream func(st *session.Stream)) *fakeFileServer {
	t.Helper()
	cert, err := tlsconf.LoadOrCreateDevCert(t.TempDir(), nil, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tcptls.Listen("127.0.0.1:0", tlsconf.Server(cert), mux.Config{})
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeFileServer{
		url: "jsp+tcp://" + ln.Addr().String(),
		pin: tlsconf.SPKIFingerprint(cert.Leaf).String(),
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		conn, err := ln.Accept(ctx)
		if err != nil {
			return
		}
		s, err := session.Accept(ctx, conn, session.Config{Logger: slog.New(slog.DiscardHandler)}, session.ServerOptions{})
		if err != nil {
			return
		}
		defer s.Close()
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			for {
				st, err := s.AcceptStream(ctx)
				if err != nil {
					return
				}
				onStream(st)
			}
		}()
		for {
			in, err := s.Recv(ctx)
			if err != nil {
				return
			}
			if in.Type == wire.FrameCommand {
				_ = s.Reply(in.Envelope, []byte(stat), jsperr.NoError, "")
			}
		}
	}()
	t.Cleanup(func() { cancel(); _ = ln.Close(); f.wg.Wait() })
	return f
}

// TestSendRejectsWrongDigest: an upload the server acknowledges with
// another digest or size is reported as failed.
func TestSendRejectsWrongDigest(t *testing.T) {
	checkLeaks(t)
	src := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(src, []byte("payload"), 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("payload"))
	tests := []struct {
		name, status, want string
	}{
		{name: "other digest", status: fmt.Sprintf("OK 7 %x\n", sha256.Sum256([]byte("other"))), want: "server stored 7 bytes with SHA-256"},
		{name: "other size", status: fmt.Sprintf("OK 6 %x\n", sum), want: "server stored 6 bytes"},
		{name: "garbage", status: "WHAT\n", want: "unexpected status"},
		{name: "no status", status: "", want: "read the server's status"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startFakeFileServer(t, "", func(st *session.Stream) {
				_, _ = io.Copy(io.Discard, st)
				_, _ = io.WriteString(st, tt.status)
				_ = st.Close()
			})
			_, _, err := runCLI(t, newSendCmd(), src, srv.url, "--pin", srv.pin, "-q")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("send: %v, want containing %q", err, tt.want)
			}
		})
	}
	// And one the server confirms correctly succeeds.
	srv := startFakeFileServer(t, "", func(st *session.Stream) {
		if st.Label() != labelFilePut || st.Metadata()[metaSHA256] != hex.EncodeToString(sum[:]) || st.Metadata()[metaSize] != "7" {
			st.CancelWrite(jsperr.BadRequest)
			return
		}
		_, _ = io.Copy(io.Discard, st)
		_, _ = fmt.Fprintf(st, "OK 7 %x\n", sum)
		_ = st.Close()
	})
	if _, _, err := runCLI(t, newSendCmd(), src, srv.url, "--pin", srv.pin, "-q"); err != nil {
		t.Fatalf("send to an honest server: %v", err)
	}
}

// FuzzParseFileStatus: any line either fails or yields a status whose
// canonical form parses back to it.
func FuzzParseFileStatus(f *testing.F) {
	sum := strings.Repeat("ab", 32)
	for _, s := range []string{"OK 12 " + sum + "\n", "ERR NOT_FOUND x\n", "OK -1 " + sum, "OK 1 abc", "", "OK  1  " + sum} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		st, err := parseFileStatus(line)
		if err != nil {
			return
		}
		if st.size < 0 || len(st.sha256) != 64 {
			t.Fatalf("parseFileStatus(%q) = %+v", line, st)
		}
		again, err := parseFileStatus(fmt.Sprintf("OK %d %s\n", st.size, st.sha256))
		if err != nil || again != st {
			t.Fatalf("canonical form of %+v parses to %+v, %v", st, again, err)
		}
	})
}
