package files

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
)

func TestValidName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"report.pdf", true},
		{"a", true},
		{"A-b_c.1.tar.gz", true},
		{"..", false},
		{".", false},
		{"", false},
		{"../etc/passwd", false},
		{"a/../../b", false},
		{"/etc/passwd", false},
		{"dir/file", false},
		{`..\windows`, false},
		{`a\b`, false},
		{".hidden", false},
		{".meta", false},
		{"nul\x00byte", false},
		{"new\nline", false},
		{"sp ace", false},
		{"ünïcode", false},
		{"C:evil", false},
		{strings.Repeat("x", DefaultMaxNameLen), true},
		{strings.Repeat("x", DefaultMaxNameLen+1), false},
	}
	for _, tt := range tests {
		err := ValidName(tt.name, 0)
		if (err == nil) != tt.ok {
			t.Errorf("ValidName(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
		if err != nil && jsperr.CodeOf(err) != jsperr.BadRequest {
			t.Errorf("ValidName(%q) code = %s, want BAD_REQUEST", tt.name, jsperr.CodeOf(err))
		}
	}
	if err := ValidName("abcd", 3); err == nil {
		t.Error("maxLen not applied")
	}
}

func digest(b []byte) [sha256.Size]byte { return sha256.Sum256(b) }

func newStore(t *testing.T, maxSize int64) *Store {
	t.Helper()
	s, err := OpenStore(filepath.Join(t.TempDir(), "files"), maxSize, 0)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPutOpenStat(t *testing.T) {
	s := newStore(t, 0)
	if s.MaxSize() != DefaultMaxFileSize {
		t.Fatalf("default max size = %d", s.MaxSize())
	}
	data := bytes.Repeat([]byte("jsp!"), 1000)
	info, err := s.Put("a.bin", int64(len(data)), digest(data), bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	d := digest(data)
	want := Info{Size: int64(len(data)), SHA256: hex.EncodeToString(d[:])}
	if info != want {
		t.Fatalf("Put info = %+v, want %+v", info, want)
	}
	f, oinfo, err := s.Open("a.bin")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(f)
	f.Close()
	if oinfo != want || !bytes.Equal(got, data) {
		t.Fatalf("Open returned %d bytes, info %+v", len(got), oinfo)
	}
	if st, err := s.Stat("a.bin"); err != nil || st != want {
		t.Fatalf("Stat = %+v, %v", st, err)
	}
	// The file changes behind the store's back: Stat notices through size
	// and time and rehashes.
	changed := []byte("other content")
	p := filepath.Join(s.Dir(), "a.bin")
	if err := os.WriteFile(p, changed, 0o600); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(p, later, later); err != nil {
		t.Fatal(err)
	}
	d = digest(changed)
	if st, err := s.Stat("a.bin"); err != nil || st.SHA256 != hex.EncodeToString(d[:]) || st.Size != int64(len(changed)) {
		t.Fatalf("Stat after change = %+v, %v", st, err)
	}
	// Without a record, Open hashes the file and still reads from the start.
	if err := os.Remove(s.metaPath("a.bin")); err != nil {
		t.Fatal(err)
	}
	f, oinfo, err = s.Open("a.bin")
	if err != nil || oinfo.SHA256 != hex.EncodeToString(d[:]) {
		t.Fatalf("Open without record = %+v, %v", oinfo, err)
	}
	got, _ = io.ReadAll(f)
	f.Close()
	if !bytes.Equal(got, changed) {
		t.Fatalf("read after rehash = %q", got)
	}
}

func TestPutRejects(t *testing.T) {
	old := []byte("old")
	data := []byte("hello, files")
	tests := []struct {
		name   string
		file   string
		size   int64
		sum    [sha256.Size]byte
		body   []byte
		code   jsperr.Code
		exists bool // the previous content must survive
	}{
		{"bad name", "../x", int64(len(data)), digest(data), data, jsperr.BadRequest, false},
		{"over max size", "big", 65, digest(data), data, jsperr.LimitExceeded, false},
		{"negative size", "neg", -1, digest(data), data, jsperr.BadRequest, false},
		{"wrong digest", "keep", int64(len(data)), digest([]byte("else")), data, jsperr.BadRequest, true},
		{"short body", "keep", int64(len(data)) + 1, digest(data), data, jsperr.BadRequest, true},
		{"long body", "keep", int64(len(data)) - 1, digest(data[:len(data)-1]), data, jsperr.BadRequest, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t, 64)
			if tt.exists {
				if _, err := s.Put(tt.file, int64(len(old)), digest(old), bytes.NewReader(old)); err != nil {
					t.Fatal(err)
				}
			}
			_, err := s.Put(tt.file, tt.size, tt.sum, bytes.NewReader(tt.body))
			if jsperr.CodeOf(err) != tt.code {
				t.Fatalf("Put = %v, want %s", err, tt.code)
			}
			if tt.exists {
				f, _, err := s.Open(tt.file)
				if err != nil {
					t.Fatal(err)
				}
				got, _ := io.ReadAll(f)
				f.Close()
				if !bytes.Equal(got, old) {
					t.Fatalf("content after failed Put = %q, want %q", got, old)
				}
			}
			// No temporary files are left behind.
			ents, _ := os.ReadDir(s.Dir())
			for _, e := range ents {
				if strings.HasPrefix(e.Name(), tmpPrefix) {
					t.Fatalf("temporary file %s left behind", e.Name())
				}
			}
		})
	}
}

func TestOpenMissing(t *testing.T) {
	s := newStore(t, 0)
	if err := os.Mkdir(filepath.Join(s.Dir(), "adir"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"nothing", "adir"} {
		if _, _, err := s.Open(name); jsperr.CodeOf(err) != jsperr.NotFound {
			t.Errorf("Open(%s) = %v, want NOT_FOUND", name, err)
		}
		if _, err := s.Stat(name); jsperr.CodeOf(err) != jsperr.NotFound {
			t.Errorf("Stat(%s) = %v, want NOT_FOUND", name, err)
		}
	}
	if _, _, err := s.Open("../store_test.go"); jsperr.CodeOf(err) != jsperr.BadRequest {
		t.Errorf("Open traversal = %v, want BAD_REQUEST", err)
	}
}

func TestParseSHA256(t *testing.T) {
	d := digest([]byte("x"))
	good := hex.EncodeToString(d[:])
	tests := []struct {
		in string
		ok bool
	}{{good, true}, {strings.ToUpper(good), true}, {good[:63], false}, {good + "0", false}, {"zz" + good[2:], false}}
	for _, tt := range tests {
		got, err := ParseSHA256(tt.in)
		if (err == nil) != tt.ok || (tt.ok && got != d) {
			t.Errorf("ParseSHA256(%q) = %x, %v", tt.in, got, err)
		}
	}
}
