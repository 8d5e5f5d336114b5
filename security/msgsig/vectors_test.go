package msgsig

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/security/devicekey"
	"github.com/jetstreamproto/jsp/wire"
)

var update = flag.Bool("update", false, "regenerate spec/vectors/signed.json from the Go values in vectors_test.go")

const vectorFile = "../../spec/vectors/signed.json"

// signedVector is one entry of spec/vectors/signed.json.
type signedVector struct {
	Name string `json:"name"`
	// Seed is the signing device's Ed25519 seed (valid vectors only
	// need it to re-sign; it is there for every vector for reference).
	Seed string `json:"seed"`
	// PublicKey is the key the verifier uses: the signer's, or another
	// one for the wrong-key vector.
	PublicKey string `json:"public_key"`
	// Device is the id of the signing key (what jsp-signer names when present).
	Device string `json:"device"`
	// Envelope is the whole envelope as received, signature included.
	Envelope string `json:"envelope"`
	// SigningBytes are wire SigningBytes of the decoded envelope.
	SigningBytes string `json:"signing_bytes"`
	// Signature is the envelope's sig field.
	Signature string `json:"signature"`
	// NowMs is the verifier's clock, Unix ms; MaxSkewMs its window.
	NowMs     uint64 `json:"now_ms"`
	MaxSkewMs uint64 `json:"max_skew_ms"`
	// ReplayOf names a vector a verifier accepts first, with the same
	// replay memory, before this one.
	ReplayOf string `json:"replay_of,omitempty"`
	// Error is the registry name the verifier must report; absent when
	// the envelope verifies.
	Error string `json:"error,omitempty"`
	Note  string `json:"note,omitempty"`
}

type signedFile struct {
	Description string         `json:"description"`
	Vectors     []signedVector `json:"vectors"`
}

// vectorNow is the verifier's clock in the vectors: 2026-01-01T00:00:00Z.
const vectorNow = 1767225600000

type fixedRand struct{ b byte }

func (r *fixedRand) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = r.b
		r.b++
	}
	return len(p), nil
}

