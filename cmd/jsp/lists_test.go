package main

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/client"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/security/ddos"
	"github.com/jetstreamproto/jsp/server/gateway"
)

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestListFileReload: with a running gateway, a block-list file with a
// bad line keeps the lists in force (the log names the line) and the
// client stays; the corrected file, picked up by polling, closes the open
// client with BLOCKED and refuses a new one; SIGHUP reloads too.
func TestListFileReload(t *testing.T) {
	srv := startCLIServer(t)
	dir := t.TempDir()
	blockFile := filepath.Join(dir, "block.txt")
	if err := os.WriteFile(blockFile, []byte("# nothing blocked yet\n192.0.2.0/24\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	lf := &listFiles{blockFile: blockFile, poll: 10 * time.Millisecond, log: slog.New(slog.NewTextHandler(&logs, nil))}
	l, err := lf.initial()
	if err != nil || len(l.Block) != 1 {
		t.Fatalf("initial lists %+v, %v", l, err)
	}
	if _, err := srv.g.SetLists(l); err != nil {
		t.Fatal(err)
	}
	hup := make(chan os.Signal, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		lf.watch(ctx, gatewaySink(func() *gateway.Gateway { return srv.g }), hup)
	}()
	defer func() { cancel(); <-done }()

	dctx, dcancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer dcancel()
	o, err := (&dialFlags{pins: []string{srv.pin}, timeout: 10 * time.Second, logLevel: "error"}).options(io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	url := "jsp+tcp://127.0.0.1:" + srv.port
	c, err := client.Dial(dctx, url, o)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	// A bad line: the old list stays, the client stays.
	if err := os.WriteFile(blockFile, []byte("127.0.0.0/8\n127.0.0.300/32  # typo\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the failed reload's log line", func() bool {
		return strings.Contains(logs.String(), "list reload failed") && strings.Contains(logs.String(), "line 2")
	})
	if got := srv.g.Lists().Block; len(got) != 1 || got[0] != netip.MustParsePrefix("192.0.2.0/24") {
		t.Fatalf("lists after a bad file: %v", got)
	}
	if _, err := c.Ping(dctx); err != nil {
		t.Fatalf("client after a bad file: %v", err)
	}
	// The bad version is logged once, not at every poll.
	time.Sleep(50 * time.Millisecond)
	if n := strings.Count(logs.String(), "list reload failed"); n != 1 {
		t.Fatalf("bad file logged %d times", n)
	}

	// Fixed: the open client is closed with BLOCKED, a new one refused.
	if err := os.WriteFile(blockFile, []byte("127.0.0.0/8 # loopback\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Done():
		if jsperr.CodeOf(c.Err()) != jsperr.Blocked {
			t.Fatalf("client ended with %v, want BLOCKED", c.Err())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("client from a newly blocked prefix still connected")
	}
	if c2, err := client.Dial(dctx, url, o); err == nil {
		c2.Close()
		t.Fatal("blocked client connected")
	} else if jsperr.CodeOf(err) != jsperr.Blocked {
		t.Fatalf("blocked connect: %v, want BLOCKED", err)
	}

	// SIGHUP reloads a file even when polling saw no change: the lists
	// are set afresh from it.
	if _, err := srv.g.SetLists(ddos.Lists{}); err != nil {
		t.Fatal(err)
	}
	hup <- os.Interrupt // any value: the watcher only receives
	waitUntil(t, "the SIGHUP reload", func() bool { return len(srv.g.Lists().Block) == 1 })
	if !strings.Contains(logs.String(), "trigger=SIGHUP") {
		t.Fatalf("no SIGHUP reload logged:\n%s", logs.String())
	}
}

// TestListFilesStartup: --block-file and --allow-file add to --block and
// --allow; a bad file stops the start with the line number.
func TestListFilesStartup(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	bad := filepath.Join(dir, "bad")
	_ = os.WriteFile(good, []byte("10.0.0.0/8\n"), 0o600)
	_ = os.WriteFile(bad, []byte("\n\nnope\n"), 0o600)
	f := serverFlags{blockFile: good, allowFile: good, listPoll: time.Second}
	cfg := gateway.Config{}
	cfg.DDoS.Block = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	if err := f.listFiles(&cfg, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if len(cfg.DDoS.Block) != 2 || len(cfg.DDoS.Allow) != 1 || f.node.lists == nil {
		t.Fatalf("lists %+v", cfg.DDoS)
	}
	f = serverFlags{blockFile: bad}
	if err := f.listFiles(&gateway.Config{}, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "line 3") {
		t.Fatalf("bad file: %v", err)
	}
}
