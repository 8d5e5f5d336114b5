package websocket

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
)

// Buffer sizes of an accepted WebSocket connection (decision D27). The
// WebSocket library keeps, for the connection's whole life, the
// bufio.Reader and bufio.Writer that the HTTP server's Hijack hands over:
// 4 KiB each, some 8 KiB of heap per idle connection. Smaller ones cost
// little: the link's frame reader asks for 512 bytes while idle and 32 KiB
// while data flows, and a bufio.Reader passes a read at least as large as
// its buffer straight to the socket; the link writer hands over whole
// batches, and a bufio.Writer writes what does not fit straight through.
const (
	// serverReadBuffer is the read buffer of an accepted connection.
	serverReadBuffer = 1 << 10
	// serverWriteBuffer is the write buffer of an accepted connection:
	// one typical batch of small frames, header included, goes out in one
	// write.
	serverWriteBuffer = 2 << 10
)

// smallHijacker wraps the ResponseWriter handed to the WebSocket library so
// that its Hijack returns buffers of serverReadBuffer and serverWriteBuffer
// bytes instead of the HTTP server's.
type smallHijacker struct {
	http.ResponseWriter
}

// Hijack implements http.Hijacker. Bytes the HTTP server has read past the
// request (a client may send its first frames right after it) are kept in
// front of the connection.
func (w smallHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, fmt.Errorf("websocket: %T cannot hijack its connection", w.ResponseWriter)
	}
	nc, brw, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	br := bufio.NewReaderSize(nc, serverReadBuffer)
	if n := brw.Reader.Buffered(); n > 0 {
		// The early bytes must sit in the new reader's buffer, not in a
		// reader behind it: the WebSocket library keeps what is buffered
		// and replaces the source (Reset) with the bare connection.
		early, _ := brw.Reader.Peek(n)
		br = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(bytes.Clone(early)), nc), max(serverReadBuffer, n))
		if _, err := br.Peek(n); err != nil {
			nc.Close()
			return nil, nil, fmt.Errorf("websocket: keep bytes read past the upgrade request: %w", err)
		}
	}
	// The HTTP server flushed its writer before handing it over (the 101
	// response is on the wire), so nothing is lost by not using it.
	return nc, bufio.NewReadWriter(br, bufio.NewWriterSize(nc, serverWriteBuffer)), nil
}
