//go:build unix

package websocket_test

import (
	"bufio"
	"context"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"net/http"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/proccpu"
	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/transport/mux"
	"github.com/jetstreamproto/jsp/transport/transporttest"
	"github.com/jetstreamproto/jsp/transport/websocket"
	"github.com/jetstreamproto/jsp/wire"
)

// BenchmarkClientReceive measures the client's receive path (Dial's
// framing, the link's reader, ReceiveDatagram) as a fan-out subscriber
// uses it: a server that costs next to nothing (a TLS socket writing
// prepared bytes) sends bursts of receiveBurst binary messages, each one
// link datagram of 200 bytes, and the client takes every one. One op is
// one datagram; cpu-ns/datagram is the process's CPU time per datagram,
// nearly all of it the client's.
func BenchmarkClientReceive(b *testing.B) {
	const receiveBurst = 64
	serverTLS, clientTLS := transporttest.TLSConfigs(b)
	conf := serverTLS.Clone()
	conf.NextProtos = []string{"http/1.1"}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", conf)
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()

	var burst []byte
	dg := wire.AppendFrame(nil, wire.FrameLinkDatagram, 0, 0, make([]byte, 200))
	for range receiveBurst {
		burst = append(burst, 0x82, 126) // FIN, binary; 16-bit length
		burst = binary.BigEndian.AppendUint16(burst, uint16(len(dg)))
		burst = append(burst, dg...)
	}
	send := make(chan struct{})
	served := make(chan error, 1)
	go func() {
		served <- func() error {
			nc, err := ln.Accept()
			if err != nil {
				return err
			}
			defer nc.Close()
			req, err := http.ReadRequest(bufio.NewReader(nc))
			if err != nil {
				return err
			}
			h := sha1.Sum([]byte(req.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
			if _, err := nc.Write([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
				"Sec-WebSocket-Accept: " + base64.StdEncoding.EncodeToString(h[:]) + "\r\n" +
				"Sec-WebSocket-Protocol: " + protocol.WebSocketSubprotocol + "\r\n\r\n")); err != nil {
				return err
			}
			for range send {
				if _, err := nc.Write(burst); err != nil {
					return err
				}
			}
			return nil
		}()
	}()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := websocket.Dial(ctx, "wss://"+ln.Addr().String()+"/jsp", clientTLS, mux.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.CloseWithError(0, "")
	bursts := max(1, b.N/receiveBurst)
	b.ResetTimer()
	cpu := proccpu.Self()
	for range bursts {
		send <- struct{}{}
		for range receiveBurst {
			if _, err := c.ReceiveDatagram(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	cpu = proccpu.Self() - cpu
	close(send)
	if err := <-served; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(bursts*receiveBurst), "cpu-ns/datagram")
}
