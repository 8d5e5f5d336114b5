package config

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// TestDottedKeyTables checks keys with a dot in their name: read under
// their table header or as dotted keys, named in errors, written by
// Format under one header per table, and their environment variables.
func TestDottedKeyTables(t *testing.T) {
	const key = "storage.sqlite.checkpoint_bytes"
	for _, tc := range []struct {
		name, src string
		want      int
		origin    string
	}{
		{"table", "[storage]\ndb = \"sqlite:/x\"\n[storage.sqlite]\ncheckpoint_bytes = 1_000\n", 1000, "file:4"},
		{"dotted", "[storage]\nsqlite.checkpoint_bytes = 2000\n", 2000, "file:2"},
		{"table then section again", "[storage.sqlite]\ncheckpoint_bytes = 3000\n[storage]\nmax_conns = 2\n", 3000, "file:2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := NewLoaded()
			if err := l.Parse("f.toml", []byte(tc.src)); err != nil {
				t.Fatal(err)
			}
			if l.Storage.SQLiteCheckpointBytes != tc.want || l.Origins[key] != tc.origin {
				t.Fatalf("%s = %d from %q, want %d from %q", key, l.Storage.SQLiteCheckpointBytes, l.Origins[key], tc.want, tc.origin)
			}
		})
	}
	for _, tc := range []struct{ name, src, want string }{
		{"unknown table", "[storage.sqlite.wal]\n", "f.toml:1: unknown section [storage.sqlite.wal]"},
		{"table alone", "[sqlite]\n", "f.toml:1: unknown section [sqlite]"},
		{"key of the section in the table", "[storage.sqlite]\ndb = \"x\"\n", "f.toml:2: unknown key storage.sqlite.db"},
		{"twice", "[storage]\nsqlite.wal_limit_bytes = 1\n[storage.sqlite]\nwal_limit_bytes = 2\n", "f.toml:4: storage.sqlite.wal_limit_bytes: set twice (first on line 2)"},
		{"negative", "[storage.sqlite]\nclaim_merge_rows = -1\n", "f.toml:2: storage.sqlite.claim_merge_rows: want a non-negative integer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := NewLoaded().Parse("f.toml", []byte(tc.src))
			if err == nil || !errors.Is(err, ErrSyntax) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}

	l := NewLoaded()
	if err := l.ApplyEnv([]string{"JSP_STORAGE_SQLITE_CHECKPOINT_IDLE=750ms"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := l.Get("storage.sqlite.checkpoint_idle"); got != `"750ms"` {
		t.Fatalf("checkpoint_idle from the environment = %s", got)
	}
	// Each table header once, every key written under the table its name
	// names, and the output reads back.
	out := l.Format()
	headers := map[string]int{}
	section := ""
	for line := range strings.SplitSeq(out, "\n") {
		if strings.HasPrefix(line, "[") {
			section = strings.Trim(line, "[]")
			headers[section]++
			continue
		}
		if k, _, ok := strings.Cut(line, " = "); ok && lookupKey(section+"."+k) == nil {
			t.Errorf("format writes %q under [%s]", k, section)
		}
	}
	for h, n := range headers {
		if n != 1 {
			t.Errorf("format writes [%s] %d times", h, n)
		}
	}
	if headers["storage.sqlite"] != 1 {
		t.Errorf("format has no [storage.sqlite]:\n%s", out)
	}
	back := NewLoaded()
	if err := back.Parse("printed", []byte(out)); err != nil || back.Storage.SQLiteCheckpointIdle != l.Storage.SQLiteCheckpointIdle {
		t.Fatalf("round trip: %v", err)
	}
}

// TestDocExamplesParse checks that every TOML example in
// docs/operations.md is a valid configuration file.
func TestDocExamplesParse(t *testing.T) {
	raw, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	blocks := strings.Split(string(raw), "```toml\n")[1:]
	if len(blocks) == 0 {
		t.Fatal("no TOML examples found")
	}
	for i, b := range blocks {
		src, _, ok := strings.Cut(b, "```")
		if !ok {
			t.Fatalf("example %d not closed", i+1)
		}
		if err := NewLoaded().Parse("example", []byte(src)); err != nil {
			t.Errorf("example %d: %v\n%s", i+1, err, src)
		}
	}
}
