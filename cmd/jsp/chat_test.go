package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/jetstreamproto/jsp/security/token"
)

// TestChatTwoTerminals runs the default single-process server with token
// keys and two `jsp chat` sessions, alice and bob, typing into each
// other's direct chat: posts, replies, reactions, edits and deletions show
// up live on the other side.
func TestChatTwoTerminals(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	node := startTokenNode(t, "chat-test")
	ctx, addr, pin, key := node.ctx, node.addr, node.pin, node.key
	dir := t.TempDir()

	type term struct {
		in   *io.PipeWriter
		out  *syncBuffer
		done chan error
	}
	start := func(user string, scopes ...string) *term {
		tok, err := token.Sign(key, token.Claims{Audience: "chat-test", Subject: user, Scopes: scopes, NotBefore: time.Now().Add(-time.Minute), Expiry: time.Now().Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		tokFile := filepath.Join(dir, user+".tok")
		if err := os.WriteFile(tokFile, []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cf := &chatFlags{dialFlags: dialFlags{pins: []string{pin}, timeout: 10 * time.Second, logLevel: "error"}, token: "@" + tokFile}
		pr, pw := io.Pipe()
		tm := &term{in: pw, out: &syncBuffer{}, done: make(chan error, 1)}
		go func() { tm.done <- runChat(ctx, cf, "jsp+tcp://"+addr, pr, tm.out, io.Discard) }()
		t.Cleanup(func() { _ = pw.Close() })
		waitOutput(t, tm.out, "signed in as "+user)
		return tm
	}
	typeLine := func(tm *term, line string) {
		t.Helper()
		if _, err := io.WriteString(tm.in, line+"\n"); err != nil {
			t.Fatal(err)
		}
	}
	alice := start("alice")
	bob := start("bob")
	typeLine(alice, "/dm bob hello bob")
	waitOutput(t, alice.out, "alice: hello bob")
	typeLine(bob, "/list")
	list := waitOutput(t, bob.out, "(direct)")
	dm := regexp.MustCompile(`(dm-[0-9a-f]+)`).FindString(list)
	if dm == "" {
		t.Fatalf("bob's list:\n%s", list)
	}
	typeLine(bob, "/open "+dm)
	waitOutput(t, bob.out, "alice: hello bob")
	seq := regexp.MustCompile(`\[#(\d+) [0-9:]+\] alice: hello bob`).FindStringSubmatch(bob.out.String())[1]
	typeLine(bob, "/typing")
	waitOutput(t, alice.out, "bob is typing")
	typeLine(bob, "/reply "+seq+" hi alice")
	waitOutput(t, alice.out, "bob (reply): hi alice")
	typeLine(bob, "/react "+seq+" 👍")
	waitOutput(t, alice.out, "bob reacted 👍 on a message (now 1)")
	typeLine(alice, "/edit "+seq+" hello bob, edited")
	waitOutput(t, bob.out, "alice edited #"+seq+": hello bob, edited")
	typeLine(alice, "/delete "+seq)
	waitOutput(t, bob.out, "alice deleted #"+seq)
	typeLine(bob, "/react "+seq+" 👎")
	waitOutput(t, bob.out, "! MESSAGE_DELETED")
	// Attachments go over a stream and are posted with their hash.
	file := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(file, []byte("attached notes"), 0o600); err != nil {
		t.Fatal(err)
	}
	typeLine(alice, "/attach "+file+" see file")
	waitOutput(t, bob.out, "notes.txt, 14 bytes]")
	// Presence comes from the session registry: both are connected.
	typeLine(alice, "/who")
	waitOutput(t, alice.out, "online")
	// Account administration needs the chat:admin scope.
	typeLine(bob, "/user add carol Carol")
	waitOutput(t, bob.out, "! FORBIDDEN")
	root := start("root", "chat:admin")
	typeLine(root, "/user add carol Carol")
	waitOutput(t, root.out, "Carol")
	typeLine(root, "/user disable carol")
	waitOutput(t, root.out, "Carol disabled")
	// History shows the tombstone in place.
	typeLine(bob, "/open "+dm)
	waitOutput(t, bob.out, "alice: (deleted)")
	// Presence is pushed: bob leaving shows up live in alice's open
	// direct chat.
	typeLine(bob, "/quit")
	if err := <-bob.done; err != nil {
		t.Fatalf("chat: %v", err)
	}
	waitOutput(t, alice.out, "* bob is offline (was online)")
	for _, tm := range []*term{alice, root} {
		typeLine(tm, "/quit")
		if err := <-tm.done; err != nil {
			t.Fatalf("chat: %v", err)
		}
	}
	if strings.Contains(alice.out.String(), "! ") {
		t.Fatalf("alice saw an error:\n%s", alice.out.String())
	}
	node.stop(t)
}

// tokenNode is a single-process server (role all) on TLS over TCP that
// admits anonymous clients and tokens for its audience.
type tokenNode struct {
	ctx       context.Context // ends when the node is stopped
	addr, pin string
	key       token.PrivateKey // signs tokens the node accepts
	cancel    context.CancelFunc
	done      chan error
}

func startTokenNode(t *testing.T, audience string) *tokenNode {
	t.Helper()
	return startTokenNodeWith(t, audience, nil)
}

// startTokenNodeWith is startTokenNode with the flags changed by edit
// before the node starts.
func startTokenNodeWith(t *testing.T, audience string, edit func(*serverFlags)) *tokenNode {
	t.Helper()
	dir := t.TempDir()
	keyFile, key := writeTokenKey(t, dir)
	f := serverFlags{dataDir: dir, quic: "off", tcp: "127.0.0.1:0", ws: "off", wsPath: "/jsp",
		drainGrace: 100 * time.Millisecond, maxSessions: 10, maxConnsPerIP: 10, logLevel: "error",
		authMode: "anonymous", tokenKeys: []string{keyFile}, audience: audience, maxHandshakesPerIP: 8,
		node: nodeFlags{role: roleAll, cluster: "jsp", db: defaultDSN(dir)}}
	if edit != nil {
		edit(&f)
	}
	cfg, err := f.config(io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	out := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	n := &tokenNode{ctx: ctx, key: key, cancel: cancel, done: make(chan error, 1)}
	go func() { n.done <- runNode(ctx, f.node, cfg, out, nil) }()
	banner := waitOutput(t, out, "SPKI pin")
	n.addr, _ = bannerTarget(t, banner, "jsp+tcp")
	n.pin = regexp.MustCompile(`SPKI pin +(\S+)`).FindStringSubmatch(banner)[1]
	return n
}

// stop shuts the node down and checks that it ended cleanly.
func (n *tokenNode) stop(t *testing.T) {
	t.Helper()
	n.cancel()
	if err := <-n.done; err != nil {
		t.Fatalf("runNode = %v", err)
	}
}
