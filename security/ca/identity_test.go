package ca

import (
	"crypto/x509"
	"net/url"
	"testing"
)

func TestParseIdentity(t *testing.T) {
	tests := []struct {
		in      string
		want    Identity
		wantErr bool
	}{
		{in: "jsp://prod/gateway/gw-1", want: Identity{"prod", "gateway", "gw-1"}},
		{in: "jsp://eu.prod/core/core_2", want: Identity{"eu.prod", "core", "core_2"}},
		{in: "jsp://a/b/c", want: Identity{"a", "b", "c"}},
		{in: "https://prod/gateway/gw-1", wantErr: true},
		{in: "jsp://prod/gateway", wantErr: true},
		{in: "jsp://prod/gateway/gw-1/extra", wantErr: true},
		{in: "jsp://prod//gw-1", wantErr: true},
		{in: "jsp://Prod/gateway/gw-1", wantErr: true},
		{in: "jsp://prod/gateway/gw%2F1", wantErr: true},
		{in: "jsp://prod:443/gateway/gw-1", wantErr: true},
		{in: "jsp://user@prod/gateway/gw-1", wantErr: true},
		{in: "jsp://prod/gateway/gw-1?x=1", wantErr: true},
		{in: "jsp://prod/gateway/-gw", wantErr: true},
		{in: "jsp://prod/gateway/gw-", wantErr: true},
		{in: "jsp://pr_od/gateway/gw", wantErr: true}, // '_' not allowed in a host
		{in: "jsp://a..b/gateway/gw", wantErr: true},
		{in: "jsp://prod/gateway/" + string(make([]byte, 64)), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseIdentity(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseIdentity(%q) = %v, want error", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseIdentity(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("ParseIdentity(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			if got.String() != tt.in {
				t.Fatalf("String() = %q, want %q", got.String(), tt.in)
			}
			if got.URI().String() != tt.in {
				t.Fatalf("URI() = %q, want %q", got.URI(), tt.in)
			}
		})
	}
}

func TestIdentityOf(t *testing.T) {
	u := func(s string) *url.URL {
		v, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		name    string
		uris    []*url.URL
		want    Identity
		wantErr bool
	}{
		{name: "one", uris: []*url.URL{u("jsp://prod/core/c1")}, want: Identity{"prod", "core", "c1"}},
		{name: "other schemes ignored", uris: []*url.URL{u("spiffe://x/y"), u("jsp://prod/core/c1")}, want: Identity{"prod", "core", "c1"}},
		{name: "none", uris: []*url.URL{u("spiffe://x/y")}, wantErr: true},
		{name: "two", uris: []*url.URL{u("jsp://prod/core/c1"), u("jsp://prod/gateway/g1")}, wantErr: true},
		{name: "malformed", uris: []*url.URL{u("jsp://prod/core")}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := IdentityOf(&x509.Certificate{URIs: tt.uris, SerialNumber: bigOne()})
			if (err != nil) != tt.wantErr {
				t.Fatalf("IdentityOf: err = %v, wantErr %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Fatalf("IdentityOf = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestIdentityInCertificate checks that an identity survives a real
// certificate's encoding, which parses the URI SAN with x509's own rules.
func TestIdentityInCertificate(t *testing.T) {
	clk := newFakeClock()
	c := newTestCA(t, "eu.prod", clk.Now)
	cert := mustIssue(t, c, "core", "core_7", 0)
	id, err := IdentityOf(cert.Leaf)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Identity{"eu.prod", "core", "core_7"}); id != want {
		t.Fatalf("identity %+v, want %+v", id, want)
	}
}

func FuzzParseIdentity(f *testing.F) {
	for _, s := range []string{"jsp://prod/gateway/gw-1", "jsp://eu.prod/core/core_2", "jsp://a/b/c", "jsp://x//y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseIdentity(s)
		if err != nil {
			return
		}
		// Whatever parses is canonical and survives x509's URI parsing.
		if id.String() != s {
			t.Fatalf("String() = %q, input %q", id.String(), s)
		}
		u, err := url.Parse(s)
		if err != nil || u.Host != id.Cluster || u.Path != "/"+id.Role+"/"+id.Name {
			t.Fatalf("url.Parse(%q) = %v, %v", s, u, err)
		}
	})
}
