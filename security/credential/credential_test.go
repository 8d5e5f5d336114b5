package credential

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/security/devicekey"
	"github.com/jetstreamproto/jsp/security/token"
)

// now is a fixed time for the tokens the tests sign.
var now = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

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
		c, err := Parse(b)
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
			if p, err := Parse(b[:i]); err == nil && bytes.Equal(p.Append(nil), b) {
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
		_, err := Parse([]byte(tt.in))
		if code := jsperr.CodeOf(err); code != tt.code {
			t.Errorf("%.40q: %v, want %s", tt.in, err, tt.code)
		}
	}
	// Order does not matter.
	c, err := Parse([]byte(dev + " " + tok))
	if err != nil || c.Token != tok || c.Proof == nil {
		t.Fatalf("device then token: %+v, %v", c, err)
	}
}

func FuzzParse(f *testing.F) {
	for _, b := range samples(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err != nil {
			if jsperr.CodeOf(err) == jsperr.Internal {
				t.Fatalf("refusal without a registry code: %v", err)
			}
			return
		}
		// What parses re-encodes to something that parses to the same.
		again, err := Parse(c.Append(nil))
		if err != nil || again.Token != c.Token || (again.Proof == nil) != (c.Proof == nil) ||
			(c.Proof != nil && *again.Proof != *c.Proof) {
			t.Fatalf("re-parse of %q: %+v, %v", b, again, err)
		}
	})
}
