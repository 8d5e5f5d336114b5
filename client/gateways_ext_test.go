package client_test

import (
	"testing"

	"github.com/jetstreamproto/jsp/client"
	"github.com/jetstreamproto/jsp/transport/tlsconf"
)

// TestReconnectUsesWelcomeGateways checks that a client whose gateway
// goes away reconnects to a gateway that gateway listed in WELCOME, and
// that a listed gateway it cannot trust is skipped, not fatal.
func TestReconnectUsesWelcomeGateways(t *testing.T) {
	untrusted := startServer(t, serverOpts{noWS: true, noQUIC: true})
	other := startServer(t, serverOpts{noWS: true, noQUIC: true})
	first := startServer(t, serverOpts{noWS: true, noQUIC: true, alternatives: []string{
		untrusted.url(client.SchemeTCP), other.url(client.SchemeTCP)}})
	rec := newRecorder()
	o := first.options()
	o.Pins = []tlsconf.Fingerprint{first.pin, other.pin}
	rec.install(&o)
	c, err := client.Dial(ctxT(t), first.url(client.SchemeTCP), o)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if gs := c.Gateways(); len(gs) != 3 || !gs[1].FromServer || gs[0].RTT == 0 {
		t.Fatalf("book after WELCOME: %+v", gs)
	}
	_ = first.g.Close()
	rec.wait(t, "disconnected")
	rec.wait(t, "resumed")
	if got := c.Info().URL; got != other.url(client.SchemeTCP) {
		t.Fatalf("reconnected to %s, want %s", got, other.url(client.SchemeTCP))
	}
	for _, g := range c.Gateways() {
		switch g.URL {
		case untrusted.url(client.SchemeTCP):
			if g.Failures == 0 {
				t.Errorf("untrusted gateway not marked failed: %+v", g)
			}
		case other.url(client.SchemeTCP):
			if g.Failures != 0 || g.RTT == 0 {
				t.Errorf("gateway in use: %+v", g)
			}
		}
	}
}
