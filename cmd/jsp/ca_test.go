package main

import (
	"bytes"
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCA(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newCACmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func TestCACommands(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	out := t.TempDir()
	steps := []struct {
		args    []string
		want    string
		wantErr bool
	}{
		{args: []string{"init", "--dir", dir}, wantErr: true}, // --cluster is required
		{args: []string{"init", "--dir", dir, "--cluster", "prod"}, want: "created CA for cluster prod"},
		{args: []string{"init", "--dir", dir, "--cluster", "prod"}, wantErr: true},
		{args: []string{"issue", "--dir", dir, "--role", "gateway", "--name", "gw-1", "--lifetime", "10m",
			"--dns", "gw.internal", "--ip", "127.0.0.1", "--out", out}, want: "issued jsp://prod/gateway/gw-1"},
		{args: []string{"issue", "--dir", dir, "--cluster", "staging", "--role", "gateway", "--name", "gw-1", "--out", out}, wantErr: true},
		{args: []string{"issue", "--dir", dir, "--role", "gateway", "--name", "gw-1", "--lifetime", "30s", "--out", out}, wantErr: true},
		{args: []string{"issue", "--dir", dir, "--role", "gateway", "--name", "gw-1", "--lifetime", "30s", "--min-lifetime", "10s", "--out", out},
			want: "issued"},
		{args: []string{"issue", "--dir", dir, "--role", "gateway", "--name", "gw-1", "--ip", "nope", "--out", out}, wantErr: true},
		{args: []string{"inspect", "--dir", dir}, want: "[current] JSP CA prod"},
		{args: []string{"rotate", "--dir", dir, "--overlap", "2h"}, want: "still trusted"},
		{args: []string{"inspect", "--dir", dir}, want: "[retired]"},
		{args: []string{"inspect", "--cert", filepath.Join(out, "gateway-gw-1.crt")}, want: "identity:  jsp://prod/gateway/gw-1"},
		{args: []string{"inspect", "--cert", filepath.Join(out, "gateway-gw-1.key")}, wantErr: true},
		{args: []string{"rotate", "--dir", dir, "--immediate"}, want: "rotated CA"},
	}
	for _, st := range steps {
		got, err := runCA(t, st.args...)
		if (err != nil) != st.wantErr {
			t.Fatalf("jsp ca %s: err %v, wantErr %v\n%s", strings.Join(st.args, " "), err, st.wantErr, got)
		}
		if !strings.Contains(got, st.want) {
			t.Fatalf("jsp ca %s: output lacks %q:\n%s", strings.Join(st.args, " "), st.want, got)
		}
	}
	if _, err := tls.LoadX509KeyPair(filepath.Join(out, "gateway-gw-1.crt"), filepath.Join(out, "gateway-gw-1.key")); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(out, "gateway-gw-1.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v, %v", fi.Mode(), err)
	}
}
