// Command jsp is the JetStreamProto command-line tool: `jsp server` runs the
// DevLink server; `jsp ping`, `jsp send` and `jsp recv` exercise it. Each
// subcommand lives in its own file and registers itself with rootCmd.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

var rootCmd = &cobra.Command{
	Use:           "jsp",
	Short:         "JetStreamProto server and tools",
	SilenceUsage:  true,
	SilenceErrors: true,
}

func main() {
	if err := rootCmd.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "jsp:", err)
		os.Exit(1)
	}
}
