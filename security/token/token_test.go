package token

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
)

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func mustKey(t testing.TB) PrivateKey {
	t.Helper()
	k, err := GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func baseClaims() Claims {
	return Claims{
		Issuer: "auth.prod", Audience: "gateway.prod", Subject: "user-42",
		NotBefore: t0, Expiry: t0.Add(15 * time.Minute),
		Scopes: []string{"chat:read", "chat:write"},
	}
}

func rawOf(t testing.TB, text string) []byte {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(text, TextPrefix))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func textOf(raw []byte) string { return TextPrefix + base64.RawURLEncoding.EncodeToString(raw) }

func TestSignParseRoundTrip(t *testing.T) {
	k := mustKey(t)
	many := make([]string, MaxScopes)
	for i := range many {
		many[i] = "s" + strings.Repeat("x", i)
	}
	tests := []struct {
		name string
		mut  func(*Claims)
	}{
		{"typical", func(*Claims) {}},
		{"no scopes", func(c *Claims) { c.Scopes = nil }},
		{"empty issuer and subject", func(c *Claims) { c.Issuer, c.Subject = "", "" }},
		{"unicode", func(c *Claims) { c.Subject = "Ünïcødé ✓" }},
		{"max scopes", func(c *Claims) { c.Scopes = many[:20] }},
		{"long strings", func(c *Claims) { c.Issuer, c.Subject = strings.Repeat("i", 255), strings.Repeat("s", 255) }},
		{"before 1970", func(c *Claims) { c.NotBefore, c.Expiry = time.Unix(-100, 0).UTC(), time.Unix(-1, 0).UTC() }},
		{"sub-second dropped", func(c *Claims) { c.NotBefore = c.NotBefore.Add(999 * time.Millisecond) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := baseClaims()
			tt.mut(&c)
			text, err := Sign(k, c)
			if err != nil {
				t.Fatal(err)
			}
			tok, err := Parse(text)
			if err != nil {
				t.Fatal(err)
			}
			if tok.KeyID != k.KeyID() {
				t.Fatalf("key id %s, want %s", tok.KeyID, k.KeyID())
			}
			want := c
			want.NotBefore, want.Expiry = c.NotBefore.Truncate(time.Second).UTC(), c.Expiry.UTC()
			if tok.Issuer != want.Issuer || tok.Audience != want.Audience || tok.Subject != want.Subject ||
				!tok.NotBefore.Equal(want.NotBefore) || !tok.Expiry.Equal(want.Expiry) || !slices.Equal(tok.Scopes, want.Scopes) {
				t.Fatalf("claims %+v, want %+v", tok.Claims, want)
			}
			if err := tok.VerifySignature(k.Public()); err != nil {
				t.Fatal(err)
			}
			if tok.Text() != text || !bytes.Equal(tok.Encode(), rawOf(t, text)) {
				t.Fatal("re-encoding differs")
			}
		})
	}
}

func TestSignErrors(t *testing.T) {
	k := mustKey(t)
	tests := []struct {
		name string
		key  PrivateKey
		mut  func(*Claims)
	}{
		{"no key", PrivateKey{}, func(*Claims) {}},
		{"no audience", k, func(c *Claims) { c.Audience = "" }},
		{"no expiry", k, func(c *Claims) { c.Expiry = time.Time{} }},
		{"no not-before", k, func(c *Claims) { c.NotBefore = time.Time{} }},
		{"expiry before not-before", k, func(c *Claims) { c.Expiry = c.NotBefore }},
		{"long subject", k, func(c *Claims) { c.Subject = strings.Repeat("s", 256) }},
		{"bad UTF-8", k, func(c *Claims) { c.Subject = "\xff" }},
		{"empty scope", k, func(c *Claims) { c.Scopes = []string{""} }},
		{"duplicate scope", k, func(c *Claims) { c.Scopes = []string{"a", "b", "a"} }},
		{"too many scopes", k, func(c *Claims) { c.Scopes = make([]string, MaxScopes+1) }},
		{"too large", k, func(c *Claims) {
			c.Scopes = nil
			for i := range 8 {
				c.Scopes = append(c.Scopes, strings.Repeat(string(rune('a'+i)), 200))
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := baseClaims()
			tt.mut(&c)
			if _, err := Sign(tt.key, c); err == nil {
				t.Fatal("Sign succeeded")
			}
		})
	}
}

func TestDecodeMalformed(t *testing.T) {
	k := mustKey(t)
	good, err := Sign(k, baseClaims())
	if err != nil {
		t.Fatal(err)
	}
	raw := rawOf(t, good)
	edit := func(f func([]byte) []byte) string { return textOf(f(bytes.Clone(raw))) }
	// Offsets in the baseClaims encoding.
	issuerLen := fixedLen
	audLen := issuerLen + 1 + len("auth.prod")
	subLen := audLen + 1 + len("gateway.prod")
	scopeCount := subLen + 1 + len("user-42")
	tests := []struct {
		name string
		text string
	}{
		{"empty", ""},
		{"no prefix", strings.TrimPrefix(good, TextPrefix)},
		{"bad base64", good[:len(good)-1] + "!"},
		{"padded base64", good + "=="},
		{"too long text", TextPrefix + strings.Repeat("A", maxText)},
		{"version 2", edit(func(b []byte) []byte { b[0] = 2; return b })},
		{"trailing byte", edit(func(b []byte) []byte { return append(b, 0) })},
		{"truncated", edit(func(b []byte) []byte { return b[:len(b)-1] })},
		{"issuer length past end", edit(func(b []byte) []byte { b[issuerLen] = 255; return b })},
		{"empty audience", edit(func(b []byte) []byte {
			return slices.Concat(b[:audLen], []byte{0}, b[subLen:])
		})},
		{"too many scopes", edit(func(b []byte) []byte { b[scopeCount] = MaxScopes + 1; return b })},
		{"scope count past end", edit(func(b []byte) []byte { b[scopeCount] = 3; return b })},
		{"expiry before not-before", edit(func(b []byte) []byte { copy(b[17:25], b[9:17]); return b })},
		{"bad UTF-8", edit(func(b []byte) []byte { b[subLen+1] = 0xff; return b })},
		{"oversize", textOf(make([]byte, MaxSize+1))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.text)
			if code := jsperr.CodeOf(err); code != jsperr.TokenMalformed {
				t.Fatalf("Parse: %v (code %s), want TOKEN_MALFORMED", err, code)
			}
		})
	}
}

