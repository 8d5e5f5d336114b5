package main

import (
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/jetstreamproto/jsp/security/token"
)

func init() { rootCmd.AddCommand(newTokenCmd()) }

// newTokenCmd builds `jsp token` with its subcommands; each call has its
// own flag variables, so tests can build and run it repeatedly.
func newTokenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create signing keys, issue and verify short-lived auth tokens",
	}
	cmd.AddCommand(newTokenKeygenCmd(), newTokenIssueCmd(), newTokenVerifyCmd())
	return cmd
}

func newTokenKeygenCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "keygen",
		Short: "Create an Ed25519 token signing key",
		Long:  "Writes <out>/token-<key id>.key (mode 0600) and <out>/token-<key id>.pub.",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			k, err := token.GenerateKey(rand.Reader)
			if err != nil {
				return err
			}
			priv, err := token.MarshalPrivateKeyPEM(k)
			if err != nil {
				return err
			}
			pub, err := token.MarshalPublicKeyPEM(k.Public())
			if err != nil {
				return err
			}
			base := filepath.Join(out, "token-"+k.KeyID().String())
			if err := tokenWriteNew(base+".key", priv, 0o600); err != nil {
				return err
			}
			if err := tokenWriteNew(base+".pub", pub, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "key id %s\n  private: %s.key\n  public:  %s.pub\n", k.KeyID(), base, base)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", ".", "directory for the key files")
	return cmd
}

// tokenWriteNew creates path with perm; it never overwrites a key.
func tokenWriteNew(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

func newTokenIssueCmd() *cobra.Command {
	var (
		keyFile string
		claims  token.Claims
		ttl     time.Duration
		maxTTL  time.Duration
	)
	cmd := &cobra.Command{
		Use:   "issue",
		Short: "Issue a token signed with a key from `jsp token keygen`",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			raw, err := os.ReadFile(keyFile)
			if err != nil {
				return err
			}
			k, err := token.ParsePrivateKeyPEM(raw)
			if err != nil {
				return fmt.Errorf("%s: %w", keyFile, err)
			}
			ks, err := token.NewKeySet(token.KeySetConfig{MaxLifetime: maxTTL})
			if err != nil {
				return err
			}
			if err := ks.Rotate(k, 0); err != nil {
				return err
			}
			claims.NotBefore = time.Now()
			claims.Expiry = claims.NotBefore.Add(ttl)
			text, err := ks.Issue(claims)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), text)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&keyFile, "key", "", "signing key file (PEM)")
	f.StringVar(&claims.Issuer, "iss", "", "issuer")
	f.StringVar(&claims.Audience, "aud", "", "audience: the service that accepts the token")
	f.StringVar(&claims.Subject, "sub", "", "subject: the user or client")
	f.StringSliceVar(&claims.Scopes, "scope", nil, "scopes (repeat or comma-separate)")
	f.DurationVar(&ttl, "ttl", 15*time.Minute, "lifetime")
	f.DurationVar(&maxTTL, "max-ttl", token.DefaultMaxLifetime, "longest lifetime allowed")
	_ = cmd.MarkFlagRequired("key")
	_ = cmd.MarkFlagRequired("aud")
	return cmd
}

func newTokenVerifyCmd() *cobra.Command {
	var (
		pubFiles []string
		audience string
		revoked  []string
		leeway   time.Duration
	)
	cmd := &cobra.Command{
		Use:   "verify [token|-]",
		Short: "Verify a token against public keys; '-' or no argument reads it from stdin",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			text := ""
			if len(args) == 1 && args[0] != "-" {
				text = args[0]
			} else {
				raw, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), 4096))
				if err != nil {
					return err
				}
				text = string(raw)
			}
			ks, err := token.NewKeySet(token.KeySetConfig{Leeway: leeway})
			if err != nil {
				return err
			}
			for _, p := range pubFiles {
				raw, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				pub, err := token.ParsePublicKeyPEM(raw)
				if err != nil {
					return fmt.Errorf("%s: %w", p, err)
				}
				if err := ks.AddVerifyKey(pub, time.Time{}); err != nil {
					return err
				}
			}
			for _, s := range revoked {
				kid, err := token.ParseKeyID(s)
				if err != nil {
					return err
				}
				ks.Revoke(kid)
			}
			tok, err := ks.Verify(strings.TrimSpace(text), audience)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "valid\n  key id:     %s\n  issuer:     %s\n  audience:   %s\n  subject:    %s\n"+
				"  not before: %s\n  expires:    %s\n  scopes:     %s\n",
				tok.KeyID, tok.Issuer, tok.Audience, tok.Subject,
				tok.NotBefore.Format(time.RFC3339), tok.Expiry.Format(time.RFC3339), strings.Join(tok.Scopes, ", "))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&pubFiles, "pub", nil, "public key files (PEM); repeat for rotation overlap")
	f.StringVar(&audience, "aud", "", "audience this verifier serves")
	f.StringSliceVar(&revoked, "revoked", nil, "revoked key ids (hex)")
	f.DurationVar(&leeway, "leeway", token.DefaultLeeway, "clock-skew allowance (negative: none)")
	_ = cmd.MarkFlagRequired("pub")
	_ = cmd.MarkFlagRequired("aud")
	return cmd
}
