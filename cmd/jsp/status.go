package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// defaultOpsAddr is where `jsp status` looks when --addr is not given:
// the address the operations guide suggests for --ops-addr.
const defaultOpsAddr = "127.0.0.1:7402"

func init() { rootCmd.AddCommand(newStatusCmd()) }

func newStatusCmd() *cobra.Command {
	var (
		addr    string
		asJSON  bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Print the state of a running jsp server",
		Long: `Print the state of a running jsp server: role, readiness (bus and
database reachable), sessions by transport, the gateways it announces to
clients and the core's counters. It reads /status from the operations
listener the server opened with --ops-addr.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			st, raw, err := fetchStatus(ctx, addr)
			if err != nil {
				return err
			}
			if asJSON {
				_, err := cmd.OutOrStdout().Write(raw)
				return err
			}
			printStatus(cmd.OutOrStdout(), st)
			return nil
		},
	}
	cmd.Flags().StringVar(&addr, "addr", defaultOpsAddr, "host:port (or http:// URL) of the server's --ops-addr listener")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the raw JSON")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Second, "how long to wait for the answer")
	return cmd
}

// fetchStatus reads /status from an operations listener.
func fetchStatus(ctx context.Context, addr string) (NodeStatus, []byte, error) {
	u := addr
	if !strings.Contains(u, "://") {
		u = "http://" + u
	}
	u = strings.TrimSuffix(u, "/") + "/status"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return NodeStatus{}, nil, fmt.Errorf("status %s: %w", u, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return NodeStatus{}, nil, fmt.Errorf("status: %w (is the server running with --ops-addr %s?)", err, addr)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return NodeStatus{}, nil, fmt.Errorf("status %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return NodeStatus{}, nil, fmt.Errorf("status %s: %s", u, resp.Status)
	}
	var st NodeStatus
	if err := json.Unmarshal(raw, &st); err != nil {
		return NodeStatus{}, nil, fmt.Errorf("status %s: %w", u, err)
	}
	return st, raw, nil
}

// printStatus writes a node's state for a human.
func printStatus(out io.Writer, st NodeStatus) {
	fmt.Fprintf(out, "role      %s\n", st.Role)
	if st.Node != "" {
		fmt.Fprintf(out, "node      %s\n", st.Node)
	}
	fmt.Fprintf(out, "cluster   %s\nuptime    %s\nready     %s\nbus       %s\nstorage   %s\n", st.Cluster, st.Uptime, st.Ready, st.Bus, st.Storage)
	if g := st.Gateway; g != nil {
		kinds := make([]string, 0, len(g.Health.Transports))
		for k := range g.Health.Transports {
			kinds = append(kinds, k)
		}
		sort.Strings(kinds)
		var parts []string
		for _, k := range kinds {
			parts = append(parts, fmt.Sprintf("%s %d", k, g.Health.Transports[k]))
		}
		fmt.Fprintf(out, "gateway   %s, %d sessions (%s), %d channels, %d subscribers\n",
			g.Health.Status, g.Health.Sessions, strings.Join(parts, ", "), g.Health.Channels, g.Health.Subscribers)
		fmt.Fprintf(out, "urls      %s\n", strings.Join(g.URLs, " "))
		if len(g.Gateways) > 0 {
			fmt.Fprintf(out, "others    %s\n", strings.Join(g.Gateways, " "))
		}
	}
	if c := st.Core; c != nil {
		fmt.Fprintf(out, "core      %d requests, %d published, %d duplicates, %d failed (%d storage errors)\n",
			c.Requests, c.Published, c.Duplicates, c.Failed, c.StoreErrors)
	}
}
