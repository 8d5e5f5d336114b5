package main

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/jetstreamproto/jsp/security/ca"
)

func init() { rootCmd.AddCommand(newCACmd()) }

// caDefaultDir is where `jsp ca` keeps the CA unless --dir says otherwise.
const caDefaultDir = ".jsp-data/ca"

// newCACmd builds `jsp ca` with its subcommands; each call has its own flag
// variables, so tests can build and run it repeatedly.
func newCACmd() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "ca",
		Short: "Manage the built-in certificate authority for service mTLS",
		Long: "jsp ca keeps a cluster CA in a directory (ca.key 0600, ca.crt, trust.pem, state.json)\n" +
			"and issues short-lived certificates naming services as jsp://<cluster>/<role>/<name>.",
	}
	cmd.PersistentFlags().StringVar(&dir, "dir", caDefaultDir, "CA directory")
	cmd.AddCommand(newCAInitCmd(&dir), newCAIssueCmd(&dir), newCARotateCmd(&dir), newCAInspectCmd(&dir))
	return cmd
}

func newCAInitCmd(dir *string) *cobra.Command {
	var cfg ca.Config
	var alg string
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create a CA for a cluster",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.Algorithm = ca.Algorithm(alg)
			c, err := ca.Init(*dir, cfg)
			if err != nil {
				return err
			}
			cert := c.Certificate()
			fmt.Fprintf(cmd.OutOrStdout(), "created CA for cluster %s in %s\n  subject: %s\n  pin:     %s\n  expires: %s\n",
				c.Cluster(), c.Dir(), cert.Subject.CommonName, ca.PinOf(cert), cert.NotAfter.UTC().Format(time.RFC3339))
			return nil
		},
	}
	cmd.Flags().StringVar(&cfg.Cluster, "cluster", "", "cluster name (lower-case letters, digits, '-', '.')")
	cmd.Flags().StringVar(&alg, "algorithm", string(ca.ECDSAP256), "key algorithm: ecdsa-p256 or ed25519")
	cmd.Flags().DurationVar(&cfg.CALifetime, "ca-lifetime", ca.DefaultCALifetime, "validity of the CA certificate")
	_ = cmd.MarkFlagRequired("cluster")
	return cmd
}

func newCAIssueCmd(dir *string) *cobra.Command {
	var (
		cfg      ca.Config
		id       ca.Identity
		lifetime time.Duration
		dns      []string
		ips      []string
		out      string
	)
	cmd := &cobra.Command{
		Use:   "issue",
		Short: "Issue a short-lived certificate for a service",
		Long: "Writes <out>/<role>-<name>.crt and .key (mode 0600). The certificate names the\n" +
			"service jsp://<cluster>/<role>/<name>; lifetime defaults to 24h.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := ca.Open(*dir, cfg)
			if err != nil {
				return err
			}
			opts := []ca.IssueOption{ca.WithDNSNames(dns...)}
			for _, s := range ips {
				a, err := netip.ParseAddr(s)
				if err != nil {
					return fmt.Errorf("--ip %q: %w", s, err)
				}
				opts = append(opts, ca.WithIPAddresses(a))
			}
			cert, err := c.Issue(id, lifetime, opts...)
			if err != nil {
				return err
			}
			base := filepath.Join(out, id.Role+"-"+id.Name)
			if err := ca.WriteFiles(base+".crt", base+".key", cert); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "issued %s\n  certificate: %s.crt\n  key:         %s.key\n  expires:     %s\n",
				cert.Leaf.URIs[0], base, base, cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Cluster, "cluster", "", "cluster the CA must serve (default: the CA's cluster)")
	f.StringVar(&id.Role, "role", "", "service role, e.g. gateway, core, nats")
	f.StringVar(&id.Name, "name", "", "service instance name, e.g. gw-1")
	f.DurationVar(&lifetime, "lifetime", ca.DefaultLifetime, "certificate lifetime")
	f.DurationVar(&cfg.MinLifetime, "min-lifetime", ca.DefaultMinLifetime, "shortest lifetime allowed")
	f.DurationVar(&cfg.MaxLifetime, "max-lifetime", ca.DefaultMaxLifetime, "longest lifetime allowed")
	f.StringSliceVar(&dns, "dns", nil, "extra DNS SANs, for peers that check host names")
	f.StringSliceVar(&ips, "ip", nil, "extra IP SANs")
	f.StringVar(&out, "out", ".", "directory for the certificate and key files")
	_ = cmd.MarkFlagRequired("role")
	_ = cmd.MarkFlagRequired("name")
	return cmd
}

func newCARotateCmd(dir *string) *cobra.Command {
	var (
		opts ca.RotateOptions
		alg  string
		cfg  ca.Config
	)
	cmd := &cobra.Command{
		Use:   "rotate",
		Short: "Replace the CA key, trusting the old CA until its certificates expire",
		Long: "Creates a new CA key and certificate. The old CA stays in trust.pem for the overlap\n" +
			"(default: the longest certificate lifetime) unless --immediate, for a compromised key.\n" +
			"Distribute the new trust.pem and state.json, then renew service certificates.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := ca.Open(*dir, cfg)
			if err != nil {
				return err
			}
			opts.Algorithm = ca.Algorithm(alg)
			if err := c.Rotate(opts); err != nil {
				return err
			}
			cert := c.Certificate()
			fmt.Fprintf(cmd.OutOrStdout(), "rotated CA for cluster %s\n  new subject: %s\n  new pin:     %s\n",
				c.Cluster(), cert.Subject.CommonName, ca.PinOf(cert))
			for _, a := range c.Trust().Anchors()[1:] {
				fmt.Fprintf(cmd.OutOrStdout(), "  still trusted: %s until %s\n",
					a.Cert.Subject.CommonName, a.Until.UTC().Format(time.RFC3339))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.DurationVar(&opts.Overlap, "overlap", 0, "how long the old CA stays trusted (default: --max-lifetime)")
	f.DurationVar(&cfg.MaxLifetime, "max-lifetime", ca.DefaultMaxLifetime, "longest certificate lifetime in use")
	f.BoolVar(&opts.Immediate, "immediate", false, "stop trusting the old CA now (compromised key)")
	f.StringVar(&alg, "algorithm", "", "key algorithm of the new CA (default: unchanged)")
	return cmd
}

func newCAInspectCmd(dir *string) *cobra.Command {
	var certFile string
	cmd := &cobra.Command{
		Use:   "inspect",
		Short: "Summarise the CA directory, or a certificate with --cert",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			now := time.Now()
			if certFile == "" {
				s, err := ca.Inspect(*dir)
				if err != nil {
					return err
				}
				return s.WriteText(cmd.OutOrStdout(), now)
			}
			raw, err := os.ReadFile(certFile)
			if err != nil {
				return err
			}
			block, _ := pem.Decode(raw)
			if block == nil || block.Type != "CERTIFICATE" {
				return errors.New(certFile + ": no CERTIFICATE PEM block")
			}
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return fmt.Errorf("%s: %w", certFile, err)
			}
			return ca.InspectCertificate(cert).WriteText(cmd.OutOrStdout(), now)
		},
	}
	cmd.Flags().StringVar(&certFile, "cert", "", "certificate file to inspect instead of the CA")
	return cmd
}
