package integrationtests

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/server/bus/natsbus"
	"github.com/jetstreamproto/jsp/server/storage/postgres/pgtest"
)

// Environment of the NATS helper process: the test binary re-executed
// with envHelper=nats runs one embedded nats-server node until SIGTERM.
const (
	envHelper  = "JSP_IT_HELPER"
	envDir     = "JSP_IT_DIR"
	envName    = "JSP_IT_NAME"
	envListen  = "JSP_IT_LISTEN"
	envCluster = "JSP_IT_CLUSTER"
	envRoutes  = "JSP_IT_ROUTES"
)

func TestMain(m *testing.M) {
	if os.Getenv(envHelper) == "nats" {
		os.Exit(runNATSNode())
	}
	os.Exit(pgtest.Run(m))
}

// runNATSNode runs one node of the test's NATS cluster (JetStream on, in
// a cluster with the other nodes' routes) until SIGTERM or SIGINT; SIGKILL
// is the crash the test inflicts.
func runNATSNode() int {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := natsbus.StartServer(natsbus.ServerConfig{
		DataDir: os.Getenv(envDir),
		Name:    os.Getenv(envName),
		Listen:  os.Getenv(envListen),
		Cluster: natsbus.ClusterConfig{
			Name:   "jsp-it",
			Listen: os.Getenv(envCluster),
			Routes: strings.Split(os.Getenv(envRoutes), ","),
		},
		ReadyTimeout: time.Minute,
		Logger:       quiet,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "nats node:", err)
		return 1
	}
	fmt.Println("nats node ready", srv.ClientURL())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	srv.Shutdown()
	return 0
}
