package files

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/jetstreamproto/jsp/jsperr"
)

// Default limits; each is what a zero Config field means.
const (
	// DefaultMaxFileSize caps one stored file.
	DefaultMaxFileSize int64 = 1 << 30
	// DefaultMaxNameLen caps a file name in bytes. 255 is the usual file
	// system limit on one path component.
	DefaultMaxNameLen = 255
)

// metaDir holds one small JSON record per file with its size and SHA-256,
// so that stat does not rehash a large file. Valid names never start with a
// dot, so no stored file can collide with it; neither can temporary files,
// which start with tmpPrefix.
const (
	metaDir   = ".meta"
	tmpPrefix = ".tmp-"
)

// ValidName reports whether name is a safe file name: 1..maxLen bytes of
// ASCII letters, digits, '.', '_' and '-', not starting with '.', so that it
// names exactly one entry inside the store's directory and never a parent
// directory, an absolute path, a hidden or special file. maxLen <= 0 means
// DefaultMaxNameLen.
func ValidName(name string, maxLen int) error {
	if maxLen <= 0 {
		maxLen = DefaultMaxNameLen
	}
	if name == "" {
		return jsperr.New(jsperr.BadRequest, "empty file name")
	}
	if len(name) > maxLen {
		return jsperr.Newf(jsperr.BadRequest, "file name of %d bytes over limit %d", len(name), maxLen)
	}
	if name[0] == '.' {
		return jsperr.Newf(jsperr.BadRequest, "file name %q starts with a dot", name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
		default:
			// Separators ('/', '\\'), NUL, control and non-ASCII bytes all
			// end here; allowing only a small alphabet is simpler to reason
			// about than listing what is dangerous on each platform.
			return jsperr.Newf(jsperr.BadRequest, "file name %q has byte 0x%02x at %d (allowed: letters, digits, '.', '_', '-')", name, c, i)
		}
	}
	return nil
}

// Info describes a stored file.
type Info struct {
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"` // lower-case hex
}

// meta is the record kept in metaDir; ModNano ties it to one version of the
// file.
type meta struct {
	Info
	ModNano int64 `json:"mtime_ns"`
}

// Store keeps files in one directory. It is safe for concurrent use: a file
// is written to a temporary name and renamed into place, so readers see
// either the old or the new content, never a mix.
type Store struct {
	dir        string
	maxSize    int64
	maxNameLen int
}

// OpenStore returns a store in dir, creating it (mode 0700) when missing.
// maxSize <= 0 means DefaultMaxFileSize; maxNameLen <= 0 DefaultMaxNameLen.
func OpenStore(dir string, maxSize int64, maxNameLen int) (*Store, error) {
	if maxSize <= 0 {
		maxSize = DefaultMaxFileSize
	}
	if maxNameLen <= 0 {
		maxNameLen = DefaultMaxNameLen
	}
	if err := os.MkdirAll(filepath.Join(dir, metaDir), 0o700); err != nil {
		return nil, fmt.Errorf("files: create store %s: %w", dir, err)
	}
	return &Store{dir: dir, maxSize: maxSize, maxNameLen: maxNameLen}, nil
}

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.dir }

// MaxSize returns the largest file the store accepts.
func (s *Store) MaxSize() int64 { return s.maxSize }

// path returns the file's path after validating its name.
func (s *Store) path(name string) (string, error) {
	if err := ValidName(name, s.maxNameLen); err != nil {
		return "", err
	}
	return filepath.Join(s.dir, name), nil
}

// ParseSHA256 parses 64 hexadecimal digits.
func ParseSHA256(h string) ([sha256.Size]byte, error) {
	var d [sha256.Size]byte
	if len(h) != 2*sha256.Size {
		return d, jsperr.Newf(jsperr.BadRequest, "sha256 %q: want %d hex digits", h, 2*sha256.Size)
	}
	if _, err := hex.Decode(d[:], []byte(h)); err != nil {
		return d, jsperr.Newf(jsperr.BadRequest, "sha256 %q: %v", h, err)
	}
	return d, nil
}

