package chat

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/jetstreamproto/jsp/client"
	"github.com/jetstreamproto/jsp/internal/protocol"
)

// The files service's stream label and metadata keys (server/services/files).
const (
	labelFilePut = "file.put"
	maxStatus    = 512
)

// Upload stores size bytes from r on the server over one Stream API stream
// (the files service, label "file.put") under id, and returns the
// attachment to post with Attach. The server checks the size limit and
// the SHA-256, which Upload computes while sending; sum, when not empty,
// is checked against it too.
func (x *Client) Upload(ctx context.Context, id, name string, r io.Reader, size int64, sum string) (Attachment, error) {
	if sum == "" {
		return Attachment{}, fmt.Errorf("chat: upload %s: the SHA-256 is announced first and must be given", id)
	}
	st, err := x.c.OpenStream(ctx, protocol.ClassBulk, labelFilePut, client.WithMetadata(map[string]string{
		"name": id, "size": strconv.FormatInt(size, 10), "sha256": sum,
	}))
	if err != nil {
		return Attachment{}, fmt.Errorf("chat: upload %s: %w", id, err)
	}
	defer st.Close()
	h := sha256.New()
	if _, err := io.Copy(st, io.TeeReader(io.LimitReader(r, size), h)); err != nil {
		return Attachment{}, fmt.Errorf("chat: upload %s: %w", id, err)
	}
	if err := st.CloseWrite(); err != nil {
		return Attachment{}, fmt.Errorf("chat: upload %s: %w", id, err)
	}
	line, err := bufio.NewReaderSize(io.LimitReader(st, maxStatus), maxStatus).ReadString('\n')
	if err != nil {
		return Attachment{}, fmt.Errorf("chat: upload %s: status: %w", id, err)
	}
	f := strings.Fields(line)
	if len(f) != 3 || f[0] != "OK" {
		return Attachment{}, fmt.Errorf("chat: upload %s: server said %q", id, strings.TrimSpace(line))
	}
	got := hex.EncodeToString(h.Sum(nil))
	if f[1] != strconv.FormatInt(size, 10) || f[2] != got || got != sum {
		return Attachment{}, fmt.Errorf("chat: upload %s: stored %s bytes with SHA-256 %s, sent %d with %s", id, f[1], f[2], size, got)
	}
	return Attachment{ID: id, Name: name, Size: uint64(size), SHA256: got}, nil
}
