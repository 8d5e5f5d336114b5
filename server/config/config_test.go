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
	f.Add("[listen]\nws_behind_tls_proxy = true # on\n[bus]\nkv_replicas = 3\n")
	f.Fuzz(func(t *testing.T, s string) {
		_ = NewLoaded().Parse("fuzz", []byte(s))
	})
}

// TestBool checks booleans from each source: the file takes the bare
// words true and false, flags and the environment also 1 and 0, and
// anything else is refused with the key named.
func TestBool(t *testing.T) {
	const key = "listen.ws_behind_tls_proxy"
	def := Default()
	if got, _ := def.Get(key); got != "false" {
		t.Fatalf("default %s = %s, want false", key, got)
	}
	for _, tc := range []struct {
		name, src string
		want      bool
		err       string // "" when the file is valid
	}{
		{"true", "[listen]\nws_behind_tls_proxy = true\n", true, ""},
		{"false", "[listen]\nws_behind_tls_proxy = false # comment\n", false, ""},
		{"quoted", "[listen]\nws_behind_tls_proxy = \"true\"\n", false, "f.toml:2: listen.ws_behind_tls_proxy: want true or false, got \"true\""},
		{"number", "[listen]\nws_behind_tls_proxy = 1\n", false, "f.toml:2: listen.ws_behind_tls_proxy: want true or false, got 1"},
		{"capital", "[listen]\nws_behind_tls_proxy = True\n", false, "want true or false, got True"},
		{"yes", "[listen]\n\nws_behind_tls_proxy = yes\n", false, "f.toml:3: listen.ws_behind_tls_proxy: want true or false"},
		{"trailing", "[listen]\nws_behind_tls_proxy = true false\n", false, "f.toml:2: listen.ws_behind_tls_proxy: unexpected \"false\""},
		{"list", "[listen]\nws_behind_tls_proxy = [true]\n", false, "want true or false"},
		{"missing", "[listen]\nws_behind_tls_proxy =\n", false, "f.toml:2: listen.ws_behind_tls_proxy: missing value"},
	} {
		t.Run("file/"+tc.name, func(t *testing.T) {
			l := NewLoaded()
			err := l.Parse("f.toml", []byte(tc.src))
			if tc.err != "" {
				if err == nil || !errors.Is(err, ErrSyntax) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if l.Listen.WSBehindTLSProxy != tc.want || l.Origins[key] != "file:2" {
				t.Fatalf("%s = %v from %q", key, l.Listen.WSBehindTLSProxy, l.Origins[key])
			}
		})
	}
	for _, tc := range []struct {
		value string
		want  bool
		ok    bool
	}{
		{"1", true, true}, {"true", true, true}, {"0", false, true}, {"false", false, true},
		{"", false, false}, {"yes", false, false}, {"TRUE", false, false}, {"t", false, false},
		{"on", false, false}, {" 1", false, false}, {"2", false, false},
	} {
		t.Run("env/"+tc.value, func(t *testing.T) {
			l := NewLoaded()
			l.Listen.WSBehindTLSProxy = !tc.want // a refused value must not leave it changed either way
			before := l.Listen.WSBehindTLSProxy
			err := l.ApplyEnv([]string{"JSP_LISTEN_WS_BEHIND_TLS_PROXY=" + tc.value})
			if !tc.ok {
				if err == nil || !strings.Contains(err.Error(), "JSP_LISTEN_WS_BEHIND_TLS_PROXY") || !strings.Contains(err.Error(), key) {
					t.Fatalf("err = %v, want one naming the variable and %s", err, key)
				}
				if l.Listen.WSBehindTLSProxy != before {
					t.Fatal("refused value changed the key")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if l.Listen.WSBehindTLSProxy != tc.want || l.Origins[key] != "env JSP_LISTEN_WS_BEHIND_TLS_PROXY" {
				t.Fatalf("%s = %v from %q", key, l.Listen.WSBehindTLSProxy, l.Origins[key])
			}
		})
	}
	// Flags pass their value through Set as the environment does.
	c := Default()
	if err := c.Set(key, "true"); err != nil || !c.Listen.WSBehindTLSProxy {
		t.Fatalf("Set true: %v, %v", err, c.Listen.WSBehindTLSProxy)
	}
	if got, _ := c.Text(key); got != "true" {
		t.Fatalf("Text = %q", got)
	}
	// --print-config writes the bare word, which reads back.
	l := NewLoaded()
	l.Listen.WSBehindTLSProxy = true
	back := NewLoaded()
	if err := back.Parse("print", []byte(l.Format())); err != nil || !back.Listen.WSBehindTLSProxy {
		t.Fatalf("round trip: %v, %v", err, back.Listen.WSBehindTLSProxy)
	}
	if !strings.Contains(l.Format(), "ws_behind_tls_proxy = true  # default") {
		t.Fatalf("format:\n%s", l.Format())
	}
}

func TestParseBool(t *testing.T) {
	for in, want := range map[string]bool{"true": true, "1": true, "false": false, "0": false} {
		if got, err := ParseBool(in); err != nil || got != want {
			t.Errorf("ParseBool(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "True", "yes", "no", "on", "off", "01", "-1"} {
		if _, err := ParseBool(in); err == nil {
			t.Errorf("ParseBool(%q) accepted", in)
		}
	}
}
