package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/security/breaker"
	"github.com/jetstreamproto/jsp/security/devicekey"
	"github.com/jetstreamproto/jsp/session"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/wire"
)

// scopeAuth admits everyone as user "u" with the scopes named in HELLO
// auth (comma-separated), expiring at exp.
func scopeAuth(exp time.Time) session.Authenticator {
	return func(_ context.Context, h *wire.Hello, _ transport.Conn) (session.Identity, error) {
		var scopes []string
		if len(h.Auth) > 0 {
			scopes = strings.Split(string(h.Auth), ",")
		}
		return session.Identity{User: "u", Scopes: scopes, Expires: exp}, nil
	}
}

func (g *testGateway) dialAuth(t *testing.T, auth string) *session.Session {
	t.Helper()
	conn := g.dialConn(t, transport.KindQUIC)
	s, err := session.Dial(ctxT(t), conn, session.ClientInfo{Name: "gateway-test", Auth: []byte(auth)}, session.Config{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestAdminCommands(t *testing.T) {
	reg, err := devicekey.NewMemoryRegistry(devicekey.MemoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, Config{QUICAddr: "127.0.0.1:0", WSAddr: "off", Authenticate: scopeAuth(time.Time{}), Devices: reg})
	k, _ := devicekey.GenerateKey(nil)
	svc := func(name string) wire.Route { return wire.Route{Kind: wire.RouteService, Name: name} }
	reqBody, _ := json.Marshal(AdminRegisterRequest{Key: k.Public().String(), Owner: "alice"})

	user := g.dialAuth(t, "chat")
	if _, err := command(t, user, svc(AdminDeviceRegister), string(reqBody)); closeCode(err) != jsperr.Forbidden {
		t.Fatalf("register without admin: %v", err)
	}
	admin := g.dialAuth(t, "chat,admin")
	rep, err := command(t, admin, svc(AdminDeviceRegister), string(reqBody))
	if err != nil {
		t.Fatal(err)
	}
	var d AdminDevice
	if err := json.Unmarshal(rep.Body, &d); err != nil || d.ID != k.Public().ID().String() || d.Owner != "alice" {
		t.Fatalf("registered %+v %v", d, err)
	}
	tests := []struct {
		name, route, body string
		code              jsperr.Code
	}{
		{"again", AdminDeviceRegister, string(reqBody), jsperr.Conflict},
		{"bad key", AdminDeviceRegister, `{"key":"x","owner":"a"}`, jsperr.BadRequest},
		{"unknown field", AdminDeviceRegister, `{"key":"x","owner":"a","admin":true}`, jsperr.BadRequest},
		{"list without lister", AdminDeviceList, `{}`, jsperr.NotFound},
		{"revoke unknown", AdminDeviceRevoke, `{"id":"` + strings.Repeat("ab", 16) + `"}`, jsperr.NotFound},
		{"unknown command", "admin.nope", `{}`, jsperr.NotFound},
		{"oversize", AdminDeviceRevoke, `{"id":"` + strings.Repeat("a", maxAdminBody) + `"}`, jsperr.MessageTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := command(t, admin, svc(tt.route), tt.body); closeCode(err) != tt.code {
				t.Fatalf("err %v, want %s", err, tt.code)
			}
		})
	}
	rep, err = command(t, admin, svc(AdminDeviceRevoke), `{"id":"`+d.ID+`"}`)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(rep.Body, &d); err != nil || d.Revoked.IsZero() {
		t.Fatalf("revoked %+v %v", d, err)
	}
}

// TestRefreshWithoutConfig: a server without Config.Refresh refuses a
// refresh in place; the session goes on.
func TestRefreshWithoutConfig(t *testing.T) {
	g := startGateway(t, Config{QUICAddr: "127.0.0.1:0", WSAddr: "off", Authenticate: scopeAuth(time.Now().Add(time.Hour))})
	s := g.dialAuth(t, "chat")
	body := session.AppendRefreshRequest(nil, "jspt.x")
	if _, err := command(t, s, wire.Route{Kind: wire.RouteService, Name: session.RefreshService}, string(body)); closeCode(err) != jsperr.RefreshUnsupported {
		t.Fatalf("refresh: %v", err)
	}
	if _, err := command(t, s, wire.Route{Kind: wire.RouteService, Name: "echo"}, "x"); err != nil {
		t.Fatal(err)
	}
}

// TestRefreshMovesExpiry: a refreshed session outlives its first expiry;
// a malformed refresh is BAD_REQUEST.
func TestRefreshMovesExpiry(t *testing.T) {
	first := time.Now().Add(2 * time.Second)
	refresh := func(_ context.Context, cur session.Identity, tok string) (session.Identity, error) {
		if tok != "good" {
			return session.Identity{}, jsperr.New(jsperr.TokenBadSignature, "bad token")
		}
		cur.Expires = time.Now().Add(time.Hour)
		return cur, nil
	}
	g := startGateway(t, Config{QUICAddr: "127.0.0.1:0", WSAddr: "off", Authenticate: scopeAuth(first), Refresh: refresh})
	s := g.dialAuth(t, "chat")
	route := wire.Route{Kind: wire.RouteService, Name: session.RefreshService}
	if _, err := command(t, s, route, "garbage"); closeCode(err) != jsperr.BadRequest {
		t.Fatalf("malformed: %v", err)
	}
	if _, err := command(t, s, route, string(session.AppendRefreshRequest(nil, "bad"))); closeCode(err) != jsperr.TokenBadSignature {
		t.Fatalf("bad token: %v", err)
	}
	rep, err := command(t, s, route, string(session.AppendRefreshRequest(nil, "good")))
	if err != nil {
		t.Fatal(err)
	}
	if exp, err := session.ParseRefreshReply(rep.Body); err != nil || exp.Before(time.Now().Add(50*time.Minute)) {
		t.Fatalf("new expiry %v %v", exp, err)
	}
	time.Sleep(time.Until(first) + 300*time.Millisecond)
	if _, err := command(t, s, wire.Route{Kind: wire.RouteService, Name: "echo"}, "still here"); err != nil {
		t.Fatalf("after the first expiry: %v", err)
	}
}

func TestBreakerMetrics(t *testing.T) {
	br, err := breaker.New(breaker.Config{Name: "storage"})
	if err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, Config{QUICAddr: "127.0.0.1:0", WSAddr: "127.0.0.1:0", Breakers: []*breaker.Breaker{br}})
	code, body := get(t, g.httpClient(t), "https://"+g.Addrs().WebSocket.String()+"/metrics")
	if code != http.StatusOK || !strings.Contains(body, `jsp_breaker_state{name="storage"} 0`+"\n") {
		t.Fatalf("/metrics %d:\n%s", code, body)
	}
}
