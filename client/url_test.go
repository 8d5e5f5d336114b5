package client

import (
	"net"
	"strings"
	"testing"

	"github.com/jetstreamproto/jsp/transport"
)

func TestParseTarget(t *testing.T) {
	tests := []struct {
		in      string
		auto    bool
		kind    transport.Kind
		host    string
		addr    string
		wsURL   string
		wantErr string
	}{
		{in: "jsp://example.net", auto: true, host: "example.net", addr: "example.net:7400"},
		{in: "jsp://example.net:9000", auto: true, host: "example.net", addr: "example.net:9000"},
		{in: "JSP+QUIC://127.0.0.1:7500", kind: transport.KindQUIC, host: "127.0.0.1", addr: "127.0.0.1:7500"},
		{in: "jsp+tcp://[::1]:7400", kind: transport.KindTCP, host: "::1", addr: "[::1]:7400"},
		{in: "jsp+tcp://[::1]", kind: transport.KindTCP, host: "::1", addr: "[::1]:7400"},
		{in: "wss://example.net", kind: transport.KindWebSocket, host: "example.net", addr: "example.net:7401", wsURL: "wss://example.net:7401/jsp"},
		{in: "wss://example.net:443/custom/path?x=1", kind: transport.KindWebSocket, host: "example.net", addr: "example.net:443", wsURL: "wss://example.net:443/custom/path?x=1"},
		{in: "jsp://example.net/", auto: true, host: "example.net", addr: "example.net:7400"},
		{in: "ws://example.net", wantErr: "plain ws://"},
		{in: "http://example.net", wantErr: "unknown scheme"},
		{in: "jsp://example.net:0", wantErr: "bad port"},
		{in: "jsp://example.net:70000", wantErr: "bad port"},
		{in: "jsp://user:pw@example.net", wantErr: "credentials"},
		{in: "jsp:example.net", wantErr: "no host"},
		{in: "example.net:7400", wantErr: "no host"},
		{in: "jsp+quic://example.net/path", wantErr: "no path"},
		{in: "jsp://%zz", wantErr: "parse URL"},
		{in: "JSP://::", wantErr: "bad host"},
		{in: "jsp://[::1", wantErr: "parse URL"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseTarget(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseTarget(%q) error = %v, want containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseTarget(%q): %v", tt.in, err)
			}
			want := target{auto: tt.auto, kind: tt.kind, host: tt.host, addr: tt.addr, wsURL: tt.wsURL}
			if got != want {
				t.Fatalf("parseTarget(%q) = %+v, want %+v", tt.in, got, want)
			}
		})
	}
}

// FuzzParseTarget: any input either fails or yields a dialable target that
// its canonical URL parses back to.
func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{"jsp://example.net", "jsp+quic://127.0.0.1:7500", "jsp+tcp://[::1]", "wss://h:1/p?q=1", "ws://x", "jsp://u@h", "jsp:opaque", "JSP://H:65535/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		tg, err := parseTarget(raw)
		if err != nil {
			return
		}
		host, port, err := net.SplitHostPort(tg.addr)
		if err != nil || host != tg.host || port == "" || port == "0" {
			t.Fatalf("parseTarget(%q) gave addr %q for host %q", raw, tg.addr, tg.host)
		}
		if tg.auto == (tg.kind != "") {
			t.Fatalf("parseTarget(%q): auto %v with kind %q", raw, tg.auto, tg.kind)
		}
		if strings.Contains(tg.host, "%") {
			return // an IPv6 zone: its canonical URL needs escaping this check does not do
		}
		canon := tg.wsURL
		if canon == "" {
			scheme := SchemeAuto
			switch tg.kind {
			case transport.KindQUIC:
				scheme = SchemeQUIC
			case transport.KindTCP:
				scheme = SchemeTCP
			}
			canon = scheme + "://" + tg.addr
		}
		again, err := parseTarget(canon)
		if err != nil || again != tg {
			t.Fatalf("canonical %q of %q parses to %+v, %v; want %+v", canon, raw, again, err, tg)
		}
	})
}
