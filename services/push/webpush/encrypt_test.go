package webpush

import (
	"bytes"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"testing"
)

func unb64(t testing.TB, s string) []byte {
	t.Helper()
	b, err := b64.DecodeString(s)
	if err != nil {
		t.Fatalf("base64url %q: %v", s, err)
	}
	return b
}

// rfc8291 is the worked example of RFC 8291, Section 5, with the
// intermediate values of its Appendix A.
var rfc8291 = struct {
	plaintext, asPublic, asPrivate, uaPublic, uaPrivate, salt, auth string
	ecdhSecret, ikm, prk, cek, nonce, body                          string
}{
	plaintext:  "When I grow up, I want to be a watermelon",
	asPublic:   "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8",
	asPrivate:  "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw",
	uaPublic:   "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4",
	uaPrivate:  "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94",
	salt:       "DGv6ra1nlYgDCS1FRnbzlw",
	auth:       "BTBZMqHH6r4Tts7J_aSIgg",
	ecdhSecret: "kyrL1jIIOHEzg3sM2ZWRHDRB62YACZhhSlknJ672kSs",
	ikm:        "S4lYMb_L0FxCeq0WhDx813KgSYqU26kOyzWUdsXYyrg",
	prk:        "09_eUZGrsvxChDCGRCdkLiDXrReGOEVeSCdCcPBSJSc",
	cek:        "oIhVW04MRdy2XN9CiKLxTg",
	nonce:      "4h_95klXJ5E_qnoN",
	body: "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_" +
		"yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN",
}

func TestRFC8291Vector(t *testing.T) {
	v := rfc8291
	as, err := ecdh.P256().NewPrivateKey(unb64(t, v.asPrivate))
	if err != nil {
		t.Fatal(err)
	}
	ua, err := ecdh.P256().NewPrivateKey(unb64(t, v.uaPrivate))
	if err != nil {
		t.Fatal(err)
	}
	salt, auth := unb64(t, v.salt), unb64(t, v.auth)
	secret, err := as.ECDH(ua.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	ikm, err := hkdf.Key(sha256.New, secret, auth, "WebPush: info\x00"+string(unb64(t, v.uaPublic))+string(unb64(t, v.asPublic)), 32)
	if err != nil {
		t.Fatal(err)
	}
	prk, err := hkdf.Extract(sha256.New, ikm, salt)
	if err != nil {
		t.Fatal(err)
	}
	cek, nonce, err := keys(secret, auth, unb64(t, v.uaPublic), unb64(t, v.asPublic), salt)
	if err != nil {
		t.Fatal(err)
	}
	body, err := encrypt(as, salt, []byte(v.plaintext), unb64(t, v.uaPublic), auth)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		got, want []byte
	}{
		{"as_public", as.PublicKey().Bytes(), unb64(t, v.asPublic)},
		{"ua_public", ua.PublicKey().Bytes(), unb64(t, v.uaPublic)},
		{"ecdh_secret", secret, unb64(t, v.ecdhSecret)},
		{"IKM", ikm, unb64(t, v.ikm)},
		{"PRK", prk, unb64(t, v.prk)},
		{"CEK", cek, unb64(t, v.cek)},
		{"NONCE", nonce, unb64(t, v.nonce)},
		{"encrypted body", body, unb64(t, v.body)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !bytes.Equal(tc.got, tc.want) {
				t.Fatalf("got  %s\nwant %s", b64.EncodeToString(tc.got), b64.EncodeToString(tc.want))
			}
		})
	}
	plain, err := Decrypt(ua, auth, unb64(t, v.body))
	if err != nil || string(plain) != v.plaintext {
		t.Fatalf("Decrypt = %q, %v", plain, err)
	}
}

func newUA(t testing.TB) (*ecdh.PrivateKey, []byte) {
	t.Helper()
	ua, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	auth := make([]byte, AuthLen)
	rand.Read(auth)
	return ua, auth
}

