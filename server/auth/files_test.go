package auth

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/jetstreamproto/jsp/security/devicekey"
	"github.com/jetstreamproto/jsp/security/token"
)

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
