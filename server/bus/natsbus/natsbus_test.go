package natsbus_test

import (
	"log/slog"
	"testing"

	"github.com/jetstreamproto/jsp/internal/testutil"
	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/server/bus/bustest"
	"github.com/jetstreamproto/jsp/server/bus/natsbus"
)

func TestMain(m *testing.M) { testutil.VerifyTestMain(m) }

var quiet = slog.New(slog.DiscardHandler)

func embedded(t testing.TB, edit func(*natsbus.EmbeddedConfig)) *natsbus.Bus {
	t.Helper()
	cfg := natsbus.EmbeddedConfig{
		Server: natsbus.ServerConfig{DataDir: t.TempDir(), Logger: quiet},
		Client: natsbus.ClientConfig{Logger: quiet},
	}
	if edit != nil {
		edit(&cfg)
	}
	b, err := natsbus.Embedded(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func TestConformance(t *testing.T) {
	bustest.Run(t, func(t *testing.T) bus.Bus { return embedded(t, nil) })
}