func TestEncryptDecrypt(t *testing.T) {
	ua, auth := newUA(t)
	for _, n := range []int{0, 1, 100, MaxPlaintext} {
		plain := bytes.Repeat([]byte{'x'}, n)
		body, err := Encrypt(rand.Reader, plain, ua.PublicKey().Bytes(), auth)
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if len(body) > MaxBodyLen || len(body) != HeaderLen+n+1+TagLen {
			t.Fatalf("%d bytes: body of %d", n, len(body))
		}
		got, err := Decrypt(ua, auth, body)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("%d bytes: decrypt %v", n, err)
		}
	}
	if _, err := Encrypt(rand.Reader, make([]byte, MaxPlaintext+1), ua.PublicKey().Bytes(), auth); !errors.Is(err, ErrPayloadTooLarge) {
		t.Fatalf("oversize payload: %v", err)
	}
	if _, err := Encrypt(rand.Reader, nil, []byte{4, 1}, auth); err == nil {
		t.Fatal("bad subscription key accepted")
	}
	if _, err := Encrypt(rand.Reader, nil, ua.PublicKey().Bytes(), auth[:8]); err == nil {
		t.Fatal("short auth secret accepted")
	}
}

func TestDecryptRejects(t *testing.T) {
	ua, auth := newUA(t)
	good, err := Encrypt(rand.Reader, []byte("hello"), ua.PublicKey().Bytes(), auth)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := newUA(t)
	mod := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	for _, tc := range []struct {
		name string
		ua   *ecdh.PrivateKey
		auth []byte
		body []byte
	}{
		{"wrong key", other, auth, good},
		{"wrong auth", ua, make([]byte, AuthLen), good},
		{"flipped ciphertext", ua, auth, mod(func(b []byte) []byte { b[len(b)-1] ^= 1; return b })},
		{"flipped salt", ua, auth, mod(func(b []byte) []byte { b[0] ^= 1; return b })},
		{"idlen 64", ua, auth, mod(func(b []byte) []byte { b[SaltLen+4] = 64; return b })},
		{"rs 17", ua, auth, mod(func(b []byte) []byte { copy(b[SaltLen:], []byte{0, 0, 0, 17}); return b })},
		{"rs below record", ua, auth, mod(func(b []byte) []byte { copy(b[SaltLen:], []byte{0, 0, 0, 20}); return b })},
		{"keyid not a point", ua, auth, mod(func(b []byte) []byte { b[SaltLen+5] = 7; return b })},
		{"no record", ua, auth, good[:HeaderLen]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Decrypt(tc.ua, tc.auth, tc.body); !errors.Is(err, ErrDecrypt) {
				t.Fatalf("err = %v, want ErrDecrypt", err)
			}
		})
	}
	// No proper prefix decrypts.
	for i := range len(good) {
		if _, err := Decrypt(ua, auth, good[:i]); err == nil {
			t.Fatalf("prefix of %d bytes decrypted", i)
		}
	}
}

func FuzzDecrypt(f *testing.F) {
	ua, err := ecdh.P256().NewPrivateKey(unb64(f, rfc8291.uaPrivate))
	if err != nil {
		f.Fatal(err)
	}
	auth := unb64(f, rfc8291.auth)
	f.Add(unb64(f, rfc8291.body))
	body, err := Encrypt(rand.Reader, []byte(`{"title":"hi"}`), ua.PublicKey().Bytes(), auth)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(body)
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := ParseHeader(b)
		if err == nil && (n != HeaderLen || len(h.KeyID) != KeyLen || len(h.Salt) != SaltLen || h.RecordSize < 18) {
			t.Fatalf("header %+v, %d bytes", h, n)
		}
		plain, err := Decrypt(ua, auth, b)
		if err == nil && len(plain) > len(b) {
			t.Fatalf("plaintext longer than the body")
		}
	})
}

func BenchmarkEncrypt(b *testing.B) {
	ua, auth := newUA(b)
	plain := make([]byte, 256)
	pub := ua.PublicKey().Bytes()
	b.SetBytes(int64(len(plain)))
	for b.Loop() {
		if _, err := Encrypt(rand.Reader, plain, pub, auth); err != nil {
			b.Fatal(err)
		}
	}
}
