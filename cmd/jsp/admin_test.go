package main

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/jetstreamproto/jsp/client"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/security/credential"
	"github.com/jetstreamproto/jsp/security/devicekey"
	"github.com/jetstreamproto/jsp/server/storage"
)

// TestAdminDevices runs a server whose device registry is in its
// database, registers a device with `jsp admin device register`, connects
// with that device's key, and revokes it with `jsp admin device revoke`:
// the device's session is closed with DEVICE_REVOKED. A token without the
// admin scope is refused with FORBIDDEN.
func TestAdminDevices(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	keys := t.TempDir()
	out, err := runToken(t, "", "keygen", "--out", keys)
	if err != nil {
		t.Fatal(err)
	}
	kid := regexp.MustCompile(`key id ([0-9a-f]{16})`).FindStringSubmatch(out)[1]
	signKey, pub := filepath.Join(keys, "token-"+kid+".key"), filepath.Join(keys, "token-"+kid+".pub")
	issue := func(sub, scope string) string {
		t.Helper()
		out, err := runToken(t, "", "issue", "--key", signKey, "--aud", "jsp", "--sub", sub, "--scope", scope, "--ttl", "5m")
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}
	adminTok, userTok := issue("root", "admin"), issue("bob", "chat")

	dir := t.TempDir()
	f := serverFlags{dataDir: dir, quic: "127.0.0.1:0", tcp: "off", ws: "off", wsPath: "/jsp",
		drainGrace: 100 * time.Millisecond, maxSessions: 10, maxConnsPerIP: 10, logLevel: "error",
		authMode: "any", tokenKeys: []string{pub}, audience: "jsp", devices: devicesStore, maxHandshakesPerIP: 8,
		node: nodeFlags{role: roleAll, cluster: "jsp", db: defaultDSN(dir)}}
	cfg, err := f.config(io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DeviceCheckInterval = 200 * time.Millisecond
	srvOut := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- runNode(ctx, f.node, cfg, srvOut, nil) }()
	banner := waitOutput(t, srvOut, "SPKI pin")
	addr, _ := bannerTarget(t, banner, "jsp+quic")
	pin := regexp.MustCompile(`SPKI pin +(\S+)`).FindStringSubmatch(banner)[1]
	url := "jsp+quic://" + addr

	dev, err := devicekey.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	devID := dev.Public().ID().String()
	admin := func(tok string, args ...string) (string, error) {
		t.Helper()
		args = append(args, "--pin", pin, "--token", tok)
		stdout, _, err := runCLI(t, newAdminCmd(), args...)
		return stdout, err
	}
	if _, err := admin(userTok, "device", "register", url, "--key", dev.Public().String(), "--owner", "alice"); jsperr.CodeOf(err) != jsperr.Forbidden {
		t.Fatalf("register without the admin scope: %v, want FORBIDDEN", err)
	}
	if out, err := admin(adminTok, "device", "register", url, "--key", dev.Public().String(), "--owner", "alice", "--name", "phone"); err != nil || !strings.Contains(out, devID) {
		t.Fatalf("register: %v\n%s", err, out)
	}
	if _, err := admin(adminTok, "device", "register", url, "--key", dev.Public().String(), "--owner", "alice"); jsperr.CodeOf(err) != jsperr.Conflict {
		t.Fatalf("second register: %v, want CONFLICT", err)
	}
	if out, err := admin(adminTok, "device", "list", url); err != nil || !strings.Contains(out, devID) || !strings.Contains(out, "active") {
		t.Fatalf("list: %v\n%s", err, out)
	}

	// The device connects with a proof bound to its connection.
	dctx, dcancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer dcancel()
	o, err := (&dialFlags{pins: []string{pin}, timeout: 10 * time.Second, logLevel: "error"}).options(io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	o.Credentials = func(_ context.Context, cs tls.ConnectionState) ([]byte, error) {
		return credential.ForConnection("", dev, cs)
	}
	c, err := client.Dial(dctx, url, o)
	if err != nil {
		t.Fatalf("device connect: %v", err)
	}
	defer c.Close()

	if out, err := admin(adminTok, "device", "revoke", url, devID); err != nil || !strings.Contains(out, "1 session(s)") {
		t.Fatalf("revoke: %v\n%s", err, out)
	}
	select {
	case <-c.Done():
		if jsperr.CodeOf(c.Err()) != jsperr.DeviceRevoked {
			t.Fatalf("device session ended with %v, want DEVICE_REVOKED", c.Err())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("revoked device still connected")
	}
	if out, err := admin(adminTok, "device", "list", url, "--owner", "alice"); err != nil || !strings.Contains(out, "revoked") {
		t.Fatalf("list after revoke: %v\n%s", err, out)
	}
	// A revoked device cannot come back.
	if c2, err := client.Dial(dctx, url, o); err == nil {
		c2.Close()
		t.Fatal("revoked device connected")
	} else if jsperr.CodeOf(err) != jsperr.DeviceRevoked {
		t.Fatalf("revoked device connect: %v, want DEVICE_REVOKED", err)
	}
	// A device revoked through another gateway (here: straight in the
	// shared database) is disconnected at the next device check, one
	// heartbeat (DeviceCheckInterval) later.
	dev2, _ := devicekey.GenerateKey(nil)
	if _, err := admin(adminTok, "device", "register", url, "--key", dev2.Public().String(), "--owner", "alice"); err != nil {
		t.Fatal(err)
	}
	o.Credentials = func(_ context.Context, cs tls.ConnectionState) ([]byte, error) {
		return credential.ForConnection("", dev2, cs)
	}
	c3, err := client.Dial(dctx, url, o)
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	st, err := storage.Open(dctx, defaultDSN(dir), storage.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.RevokeDevice(dctx, dev2.Public().ID().String()); err != nil {
		t.Fatal(err)
	}
	st.Close()
	select {
	case <-c3.Done():
		if jsperr.CodeOf(c3.Err()) != jsperr.DeviceRevoked {
			t.Fatalf("second device ended with %v", c3.Err())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("device revoked elsewhere still connected")
	}
	_ = c.Close()
	_ = c3.Close()

	// User accounts (chat service): only a chat administrator may manage
	// them; disabling shows in the list and enabling undoes it.
	chatAdmin := issue("ops", "chat:admin")
	if _, err := admin(userTok, "user", "add", url, "carol"); jsperr.CodeOf(err) != jsperr.Forbidden {
		t.Fatalf("user add without chat:admin: %v, want FORBIDDEN", err)
	}
	if out, err := admin(chatAdmin, "user", "add", url, "carol", "--name", "Carol C"); err != nil || !strings.Contains(out, "Carol C") {
		t.Fatalf("user add: %v\n%s", err, out)
	}
	if out, err := admin(chatAdmin, "user", "disable", url, "carol"); err != nil || !regexp.MustCompile(`carol +Carol C +false +true`).MatchString(out) {
		t.Fatalf("user disable: %v\n%s", err, out)
	}
	if out, err := admin(chatAdmin, "user", "list", url); err != nil || !regexp.MustCompile(`carol +Carol C +false +true`).MatchString(out) {
		t.Fatalf("user list: %v\n%s", err, out)
	}
	if out, err := admin(chatAdmin, "user", "enable", url, "carol"); err != nil || !regexp.MustCompile(`carol +Carol C +false +false`).MatchString(out) {
		t.Fatalf("user enable: %v\n%s", err, out)
	}
	if _, err := admin(chatAdmin, "user", "disable", url, "nobody"); jsperr.CodeOf(err) != jsperr.UserNotFound {
		t.Fatalf("disable an unknown user: %v, want USER_NOT_FOUND", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
