package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/jetstreamproto/jsp/client/chat"
	"github.com/jetstreamproto/jsp/services/chat/chatproto"
)

// adminUserPage is how many accounts one `jsp admin user list` request
// asks for; the command pages until the server returns fewer.
const adminUserPage = 200

// newAdminUserCmd builds `jsp admin user add|list|disable|enable`: chat
// accounts, managed through the chat service's admin operations. The token
// must make its subject a chat administrator (scope chat:admin, or an
// account created with --admin).
func newAdminUserCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Add, list, disable and enable user accounts",
		Long: `Manage user accounts of the chat service (spec/JSP-chat.md). The token must
belong to a chat administrator: a token with the scope "chat:admin"
(jsp token issue --scope chat:admin) or a user added with --admin.`,
	}
	cmd.AddCommand(newAdminUserAddCmd(), newAdminUserListCmd(),
		newAdminUserEnableCmd("disable", false), newAdminUserEnableCmd("enable", true))
	return cmd
}

// withChat connects as the administrator and runs do with a chat client.
func withChat(cmd *cobra.Command, f *adminFlags, url string, do func(x *chat.Client) error) error {
	ctx, cancel := adminContext(cmd, f)
	defer cancel()
	c, err := f.connect(ctx, url, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	defer c.Close()
	return do(chat.New(c))
}

func printUsers(w io.Writer, users []chatproto.User) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tNAME\tADMIN\tDISABLED")
	for _, u := range users {
		fmt.Fprintf(tw, "%s\t%s\t%v\t%v\n", u.ID, u.DisplayName, u.Admin, u.Disabled)
	}
	return tw.Flush()
}

func newAdminUserAddCmd() *cobra.Command {
	var f adminFlags
	var name string
	var admin bool
	cmd := &cobra.Command{
		Use:   "add URL USER",
		Short: "Create a user account",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withChat(cmd, &f, args[0], func(x *chat.Client) error {
				u, err := x.AddUser(cmd.Context(), args[1], name, admin)
				if err != nil {
					return fmt.Errorf("add user %q: %w", args[1], err)
				}
				return printUsers(cmd.OutOrStdout(), []chatproto.User{u})
			})
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&name, "name", "", "display name (default: the user id)")
	cmd.Flags().BoolVar(&admin, "admin", false, "make the user a chat administrator")
	return cmd
}

func newAdminUserListCmd() *cobra.Command {
	var f adminFlags
	cmd := &cobra.Command{
		Use:   "list URL",
		Short: "List user accounts",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withChat(cmd, &f, args[0], func(x *chat.Client) error {
				var all []chatproto.User
				after := ""
				for {
					page, err := x.ListUsers(cmd.Context(), after, adminUserPage)
					if err != nil {
						return fmt.Errorf("list users: %w", err)
					}
					all = append(all, page...)
					if len(page) < adminUserPage {
						break
					}
					after = page[len(page)-1].ID
				}
				return printUsers(cmd.OutOrStdout(), all)
			})
		},
	}
	f.register(cmd)
	return cmd
}

func newAdminUserEnableCmd(verb string, enable bool) *cobra.Command {
	var f adminFlags
	short := "Disable a user account (its sessions are refused chat commands)"
	if enable {
		short = "Enable a disabled user account"
	}
	cmd := &cobra.Command{
		Use:   verb + " URL USER",
		Short: short,
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withChat(cmd, &f, args[0], func(x *chat.Client) error {
				u, err := x.DisableUser(cmd.Context(), args[1], enable)
				if err != nil {
					return fmt.Errorf("%s user %q: %w", verb, args[1], err)
				}
				return printUsers(cmd.OutOrStdout(), []chatproto.User{u})
			})
		},
	}
	f.register(cmd)
	return cmd
}
