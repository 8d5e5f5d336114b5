package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/jetstreamproto/jsp/client"
	"github.com/jetstreamproto/jsp/security/credential"
	"github.com/jetstreamproto/jsp/security/devicekey"
	"github.com/jetstreamproto/jsp/server/gateway"
)

func init() { rootCmd.AddCommand(newAdminCmd()) }

// adminFlags are the connection and credential flags of the admin
// commands.
type adminFlags struct {
	dial      dialFlags
	token     string
	tokenFile string
}

func (f *adminFlags) register(cmd *cobra.Command) {
	f.dial.register(cmd)
	cmd.Flags().StringVar(&f.token, "token", "", "token with the admin scope (jsp token issue --scope admin)")
	cmd.Flags().StringVar(&f.tokenFile, "token-file", "", "file holding the admin token")
}

func (f *adminFlags) tokenText() (string, error) {
	switch {
	case f.token != "" && f.tokenFile != "":
		return "", errors.New("--token and --token-file go alone")
	case f.token != "":
		return f.token, nil
	case f.tokenFile != "":
		raw, err := os.ReadFile(f.tokenFile)
		if err != nil {
			return "", fmt.Errorf("--token-file: %w", err)
		}
		return strings.TrimSpace(string(raw)), nil
	}
	return "", errors.New("admin commands need --token or --token-file (a token with the admin scope)")
}

// connect dials url and authenticates with the admin token.
func (f *adminFlags) connect(ctx context.Context, url string, logOut io.Writer) (*client.Client, error) {
	tok, err := f.tokenText()
	if err != nil {
		return nil, err
	}
	o, err := f.dial.options(logOut)
	if err != nil {
		return nil, err
	}
	o.Credentials = func(_ context.Context, cs tls.ConnectionState) ([]byte, error) {
		return credential.ForConnection(tok, devicekey.PrivateKey{}, cs)
	}
	return client.Dial(ctx, url, o)
}

// call connects to url with the admin token, runs one admin command and
// decodes its JSON reply into out.
func (f *adminFlags) call(ctx context.Context, url, command string, req, out any, logOut io.Writer) error {
	c, err := f.connect(ctx, url, logOut)
	if err != nil {
		return err
	}
	defer c.Close()
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encode %s: %w", command, err)
	}
	rep, err := c.Command(ctx, command, body)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(rep, out); err != nil {
		return fmt.Errorf("%s: reply: %w", command, err)
	}
	return nil
}

func newAdminCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "admin",
		Short: "Administer a running server (device keys, users, webhooks)",
		Long: `Administer a running server over JSP. The commands authenticate with a
token that carries the "admin" scope (jsp token issue --scope admin) and are
served by the gateway, which checks the scope for every command.`,
	}
	dev := &cobra.Command{Use: "device", Short: "Register, list and revoke device keys"}
	dev.AddCommand(newAdminRegisterCmd(), newAdminListCmd(), newAdminRevokeCmd())
	cmd.AddCommand(dev, newAdminUserCmd(), newAdminWebhookCmd())
	return cmd
}

func adminContext(cmd *cobra.Command, f *adminFlags) (context.Context, context.CancelFunc) {
	return context.WithTimeout(cmd.Context(), f.dial.timeout+client.DefaultCommandTimeout)
}

func newAdminRegisterCmd() *cobra.Command {
	var f adminFlags
	var req gateway.AdminRegisterRequest
	cmd := &cobra.Command{
		Use:   "register URL",
		Short: "Register a device's public key for a user",
		Long:  "Register a device's Ed25519 public key (base64url, as the device prints it) for --owner.\n\n" + urlHelp,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := adminContext(cmd, &f)
			defer cancel()
			var d gateway.AdminDevice
			if err := f.call(ctx, args[0], gateway.AdminDeviceRegister, req, &d, cmd.ErrOrStderr()); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "registered device %s for %q\n", d.ID, d.Owner)
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&req.Key, "key", "", "the device's public key")
	cmd.Flags().StringVar(&req.Owner, "owner", "", "the user the device acts for")
	cmd.Flags().StringVar(&req.Name, "name", "", "a label, e.g. \"Alice's phone\"")
	return cmd
}

func newAdminListCmd() *cobra.Command {
	var f adminFlags
	var req gateway.AdminListRequest
	cmd := &cobra.Command{
		Use:   "list URL",
		Short: "List registered devices, revoked ones too",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := adminContext(cmd, &f)
			defer cancel()
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 8, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tOWNER\tNAME\tREGISTERED\tSTATE")
			for {
				var page gateway.AdminListReply
				if err := f.call(ctx, args[0], gateway.AdminDeviceList, req, &page, cmd.ErrOrStderr()); err != nil {
					return err
				}
				for _, d := range page.Devices {
					state := "active"
					if !d.Revoked.IsZero() {
						state = "revoked " + d.Revoked.Format(time.RFC3339)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", d.ID, d.Owner, d.Name, d.Registered.Format(time.RFC3339), state)
				}
				if page.Next == "" {
					break
				}
				req.After = page.Next
			}
			return tw.Flush()
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&req.Owner, "owner", "", "list one user's devices")
	cmd.Flags().IntVar(&req.Limit, "page", gateway.DefaultAdminListLimit, "devices per request")
	return cmd
}

func newAdminRevokeCmd() *cobra.Command {
	var f adminFlags
	cmd := &cobra.Command{
		Use:   "revoke URL DEVICE-ID",
		Short: "Revoke a device; its sessions are disconnected within one heartbeat",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := adminContext(cmd, &f)
			defer cancel()
			var d gateway.AdminDevice
			if err := f.call(ctx, args[0], gateway.AdminDeviceRevoke, gateway.AdminRevokeRequest{ID: args[1]}, &d, cmd.ErrOrStderr()); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "revoked device %s of %q at %s; %d session(s) on that gateway closed now, others within one heartbeat\n",
				d.ID, d.Owner, d.Revoked.Format(time.RFC3339), d.Disconnected)
			return nil
		},
	}
	f.register(cmd)
	return cmd
}
