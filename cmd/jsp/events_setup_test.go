package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/jetstreamproto/jsp/services/push/webpush"
)

// TestLoadVAPIDKey: the key is created once with mode 0600 and read back
// unchanged; a missing explicit file and a file without a key fail.
func TestLoadVAPIDKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, vapidFile)
	k1, err := loadVAPIDKey(path, true)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file %v %v", st.Mode(), err)
	}
	k2, err := loadVAPIDKey(path, true)
	if err != nil {
		t.Fatal(err)
	}
	p1, _ := webpush.PublicKey(k1)
	p2, _ := webpush.PublicKey(k2)
	if !bytes.Equal(p1, p2) {
		t.Fatal("second start made a new key")
	}
	if _, err := loadVAPIDKey(filepath.Join(dir, "given.pem"), false); err == nil {
		t.Fatal("a missing --vapid-key file was created")
	}
	bad := filepath.Join(dir, "bad.pem")
	if err := os.WriteFile(bad, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadVAPIDKey(bad, true); err == nil {
		t.Fatal("a file without a key was accepted")
	}
}
