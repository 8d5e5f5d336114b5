package tlsconf

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

func TestFingerprintMatchesSPKIDigest(t *testing.T) {
	cert := devCert(t)
	want := sha256.Sum256(cert.Leaf.RawSubjectPublicKeyInfo)
	if got := SPKIFingerprint(cert.Leaf); got != want {
		t.Fatalf("SPKIFingerprint = %x, want %x", got, want)
	}
}

func TestFingerprintRoundTrip(t *testing.T) {
	var f Fingerprint
	for i := range f {
		f[i] = byte(i * 7)
	}
	s := f.String()
	if !strings.HasPrefix(s, "sha256/") {
		t.Fatalf("String = %q", s)
	}
	hexColons := func() string {
		h := hex.EncodeToString(f[:])
		var b strings.Builder
		for i := 0; i < len(h); i += 2 {
			if i > 0 {
				b.WriteByte(':')
			}
			b.WriteString(strings.ToUpper(h[i : i+2]))
		}
		return b.String()
	}()
	for _, in := range []string{s, hex.EncodeToString(f[:]), hexColons} {
		got, err := ParseFingerprint(in)
		if err != nil {
			t.Fatalf("ParseFingerprint(%q): %v", in, err)
		}
		if got != f {
			t.Fatalf("ParseFingerprint(%q) = %x, want %x", in, got, f)
		}
	}
}

func TestParseFingerprintRejects(t *testing.T) {
	var f Fingerprint
	good := f.String()
	tests := []string{
		"",
		"sha256/",
		"sha256/!!!!",
		good[:len(good)-4],                 // 30 bytes
		good + "AAAA",                      // 35 bytes
		good + strings.Repeat("AAAA", 100), // far too long
		strings.Repeat("0", 63),
		strings.Repeat("0", 65),
		strings.Repeat("zz", 32),
		"sha1/" + good[len("sha256/"):],
	}
	for _, in := range tests {
		if _, err := ParseFingerprint(in); err == nil {
			t.Errorf("ParseFingerprint(%q) accepted", in)
		}
	}
}

func FuzzParseFingerprint(f *testing.F) {
	var fp Fingerprint
	f.Add(fp.String())
	f.Add(hex.EncodeToString(fp[:]))
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseFingerprint(s)
		if err != nil {
			return
		}
		// Whatever parses must round-trip through the canonical form.
		again, err := ParseFingerprint(got.String())
		if err != nil || again != got {
			t.Fatalf("round trip of %q: %x, %v", s, again, err)
		}
	})
}
