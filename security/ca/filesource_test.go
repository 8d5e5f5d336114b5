package ca

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestFileSourceReloads(t *testing.T) {
	clk := newFakeClock()
	authority, err := Init(t.TempDir(), Config{Cluster: "prod", Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "svc.crt"), filepath.Join(dir, "svc.key")
	id := Identity{Cluster: "prod", Role: "core", Name: "c1"}
	first, err := authority.Issue(id, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteFiles(certPath, keyPath, first); err != nil {
		t.Fatal(err)
	}
	src, err := NewFileSource(certPath, keyPath, time.Second, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	if src.Identity() != id {
		t.Fatalf("identity %v", src.Identity())
	}
	got, _ := src.Certificate()
	if got.Leaf.SerialNumber.Cmp(first.Leaf.SerialNumber) != 0 {
		t.Fatal("not the first certificate")
	}
	// A renewed pair replaces the files; within the interval the old one
	// is still presented, after it the new one.
	second, err := authority.Issue(id, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteFiles(certPath, keyPath, second); err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(time.Minute)
	for _, p := range []string{certPath, keyPath} {
		if err := os.Chtimes(p, future, future); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := src.Certificate(); got.Leaf.SerialNumber.Cmp(first.Leaf.SerialNumber) != 0 {
		t.Fatal("reloaded before the check interval")
	}
	clk.Advance(time.Second)
	if got, _ := src.Certificate(); got.Leaf.SerialNumber.Cmp(second.Leaf.SerialNumber) != 0 {
		t.Fatal("renewed files not picked up")
	}
	// A broken file keeps the last good certificate and reports why.
	if err := os.WriteFile(certPath, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	later := future.Add(time.Minute)
	if err := os.Chtimes(certPath, later, later); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	if got, _ := src.Certificate(); got.Leaf.SerialNumber.Cmp(second.Leaf.SerialNumber) != 0 {
		t.Fatal("a broken file replaced the certificate")
	}
	if src.LastError() == nil {
		t.Fatal("no error reported for the broken file")
	}
	if _, err := NewFileSource(certPath, keyPath, 0, nil); err == nil {
		t.Fatal("broken pair loaded")
	}
}
