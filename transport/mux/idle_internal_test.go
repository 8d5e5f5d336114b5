package mux

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
)

// An idle link holds no send queue, timer or wake-up channels, and its
// queue counters survive the queue (D33).
func TestIdleLinkDropsSendState(t *testing.T) {
	a, b := net.Pipe()
	client, server := New(a, Config{}, true), New(b, Config{}, false)
	defer client.Close()
	defer server.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 3 {
		if err := client.SendDatagram([]byte{byte(i)}, protocol.ClassChat); err != nil {
			t.Fatal(err)
		}
		if _, err := server.ReceiveDatagram(ctx); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			client.mu.Lock()
			idle := !client.writerRunning && client.sched == nil && client.writeTimer == nil && client.sendWake == nil
			client.mu.Unlock()
			if idle {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("idle link kept its send state")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	q := client.Stats().Queues[protocol.ClassChat]
	if q.Queued != 3 || q.Sent != 3 || q.Len != 0 || q.Bytes != 0 {
		t.Fatalf("chat queue stats %+v, want 3 queued and sent, none left", q)
	}
	if client.acceptWake != nil || server.acceptWake != nil {
		t.Fatal("wake-up channel made without a waiter")
	}
}
