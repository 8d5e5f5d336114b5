package client_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"testing"

	"github.com/jetstreamproto/jsp/client"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/session"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/wire"
)

const bindingLabel = "EXPORTER-JSP-test-binding"

func exporter(st tls.ConnectionState) ([]byte, error) {
	return st.ExportKeyingMaterial(bindingLabel, nil, 32)
}

// TestCredentialsPerConnection: Options.Credentials sees the TLS state of
// the connection being set up, on every transport, so a credential can be
// bound to that connection; the server sees the same exporter value.
func TestCredentialsPerConnection(t *testing.T) {
	srv := startServer(t, serverOpts{auth: func(ctx context.Context, h *wire.Hello, c transport.Conn) (session.Identity, error) {
		want, err := exporter(c.TLS())
		if err != nil {
			return session.Identity{}, err
		}
		if !bytes.Equal(h.Auth, want) {
			return session.Identity{}, jsperr.New(jsperr.ChannelBindingFailed, "credential not bound to this connection")
		}
		return session.Identity{User: "bound"}, nil
	}})
	for _, scheme := range []string{client.SchemeQUIC, client.SchemeTCP, client.SchemeWebSocket} {
		t.Run(scheme, func(t *testing.T) {
			c := srv.dial(t, scheme, func(o *client.Options) {
				o.Credentials = func(ctx context.Context, st tls.ConnectionState) ([]byte, error) { return exporter(st) }
			})
			if _, err := c.Command(ctxT(t), "echo", []byte("x")); err != nil {
				t.Fatal(err)
			}
		})
	}
	// A credential from elsewhere is refused with the server's code.
	o := srv.options()
	o.Credentials = func(ctx context.Context, st tls.ConnectionState) ([]byte, error) { return make([]byte, 32), nil }
	_, err := client.Dial(ctxT(t), srv.url(client.SchemeTCP), o)
	if jsperr.CodeOf(err) != jsperr.ChannelBindingFailed {
		t.Fatalf("Dial with a foreign credential: %v, want CHANNEL_BINDING_FAILED", err)
	}
}
