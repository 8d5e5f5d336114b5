package main

import (
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/jetstreamproto/jsp/services/webhook"
)

// `jsp admin webhook ...`: the core's webhook service commands
// (services/webhook, docs/events.md "Commands"). Like the device
// commands they need a token with the admin scope; the core checks it.
func newAdminWebhookCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "webhook", Short: "Create, list and delete outgoing webhooks; inspect and redeliver dead letters"}
	cmd.AddCommand(newWebhookCreateCmd(), newWebhookListCmd(), newWebhookDeleteCmd(), newWebhookDeadLettersCmd(), newWebhookRedeliverCmd())
	return cmd
}

func newWebhookCreateCmd() *cobra.Command {
	var f adminFlags
	req := webhook.Request{Op: webhook.OpCreate}
	cmd := &cobra.Command{
		Use:   "create URL WEBHOOK-ID HOOK-URL",
		Short: "Create or replace a webhook posting the chosen events to HOOK-URL",
		Long: "Create or replace a webhook. Without --secret the server generates one and prints it once;\n" +
			"receivers verify each request's Jsp-Signature with it (docs/events.md).\n\n" + urlHelp,
		Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := adminContext(cmd, &f)
			defer cancel()
			req.ID, req.URL = args[1], args[2]
			var rep webhook.Reply
			if err := f.call(ctx, args[0], webhook.ServiceName, req, &rep, cmd.ErrOrStderr()); err != nil {
				return err
			}
			if rep.Webhook == nil {
				return fmt.Errorf("%s: reply without a webhook", webhook.OpCreate)
			}
			w := rep.Webhook
			fmt.Fprintf(cmd.OutOrStdout(), "webhook %s -> %s for %s\n", w.ID, w.URL, strings.Join(w.Events, ","))
			if w.Secret != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "secret %s (shown once)\n", w.Secret)
			}
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().StringArrayVar(&req.Events, "event", []string{"*"}, "event filter: *, message.* or message.created (repeatable)")
	cmd.Flags().StringVar(&req.Secret, "secret", "", "HMAC secret, at least 16 bytes (default: generated)")
	cmd.Flags().BoolVar(&req.Disabled, "disabled", false, "store the webhook without delivering")
	return cmd
}

func newWebhookListCmd() *cobra.Command {
	var f adminFlags
	req := webhook.Request{Op: webhook.OpList}
	cmd := &cobra.Command{
		Use:   "list URL",
		Short: "List webhooks",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := adminContext(cmd, &f)
			defer cancel()
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 8, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tURL\tEVENTS\tSTATE\tUPDATED")
			for {
				var rep webhook.Reply
				if err := f.call(ctx, args[0], webhook.ServiceName, req, &rep, cmd.ErrOrStderr()); err != nil {
					return err
				}
				for _, w := range rep.Webhooks {
					state := "enabled"
					if w.Disabled {
						state = "disabled"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", w.ID, w.URL, strings.Join(w.Events, ","), state, w.Updated.Format(time.RFC3339))
				}
				if len(rep.Webhooks) < req.Limit || len(rep.Webhooks) == 0 {
					break
				}
				req.After = rep.Webhooks[len(rep.Webhooks)-1].ID
			}
			return tw.Flush()
		},
	}
	f.register(cmd)
	cmd.Flags().IntVar(&req.Limit, "page", webhook.DefaultListLimit, "webhooks per request")
	return cmd
}

func newWebhookDeleteCmd() *cobra.Command {
	var f adminFlags
	cmd := &cobra.Command{
		Use:   "delete URL WEBHOOK-ID",
		Short: "Delete a webhook and its dead letters",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := adminContext(cmd, &f)
			defer cancel()
			var rep webhook.Reply
			if err := f.call(ctx, args[0], webhook.ServiceName, webhook.Request{Op: webhook.OpDelete, ID: args[1]}, &rep, cmd.ErrOrStderr()); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted webhook %s\n", args[1])
			return nil
		},
	}
	f.register(cmd)
	return cmd
}

func newWebhookDeadLettersCmd() *cobra.Command {
	var f adminFlags
	req := webhook.Request{Op: webhook.OpDeadLetters}
	cmd := &cobra.Command{
		Use:   "dead-letters URL",
		Short: "List deliveries that were given up",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := adminContext(cmd, &f)
			defer cancel()
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 8, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tWEBHOOK\tEVENT\tTYPE\tATTEMPTS\tTIME\tLAST ERROR")
			for {
				var rep webhook.Reply
				if err := f.call(ctx, args[0], webhook.ServiceName, req, &rep, cmd.ErrOrStderr()); err != nil {
					return err
				}
				for _, d := range rep.DeadLetters {
					fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%s\n", d.ID, d.Webhook, d.EventID, d.EventType, d.Attempts, d.Time.Format(time.RFC3339), d.LastError)
				}
				if len(rep.DeadLetters) < req.Limit || len(rep.DeadLetters) == 0 {
					break
				}
				req.After = strconv.FormatInt(rep.DeadLetters[len(rep.DeadLetters)-1].ID, 10)
			}
			return tw.Flush()
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&req.ID, "webhook", "", "only this webhook's dead letters")
	cmd.Flags().IntVar(&req.Limit, "page", webhook.DefaultListLimit, "dead letters per request")
	return cmd
}

func newWebhookRedeliverCmd() *cobra.Command {
	var f adminFlags
	cmd := &cobra.Command{
		Use:   "redeliver URL DEAD-LETTER-ID",
		Short: "Put a dead letter back on the delivery queue",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseInt(args[1], 10, 64)
			if err != nil || id <= 0 {
				return fmt.Errorf("dead letter id %q: want a positive number", args[1])
			}
			ctx, cancel := adminContext(cmd, &f)
			defer cancel()
			var rep webhook.Reply
			if err := f.call(ctx, args[0], webhook.ServiceName, webhook.Request{Op: webhook.OpRedeliver, DeadLetter: id}, &rep, cmd.ErrOrStderr()); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "dead letter %d queued again\n", id)
			return nil
		},
	}
	f.register(cmd)
	return cmd
}
