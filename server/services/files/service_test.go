package files

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/server/services"
	"github.com/jetstreamproto/jsp/server/services/servicetest"
	"github.com/jetstreamproto/jsp/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newService(t *testing.T, cfg Config) *Service {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = filepath.Join(t.TempDir(), "files")
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var caller = services.NewCaller(services.Identity{SessionID: "test"}, nil)

// transfer runs one stream against the service: the client writes upload
// (then closes), and reads everything the server sends back.
func transfer(t *testing.T, s *Service, label string, meta map[string]string, upload []byte) (resp []byte, handlerErr error) {
	t.Helper()
	srv, cli := servicetest.Pipe(label, meta)
	defer srv.Stop()
	done := make(chan error, 1)
	go func() { done <- s.HandleStream(context.Background(), caller, srv) }()
	go func() {
		// A refused upload stops the reader; the write then fails, which
		// is what a real client sees too.
		if upload != nil {
			_, _ = cli.Write(upload)
		}
		_ = cli.Close()
	}()
	resp, _ = io.ReadAll(cli)
	select {
	case handlerErr = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("HandleStream did not return")
	}
	return resp, handlerErr
}

func putMeta(name string, data []byte) map[string]string {
	d := sha256.Sum256(data)
	return map[string]string{MetaName: name, MetaSize: fmt.Sprint(len(data)), MetaSHA256: hex.EncodeToString(d[:])}
}

func TestPutGetStat(t *testing.T) {
	s := newService(t, Config{})
	data := make([]byte, 300<<10)
	rand.Read(data)
	d := sha256.Sum256(data)
	sum := hex.EncodeToString(d[:])

	resp, err := transfer(t, s, LabelPut, putMeta("blob.bin", data), data)
	if err != nil || string(resp) != fmt.Sprintf("OK %d %s\n", len(data), sum) {
		t.Fatalf("put: %q, %v", resp, err)
	}
	stored, err := os.ReadFile(filepath.Join(s.Store().Dir(), "blob.bin"))
	if err != nil || !bytes.Equal(stored, data) {
		t.Fatalf("stored file: %d bytes, %v", len(stored), err)
	}

	resp, err = transfer(t, s, LabelGet, map[string]string{MetaName: "blob.bin"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(bytes.NewReader(resp))
	header, _ := br.ReadString('\n')
	body, _ := io.ReadAll(br)
	if header != fmt.Sprintf("OK %d %s\n", len(data), sum) || !bytes.Equal(body, data) {
		t.Fatalf("get: header %q, %d bytes", header, len(body))
	}

	reply, err := s.HandleCommand(context.Background(), caller, &wire.Envelope{Body: []byte("stat blob.bin")})
	if err != nil {
		t.Fatal(err)
	}
	var info Info
	if err := json.Unmarshal(reply, &info); err != nil || info != (Info{Size: int64(len(data)), SHA256: sum}) {
		t.Fatalf("stat = %s (%v)", reply, err)
	}
}

func TestStreamRefusals(t *testing.T) {
	data := []byte("some file content")
	tests := []struct {
		name   string
		label  string
		meta   map[string]string
		upload []byte
		code   jsperr.Code
	}{
		{"traversal", LabelPut, putMeta("../escape", data), data, jsperr.BadRequest},
		{"absolute", LabelPut, putMeta("/tmp/escape", data), data, jsperr.BadRequest},
		{"nested", LabelPut, putMeta("a/b", data), data, jsperr.BadRequest},
		{"no name", LabelPut, putMeta("", data), data, jsperr.BadRequest},
		{"bad size", LabelPut, map[string]string{MetaName: "f", MetaSize: "12x", MetaSHA256: putMeta("f", data)[MetaSHA256]}, data, jsperr.BadRequest},
		{"bad sha", LabelPut, map[string]string{MetaName: "f", MetaSize: "17", MetaSHA256: "abc"}, data, jsperr.BadRequest},
		{"digest mismatch", LabelPut, putMeta("f", []byte("other content!!!!")), data, jsperr.BadRequest},
		{"too large", LabelPut, putMeta("f", make([]byte, 2048)), make([]byte, 2048), jsperr.LimitExceeded},
		{"short upload", LabelPut, putMeta("f", append(data, 'x')), data, jsperr.BadRequest},
		{"get traversal", LabelGet, map[string]string{MetaName: "../files/x"}, nil, jsperr.BadRequest},
		{"get missing", LabelGet, map[string]string{MetaName: "missing"}, nil, jsperr.NotFound},
		{"unknown label", "file.delete", map[string]string{MetaName: "f"}, nil, jsperr.NotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			s := newService(t, Config{Dir: filepath.Join(root, "files"), MaxFileSize: 1024})
			resp, err := transfer(t, s, tt.label, tt.meta, tt.upload)
			if jsperr.CodeOf(err) != tt.code {
				t.Fatalf("handler error %v, want %s", err, tt.code)
			}
			if want := "ERR " + tt.code.String() + " "; !strings.HasPrefix(string(resp), want) || !strings.HasSuffix(string(resp), "\n") ||
				strings.Count(string(resp), "\n") != 1 {
				t.Fatalf("response %q, want one line starting %q", resp, want)
			}
			// Nothing may appear anywhere under root but the empty store.
			var found []string
			_ = filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
				if err == nil && !fi.IsDir() {
					found = append(found, p)
				}
				return nil
			})
			if len(found) != 0 {
				t.Fatalf("files left after a refused transfer: %v", found)
			}
		})
	}
}

