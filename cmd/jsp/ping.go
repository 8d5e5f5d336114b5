package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/spf13/cobra"
)

// pingFlags are the `jsp ping` flags.
type pingFlags struct {
	dialFlags
	count    int
	interval time.Duration
}

func newPingCmd() *cobra.Command {
	var f pingFlags
	cmd := &cobra.Command{
		Use:   "ping URL",
		Short: "Connect to a JSP server and measure the round-trip time",
		Long: `Connect to a JSP server, then send PINGs one after another and report the
transport in use, the handshake time and the round-trip time percentiles.

` + urlHelp,
		Example: `  jsp ping jsp://localhost --pin sha256/...
  jsp ping wss://example.net/jsp -n 100`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPing(cmd.Context(), &f, args[0], cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f.register(cmd)
	cmd.Flags().IntVarP(&f.count, "count", "n", 20, "number of pings")
	cmd.Flags().DurationVarP(&f.interval, "interval", "i", 0, "pause between pings")
	return cmd
}

func init() { rootCmd.AddCommand(newPingCmd()) }

// runPing dials url, pings it f.count times and prints a summary on out.
func runPing(ctx context.Context, f *pingFlags, url string, out, errOut io.Writer) error {
	if f.count < 1 {
		return errors.New("--count must be at least 1")
	}
	if f.interval < 0 {
		return errors.New("--interval must not be negative")
	}
	c, err := f.dial(ctx, url, errOut)
	if err != nil {
		return err
	}
	defer c.Close()
	info := c.Info()
	fmt.Fprintf(out, "connected to %s (%s)\n", url, info.Remote)
	fmt.Fprintf(out, "transport: %s\n", info.Transport)
	fmt.Fprintf(out, "handshake: %s\n", formatDuration(info.Handshake))

	rtts := make([]time.Duration, 0, f.count)
	for i := range f.count {
		if i > 0 && f.interval > 0 {
			select {
			case <-time.After(f.interval):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		pctx, cancel := context.WithTimeout(ctx, f.timeout)
		rtt, err := c.Ping(pctx)
		cancel()
		if err != nil {
			return fmt.Errorf("ping %d of %d: %w", i+1, f.count, err)
		}
		rtts = append(rtts, rtt)
	}
	s := summarize(rtts)
	fmt.Fprintf(out, "rtt:       p50 %s  p99 %s  (min %s, max %s, %d pings)\n",
		formatDuration(s.p50), formatDuration(s.p99), formatDuration(s.min), formatDuration(s.max), len(rtts))
	return nil
}

// rttSummary are the statistics ping reports.
type rttSummary struct {
	min, p50, p99, max time.Duration
}

// summarize computes the statistics of a non-empty sample.
func summarize(d []time.Duration) rttSummary {
	s := slices.Clone(d)
	slices.Sort(s)
	return rttSummary{min: s[0], p50: percentile(s, 50), p99: percentile(s, 99), max: s[len(s)-1]}
}

// percentile returns the nearest-rank p-th percentile of a sorted,
// non-empty sample: the smallest value with at least p% of the sample at or
// below it.
func percentile(sorted []time.Duration, p int) time.Duration {
	rank := (p*len(sorted) + 99) / 100 // ceil(p/100 * n)
	return sorted[max(rank, 1)-1]
}

// formatDuration prints a duration with three significant digits in a unit
// that suits it.
func formatDuration(d time.Duration) string {
	switch {
	case d < time.Microsecond:
		return d.String()
	case d < time.Millisecond:
		return fmt.Sprintf("%.3gµs", float64(d)/float64(time.Microsecond))
	case d < time.Second:
		return fmt.Sprintf("%.3gms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.3gs", d.Seconds())
}
