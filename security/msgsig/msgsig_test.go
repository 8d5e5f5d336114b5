package msgsig

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/security/devicekey"
	"github.com/jetstreamproto/jsp/wire"
)

func signBytes(s *Signer, b []byte) []byte { return ed25519.Sign(s.key, b) }

var t0 = time.UnixMilli(vectorNow)

func newSigner(t testing.TB, k devicekey.PrivateKey, now time.Time) *Signer {
	t.Helper()
	s, err := NewSigner(k, SignerOptions{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func signedEnv(t testing.TB, s *Signer, body string) *wire.Envelope {
	t.Helper()
	env := &wire.Envelope{ID: []byte("id-" + body), Route: wire.Route{Kind: wire.RouteChannel, Name: "room"},
		Class: protocol.ClassChat, Headers: map[string]string{"app": "x"}, Body: []byte(body)}
	if err := s.Sign(env); err != nil {
		t.Fatal(err)
	}
	return env
}

// roundTrip re-decodes env as a receiver would.
func roundTrip(t testing.TB, env *wire.Envelope) *wire.Envelope {
	t.Helper()
	got, _, err := wire.ParseEnvelope(env.Append(nil))
	if err != nil {
		t.Fatal(err)
	}
	return &got
}

func TestSignSetsFields(t *testing.T) {
	k := seedKey(t, 1)
	s := newSigner(t, k, t0)
	shared := map[string]string{"app": "x"}
	env := &wire.Envelope{ID: []byte{1}, Route: wire.Route{Kind: wire.RouteChannel, Name: "c"}, Headers: shared}
	if err := s.Sign(env); err != nil {
		t.Fatal(err)
	}
	switch {
	case env.Timestamp != uint64(t0.UnixMilli()):
		t.Errorf("ts %d, want %d", env.Timestamp, t0.UnixMilli())
	case len(env.Nonce) != NonceSize:
		t.Errorf("nonce of %d bytes", len(env.Nonce))
	case env.Headers[SignerHeader] != k.Public().ID().String():
		t.Errorf("signer header %q", env.Headers[SignerHeader])
	case len(env.Signature) != ed25519.SignatureSize:
		t.Errorf("signature of %d bytes", len(env.Signature))
	case len(shared) != 1:
		t.Errorf("the caller's headers map was changed: %v", shared)
	}
	// Two signatures of equal content differ in their nonces.
	other := &wire.Envelope{ID: []byte{1}, Route: wire.Route{Kind: wire.RouteChannel, Name: "c"}, Headers: shared}
	if err := s.Sign(other); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(other.Nonce, env.Nonce) {
		t.Error("two signatures share a nonce")
	}
}

func TestVerify(t *testing.T) {
	k, other := seedKey(t, 1), seedKey(t, 2)
	s := newSigner(t, k, t0)
	tests := []struct {
		name   string
		mutate func(e *wire.Envelope)
		key    devicekey.PublicKey
		now    time.Time
		want   jsperr.Code
	}{
		{"valid", nil, k.Public(), t0, jsperr.NoError},
		{"sender and seq set by the server", func(e *wire.Envelope) { e.Sender, e.Seq = "alice", 9 }, k.Public(), t0, jsperr.NoError},
		{"edge of the window, past", nil, k.Public(), t0.Add(DefaultMaxSkew), jsperr.NoError},
		{"tampered body", func(e *wire.Envelope) { e.Body = append(e.Body, '!') }, k.Public(), t0, jsperr.SignatureInvalid},
		{"tampered route", func(e *wire.Envelope) { e.Route.Name = "other" }, k.Public(), t0, jsperr.SignatureInvalid},
		{"tampered kind", func(e *wire.Envelope) { e.Kind = wire.KindCommand }, k.Public(), t0, jsperr.SignatureInvalid},
		{"tampered ts", func(e *wire.Envelope) { e.Timestamp++ }, k.Public(), t0, jsperr.SignatureInvalid},
		{"tampered nonce", func(e *wire.Envelope) { e.Nonce[0] ^= 1 }, k.Public(), t0, jsperr.SignatureInvalid},
		{"tampered header", func(e *wire.Envelope) { e.Headers["app"] = "y" }, k.Public(), t0, jsperr.SignatureInvalid},
		{"tampered signature", func(e *wire.Envelope) { e.Signature[10] ^= 1 }, k.Public(), t0, jsperr.SignatureInvalid},
		{"wrong key", nil, other.Public(), t0, jsperr.SignatureInvalid},
		{"signer header points elsewhere", func(e *wire.Envelope) { e.Headers[SignerHeader] = other.Public().ID().String() }, other.Public(), t0, jsperr.SignatureInvalid},
		{"stale", nil, k.Public(), t0.Add(DefaultMaxSkew + time.Millisecond), jsperr.SignatureStale},
		{"from the future", nil, k.Public(), t0.Add(-DefaultMaxSkew - time.Millisecond), jsperr.SignatureStale},
		{"no ts", func(e *wire.Envelope) { e.Timestamp = 0 }, k.Public(), t0, jsperr.SignatureMalformed},
		{"short nonce", func(e *wire.Envelope) { e.Nonce = e.Nonce[:MinNonceLen-1] }, k.Public(), t0, jsperr.SignatureMalformed},
		{"no signer header", func(e *wire.Envelope) { delete(e.Headers, SignerHeader) }, k.Public(), t0, jsperr.SignatureMalformed},
		{"upper-case signer header", func(e *wire.Envelope) {
			e.Headers[SignerHeader] = string(bytes.ToUpper([]byte(e.Headers[SignerHeader])))
		}, k.Public(), t0, jsperr.SignatureMalformed},
		{"unsigned", func(e *wire.Envelope) { e.Signature = nil }, k.Public(), t0, jsperr.SignatureMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := roundTrip(t, signedEnv(t, s, "hello"))
			if tt.mutate != nil {
				tt.mutate(env)
				env = roundTrip(t, env)
			}
			err := Verify(env, tt.key, tt.now)
			if got := jsperr.CodeOf(err); got != tt.want {
				t.Fatalf("Verify = %v (%s), want %s", err, got, tt.want)
			}
		})
	}
}

func TestVerifySignatureIgnoresClock(t *testing.T) {
	k := seedKey(t, 1)
	env := signedEnv(t, newSigner(t, k, t0.Add(-365*24*time.Hour)), "old")
	if err := VerifySignature(roundTrip(t, env), k.Public()); err != nil {
		t.Fatalf("history envelope: %v", err)
	}
}

func TestCheckDevice(t *testing.T) {
	d := devicekey.Device{Revoked: t0}
	tests := []struct {
		ts   time.Time
		want jsperr.Code
	}{
		{t0.Add(-time.Second), jsperr.NoError},
		{t0, jsperr.SignerRevoked},
		{t0.Add(time.Second), jsperr.SignerRevoked},
	}
	for _, tt := range tests {
		if got := jsperr.CodeOf(CheckDevice(d, uint64(tt.ts.UnixMilli()))); got != tt.want {
			t.Errorf("signed at %v, revoked at %v: %s, want %s", tt.ts, t0, got, tt.want)
		}
	}
	if err := CheckDevice(devicekey.Device{}, 1); err != nil {
		t.Errorf("active device: %v", err)
	}
}

// clock is a settable test clock.
type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

func newGuard(t testing.TB, cfg GuardConfig, c *clock) *Guard {
	t.Helper()
	cfg.Now = c.Now
	g, err := NewGuard(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestGuard(t *testing.T) {
	k, stranger, revoked := seedKey(t, 1), seedKey(t, 2), seedKey(t, 3)
	keys := staticKeys{
		k.Public().ID():       {ID: k.Public().ID(), Key: k.Public(), Owner: "alice"},
		revoked.Public().ID(): {ID: revoked.Public().ID(), Key: revoked.Public(), Owner: "bob", Revoked: t0.Add(-time.Hour)},
	}
	c := &clock{now: t0}
	g := newGuard(t, GuardConfig{}, c)
	s := newSigner(t, k, t0)
	first := roundTrip(t, signedEnv(t, s, "one"))
	ctx := context.Background()
	d, err := g.Check(ctx, keys, first)
	if err != nil || d.Owner != "alice" {
		t.Fatalf("first: %v, %v", d, err)
	}
	tests := []struct {
		name string
		env  *wire.Envelope
		keys KeySource
		want jsperr.Code
	}{
		{"replayed", roundTrip(t, first), keys, jsperr.SignatureReplayed},
		{"fresh", roundTrip(t, signedEnv(t, s, "two")), keys, jsperr.NoError},
		{"unknown signer", roundTrip(t, signedEnv(t, newSigner(t, stranger, t0), "x")), keys, jsperr.SignerUnknown},
		{"no registry", roundTrip(t, signedEnv(t, s, "three")), nil, jsperr.SignerUnknown},
		{"revoked signer", roundTrip(t, signedEnv(t, newSigner(t, revoked, t0), "x")), keys, jsperr.SignerRevoked},
		{"stale", roundTrip(t, signedEnv(t, newSigner(t, k, t0.Add(-time.Hour)), "old")), keys, jsperr.SignatureStale},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := g.Check(ctx, tt.keys, tt.env)
			if got := jsperr.CodeOf(err); got != tt.want {
				t.Fatalf("Check = %v (%s), want %s", err, got, tt.want)
			}
		})
	}
	// A forged copy with a fresh signature slot does not spend the nonce.
	forged := roundTrip(t, signedEnv(t, s, "four"))
	genuine := roundTrip(t, forged)
	forged.Signature[0] ^= 1
	if _, err := g.Check(ctx, keys, forged); jsperr.CodeOf(err) != jsperr.SignatureInvalid {
		t.Fatalf("forged: %v", err)
	}
	if _, err := g.Check(ctx, keys, genuine); err != nil {
		t.Fatalf("genuine after forged copy: %v", err)
	}
	st := g.Stats()
	if st.Accepted != 3 || st.Replayed != 1 || st.Unknown != 2 || st.Revoked != 1 || st.Stale != 1 || st.Invalid != 1 || st.Nonces != 3 || st.Devices != 1 {
		t.Fatalf("stats %+v", st)
	}
	// Once the window has passed, the device's memory is released.
	c.now = t0.Add(DefaultMaxSkew + DefaultBucketWidth + 2*time.Second)
	if _, err := g.Check(ctx, keys, roundTrip(t, first)); jsperr.CodeOf(err) != jsperr.SignatureStale {
		t.Fatalf("replay after the window: %v, want SIGNATURE_STALE", err)
	}
	if _, err := g.Check(ctx, keys, roundTrip(t, signedEnv(t, newSigner(t, k, c.now), "later"))); err != nil {
		t.Fatal(err)
	}
	if st := g.Stats(); st.Nonces != 1 || st.Devices != 1 {
		t.Fatalf("after the window: %d nonces of %d devices, want 1 of 1", st.Nonces, st.Devices)
	}
}

// TestGuardBounds: every bound refuses with SIGNATURE_MEMORY_FULL and a
// retry-after instead of forgetting a nonce that could still be replayed.
func TestGuardBounds(t *testing.T) {
	tests := []struct {
		name    string
		cfg     GuardConfig
		devices int // distinct signers
		each    int // envelopes per signer
		okUntil int // envelopes accepted before the first refusal
	}{
		{"device window", GuardConfig{DeviceWindow: 4}, 1, 6, 4},
		{"max devices", GuardConfig{MaxDevices: 2}, 3, 1, 2},
		{"max nonces", GuardConfig{MaxNonces: 5}, 3, 2, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &clock{now: t0}
			g := newGuard(t, tt.cfg, c)
			keys := staticKeys{}
			var envs []*wire.Envelope
			for i := range tt.devices {
				k := seedKey(t, byte(10+i))
				keys[k.Public().ID()] = devicekey.Device{ID: k.Public().ID(), Key: k.Public()}
				s := newSigner(t, k, t0)
				for j := range tt.each {
					envs = append(envs, roundTrip(t, signedEnv(t, s, string(rune('a'+j)))))
				}
			}
			for i, env := range envs {
				_, err := g.Check(context.Background(), keys, env)
				if i < tt.okUntil {
					if err != nil {
						t.Fatalf("envelope %d: %v", i, err)
					}
					continue
				}
				var je *jsperr.Error
				if !errors.As(err, &je) || je.Code != jsperr.SignatureMemoryFull || je.RetryAfter <= 0 {
					t.Fatalf("envelope %d: %v, want SIGNATURE_MEMORY_FULL with retry-after", i, err)
				}
				return
			}
			t.Fatal("no refusal")
		})
	}
}

func TestGuardConfig(t *testing.T) {
	bad := []GuardConfig{
		{MaxSkew: -1}, {DeviceWindow: -1}, {MaxDevices: -1}, {MaxNonces: -1},
		{MaxSkew: time.Second, BucketWidth: 2 * time.Second},
	}
	for _, c := range bad {
		if _, err := NewGuard(c); err == nil {
			t.Errorf("NewGuard(%+v) accepted", c)
		}
	}
	g, err := NewGuard(GuardConfig{})
	if err != nil {
		t.Fatal(err)
	}
	c := g.Config()
	if c.MaxSkew != DefaultMaxSkew || c.BucketWidth != DefaultBucketWidth || c.DeviceWindow != DefaultDeviceWindow ||
		c.MaxDevices != DefaultMaxDevices || c.MaxNonces != DefaultMaxNonces {
		t.Fatalf("defaults %+v", c)
	}
}

func TestKeyMessages(t *testing.T) {
	k := seedKey(t, 7)
	req := KeyRequest{Device: k.Public().ID(), User: "alice"}
	got, err := ParseKeyRequest(req.Append(nil))
	if err != nil || got != req {
		t.Fatalf("request round trip: %+v, %v", got, err)
	}
	rep := KeyReply{Device: k.Public().ID(), Owner: "alice", Key: k.Public(), Registered: t0, Revoked: t0.Add(time.Hour)}
	b := rep.Append(nil)
	gr, err := ParseKeyReply(b)
	if err != nil || gr.Device != rep.Device || gr.Owner != rep.Owner || gr.Key != rep.Key ||
		!gr.Registered.Equal(rep.Registered) || !gr.Revoked.Equal(rep.Revoked) {
		t.Fatalf("reply round trip: %+v, %v", gr, err)
	}
	// No proper prefix parses.
	for i := range len(b) {
		if _, err := ParseKeyReply(b[:i]); err == nil {
			t.Fatalf("prefix of %d bytes parsed", i)
		}
	}
	// A key that does not hash to the device id is refused.
	wrong := rep
	wrong.Key = seedKey(t, 8).Public()
	if _, err := ParseKeyReply(wrong.Append(nil)); !errors.Is(err, ErrBadKeyMessage) {
		t.Fatalf("mismatched key: %v", err)
	}
	for _, bad := range [][]byte{nil, {0xa0}, {0xa1, 0x01, 0x41, 0x00}, append(req.Append(nil), 0)} {
		if _, err := ParseKeyRequest(bad); !errors.Is(err, ErrBadKeyMessage) {
			t.Errorf("request %x: %v", bad, err)
		}
	}
}

func FuzzParseKeyRequest(f *testing.F) {
	k := seedKey(f, 7)
	f.Add((&KeyRequest{Device: k.Public().ID()}).Append(nil))
	f.Add((&KeyRequest{Device: k.Public().ID(), User: "alice"}).Append(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseKeyRequest(b)
		if err != nil {
			return
		}
		if got := r.Append(nil); !bytes.Equal(got, b) {
			// Unknown keys are skipped, so only a re-parse must agree.
			r2, err := ParseKeyRequest(got)
			if err != nil || r2 != r {
				t.Fatalf("re-encoding of %x does not parse back: %v", b, err)
			}
		}
	})
}

func FuzzParseKeyReply(f *testing.F) {
	k := seedKey(f, 7)
	f.Add((&KeyReply{Device: k.Public().ID(), Key: k.Public()}).Append(nil))
	f.Add((&KeyReply{Device: k.Public().ID(), Owner: "alice", Key: k.Public(), Registered: t0, Revoked: t0}).Append(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseKeyReply(b)
		if err != nil {
			return
		}
		if r.Key.ID() != r.Device {
			t.Fatal("accepted a key that does not hash to its device")
		}
		r2, err := ParseKeyReply(r.Append(nil))
		if err != nil || r2.Device != r.Device || r2.Key != r.Key || r2.Owner != r.Owner {
			t.Fatalf("re-encoding does not parse back: %v", err)
		}
	})
}

// FuzzVerify: no decoded envelope makes the verifier panic, and only the
// genuine envelope verifies.
func FuzzVerify(f *testing.F) {
	k := seedKey(f, 1)
	env := signedEnv(f, newSigner(f, k, t0), "fuzz")
	genuine := env.Append(nil)
	f.Add(genuine)
	f.Fuzz(func(t *testing.T, b []byte) {
		e, n, err := wire.ParseEnvelope(b)
		if err != nil {
			return
		}
		if err := Verify(&e, k.Public(), t0); err == nil {
			// The same signed content can be framed only one way.
			if !bytes.Equal(e.SigningBytes(nil), env.SigningBytes(nil)) {
				t.Fatalf("forged envelope %x verified", b[:n])
			}
		}
	})
}

func BenchmarkGuardCheck(b *testing.B) {
	k := seedKey(b, 1)
	keys := staticKeys{k.Public().ID(): {ID: k.Public().ID(), Key: k.Public()}}
	c := &clock{now: t0}
	g := newGuard(b, GuardConfig{DeviceWindow: 1 << 30, MaxNonces: 1 << 30}, c)
	s := newSigner(b, k, t0)
	envs := make([]*wire.Envelope, b.N)
	for i := range envs {
		envs[i] = roundTrip(b, signedEnv(b, s, "bench"))
	}
	b.ResetTimer()
	for i := range b.N {
		if _, err := g.Check(context.Background(), keys, envs[i]); err != nil {
			b.Fatal(err)
		}
	}
}
