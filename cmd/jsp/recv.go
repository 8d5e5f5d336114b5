package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/jetstreamproto/jsp/client"
	"github.com/jetstreamproto/jsp/internal/protocol"
)

// maxStatReply caps the files service's stat reply; it is a small JSON
// object.
const maxStatReply = 4096

// recvFlags are the `jsp recv` flags.
type recvFlags struct {
	dialFlags
	output string
	quiet  bool
}

func newRecvCmd() *cobra.Command {
	var f recvFlags
	cmd := &cobra.Command{
		Use:   "recv NAME URL",
		Short: "Download a file from a JSP server over a stream",
		Long: `Download the file NAME from the server's file store over one stream (the
Stream API), showing progress on stderr. The file's size and SHA-256 are asked
for first ("stat" on the files service) and the download is checked against
them; a file that does not match is not kept.

` + urlHelp,
		Example: `  jsp recv video.mp4 jsp://localhost --pin sha256/... -o /tmp/video.mp4`,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRecv(cmd.Context(), &f, args[0], args[1], cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f.register(cmd)
	cmd.Flags().StringVarP(&f.output, "output", "o", "", `where to write the file, "-" for stdout (default: NAME in the current directory)`)
	cmd.Flags().BoolVarP(&f.quiet, "quiet", "q", false, "no progress bar")
	return cmd
}

func init() { rootCmd.AddCommand(newRecvCmd()) }

// statReply is the files service's answer to "stat NAME".
type statReply struct {
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// statFile asks the files service for name's size and digest.
func statFile(ctx context.Context, c *client.Client, name string) (statReply, error) {
	body, err := c.Command(ctx, filesService, []byte("stat "+name))
	if err != nil {
		return statReply{}, fmt.Errorf("stat %s: %w", name, err)
	}
	if len(body) > maxStatReply {
		return statReply{}, fmt.Errorf("stat %s: reply of %d bytes", name, len(body))
	}
	var s statReply
	if err := json.Unmarshal(body, &s); err != nil {
		return statReply{}, fmt.Errorf("stat %s: %w", name, err)
	}
	if b, err := hex.DecodeString(s.SHA256); err != nil || len(b) != sha256.Size || s.Size < 0 {
		return statReply{}, fmt.Errorf("stat %s: bad reply %q", name, truncateForError(string(body)))
	}
	return s, nil
}

// runRecv downloads name from url.
func runRecv(ctx context.Context, f *recvFlags, name, url string, out, errOut io.Writer) error {
	dest := f.output
	if dest == "" {
		dest = filepath.Base(name)
	}
	report := out
	if dest == "-" {
		report = errOut // stdout carries the file
	}
	c, err := f.dial(ctx, url, errOut)
	if err != nil {
		return err
	}
	defer c.Close()
	want, err := statFile(ctx, c, name)
	if err != nil {
		return err
	}
	stream, err := c.OpenStream(ctx, protocol.ClassBulk, labelFileGet, client.WithMetadata(map[string]string{metaName: name}))
	if err != nil {
		return err
	}
	defer stream.Close()
	// Nothing to send: FIN at once. The server stops reading a download
	// stream as soon as it opens it (STOP_SENDING), and over QUIC a FIN
	// that comes after that fails; the download does not need it, and a
	// stream that really failed fails the status read below.
	_ = stream.CloseWrite()
	br := bufio.NewReader(stream)
	line, err := readStatusLine(br)
	if err != nil {
		return fmt.Errorf("download %s: read the server's status: %w", name, err)
	}
	status, err := parseFileStatus(line)
	if err != nil {
		return fmt.Errorf("download %s: %w", name, err)
	}
	if status.size != want.Size || status.sha256 != want.SHA256 {
		return fmt.Errorf("download %s: file changed on the server between stat (%d bytes, %s) and download (%d bytes, %s)",
			name, want.Size, want.SHA256, status.size, status.sha256)
	}

	w, commit, abort, err := openOutput(dest, out)
	if err != nil {
		return err
	}
	var bar *progressBar
	if !f.quiet {
		bar = newProgressBar(errOut, "download", want.Size, time.Now)
	}
	h := sha256.New()
	// One byte more than announced reveals a server that sends too much.
	n, err := io.Copy(io.MultiWriter(w, h, bar), io.LimitReader(br, want.Size+1))
	bar.Finish()
	if err == nil && n != want.Size {
		err = fmt.Errorf("received %d bytes, stat said %d", n, want.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); err == nil && got != want.SHA256 {
		err = fmt.Errorf("SHA-256 mismatch: received %s, stat said %s", got, want.SHA256)
	}
	if err != nil {
		abort()
		return fmt.Errorf("download %s: %w", name, err)
	}
	if err := commit(); err != nil {
		return fmt.Errorf("download %s: %w", name, err)
	}
	fmt.Fprintf(report, "received %q into %s: %d bytes, SHA-256 %s verified (%s)\n", name, dest, n, want.SHA256, c.Transport())
	return nil
}

// openOutput returns a writer for dest and functions that keep or discard
// what was written. A file is written to a temporary file in the same
// directory and renamed over dest only when commit is called, so a failed
// download never leaves a partial file under the final name.
func openOutput(dest string, stdout io.Writer) (w io.Writer, commit func() error, abort func(), err error) {
	if dest == "-" {
		return stdout, func() error { return nil }, func() {}, nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(dest), ".jsp-recv-*")
	if err != nil {
		return nil, nil, nil, fmt.Errorf("create output: %w", err)
	}
	abort = func() {
		_ = tmp.Close()
		_ = os.Remove(tmp.Name())
	}
	commit = func() error {
		if err := tmp.Sync(); err != nil {
			abort()
			return fmt.Errorf("write %s: %w", dest, err)
		}
		if err := tmp.Close(); err != nil {
			_ = os.Remove(tmp.Name())
			return fmt.Errorf("write %s: %w", dest, err)
		}
		if err := os.Chmod(tmp.Name(), 0o644); err != nil {
			_ = os.Remove(tmp.Name())
			return fmt.Errorf("write %s: %w", dest, err)
		}
		if err := os.Rename(tmp.Name(), dest); err != nil {
			_ = os.Remove(tmp.Name())
			return errors.Join(fmt.Errorf("move into %s", dest), err)
		}
		return nil
	}
	return tmp, commit, abort, nil
}