func TestUploadIdleTimeout(t *testing.T) {
	s := newService(t, Config{IdleTimeout: 50 * time.Millisecond})
	srv, cli := servicetest.Pipe(LabelPut, putMeta("slow", []byte("0123456789")))
	defer srv.Stop()
	done := make(chan error, 1)
	go func() { done <- s.HandleStream(context.Background(), caller, srv) }()
	if _, err := cli.Write([]byte("01234")); err != nil { // then stall
		t.Fatal(err)
	}
	resp, _ := io.ReadAll(cli)
	if err := <-done; jsperr.CodeOf(err) != jsperr.Timeout {
		t.Fatalf("handler error %v, want TIMEOUT", err)
	}
	if !strings.HasPrefix(string(resp), "ERR TIMEOUT ") {
		t.Fatalf("response %q", resp)
	}
	cli.Stop()
	if _, err := os.Stat(filepath.Join(s.Store().Dir(), "slow")); !os.IsNotExist(err) {
		t.Fatalf("stalled upload stored: %v", err)
	}
}

func TestStatCommand(t *testing.T) {
	s := newService(t, Config{})
	if _, err := s.Store().Put("x", 1, sha256.Sum256([]byte("x")), strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		body string
		code jsperr.Code
	}{
		{"stat x", jsperr.NoError},
		{"  stat   x  ", jsperr.NoError},
		{"stat", jsperr.BadRequest},
		{"stat x y", jsperr.BadRequest},
		{"list", jsperr.BadRequest},
		{"stat ../x", jsperr.BadRequest},
		{"stat y", jsperr.NotFound},
	}
	for _, tt := range tests {
		_, err := s.HandleCommand(context.Background(), caller, &wire.Envelope{Body: []byte(tt.body)})
		if jsperr.CodeOf(err) != tt.code {
			t.Errorf("%q: %v, want %s", tt.body, err, tt.code)
		}
	}
}

func TestConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"no dir", Config{}, false},
		{"negative size", Config{Dir: "d", MaxFileSize: -1}, false},
		{"negative name", Config{Dir: "d", MaxNameLen: -1}, false},
		{"negative idle", Config{Dir: "d", IdleTimeout: -1}, false},
	}
	for _, tt := range tests {
		if _, err := New(tt.cfg); (err == nil) != tt.ok {
			t.Errorf("%s: New = %v", tt.name, err)
		}
	}
	s := newService(t, Config{})
	if s.cfg.MaxFileSize != DefaultMaxFileSize || s.cfg.IdleTimeout != DefaultIdleTimeout || s.cfg.MaxNameLen != DefaultMaxNameLen {
		t.Fatalf("defaults: %+v", s.cfg)
	}
	r := services.NewRegistry()
	if err := s.Register(r); err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{LabelPut, LabelGet} {
		if _, ok := r.Stream(l); !ok {
			t.Fatalf("label %s not registered", l)
		}
	}
}
