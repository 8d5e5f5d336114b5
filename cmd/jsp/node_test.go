package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/jetstreamproto/jsp/server/storage"
)

func TestNodeFlagsValidate(t *testing.T) {
	tests := []struct {
		name string
		n    nodeFlags
		want string // "" = valid
	}{
		{"all embedded", nodeFlags{role: roleAll, cluster: "jsp"}, ""},
		{"gateway with nats", nodeFlags{role: roleGateway, nats: []string{"nats://h:4222"}, cluster: "jsp"}, ""},
		{"core with nats", nodeFlags{role: roleCore, nats: []string{"nats://h:4222"}, cluster: "prod-1"}, ""},
		{"unknown role", nodeFlags{role: "edge", cluster: "jsp"}, "--role"},
		{"gateway without nats", nodeFlags{role: roleGateway, cluster: "jsp"}, "needs --nats"},
		{"core without nats", nodeFlags{role: roleCore, cluster: "jsp"}, "needs --nats"},
		{"listen with nats", nodeFlags{role: roleAll, nats: []string{"nats://h:4222"}, natsListen: ":4222", cluster: "jsp"}, "--nats-listen"},
		{"bad cluster", nodeFlags{role: roleAll, cluster: "a.b"}, "--cluster"},
		{"negative room cap", nodeFlags{role: roleAll, cluster: "jsp", voice: voiceFlags{maxParticipants: -1}}, "--voice-max-participants -1"},
		{"voice limits", nodeFlags{role: roleAll, cluster: "jsp", voice: voiceFlags{maxRooms: 5, maxParticipants: 500, maxTracks: 2}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.n.validate()
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("validate = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestRunNodeAll runs the default deployment (embedded NATS, SQLite, one
// core, the gateway) and checks that a PUBLISH is committed, ACKed and
// delivered with its storage sequence number, and that the data lands
// under the data directory.
func TestRunNodeAll(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dir := t.TempDir()
	f := serverFlags{dataDir: dir, quic: "127.0.0.1:0", tcp: "off", ws: "off", wsPath: "/jsp",
		drainGrace: 100 * time.Millisecond, maxSessions: 10, maxConnsPerIP: 10, logLevel: "error",
		authMode: "anonymous", maxHandshakesPerIP: 8,
		node: nodeFlags{role: roleAll, cluster: "jsp", db: defaultDSN(dir)}}
	cfg, err := f.config(io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	out := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- runNode(ctx, f.node, cfg, out, nil) }()
	banner := waitOutput(t, out, "SPKI pin")
	if !strings.Contains(banner, "role all, cluster \"jsp\", bus embedded NATS (in-process), storage sqlite:"+filepath.Join(dir, "jsp.db")) {
		t.Fatalf("banner:\n%s", banner)
	}
	publishThrough(t, banner, "hello")
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("runNode = %v", err)
	}
	// The message outlives the process in the SQLite file.
	st, err := storage.Open(context.Background(), defaultDSN(dir), storage.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	msgs, err := st.MessagesAfter(context.Background(), "lobby", 0, 10)
	if err != nil || len(msgs) != 1 || msgs[0].Seq != 1 {
		t.Fatalf("stored messages %+v %v", msgs, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "nats")); err != nil {
		t.Fatalf("JetStream directory: %v", err)
	}
}
