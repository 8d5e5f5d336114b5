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
	"time"

	"github.com/spf13/cobra"

	"github.com/jetstreamproto/jsp/client"
	"github.com/jetstreamproto/jsp/internal/protocol"
)

// File transfer protocol of the server's files service (JSP §5.12 streams):
// upload on label "file.put" with metadata name, size and sha256; download
// on "file.get" with metadata name; both answered by one status line,
// "OK <size> <sha256>" or "ERR <CODE> <reason>".
const (
	labelFilePut    = "file.put"
	labelFileGet    = "file.get"
	metaName        = "name"
	metaSize        = "size"
	metaSHA256      = "sha256"
	filesService    = "files"
	maxStatusLine   = 2048            // bytes, newline included
	statusReadGrace = 5 * time.Second // to read the status after a failed upload
)

// sendFlags are the `jsp send` flags.
type sendFlags struct {
	dialFlags
	name  string
	quiet bool
}

func newSendCmd() *cobra.Command {
	var f sendFlags
	cmd := &cobra.Command{
		Use:   "send FILE URL",
		Short: "Upload a file to a JSP server over a stream",
		Long: `Upload FILE to the server's file store over one stream (the Stream API),
showing progress on stderr, and check that the server stored exactly the
bytes sent: the server verifies the SHA-256 announced up front and reports
its own digest, which must match.

` + urlHelp,
		Example: `  jsp send ./video.mp4 jsp://localhost --pin sha256/...`,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSend(cmd.Context(), &f, args[0], args[1], cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&f.name, "name", "", "name to store the file under (default: FILE's base name)")
	cmd.Flags().BoolVarP(&f.quiet, "quiet", "q", false, "no progress bar")
	return cmd
}

func init() { rootCmd.AddCommand(newSendCmd()) }

// fileStatus is a parsed status line of the files service.
type fileStatus struct {
	size   int64
	sha256 string
}

// parseFileStatus parses "OK <size> <sha256>"; "ERR <CODE> <reason>"
// becomes an error that quotes the server.
func parseFileStatus(line string) (fileStatus, error) {
	line = strings.TrimRight(line, "\r\n")
	f := strings.Fields(line)
	switch {
	case len(f) >= 2 && f[0] == "ERR":
		return fileStatus{}, fmt.Errorf("server refused: %s", strings.TrimPrefix(line, "ERR "))
	case len(f) != 3 || f[0] != "OK":
		return fileStatus{}, fmt.Errorf("unexpected status from the server: %q", truncateForError(line))
	}
	size, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil || size < 0 {
		return fileStatus{}, fmt.Errorf("bad size in server status %q", truncateForError(line))
	}
	if len(f[2]) != 2*sha256.Size {
		return fileStatus{}, fmt.Errorf("bad SHA-256 in server status %q", truncateForError(line))
	}
	if _, err := hex.DecodeString(f[2]); err != nil {
		return fileStatus{}, fmt.Errorf("bad SHA-256 in server status %q", truncateForError(line))
	}
	return fileStatus{size: size, sha256: strings.ToLower(f[2])}, nil
}

// readStatusLine reads one status line of at most maxStatusLine bytes.
func readStatusLine(r *bufio.Reader) (string, error) {
	var b []byte
	for {
		frag, err := r.ReadSlice('\n')
		b = append(b, frag...)
		if len(b) > maxStatusLine {
			return "", fmt.Errorf("status line longer than %d bytes", maxStatusLine)
		}
		switch {
		case err == nil:
			return string(b), nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(b) > 0:
			return "", fmt.Errorf("status line %q cut short", truncateForError(string(b)))
		default:
			return "", err
		}
	}
}

func truncateForError(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

// hashFile returns the size and lower-case hex SHA-256 of the open file f,
// then rewinds it.
func hashFile(f *os.File) (int64, string, error) {
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return 0, "", fmt.Errorf("hash %s: %w", f.Name(), err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, "", fmt.Errorf("rewind %s: %w", f.Name(), err)
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

// runSend uploads path to url.
func runSend(ctx context.Context, f *sendFlags, path, url string, out, errOut io.Writer) error {
	file, err := os.Open(path)
	if err != nil {
		return err
	}
	defer file.Close()
	st, err := file.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	name := f.name
	if name == "" {
		name = filepath.Base(path)
	}
	size, sum, err := hashFile(file)
	if err != nil {
		return err
	}

	c, err := f.dial(ctx, url, errOut)
	if err != nil {
		return err
	}
	defer c.Close()
	stream, err := c.OpenStream(ctx, protocol.ClassBulk, labelFilePut, client.WithMetadata(map[string]string{
		metaName:   name,
		metaSize:   strconv.FormatInt(size, 10),
		metaSHA256: sum,
	}))
	if err != nil {
		return err
	}
	defer stream.Close()

	var bar *progressBar
	if !f.quiet {
		bar = newProgressBar(errOut, "upload", size, time.Now)
	}
	// The file may change while it is read; sending exactly size bytes
	// keeps the stream consistent with the announced size, and the
	// server's digest check catches a changed content.
	_, copyErr := io.Copy(stream, io.TeeReader(io.LimitReader(file, size), bar))
	if copyErr == nil {
		copyErr = stream.CloseWrite()
	}
	bar.Finish()
	if copyErr != nil {
		// The server may have refused the upload early (a name or size it
		// does not accept) and said why in its status line.
		_ = stream.SetReadDeadline(time.Now().Add(statusReadGrace))
		if line, err := readStatusLine(bufio.NewReader(stream)); err == nil {
			if _, serr := parseFileStatus(line); serr != nil {
				return fmt.Errorf("upload %s: %w", name, serr)
			}
		}
		return fmt.Errorf("upload %s: %w", name, copyErr)
	}
	line, err := readStatusLine(bufio.NewReader(stream))
	if err != nil {
		return fmt.Errorf("upload %s: read the server's status: %w", name, err)
	}
	status, err := parseFileStatus(line)
	if err != nil {
		return fmt.Errorf("upload %s: %w", name, err)
	}
	if status.size != size || status.sha256 != sum {
		return fmt.Errorf("upload %s: server stored %d bytes with SHA-256 %s, sent %d bytes with SHA-256 %s",
			name, status.size, status.sha256, size, sum)
	}
	fmt.Fprintf(out, "sent %s as %q: %d bytes, SHA-256 %s verified by the server (%s)\n", path, name, size, sum, c.Transport())
	return nil
}
