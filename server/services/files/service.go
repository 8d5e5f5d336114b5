package files

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/server/services"
	"github.com/jetstreamproto/jsp/wire"
)

// The service's command name and stream labels.
const (
	Command  = "files"
	LabelPut = "file.put"
	LabelGet = "file.get"
)

// STREAM_OPEN metadata keys.
const (
	MetaName   = "name"
	MetaSize   = "size"
	MetaSHA256 = "sha256"
)

// DefaultIdleTimeout is how long a transfer may make no progress: the
// longest wait for the next bytes of an upload, or for the client to take
// the next bytes of a download.
const DefaultIdleTimeout = 30 * time.Second

// maxStatusReason caps the reason in an ERR status line.
const maxStatusReason = 256

// Config configures the files service. Dir is required; every other zero
// field means the documented default.
type Config struct {
	// Dir is the directory files are stored in, created when missing.
	Dir string
	// MaxFileSize caps one file. Default: DefaultMaxFileSize (1 GiB).
	MaxFileSize int64
	// MaxNameLen caps a file name in bytes. Default: DefaultMaxNameLen.
	MaxNameLen int
	// IdleTimeout bounds a transfer that makes no progress.
	// Default: DefaultIdleTimeout.
	IdleTimeout time.Duration
	// Now is the clock for deadlines. Default: time.Now.
	Now func() time.Time
}

