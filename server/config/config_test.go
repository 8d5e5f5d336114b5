package config

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the reference table in docs/operations.md")

const docPath = "../../docs/operations.md"

// TestReferenceCurrent fails when the table in docs/operations.md differs
// from the struct tags; -update rewrites it.
func TestReferenceCurrent(t *testing.T) {
	raw, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	want, err := ReplaceReference(string(raw))
	if err != nil {
		t.Fatal(err)
	}
	if want == string(raw) {
		return
	}
	if *update {
		if err := os.WriteFile(docPath, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("%s: the configuration reference is stale; run go test ./server/config -update", docPath)
}

func TestKeysComplete(t *testing.T) {
	seenFlag := map[string]string{}
	for _, k := range Keys() {
		if k.Doc == "" || k.Type == "" || !strings.Contains(k.Name, ".") {
			t.Errorf("key %+v: missing doc, type or section", k)
		}
		if k.Flag != "" {
			if other, dup := seenFlag[k.Flag]; dup {
				t.Errorf("flag --%s on %s and %s", k.Flag, other, k.Name)
			}
			seenFlag[k.Flag] = k.Name
		}
		if !strings.HasPrefix(k.Env, EnvPrefix) || strings.ContainsAny(k.Env, ".- ") {
			t.Errorf("key %s: bad environment name %q", k.Name, k.Env)
		}
	}
}

func TestParse(t *testing.T) {
	l := NewLoaded()
	src := `# a comment
[server]
role = "gateway"   # trailing comment
cluster = 'prod'

[bus]
nats = [
  "nats://a:4222", # first
  "nats://b:4222",
]

[gateway]
drain_grace = "30s"
max_sessions = 20_000

[limits]
rate_conn = -1
`
	if err := l.Parse("jsp.toml", []byte(src)); err != nil {
		t.Fatal(err)
	}
	c := l.Config
	switch {
	case c.Server.Role != "gateway", c.Server.Cluster != "prod":
		t.Errorf("server = %+v", c.Server)
	case len(c.Bus.NATS) != 2 || c.Bus.NATS[1] != "nats://b:4222":
		t.Errorf("bus.nats = %q", c.Bus.NATS)
	case c.Gateway.DrainGrace != 30*time.Second, c.Gateway.MaxSessions != 20000:
		t.Errorf("gateway = %+v", c.Gateway)
	case c.Limits.RateConn != -1:
		t.Errorf("rate_conn = %v", c.Limits.RateConn)
	case c.Listen.QUIC != Default().Listen.QUIC:
		t.Errorf("untouched key changed: %q", c.Listen.QUIC)
	}
	if got := l.Origins["gateway.drain_grace"]; got != "file:13" {
		t.Errorf("origin = %q", got)
	}
}

// TestParseErrors checks that every malformed file is refused with the
// line and the key.
func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string
	}{
		{"unknown key", "[server]\nrole = \"all\"\nrolle = \"core\"\n", "f.toml:3: unknown key server.rolle"},
		{"unknown section", "[servers]\n", "f.toml:1: unknown section [servers]"},
		{"outside section", "role = \"all\"\n", "f.toml:1: key \"role\" outside a [section]"},
		{"bad duration", "[gateway]\n\ndrain_grace = \"ten\"\n", "f.toml:3: gateway.drain_grace: want a duration"},
		{"unquoted duration", "[gateway]\ndrain_grace = 10\n", "f.toml:2: gateway.drain_grace: want a quoted string"},
		{"string for int", "[gateway]\nmax_sessions = \"10\"\n", "f.toml:2: gateway.max_sessions: want a number"},
		{"negative int", "[gateway]\nmax_sessions = -3\n", "f.toml:2: gateway.max_sessions: want a non-negative integer"},
		{"duplicate", "[log]\nlevel = \"info\"\nlevel = \"debug\"\n", "f.toml:3: log.level: set twice (first on line 2)"},
		{"no equals", "[log]\nlevel\n", "f.toml:2: want key = value"},
		{"unclosed list", "[bus]\nnats = [\"a\",\n", "f.toml:2: bus.nats: list not closed"},
		{"list of numbers", "[bus]\nnats = [1]\n", "f.toml:2: bus.nats: list items must be quoted strings"},
		{"scalar for list", "[bus]\nnats = \"a\"\n", "f.toml:2: bus.nats: want a list"},
		{"trailing junk", "[log]\nlevel = \"info\" x\n", "f.toml:2: log.level: unexpected"},
		{"unterminated", "[log]\nlevel = \"info\n", "f.toml:2: log.level: want a quoted string"},
		{"missing value", "[log]\nlevel =\n", "f.toml:2: log.level: missing value"},
		{"array table", "[[log]]\n", "f.toml:1: malformed section header"},
		{"not in enum", "[log]\nlevel = \"loud\"\n", "f.toml:2: log.level: want one of debug, info, warn, error, got \"loud\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := NewLoaded().Parse("f.toml", []byte(tc.src))
			if err == nil || !errors.Is(err, ErrSyntax) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestEnvOverridesFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "jsp.toml")
	if err := os.WriteFile(path, []byte("[storage]\ndb = \"sqlite:/a\"\n[log]\nlevel = \"warn\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l := NewLoaded()
	if err := l.LoadFile(path); err != nil {
		t.Fatal(err)
	}
	env := []string{"JSP_STORAGE_DB=postgres://x/y", "JSP_BUS_NATS=nats://a:1, nats://b:2", "JSP_UNRELATED=1", "HOME=/"}
	if err := l.ApplyEnv(env); err != nil {
		t.Fatal(err)
	}
	if l.Storage.DB != "postgres://x/y" || l.Origins["storage.db"] != "env JSP_STORAGE_DB" {
		t.Errorf("db = %q from %q", l.Storage.DB, l.Origins["storage.db"])
	}
	if l.Log.Level != "warn" || l.Origins["log.level"] != "file:4" {
		t.Errorf("level = %q from %q", l.Log.Level, l.Origins["log.level"])
	}
	if len(l.Bus.NATS) != 2 || l.Bus.NATS[1] != "nats://b:2" {
		t.Errorf("nats = %q", l.Bus.NATS)
	}
	err := l.ApplyEnv([]string{"JSP_GATEWAY_DRAIN_GRACE=soon"})
	if err == nil || !strings.Contains(err.Error(), "JSP_GATEWAY_DRAIN_GRACE") || !strings.Contains(err.Error(), "gateway.drain_grace") {
		t.Fatalf("err = %v", err)
	}
}

// TestFormatRoundTrip checks that --print-config output is a valid file
// that reads back to the same configuration.
func TestFormatRoundTrip(t *testing.T) {
	l := NewLoaded()
	l.Bus.NATS = []string{`nats://a:1`, `we"ird`}
	l.Gateway.DrainGrace = 90 * time.Second
	l.Limits.RateUser = 1.5
	out := l.Format()
	back := NewLoaded()
	if err := back.Parse("print", []byte(out)); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if back.Format() != strings.ReplaceAll(out, "# default", "# file") && back.Bus.NATS[1] != `we"ird` {
		t.Fatalf("round trip differs")
	}
	a, b := l.Config, back.Config
	if a.Bus.NATS[1] != b.Bus.NATS[1] || a.Gateway.DrainGrace != b.Gateway.DrainGrace || a.Limits.RateUser != b.Limits.RateUser {
		t.Fatalf("round trip: %+v vs %+v", a, b)
	}
}

func TestSetGet(t *testing.T) {
	c := Default()
	if err := c.Set("tls.hosts", "a, b,,c"); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.Text("tls.hosts"); got != "a,b,c" {
		t.Errorf("hosts = %q", got)
	}
	if got, _ := c.Get("gateway.drain_grace"); got != `"10s"` {
		t.Errorf("drain_grace = %s", got)
	}
	if err := c.Set("nope.key", "1"); err == nil {
		t.Error("unknown key accepted")
	}
}

func FuzzParse(f *testing.F) {
	l := NewLoaded()
	f.Add(l.Format())
	f.Add("[bus]\nnats = [\"a\", 'b',\n]\n")
	f.Fuzz(func(t *testing.T, s string) {
		_ = NewLoaded().Parse("fuzz", []byte(s))
	})
}