func seedKey(t testing.TB, b byte) devicekey.PrivateKey {
	t.Helper()
	k, err := devicekey.NewPrivateKeyFromSeed(bytes.Repeat([]byte{b}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// buildVectors makes the vectors from Go values. Ed25519 signatures are
// deterministic, so the output is the same every run.
func buildVectors(t testing.TB) signedFile {
	k := seedKey(t, 0x42)
	other := seedKey(t, 0x43)
	sign := func(env *wire.Envelope, ts uint64, nonceStart byte) *wire.Envelope {
		s, err := NewSigner(k, SignerOptions{Rand: &fixedRand{b: nonceStart}})
		if err != nil {
			t.Fatal(err)
		}
		env.Timestamp = ts
		if err := s.Sign(env); err != nil {
			t.Fatal(err)
		}
		return env
	}
	chat := func() *wire.Envelope {
		return sign(&wire.Envelope{ID: []byte("m-0001"), Route: wire.Route{Kind: wire.RouteChannel, Name: "room.42"},
			Class: protocol.ClassChat, Body: []byte("hello, world")}, vectorNow-1500, 0x10)
	}
	vec := func(name string, env *wire.Envelope, pub devicekey.PublicKey, now uint64, errName, note string) signedVector {
		return signedVector{
			Name: name, Seed: hex.EncodeToString(k.Seed()), PublicKey: hex.EncodeToString(pub[:]),
			Device: k.Public().ID().String(), Envelope: hex.EncodeToString(env.Append(nil)),
			SigningBytes: hex.EncodeToString(env.SigningBytes(nil)), Signature: hex.EncodeToString(env.Signature),
			NowMs: now, MaxSkewMs: uint64(DefaultMaxSkew / time.Millisecond), Error: errName, Note: note,
		}
	}
	var vs []signedVector
	vs = append(vs, vec("signed_chat_event", chat(), k.Public(), vectorNow, "", "PUBLISH envelope signed 1.5 s before the verifier's clock"))
	delivered := chat()
	delivered.Sender, delivered.Seq = "alice", 7
	vs = append(vs, vec("signed_event_delivered", delivered, k.Public(), vectorNow, "",
		"the same envelope as delivered in EVENT: sender and seq set by the server are not covered"))
	cmd := sign(&wire.Envelope{ID: bytes.Repeat([]byte{0xa0}, 16), Route: wire.Route{Kind: wire.RouteService, Name: "chat.history"},
		Kind: wire.KindCommand, TTL: 5000, Headers: map[string]string{"trace": "t-1"}, Body: []byte{0xa1, 0x01, 0x18, 0x32}},
		vectorNow+60_000, 0x80)
	vs = append(vs, vec("signed_command_headers", cmd, k.Public(), vectorNow, "", "COMMAND with a TTL and an application header, signed 60 s ahead of the verifier's clock"))

	tampered := chat()
	tampered.Body = []byte("hello, world!")
	vs = append(vs, vec("signed_tampered_body", tampered, k.Public(), vectorNow, jsperr.SignatureInvalid.String(), "body changed after signing"))
	vs = append(vs, vec("signed_wrong_key", chat(), other.Public(), vectorNow, jsperr.SignatureInvalid.String(),
		"verified with a key that is not the one jsp-signer names"))
	vs = append(vs, vec("signed_stale_past", chat(), k.Public(), vectorNow+uint64(DefaultMaxSkew/time.Millisecond)+1500+1,
		jsperr.SignatureStale.String(), "verifier's clock 1 ms past the skew window"))
	vs = append(vs, vec("signed_stale_future", sign(&wire.Envelope{ID: []byte("m-0002"), Route: wire.Route{Kind: wire.RouteChannel, Name: "room.42"},
		Body: []byte("from the future")}, vectorNow+uint64(DefaultMaxSkew/time.Millisecond)+1, 0x20), k.Public(), vectorNow,
		jsperr.SignatureStale.String(), "timestamp 1 ms beyond the skew window ahead of the verifier"))
	replayed := vec("signed_replayed_nonce", chat(), k.Public(), vectorNow, jsperr.SignatureReplayed.String(), "signed_chat_event again: same device, same nonce")
	replayed.ReplayOf = "signed_chat_event"
	vs = append(vs, replayed)
	noHeader := chat()
	noHeader.Headers = nil
	vs = append(vs, vec("signed_no_signer_header", noHeader, k.Public(), vectorNow, jsperr.SignatureMalformed.String(), "jsp-signer header missing"))
	return signedFile{
		Description: "JSP/1 signed envelopes (JSP §4.3): the key, the signing bytes and the signature of each, and what a verifier " +
			"with the given clock, skew window and key must conclude. Generated by go test ./security/msgsig -update.",
		Vectors: vs,
	}
}

func marshalFile(t testing.TB, f signedFile) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(f); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// staticKeys is a KeySource of fixed devices.
type staticKeys map[devicekey.ID]devicekey.Device

func (s staticKeys) Lookup(_ context.Context, id devicekey.ID) (devicekey.Device, error) {
	d, ok := s[id]
	if !ok {
		return devicekey.Device{}, devicekey.ErrNotFound
	}
	return d, nil
}

// checkVector verifies v as a verifier with replay memory g would.
func checkVector(t *testing.T, g *Guard, v signedVector) error {
	t.Helper()
	raw, err := hex.DecodeString(v.Envelope)
	if err != nil {
		t.Fatal(err)
	}
	env, n, err := wire.ParseEnvelope(raw)
	if err != nil || n != len(raw) {
		t.Fatalf("%s: envelope does not decode: %v", v.Name, err)
	}
	if got := hex.EncodeToString(env.SigningBytes(nil)); got != v.SigningBytes {
		t.Fatalf("%s: signing bytes\n got %s\nwant %s", v.Name, got, v.SigningBytes)
	}
	if got := hex.EncodeToString(env.Signature); got != v.Signature {
		t.Fatalf("%s: signature %s, want %s", v.Name, got, v.Signature)
	}
	pubRaw, _ := hex.DecodeString(v.PublicKey)
	var pub devicekey.PublicKey
	copy(pub[:], pubRaw)
	dev, err := devicekey.ParseID(v.Device)
	if err != nil {
		t.Fatal(err)
	}
	_, err = g.Check(context.Background(), staticKeys{dev: {ID: dev, Key: pub, Owner: "alice"}}, &env)
	return err
}

func TestSignedVectors(t *testing.T) {
	want := marshalFile(t, buildVectors(t))
	if *update {
		if err := os.WriteFile(vectorFile, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(vectorFile)
	if err != nil {
		t.Fatalf("%v (run go test ./security/msgsig -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is stale: run go test ./security/msgsig -update", filepath.Base(vectorFile))
	}
	var f signedFile
	if err := json.Unmarshal(got, &f); err != nil {
		t.Fatal(err)
	}
	byName := map[string]signedVector{}
	for _, v := range f.Vectors {
		byName[v.Name] = v
	}
	valid, invalid := 0, 0
	for _, v := range f.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			now := time.UnixMilli(int64(v.NowMs))
			g, err := NewGuard(GuardConfig{MaxSkew: time.Duration(v.MaxSkewMs) * time.Millisecond, Now: func() time.Time { return now }})
			if err != nil {
				t.Fatal(err)
			}
			if v.ReplayOf != "" {
				if err := checkVector(t, g, byName[v.ReplayOf]); err != nil {
					t.Fatalf("first copy %s: %v", v.ReplayOf, err)
				}
			}
			err = checkVector(t, g, v)
			if v.Error == "" {
				valid++
				if err != nil {
					t.Fatalf("valid vector refused: %v", err)
				}
				// Deterministic Ed25519: the seed re-signs to the same bytes.
				seed, _ := hex.DecodeString(v.Seed)
				k, err := devicekey.NewPrivateKeyFromSeed(seed)
				if err != nil {
					t.Fatal(err)
				}
				s, _ := NewSigner(k, SignerOptions{})
				sb, _ := hex.DecodeString(v.SigningBytes)
				if got := hex.EncodeToString(signBytes(s, sb)); got != v.Signature {
					t.Fatalf("re-signed %s, want %s", got, v.Signature)
				}
				return
			}
			invalid++
			if got := jsperr.CodeOf(err).String(); got != v.Error {
				t.Fatalf("error %v (%s), want %s", err, got, v.Error)
			}
		})
	}
	if valid < 3 || invalid < 5 {
		t.Fatalf("%d valid and %d invalid vectors; want at least 3 and 5", valid, invalid)
	}
}
