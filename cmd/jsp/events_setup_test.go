package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/services/push/webpush"
)

// TestStoredVAPIDKey: without a key file the cluster's key is created once
// in the database and every core (here: two stores on one database,
// starting together) gets the same one, also after a restart.
func TestStoredVAPIDKey(t *testing.T) {
	ctx := context.Background()
	dsn := defaultDSN(t.TempDir())
	open := func() storage.Store {
		st, err := storage.Open(ctx, dsn, storage.Config{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		return st
	}
	first := open() // applies the migrations before the race below
	stores := []storage.Store{first, open()}
	keys := make([]*ecdsa.PrivateKey, len(stores))
	var wg sync.WaitGroup
	for i, st := range stores {
		wg.Go(func() {
			k, err := storedVAPIDKey(ctx, st)
			if err != nil {
				t.Error(err)
				return
			}
			keys[i] = k
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	again, err := storedVAPIDKey(ctx, open())
	if err != nil {
		t.Fatal(err)
	}
	want, _ := webpush.PublicKey(keys[0])
	for i, k := range append(keys, again) {
		if got, _ := webpush.PublicKey(k); !bytes.Equal(got, want) {
			t.Fatalf("key %d differs: two cores would sign with different keys", i)
		}
	}
}

// TestLoadVAPIDKey: an operator's key file is read; a missing file and a
// file without a key fail.
func TestLoadVAPIDKey(t *testing.T) {
	dir := t.TempDir()
	k, err := webpush.GenerateVAPIDKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "vapid.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := loadVAPIDKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(k) {
		t.Fatal("read a different key")
	}
	if _, err := loadVAPIDKey(filepath.Join(dir, "missing.pem")); err == nil {
		t.Fatal("a missing --vapid-key file was accepted")
	}
	bad := filepath.Join(dir, "bad.pem")
	if err := os.WriteFile(bad, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadVAPIDKey(bad); err == nil {
		t.Fatal("a file without a key was accepted")
	}
}
