package websocket

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestSmallHijackerBuffers: the hijacked connection comes with the small
// buffers, and bytes the client sent right after its request are read
// first.
func TestSmallHijackerBuffers(t *testing.T) {
	type result struct {
		early     string
		rsz, wsz  int
		hijackErr error
	}
	got := make(chan result, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		nc, brw, err := smallHijacker{w}.Hijack()
		if err != nil {
			got <- result{hijackErr: err}
			return
		}
		defer nc.Close()
		_ = nc.SetReadDeadline(time.Now().Add(2 * time.Second)) // lost bytes fail, not hang
		// What the WebSocket library does: keep the buffered bytes and
		// read the rest from the bare connection.
		buffered, _ := brw.Reader.Peek(brw.Reader.Buffered())
		brw.Reader.Reset(io.MultiReader(bytes.NewReader(buffered), nc))
		b := make([]byte, 5)
		_, err = io.ReadFull(brw.Reader, b)
		got <- result{early: string(b), rsz: brw.Reader.Size(), wsz: brw.Writer.Size(), hijackErr: err}
		brw.Writer.WriteString("OK")
		brw.Writer.Flush()
	}))
	defer srv.Close()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\nEARLY"); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.hijackErr != nil {
		t.Fatal(r.hijackErr)
	}
	if r.early != "EARLY" {
		t.Fatalf("first bytes after the request = %q, want EARLY", r.early)
	}
	if r.rsz != serverReadBuffer || r.wsz != serverWriteBuffer {
		t.Fatalf("buffers %d/%d, want %d/%d", r.rsz, r.wsz, serverReadBuffer, serverWriteBuffer)
	}
	reply, err := io.ReadAll(bufio.NewReader(c))
	if err != nil || string(reply) != "OK" {
		t.Fatalf("reply %q, %v", reply, err)
	}
}