func TestDuplicateScopeRefused(t *testing.T) {
	k := mustKey(t)
	c := baseClaims()
	c.Scopes = []string{"a", "b"}
	text, err := Sign(k, c)
	if err != nil {
		t.Fatal(err)
	}
	raw := rawOf(t, text)
	// Turn scope "b" into a second "a".
	raw[len(raw)-sigLen-1] = 'a'
	if _, err := Decode(raw); jsperr.CodeOf(err) != jsperr.TokenMalformed {
		t.Fatalf("duplicate scope: %v", err)
	}
}

// TestNoProperPrefixDecodes checks that a truncated token never decodes.
func TestNoProperPrefixDecodes(t *testing.T) {
	k := mustKey(t)
	text, err := Sign(k, baseClaims())
	if err != nil {
		t.Fatal(err)
	}
	raw := rawOf(t, text)
	for n := range len(raw) {
		if _, err := Decode(raw[:n]); err == nil {
			t.Fatalf("prefix of %d/%d bytes decoded", n, len(raw))
		}
	}
}

func TestDecodeCopiesInput(t *testing.T) {
	k := mustKey(t)
	text, err := Sign(k, baseClaims())
	if err != nil {
		t.Fatal(err)
	}
	raw := rawOf(t, text)
	tok, err := Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	clear(raw)
	if err := tok.VerifySignature(k.Public()); err != nil {
		t.Fatalf("token changed with its input buffer: %v", err)
	}
}

func TestKeyPEM(t *testing.T) {
	k := mustKey(t)
	privPEM, err := MarshalPrivateKeyPEM(k)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := ParsePrivateKeyPEM(privPEM)
	if err != nil || k2.KeyID() != k.KeyID() {
		t.Fatalf("private key round trip: %v", err)
	}
	pubPEM, err := MarshalPublicKeyPEM(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParsePublicKeyPEM(pubPEM)
	if err != nil || pub != k.Public() {
		t.Fatalf("public key round trip: %v", err)
	}
	if _, err := ParsePublicKeyPEM(privPEM); err == nil {
		t.Fatal("private PEM parsed as public")
	}
	if _, err := ParsePrivateKeyPEM(pubPEM); err == nil {
		t.Fatal("public PEM parsed as private")
	}
	if s := k.String(); strings.Contains(s, base64.StdEncoding.EncodeToString(k.key.Seed())) || !strings.Contains(s, k.KeyID().String()) {
		t.Fatalf("String() = %q", s)
	}
	id, err := ParseKeyID(k.KeyID().String())
	if err != nil || id != k.KeyID() {
		t.Fatalf("ParseKeyID: %v", err)
	}
	if _, err := ParseKeyID("abc"); err == nil {
		t.Fatal("short key id parsed")
	}
}

func FuzzDecode(f *testing.F) {
	k := mustKey(f)
	for _, c := range []Claims{baseClaims(), {Audience: "a", NotBefore: t0, Expiry: t0.Add(time.Second)}} {
		text, err := Sign(k, c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(rawOf(f, text))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		tok, err := Decode(raw)
		if err != nil {
			var je *jsperr.Error
			if !errors.As(err, &je) || je.Code != jsperr.TokenMalformed {
				t.Fatalf("error %v is not TOKEN_MALFORMED", err)
			}
			return
		}
		// The encoding is canonical: what decodes re-encodes to itself.
		if !bytes.Equal(tok.Encode(), raw) {
			t.Fatalf("re-encoding differs:\n%x\n%x", tok.Encode(), raw)
		}
		if _, err := Parse(tok.Text()); err != nil {
			t.Fatalf("text form does not parse: %v", err)
		}
	})
}
