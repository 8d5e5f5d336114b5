package auth

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/security/devicekey"
	"github.com/jetstreamproto/jsp/security/token"
)

// samples returns encodings of every credential combination.
func samples(t testing.TB) [][]byte {
	t.Helper()
	k, err := token.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := token.Sign(k, token.Claims{Audience: "a", Subject: "s", NotBefore: now, Expiry: now.Add(1e9 * 60)})
	if err != nil {
		t.Fatal(err)
	}
	dk, err := devicekey.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	p := devicekey.ProveBinding(dk, make([]byte, devicekey.ExporterLength))
	var out [][]byte
	for _, c := range []Credentials{{}, {Token: tok}, {Proof: &p}, {Token: tok, Proof: &p}} {
		out = append(out, c.Append(nil))
	}
	return out
}

func TestCredentialsRoundTrip(t *testing.T) {
	for _, b := range samples(t) {
		c, err := ParseCredentials(b)
		if err != nil {
			t.Fatalf("%q: %v", b, err)
		}
		if got := c.Append(nil); !bytes.Equal(got, b) {
			t.Fatalf("re-encoded %q, want %q", got, b)
		}
		if c.Len() != len(b) {
			t.Fatalf("Len %d, encoding %d bytes", c.Len(), len(b))
		}
		// No proper prefix of a non-empty encoding parses to the same
		// credentials.
		for i := 1; i < len(b); i++ {
			if p, err := ParseCredentials(b[:i]); err == nil && bytes.Equal(p.Append(nil), b) {
				t.Fatalf("prefix %d of %q parses to the whole", i, b)
			}
		}
	}
}

func TestParseCredentialsRefusals(t *testing.T) {
	s := samples(t)
	tok, dev := string(s[1]), string(s[2])
	tests := []struct {
		in   string
		code jsperr.Code
	}{
		{"x", jsperr.Unauthenticated},
		{tok + " ", jsperr.Unauthenticated},
		{" " + tok, jsperr.Unauthenticated},
		{tok + " " + tok, jsperr.Unauthenticated},
		{dev + " " + dev, jsperr.Unauthenticated},
		{tok + " " + dev + " " + dev, jsperr.Unauthenticated},
		{"jspt.", jsperr.TokenMalformed},
		{tok[:len(tok)-3], jsperr.TokenMalformed},
		{"jspt." + strings.Repeat("A", 4000), jsperr.TokenMalformed},
		{"jspd.", jsperr.ChannelBindingFailed},
		{dev[:len(dev)-1] + "!", jsperr.ChannelBindingFailed},
		{"jspd." + strings.Repeat("A", 4000), jsperr.ChannelBindingFailed},
		{"jspd." + strings.Repeat("A", len(dev)-len("jspd.")), jsperr.ChannelBindingFailed}, // version 0
	}
	for _, tt := range tests {
		_, err := ParseCredentials([]byte(tt.in))
		if code := jsperr.CodeOf(err); code != tt.code {
			t.Errorf("%.40q: %v, want %s", tt.in, err, tt.code)
		}
	}
	// Order does not matter.
	c, err := ParseCredentials([]byte(dev + " " + tok))
	if err != nil || c.Token != tok || c.Proof == nil {
		t.Fatalf("device then token: %+v, %v", c, err)
	}
}

func FuzzParseCredentials(f *testing.F) {
	for _, b := range samples(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCredentials(b)
		if err != nil {
			if jsperr.CodeOf(err) == jsperr.Internal {
				t.Fatalf("refusal without a registry code: %v", err)
			}
			return
		}
		// What parses re-encodes to something that parses to the same.
		again, err := ParseCredentials(c.Append(nil))
		if err != nil || again.Token != c.Token || (again.Proof == nil) != (c.Proof == nil) ||
			(c.Proof != nil && *again.Proof != *c.Proof) {
			t.Fatalf("re-parse of %q: %+v, %v", b, again, err)
		}
	})
}

func TestParseTokenKeys(t *testing.T) {
	var file []byte
	var want []token.PublicKey
	for range 2 {
		k, err := token.GenerateKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		pemBytes, err := token.MarshalPublicKeyPEM(k.Public())
		if err != nil {
			t.Fatal(err)
		}
		file = append(append(file, "# a comment\n"...), pemBytes...)
		want = append(want, k.Public())
	}
	got, err := ParseTokenKeys(file)
	if err != nil || len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("ParseTokenKeys: %v, %v", got, err)
	}
	if _, err := ParseTokenKeys([]byte("nothing here")); err == nil {
		t.Fatal("file without keys accepted")
	}
	priv, _ := token.GenerateKey(nil)
	privPEM, _ := token.MarshalPrivateKeyPEM(priv)
	if _, err := ParseTokenKeys(privPEM); err == nil {
		t.Fatal("private key accepted as a public key")
	}
	many := bytes.Repeat(file[bytes.Index(file, []byte("-----BEGIN")):], MaxTokenKeys)
	if _, err := ParseTokenKeys(many); err == nil {
		t.Fatalf("more than %d keys accepted", MaxTokenKeys)
	}
}

func TestLoadDevices(t *testing.T) {
	var keys []devicekey.PrivateKey
	for range 3 {
		k, err := devicekey.GenerateKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	list := strings.Join([]string{
		"# devices",
		"",
		DeviceLine(devicekey.Device{Key: keys[0].Public(), Owner: "alice", Name: "Alice's phone"}),
		DeviceLine(devicekey.Device{Key: keys[1].Public(), Owner: "bob"}),
		"revoked " + keys[2].Public().String() + " alice old laptop",
	}, "\n")
	reg, _ := devicekey.NewMemoryRegistry(devicekey.MemoryConfig{})
	ctx := context.Background()
	n, err := LoadDevices(ctx, strings.NewReader(list), reg)
	if err != nil || n != 3 {
		t.Fatalf("LoadDevices = %d, %v", n, err)
	}
	d, err := reg.Lookup(ctx, keys[0].Public().ID())
	if err != nil || d.Owner != "alice" || d.Name != "Alice's phone" || !d.Active() {
		t.Fatalf("device 0: %+v, %v", d, err)
	}
	if d, err := reg.Lookup(ctx, keys[2].Public().ID()); err != nil || d.Active() {
		t.Fatalf("revoked device: %+v, %v", d, err)
	}
	if line := DeviceLine(d); !strings.HasPrefix(line, keys[0].Public().String()+" alice ") {
		t.Fatalf("DeviceLine: %q", line)
	}
	for _, bad := range []string{
		"onlyonefield",
		"notbase64!! alice",
		keys[0].Public().String() + " alice", // already registered
		strings.Repeat("x", MaxDeviceLine+1),
	} {
		reg2, _ := devicekey.NewMemoryRegistry(devicekey.MemoryConfig{})
		_ = reg2.Register(ctx, devicekey.Device{ID: keys[0].Public().ID(), Key: keys[0].Public()})
		if _, err := LoadDevices(ctx, strings.NewReader(bad), reg2); err == nil {
			t.Errorf("%.30q accepted", bad)
		}
	}
}