func (c *Config) setDefaults() {
	if c.MaxFileSize == 0 {
		c.MaxFileSize = DefaultMaxFileSize
	}
	if c.MaxNameLen == 0 {
		c.MaxNameLen = DefaultMaxNameLen
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

func (c *Config) validate() error {
	switch {
	case c.Dir == "":
		return errors.New("files: Config.Dir is required")
	case c.MaxFileSize < 0:
		return fmt.Errorf("files: negative MaxFileSize %d", c.MaxFileSize)
	case c.MaxNameLen < 0:
		return fmt.Errorf("files: negative MaxNameLen %d", c.MaxNameLen)
	case c.IdleTimeout < 0:
		return fmt.Errorf("files: negative IdleTimeout %v", c.IdleTimeout)
	}
	return nil
}

// Service serves uploads, downloads and stat over a Store.
type Service struct {
	cfg   Config
	store *Store
}

// New opens the store in cfg.Dir and returns the service.
func New(cfg Config) (*Service, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	st, err := OpenStore(cfg.Dir, cfg.MaxFileSize, cfg.MaxNameLen)
	if err != nil {
		return nil, err
	}
	return &Service{cfg: cfg, store: st}, nil
}

// Store returns the service's store.
func (s *Service) Store() *Store { return s.store }

// Register registers s under its command and stream labels.
func (s *Service) Register(r *services.Registry) error {
	return r.Register(s, Command, LabelPut, LabelGet)
}

// HandleCommand answers "stat NAME" with {"size": N, "sha256": "hex"}.
func (s *Service) HandleCommand(ctx context.Context, c *services.Caller, cmd *wire.Envelope) ([]byte, error) {
	f := strings.Fields(string(cmd.Body))
	if len(f) != 2 || f[0] != "stat" {
		return nil, jsperr.Newf(jsperr.BadRequest, "files: want %q, got %q", "stat NAME", truncate(string(cmd.Body), 64))
	}
	info, err := s.store.Stat(f[1])
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(info)
	if err != nil {
		return nil, fmt.Errorf("files: encode stat of %s: %w", f[1], err)
	}
	return b, nil
}

// HandleStream serves file.put and file.get.
func (s *Service) HandleStream(ctx context.Context, c *services.Caller, st services.Stream) error {
	switch st.Label() {
	case LabelPut:
		return s.put(st)
	case LabelGet:
		return s.get(st)
	}
	err := jsperr.Newf(jsperr.NotFound, "files: no stream label %q", st.Label())
	return s.fail(st, err)
}

func (s *Service) put(st services.Stream) error {
	md := st.Metadata()
	name := md[MetaName]
	size, err := strconv.ParseInt(md[MetaSize], 10, 64)
	if err != nil {
		return s.fail(st, jsperr.Newf(jsperr.BadRequest, "files: metadata size %q is not a decimal byte count", truncate(md[MetaSize], 32)))
	}
	sum, err := ParseSHA256(md[MetaSHA256])
	if err != nil {
		return s.fail(st, err)
	}
	// Store.Put checks name and size before it reads anything, so an
	// oversize or misnamed upload is refused without receiving it.
	r := &idleReader{st: st, timeout: s.cfg.IdleTimeout, now: s.cfg.Now}
	info, err := s.store.Put(name, size, sum, r)
	if err != nil {
		if r.timedOut {
			err = jsperr.Newf(jsperr.Timeout, "files: upload of %s stalled for %v", name, s.cfg.IdleTimeout)
		}
		return s.fail(st, err)
	}
	if err := s.status(st, fmt.Sprintf("OK %d %s\n", info.Size, info.SHA256)); err != nil {
		st.CancelWrite(jsperr.Cancelled)
		return fmt.Errorf("files: put %s: write status: %w", name, err)
	}
	return st.Close()
}

func (s *Service) get(st services.Stream) error {
	// The opener sends nothing on a download.
	st.CancelRead(jsperr.NoError)
	name := st.Metadata()[MetaName]
	f, info, err := s.store.Open(name)
	if err != nil {
		return s.fail(st, err)
	}
	defer f.Close()
	w := bufio.NewWriterSize(&idleWriter{st: st, timeout: s.cfg.IdleTimeout, now: s.cfg.Now}, 64<<10)
	fmt.Fprintf(w, "OK %d %s\n", info.Size, info.SHA256)
	n, err := io.Copy(w, f)
	if err == nil {
		err = w.Flush()
	}
	if err == nil && n != info.Size {
		err = fmt.Errorf("file changed size while sending: %d of %d bytes", n, info.Size)
	}
	if err != nil {
		// The header promised info.Size bytes; a reset tells the client
		// the download is incomplete rather than letting it see a short
		// file end normally.
		st.CancelWrite(jsperr.Internal)
		return fmt.Errorf("files: get %s: %w", name, err)
	}
	return st.Close()
}

// fail reports err on the stream as an ERR status line, stops the peer
// from sending more and closes the stream. It returns err for the caller's
// logs; errors without a registry code are reported to the peer as
// INTERNAL without their details.
func (s *Service) fail(st services.Stream, err error) error {
	code := jsperr.CodeOf(err)
	reason := "internal error"
	var je *jsperr.Error
	if errors.As(err, &je) {
		reason = je.Reason
	}
	_ = s.status(st, fmt.Sprintf("ERR %s %s\n", code, truncate(oneLine(reason), maxStatusReason)))
	st.CancelRead(code)
	_ = st.Close()
	return err
}

func (s *Service) status(st services.Stream, line string) error {
	_ = st.SetWriteDeadline(s.cfg.Now().Add(s.cfg.IdleTimeout))
	_, err := io.WriteString(st, line)
	return err
}

func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// idleReader reads with a deadline renewed before each Read, so a slow but
// moving upload is fine and a stalled one ends.
type idleReader struct {
	st       services.Stream
	timeout  time.Duration
	now      func() time.Time
	timedOut bool
}

func (r *idleReader) Read(p []byte) (int, error) {
	_ = r.st.SetReadDeadline(r.now().Add(r.timeout))
	n, err := r.st.Read(p)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		r.timedOut = true
	}
	return n, err
}

// idleWriter is idleReader's counterpart for downloads.
type idleWriter struct {
	st      services.Stream
	timeout time.Duration
	now     func() time.Time
}

func (w *idleWriter) Write(p []byte) (int, error) {
	_ = w.st.SetWriteDeadline(w.now().Add(w.timeout))
	return w.st.Write(p)
}
