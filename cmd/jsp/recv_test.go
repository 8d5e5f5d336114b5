package main

import (
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jetstreamproto/jsp/session"
)

func TestRecvErrors(t *testing.T) {
	checkLeaks(t)
	srv := startCLIServer(t)
	dst := filepath.Join(t.TempDir(), "x")
	_, _, err := runCLI(t, newRecvCmd(), "missing.bin", srv.url("jsp+tcp"), "--pin", srv.pin, "-o", dst)
	if err == nil || !strings.Contains(err.Error(), "NOT_FOUND") {
		t.Fatalf("recv of a missing file: %v, want NOT_FOUND", err)
	}
	if _, err := os.Stat(dst); !os.IsNotExist(err) {
		t.Fatalf("a failed download left %s behind (%v)", dst, err)
	}
	entries, _ := os.ReadDir(filepath.Dir(dst))
	if len(entries) != 0 {
		t.Fatalf("a failed download left files behind: %v", entries)
	}
}

// TestRecvRejectsBadDownloads: whatever the server claims, a download whose
// bytes do not match the stat is refused and not kept.
func TestRecvRejectsBadDownloads(t *testing.T) {
	checkLeaks(t)
	good := []byte("the right content")
	goodSum := sha256.Sum256(good)
	stat := fmt.Sprintf(`{"size":%d,"sha256":"%x"}`, len(good), goodSum)
	okLine := fmt.Sprintf("OK %d %x\n", len(good), goodSum)
	tests := []struct {
		name string
		send string // what the server writes on file.get
		want string
	}{
		{name: "same size, other bytes", send: okLine + "the wrong content", want: "SHA-256 mismatch"},
		{name: "too many bytes", send: okLine + string(good) + "!", want: "received 18 bytes"},
		{name: "too few bytes", send: okLine + string(good[:5]), want: "received 5 bytes"},
		{name: "status disagrees with stat", send: fmt.Sprintf("OK %d %x\n", len(good), sha256.Sum256([]byte("x"))), want: "changed on the server"},
		{name: "refusal", send: "ERR NOT_FOUND gone\n", want: "server refused: NOT_FOUND gone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startFakeFileServer(t, stat, func(st *session.Stream) {
				_, _ = io.WriteString(st, tt.send)
				_ = st.Close()
			})
			dst := filepath.Join(t.TempDir(), "out")
			_, _, err := runCLI(t, newRecvCmd(), "f", srv.url, "--pin", srv.pin, "-o", dst, "-q")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("recv: %v, want containing %q", err, tt.want)
			}
			entries, _ := os.ReadDir(filepath.Dir(dst))
			if len(entries) != 0 {
				t.Fatalf("a refused download left files behind: %v", entries)
			}
		})
	}
	// Stat replies that are not what the files service sends.
	for stat, want := range map[string]string{
		`{"size":1,"sha256":"zz"}`:                                "bad reply",
		`{"size":-1,"sha256":"` + strings.Repeat("00", 32) + `"}`: "bad reply",
		`not json`: "invalid character",
		`{"size":1,"sha256":"` + strings.Repeat(" ", maxStatReply) + `"}`: "reply of",
	} {
		srv := startFakeFileServer(t, stat, func(st *session.Stream) { _ = st.Close() })
		if _, _, err := runCLI(t, newRecvCmd(), "f", srv.url, "--pin", srv.pin, "-o", filepath.Join(t.TempDir(), "o")); err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("recv with stat reply %.40q: %v, want containing %q", stat, err, want)
		}
	}
}