// Put stores exactly size bytes from r under name, verifying that they hash
// to want. It fails with LIMIT_EXCEEDED above the store's maximum size,
// BAD_REQUEST when r holds fewer or more than size bytes or the digest
// differs; the previous content of name, if any, is then kept.
func (s *Store) Put(name string, size int64, want [sha256.Size]byte, r io.Reader) (Info, error) {
	final, err := s.path(name)
	if err != nil {
		return Info{}, err
	}
	if size < 0 {
		return Info{}, jsperr.Newf(jsperr.BadRequest, "negative size %d", size)
	}
	if size > s.maxSize {
		return Info{}, jsperr.Newf(jsperr.LimitExceeded, "file of %d bytes over limit %d", size, s.maxSize)
	}
	tmp, err := os.CreateTemp(s.dir, tmpPrefix+"*")
	if err != nil {
		return Info{}, fmt.Errorf("files: put %s: %w", name, err)
	}
	committed := false
	defer func() {
		if !committed {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(r, size))
	if err != nil {
		return Info{}, fmt.Errorf("files: put %s: receive: %w", name, err)
	}
	if n != size {
		return Info{}, jsperr.Newf(jsperr.BadRequest, "file %s: got %d bytes, announced %d", name, n, size)
	}
	// Anything past the announced size means the sender and we disagree
	// about the file; refuse rather than store a prefix.
	var one [1]byte
	if m, _ := io.ReadFull(r, one[:]); m > 0 {
		return Info{}, jsperr.Newf(jsperr.BadRequest, "file %s: more than the announced %d bytes", name, size)
	}
	var got [sha256.Size]byte
	h.Sum(got[:0])
	if got != want {
		return Info{}, jsperr.Newf(jsperr.BadRequest, "file %s: sha256 %x, announced %x", name, got, want)
	}
	if err := tmp.Sync(); err != nil {
		return Info{}, fmt.Errorf("files: put %s: sync: %w", name, err)
	}
	// The modification time is taken from the temporary file: after the
	// rename, the final name may already hold a concurrent upload's file.
	fi, err := tmp.Stat()
	if err != nil {
		return Info{}, fmt.Errorf("files: put %s: stat: %w", name, err)
	}
	if err := tmp.Close(); err != nil {
		return Info{}, fmt.Errorf("files: put %s: close: %w", name, err)
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return Info{}, fmt.Errorf("files: put %s: %w", name, err)
	}
	committed = true
	info := Info{Size: size, SHA256: hex.EncodeToString(got[:])}
	// A missing record only costs a rehash in Stat, so a failure to write
	// it does not fail the upload.
	_ = s.writeMeta(name, meta{Info: info, ModNano: fi.ModTime().UnixNano()})
	return info, nil
}

// Open opens a stored file for reading and returns it with its size and
// SHA-256, both describing the opened file even if the name is replaced
// concurrently. The digest comes from the record written by Put when it
// still matches the file (same size and modification time), and is
// recomputed, and the record rewritten, otherwise.
func (s *Store) Open(name string) (*os.File, Info, error) {
	p, err := s.path(name)
	if err != nil {
		return nil, Info{}, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, Info{}, jsperr.Newf(jsperr.NotFound, "no file %s", name)
	}
	if err != nil {
		return nil, Info{}, fmt.Errorf("files: open %s: %w", name, err)
	}
	info, err := s.describe(name, f)
	if err != nil {
		_ = f.Close()
		return nil, Info{}, err
	}
	return f, info, nil
}

// describe returns the size and digest of the open file f, leaving its
// offset at 0.
func (s *Store) describe(name string, f *os.File) (Info, error) {
	fi, err := f.Stat()
	if err != nil {
		return Info{}, fmt.Errorf("files: stat %s: %w", name, err)
	}
	if !fi.Mode().IsRegular() {
		return Info{}, jsperr.Newf(jsperr.NotFound, "no file %s", name)
	}
	if m, err := s.readMeta(name); err == nil && m.Size == fi.Size() && m.ModNano == fi.ModTime().UnixNano() {
		return m.Info, nil
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return Info{}, fmt.Errorf("files: hash %s: %w", name, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return Info{}, fmt.Errorf("files: rewind %s: %w", name, err)
	}
	info := Info{Size: fi.Size(), SHA256: hex.EncodeToString(h.Sum(nil))}
	_ = s.writeMeta(name, meta{Info: info, ModNano: fi.ModTime().UnixNano()})
	return info, nil
}

// Stat returns a stored file's size and SHA-256 (see Open).
func (s *Store) Stat(name string) (Info, error) {
	f, info, err := s.Open(name)
	if err != nil {
		return Info{}, err
	}
	_ = f.Close()
	return info, nil
}

func (s *Store) metaPath(name string) string { return filepath.Join(s.dir, metaDir, name+".json") }

func (s *Store) readMeta(name string) (meta, error) {
	var m meta
	b, err := os.ReadFile(s.metaPath(name))
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, err
	}
	if _, err := ParseSHA256(m.SHA256); err != nil || strings.ToLower(m.SHA256) != m.SHA256 {
		return m, fmt.Errorf("files: bad record for %s", name)
	}
	return m, nil
}

func (s *Store) writeMeta(name string, m meta) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Join(s.dir, metaDir), tmpPrefix+"*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		_ = tmp.Close()
		_ = os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		_ = os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), s.metaPath(name)); err != nil {
		_ = os.Remove(tmp.Name())
		return err
	}
	return nil
}
