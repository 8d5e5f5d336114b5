package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/jetstreamproto/jsp/client"
	chatsdk "github.com/jetstreamproto/jsp/client/chat"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/services/chatevents"
)

// chatFlags are the `jsp chat` flags.
type chatFlags struct {
	dialFlags
	token string
	open  string
}

func newChatCmd() *cobra.Command {
	var f chatFlags
	cmd := &cobra.Command{
		Use:   "chat URL",
		Short: "A line-oriented chat client: conversations, history, posts, reactions, edits",
		Long: `Chat in a terminal against a JSP server (spec/JSP-chat.md). The server must
know who you are: pass a token issued for you with --token (the server runs
with --token-keys; see docs/chat.md for two users against "make run").

Type a line to post it to the open conversation; commands start with "/"
(/help lists them). Events of the open conversation (messages, edits,
deletions, reactions, members, typing) are printed as they happen. Messages
are numbered by their sequence number, which /reply, /react, /edit and
/delete take.

` + urlHelp,
		Example: `  jsp chat jsp://localhost --pin sha256/... --token @alice.tok`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runChat(cmd.Context(), &f, args[0], cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&f.token, "token", "", "auth token, or @FILE to read it from a file")
	cmd.Flags().StringVar(&f.open, "open", "", "conversation id to open at start")
	return cmd
}

func init() { rootCmd.AddCommand(newChatCmd()) }

// readToken returns the token of --token ("" when none).
func readToken(v string) (string, error) {
	if file, ok := strings.CutPrefix(v, "@"); ok {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("--token: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	return strings.TrimSpace(v), nil
}

func runChat(ctx context.Context, f *chatFlags, url string, in io.Reader, out, errOut io.Writer) error {
	tok, err := readToken(f.token)
	if err != nil {
		return err
	}
	o, err := f.options(errOut)
	if err != nil {
		return err
	}
	o.Info.Auth = []byte(tok)
	c, err := client.Dial(ctx, url, o)
	if err != nil {
		if errors.Is(err, client.ErrPinMismatch) {
			return fmt.Errorf("%w\n(the server's key is not the pinned one: check --pin against the pin \"jsp server\" prints)", err)
		}
		return err
	}
	defer c.Close()
	r := &chatREPL{chat: chatsdk.New(c), out: out, seqs: map[uint64]string{}}
	return r.run(ctx, in, f.open)
}

// chatREPL is the terminal client's state. Commands run on the reading
// goroutine; events are printed from the subscription's handler
// goroutine, so every write goes through print (mu).
type chatREPL struct {
	chat *chatsdk.Client
	me   string

	mu   sync.Mutex
	out  io.Writer
	conv string            // guarded by mu: the open conversation
	seqs map[uint64]string // guarded by mu: message seq -> id in the open conversation
	hist *chatsdk.History  // reading goroutine only
	sub  *chatsdk.Subscription
	last uint64 // guarded by mu: newest seq seen
}

func (r *chatREPL) printf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(r.out, format, args...)
}

const chatHelp = `commands:
  /list                      your conversations (unread, mentions)
  /channels                  public channels
  /open ID                   open a conversation: history and live events
  /more                      older history of the open conversation
  /dm USER TEXT              direct message (creates the chat on first use)
  /create channel|group NAME [USER...]
  /join ID  /leave  /invite USER [ROLE]  /kick USER  /role USER ROLE
  /rename NAME  /topic TEXT  /archive  /unarchive
  /reply N TEXT  /react N EMOJI  /unreact N EMOJI  /edit N TEXT  /delete N  /edits N
  /attach PATH [TEXT]        upload a file and post it
  /members  /who             members; their presence
  /typing                    tell the others you are typing
  /user add ID [NAME] | list | disable ID | enable ID   (administrators)
  /read                      mark everything read
  /quit
  TEXT                       post to the open conversation`

func (r *chatREPL) run(ctx context.Context, in io.Reader, open string) error {
	me, err := r.chat.Me(ctx)
	if err != nil {
		return err
	}
	r.me = me.ID
	r.printf("signed in as %s; /help for commands\n", me.ID)
	defer func() {
		if r.sub != nil {
			cctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = r.sub.Close(cctx)
			cancel()
		}
	}()
	if open != "" {
		r.exec(ctx, "/open "+open)
	} else {
		r.exec(ctx, "/list")
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "/quit" || line == "/exit" {
			return nil
		}
		if line != "" {
			r.exec(ctx, line)
		}
		if ctx.Err() != nil {
			return nil
		}
	}
	return sc.Err()
}

// exec runs one line and prints its outcome; errors are printed, not
// returned: a refused command does not end the session.
func (r *chatREPL) exec(ctx context.Context, line string) {
	if err := r.command(ctx, line); err != nil {
		if je := (*jsperr.Error)(nil); errors.As(err, &je) {
			r.printf("! %s: %s\n", je.Code, je.Reason)
			return
		}
		r.printf("! %v\n", err)
	}
}

func (r *chatREPL) open() (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conv == "" {
		return "", errors.New("no open conversation: /list, then /open ID")
	}
	return r.conv, nil
}

// msgID resolves a displayed number to a message id.
func (r *chatREPL) msgID(n string) (string, error) {
	seq, err := strconv.ParseUint(strings.TrimPrefix(n, "#"), 10, 64)
	if err != nil {
		return "", fmt.Errorf("%q is not a message number", n)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	id, ok := r.seqs[seq]
	if !ok {
		return "", fmt.Errorf("no message #%d shown here (/more loads older ones)", seq)
	}
	return id, nil
}

func (r *chatREPL) command(ctx context.Context, line string) error {
	if !strings.HasPrefix(line, "/") {
		conv, err := r.open()
		if err != nil {
			return err
		}
		_, err = r.chat.Post(ctx, conv, line)
		return err
	}
	args := strings.Fields(line)
	rest := func(n int) string {
		// The text after the first n words, spacing kept.
		s := line
		for range n {
			s = strings.TrimLeft(s, " \t")
			if i := strings.IndexAny(s, " \t"); i >= 0 {
				s = s[i:]
			} else {
				return ""
			}
		}
		return strings.TrimSpace(s)
	}
	need := func(n int) error {
		if len(args) < n+1 {
			return fmt.Errorf("%s needs %d argument(s); /help", args[0], n)
		}
		return nil
	}
	conv, _ := r.open()
	withConv := func(fn func(conv string) error) error {
		if conv == "" {
			return errors.New("no open conversation: /list, then /open ID")
		}
		return fn(conv)
	}
	switch args[0] {
	case "/help":
		r.printf("%s\n", chatHelp)
	case "/list", "/channels":
		var cs []chatsdk.Conversation
		var err error
		if args[0] == "/list" {
			cs, err = r.chat.List(ctx)
		} else {
			cs, err = r.chat.PublicChannels(ctx)
		}
		if err != nil {
			return err
		}
		if len(cs) == 0 {
			r.printf("(none)\n")
		}
		for _, c := range cs {
			r.printf("  %s  %-8s %-20s role=%s unread=%d mentions=%d %s\n", c.ID, c.Kind, convName(c), c.Role, c.Unread, c.Mentions, c.Topic)
		}
	case "/open":
		if err := need(1); err != nil {
			return err
		}
		return r.openConv(ctx, args[1])
	case "/more":
		return withConv(func(string) error { return r.showOlder(ctx) })
	case "/dm":
		if err := need(2); err != nil {
			return err
		}
		p, err := r.chat.SendDirect(ctx, args[1], rest(2))
		if err != nil {
			return err
		}
		if p.Event != nil && p.Event.Conversation != conv {
			return r.openConv(ctx, p.Event.Conversation)
		}
	case "/create":
		if err := need(2); err != nil {
			return err
		}
		c, err := r.chat.Create(ctx, chatevents.Kind(args[1]), args[2], "", args[3:]...)
		if err != nil {
			return err
		}
		return r.openConv(ctx, c.ID)
	case "/join":
		if err := need(1); err != nil {
			return err
		}
		if _, err := r.chat.Join(ctx, args[1]); err != nil {
			return err
		}
		return r.openConv(ctx, args[1])
	case "/leave":
		return withConv(func(c string) error { return r.chat.Leave(ctx, c) })
	case "/invite":
		if err := need(1); err != nil {
			return err
		}
		role := ""
		if len(args) > 2 {
			role = args[2]
		}
		return withConv(func(c string) error { return r.chat.Invite(ctx, c, args[1], chatevents.Role(role)) })
	case "/kick":
		if err := need(1); err != nil {
			return err
		}
		return withConv(func(c string) error { return r.chat.Kick(ctx, c, args[1]) })
	case "/role":
		if err := need(2); err != nil {
			return err
		}
		return withConv(func(c string) error { return r.chat.SetRole(ctx, c, args[1], chatevents.Role(args[2])) })
	case "/rename":
		return withConv(func(c string) error { return r.chat.Rename(ctx, c, rest(1)) })
	case "/topic":
		return withConv(func(c string) error { return r.chat.SetTopic(ctx, c, rest(1)) })
	case "/archive", "/unarchive":
		return withConv(func(c string) error { return r.chat.Archive(ctx, c, args[0] == "/archive") })
	case "/reply", "/edit":
		if err := need(2); err != nil {
			return err
		}
		id, err := r.msgID(args[1])
		if err != nil {
			return err
		}
		return withConv(func(c string) error {
			if args[0] == "/reply" {
				_, err = r.chat.Post(ctx, c, rest(2), chatsdk.ReplyTo(id))
			} else {
				_, err = r.chat.Edit(ctx, c, id, rest(2))
			}
			return err
		})
	case "/react", "/unreact":
		if err := need(2); err != nil {
			return err
		}
		id, err := r.msgID(args[1])
		if err != nil {
			return err
		}
		return withConv(func(c string) error {
			if args[0] == "/react" {
				_, err = r.chat.React(ctx, c, id, args[2])
			} else {
				_, err = r.chat.Unreact(ctx, c, id, args[2])
			}
			return err
		})
	case "/delete", "/edits":
		if err := need(1); err != nil {
			return err
		}
		id, err := r.msgID(args[1])
		if err != nil {
			return err
		}
		return withConv(func(c string) error {
			if args[0] == "/delete" {
				_, err := r.chat.Delete(ctx, c, id)
				return err
			}
			es, err := r.chat.Edits(ctx, c, id)
			if err != nil {
				return err
			}
			for _, e := range es {
				r.printf("  %s %s: %s\n", e.At.Local().Format("15:04:05"), e.Editor, e.Text)
			}
			return nil
		})
	case "/attach":
		if err := need(1); err != nil {
			return err
		}
		return withConv(func(c string) error { return r.attach(ctx, c, args[1], rest(2)) })
	case "/members", "/who":
		return withConv(func(c string) error {
			ms, err := r.chat.Members(ctx, c)
			if err != nil {
				return err
			}
			status := map[string]string{}
			if args[0] == "/who" {
				var users []string
				for _, m := range ms {
					users = append(users, m.User)
				}
				ps, err := r.chat.Presence(ctx, users...)
				if err != nil {
					return err
				}
				for _, p := range ps {
					status[p.User] = p.Status
				}
			}
			for _, m := range ms {
				r.printf("  %-20s %-7s read up to #%d %s\n", m.User, m.Role, m.ReadSeq, status[m.User])
			}
			return nil
		})
	case "/user":
		return r.userCommand(ctx, args[1:], rest(3))
	case "/typing":
		return withConv(func(c string) error { return r.chat.Typing(ctx, c, true) })
	case "/read":
		return withConv(func(c string) error {
			r.mu.Lock()
			last := r.last
			r.mu.Unlock()
			_, err := r.chat.MarkRead(ctx, c, last)
			return err
		})
	default:
		return fmt.Errorf("unknown command %s; /help", args[0])
	}
	return nil
}

func convName(c chatsdk.Conversation) string {
	if c.Name != "" {
		return c.Name
	}
	return "(direct)"
}

// openConv subscribes to a conversation and shows its newest history.
func (r *chatREPL) openConv(ctx context.Context, id string) error {
	c, err := r.chat.Get(ctx, id)
	if err != nil {
		return err
	}
	if r.sub != nil {
		_ = r.sub.Close(ctx)
		r.sub = nil
	}
	r.mu.Lock()
	r.conv, r.seqs, r.last = c.ID, map[uint64]string{}, c.LastSeq
	r.mu.Unlock()
	r.hist = r.chat.History(c.ID, 20)
	r.printf("== %s %s %q topic %q, you are %s\n", c.ID, c.Kind, c.Name, c.Topic, c.Role)
	if err := r.showOlder(ctx); err != nil {
		return err
	}
	sub, err := r.chat.Subscribe(ctx, c.ID, 0, func(e chatsdk.Event) { r.event(c.ID, e) })
	if err != nil {
		return err
	}
	r.sub = sub
	return nil
}

func (r *chatREPL) showOlder(ctx context.Context) error {
	items, err := r.hist.Older(ctx)
	if err != nil {
		return err
	}
	if len(items) == 0 {
		r.printf("-- start of the conversation\n")
	}
	for _, it := range items {
		r.showMessage(it.Message, it.Time, it.Reactions)
	}
	return nil
}

func (r *chatREPL) showMessage(m chatevents.Message, at time.Time, rs []chatsdk.Reaction) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seqs[m.Seq] = m.ID
	r.last = max(r.last, m.Seq)
	var b strings.Builder
	fmt.Fprintf(&b, "[#%d %s] %s", m.Seq, at.Local().Format("15:04"), m.Author)
	switch {
	case m.Deleted:
		b.WriteString(": (deleted)")
	default:
		if m.ReplyTo != "" {
			b.WriteString(" (reply)")
		}
		fmt.Fprintf(&b, ": %s", m.Text)
		if m.Edited {
			b.WriteString(" (edited)")
		}
		for _, a := range m.Attachments {
			fmt.Fprintf(&b, " [file %s %s, %d bytes]", a.ID, a.Name, a.Size)
		}
	}
	for _, x := range rs {
		fmt.Fprintf(&b, " %s×%d", x.Emoji, x.Count)
	}
	fmt.Fprintln(r.out, b.String())
}

// event prints one live event of conversation conv.
func (r *chatREPL) event(conv string, e chatsdk.Event) {
	r.mu.Lock()
	current := r.conv == conv
	if e.Seq > r.last {
		r.last = e.Seq
	}
	r.mu.Unlock()
	if !current {
		return
	}
	if e.Err != nil {
		r.printf("! %v\n", e.Err)
		return
	}
	switch e.Type {
	case chatevents.MessageCreated:
		r.showMessage(*e.Message, e.Time, nil)
	case chatevents.MessageEdited:
		r.printf("* %s edited #%d: %s\n", e.Actor, e.Message.Seq, e.Message.Text)
	case chatevents.MessageDeleted:
		r.printf("* %s deleted #%d\n", e.Actor, e.Message.Seq)
	case chatevents.ReactionAdded, chatevents.ReactionRemoved:
		verb := "reacted"
		if e.Type == chatevents.ReactionRemoved {
			verb = "took back"
		}
		r.printf("* %s %s %s on a message (now %d)\n", e.Reaction.User, verb, e.Reaction.Emoji, e.Reaction.Count)
	case chatevents.MemberJoined:
		r.printf("* %s joined as %s\n", e.Member.User, e.Member.Role)
	case chatevents.MemberLeft:
		r.printf("* %s left\n", e.Member.User)
	case chatevents.MemberRoleChanged:
		r.printf("* %s is now %s\n", e.Member.User, e.Member.Role)
	case chatevents.ConversationUpdated:
		r.printf("* %s updated the conversation: %q, topic %q, archived %v\n", e.Actor, e.Info.Name, e.Info.Topic, e.Info.Archived)
	case chatevents.Typing:
		if e.Actor != r.me && e.Member == nil {
			r.printf("* %s is typing...\n", e.Actor)
		}
	case chatevents.PresenceChanged:
		if p, ok := e.PresenceChange(); ok && p.User != r.me {
			r.printf("* %s is %s (was %s)\n", p.User, p.Status, p.Previous)
		}
	case chatevents.ReadUpdated:
		if e.Actor != r.me {
			r.printf("* %s read up to #%d\n", e.Read.User, e.Read.Seq)
		}
	}
}

// attach uploads a file over a stream and posts it.
func (r *chatREPL) attach(ctx context.Context, conv, path, text string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	size, sum, err := hashFile(f)
	if err != nil {
		return err
	}
	// The stored name is content-addressed, so two files with one name
	// do not collide; the extension stays when it is plain.
	h := sha256.Sum256([]byte(r.me + "\x00" + sum))
	id := hex.EncodeToString(h[:8])
	if ext := filepath.Ext(path); len(ext) <= 8 && strings.Trim(ext[min(len(ext), 1):], "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") == "" {
		id += ext
	}
	a, err := r.chat.Upload(ctx, id, filepath.Base(path), f, size, sum)
	if err != nil {
		return err
	}
	_, err = r.chat.Post(ctx, conv, text, chatsdk.Attach(a))
	return err
}

// userCommand runs the administrators' account commands (token scope
// chat:admin).
func (r *chatREPL) userCommand(ctx context.Context, args []string, name string) error {
	if len(args) == 0 {
		return errors.New("/user add ID [NAME] | list | disable ID | enable ID")
	}
	show := func(u chatsdk.User) {
		flags := ""
		if u.Admin {
			flags += " admin"
		}
		if u.Disabled {
			flags += " disabled"
		}
		r.printf("  %-20s %s%s\n", u.ID, u.DisplayName, flags)
	}
	switch {
	case args[0] == "list":
		after := ""
		for {
			us, err := r.chat.ListUsers(ctx, after, 100)
			if err != nil {
				return err
			}
			for _, u := range us {
				show(u)
			}
			if len(us) < 100 {
				return nil
			}
			after = us[len(us)-1].ID
		}
	case args[0] == "add" && len(args) >= 2:
		u, err := r.chat.AddUser(ctx, args[1], name, false)
		if err != nil {
			return err
		}
		show(u)
	case (args[0] == "disable" || args[0] == "enable") && len(args) >= 2:
		u, err := r.chat.DisableUser(ctx, args[1], args[0] == "enable")
		if err != nil {
			return err
		}
		show(u)
	default:
		return errors.New("/user add ID [NAME] | list | disable ID | enable ID")
	}
	return nil
}
