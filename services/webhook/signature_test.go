package webhook

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
)

func TestSignVerify(t *testing.T) {
	secret := []byte("0123456789abcdef-secret")
	body := []byte(`{"v":1,"type":"message.created"}`)
	now := time.Unix(1_800_000_000, 0)
	h := Sign(secret, now, body)
	if !strings.HasPrefix(h, "t=1800000000,v1=") || len(h) != len("t=1800000000,v1=")+64 {
		t.Fatalf("header %q", h)
	}
	rotated := AppendSignature([][]byte{[]byte("old-secret-0123456"), secret}, now, body)
	for _, tc := range []struct {
		name   string
		secret []byte
		header string
		body   []byte
		now    time.Time
		tol    time.Duration
		ok     bool
	}{
		{"valid", secret, h, body, now, 0, true},
		{"valid within tolerance", secret, h, body, now.Add(4 * time.Minute), 0, true},
		{"valid clock behind", secret, h, body, now.Add(-4 * time.Minute), 0, true},
		{"rotation: second v1 matches", secret, rotated, body, now, 0, true},
		{"spaces after commas", secret, strings.ReplaceAll(h, ",", ", "), body, now, 0, true},
		{"unknown scheme skipped", secret, h + ",v2=abc", body, now, 0, true},
		{"wrong secret", []byte("another-secret-xyz"), h, body, now, 0, false},
		{"tampered body", secret, h, []byte(`{"v":1,"type":"message.deleted"}`), now, 0, false},
		{"stale", secret, h, body, now.Add(6 * time.Minute), 0, false},
		{"stale custom tolerance", secret, h, body, now.Add(11 * time.Second), 10 * time.Second, false},
		{"from the future", secret, h, body, now.Add(-6 * time.Minute), 0, false},
		{"timestamp moved", secret, strings.Replace(h, "t=1800000000", "t=1800000001", 1), body, now, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Verify(tc.secret, tc.header, tc.body, tc.now, tc.tol)
			if tc.ok && err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if !tc.ok && (!errors.Is(err, ErrSignature) || jsperr.CodeOf(err) != jsperr.WebhookSignatureInvalid) {
				t.Fatalf("Verify err = %v, want ErrSignature with WEBHOOK_SIGNATURE_INVALID", err)
			}
		})
	}
}

func TestParseSignatureRejects(t *testing.T) {
	v1 := strings.Repeat("ab", 32)
	for _, h := range []string{
		"",
		"t=1",
		"v1=" + v1,
		"t=1,t=2,v1=" + v1,
		"t=-1,v1=" + v1,
		"t=+1,v1=" + v1,
		"t=1234567890123,v1=" + v1,
		"t=x,v1=" + v1,
		"t=1,v1=" + strings.ToUpper(v1),
		"t=1,v1=" + v1[:62],
		"t=1,v1=" + strings.Repeat("zz", 32),
		"t=1,,v1=" + v1,
		"t=1,=x,v1=" + v1,
		"t=1" + strings.Repeat(",v1="+v1, MaxSignatures+1),
		"t=1,v1=" + v1 + ",x=" + strings.Repeat("a", MaxSignatureHeaderLen),
	} {
		if _, err := ParseSignature(h); !errors.Is(err, ErrSignature) {
			t.Errorf("ParseSignature(%.50q) err = %v, want ErrSignature", h, err)
		}
	}
	sig, err := ParseSignature("t=7" + strings.Repeat(",v1="+v1, MaxSignatures))
	if err != nil || sig.Timestamp != 7 || len(sig.V1) != MaxSignatures {
		t.Fatalf("max signatures: %+v %v", sig, err)
	}
}

func FuzzParseSignature(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	f.Add(Sign([]byte("k"), now, []byte("body")))
	f.Add(AppendSignature([][]byte{[]byte("a"), []byte("b")}, now, nil))
	f.Add("t=1,v1=00,v2=zz")
	f.Fuzz(func(t *testing.T, h string) {
		sig, err := ParseSignature(h)
		if err != nil {
			return
		}
		if len(sig.V1) == 0 || len(sig.V1) > MaxSignatures || sig.Timestamp < 0 {
			t.Fatalf("parsed out-of-range signature %+v from %q", sig, h)
		}
		for _, v := range sig.V1 {
			if len(v) != 32 {
				t.Fatalf("v1 of %d bytes", len(v))
			}
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	secret := []byte("0123456789abcdef-secret")
	body := make([]byte, 1024)
	now := time.Unix(1_800_000_000, 0)
	h := Sign(secret, now, body)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if err := Verify(secret, h, body, now, 0); err != nil {
			b.Fatal(err)
		}
	}
}
