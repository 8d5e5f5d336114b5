package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func runToken(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := newTokenCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func TestTokenCommands(t *testing.T) {
	dir := t.TempDir()
	out, err := runToken(t, "", "keygen", "--out", dir)
	if err != nil {
		t.Fatal(err)
	}
	kid := regexp.MustCompile(`key id ([0-9a-f]{16})`).FindStringSubmatch(out)
	if kid == nil {
		t.Fatalf("keygen output: %s", out)
	}
	key, pub := filepath.Join(dir, "token-"+kid[1]+".key"), filepath.Join(dir, "token-"+kid[1]+".pub")
	if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v", err)
	}
	if _, err := runToken(t, "", "keygen", "--out", filepath.Join(dir, "missing")); err == nil {
		t.Fatal("keygen into a missing directory succeeded")
	}

	out, err = runToken(t, "", "issue", "--key", key, "--iss", "auth", "--aud", "gw", "--sub", "alice",
		"--scope", "chat:read,chat:write", "--ttl", "5m")
	if err != nil {
		t.Fatal(err)
	}
	tok := strings.TrimSpace(out)
	if !strings.HasPrefix(tok, "jspt.") {
		t.Fatalf("token %q", tok)
	}
	if _, err := runToken(t, "", "issue", "--key", key, "--aud", "gw", "--ttl", "2h"); err == nil {
		t.Fatal("issued beyond --max-ttl")
	}

	steps := []struct {
		stdin   string
		args    []string
		want    string
		wantErr string
	}{
		{args: []string{"verify", "--pub", pub, "--aud", "gw", tok}, want: "subject:    alice"},
		{stdin: tok + "\n", args: []string{"verify", "--pub", pub, "--aud", "gw"}, want: "scopes:     chat:read, chat:write"},
		{args: []string{"verify", "--pub", pub, "--aud", "other", tok}, wantErr: "TOKEN_WRONG_AUDIENCE"},
		{args: []string{"verify", "--pub", pub, "--aud", "gw", "--revoked", kid[1], tok}, wantErr: "TOKEN_KEY_REVOKED"},
		{args: []string{"verify", "--pub", pub, "--aud", "gw", "jspt.garbage"}, wantErr: "TOKEN_MALFORMED"},
		{args: []string{"verify", "--pub", key, "--aud", "gw", tok}, wantErr: "PUBLIC KEY"},
	}
	for _, st := range steps {
		out, err := runToken(t, st.stdin, st.args...)
		if st.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), st.wantErr) {
				t.Fatalf("%v: err %v, want %s", st.args, err, st.wantErr)
			}
			continue
		}
		if err != nil || !strings.Contains(out, st.want) {
			t.Fatalf("%v: err %v, output:\n%s", st.args, err, out)
		}
	}
}
