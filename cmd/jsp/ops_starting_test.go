package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/jetstreamproto/jsp/server/bus/natsbus"
	"github.com/jetstreamproto/jsp/server/config"
)

// TestOpenWaitDefault keeps the configuration's default of bus.open_wait
// equal to the bus package's (server/config does not import NATS).
func TestOpenWaitDefault(t *testing.T) {
	if got := config.Default().Bus.OpenWait; got != natsbus.DefaultOpenWait {
		t.Fatalf("config default %v, natsbus.DefaultOpenWait %v", got, natsbus.DefaultOpenWait)
	}
}

// TestStartingOps checks what the operations listener answers while the
// node opens: alive, not ready with the reason, "starting" in /status;
// then the node's own handler.
func TestStartingOps(t *testing.T) {
	s := &startingOps{flags: nodeFlags{role: roleCore, cluster: "c1"}}
	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequestWithContext(context.Background(), http.MethodGet, path, nil))
		return rec.Code, rec.Body.String()
	}
	tests := []struct {
		path string
		code int
		want string
	}{
		{"/healthz", http.StatusOK, "ok"},
		{"/readyz", http.StatusServiceUnavailable, "not ready: starting: connecting"},
		{"/status", http.StatusOK, `"ready":"starting: connecting`},
		{"/metrics", http.StatusOK, ""},
		{"/nothing", http.StatusNotFound, "not found"},
	}
	for _, tc := range tests {
		code, body := get(tc.path)
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("GET %s = %d %q, want %d %q", tc.path, code, body, tc.code, tc.want)
		}
	}
	_, body := get("/status")
	var st NodeStatus
	if err := json.Unmarshal([]byte(body), &st); err != nil || st.Role != roleCore || st.Cluster != "c1" {
		t.Fatalf("status %q: %+v, %v", body, st, err)
	}
	s.serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "node "+r.URL.Path) }))
	if code, body := get("/readyz"); code != http.StatusOK || body != "node /readyz" {
		t.Fatalf("after serve: %d %q", code, body)
	}
}
