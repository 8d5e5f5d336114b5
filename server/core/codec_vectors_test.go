package core_test

import (
	"bytes"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/server/core"
	"github.com/jetstreamproto/jsp/server/storage"
)

var updateVectors = flag.Bool("update-codec", false, "rewrite testdata/codec_vectors.txt from the encoder")

const vectorsPath = "testdata/codec_vectors.txt"

// codecVectors are the recorded binary forms that pin the byte layout of
// docs/bus.md: a change of the encoding fails here, not between two
// releases in a cluster.
func codecVectors() []struct {
	name string
	enc  func() ([]byte, error)
} {
	commit := time.Date(2026, 11, 29, 8, 30, 0, 123456000, time.UTC)
	body := make([]byte, 150)
	doc := storage.Message{Channel: "room.1", Seq: 1000, Sender: "alice", Body: body, Time: commit}
	pub := storage.Message{ClientID: "0a0b", Sender: "alice", Body: []byte("hi"), Headers: map[string]string{"b": "2", "a": "1"}}
	return []struct {
		name string
		enc  func() ([]byte, error)
	}{
		{"event docs/bus.md", func() ([]byte, error) {
			return core.CodecBinary.EncodeEvent(&core.Event{Channel: "room.1", Message: doc})
		}},
		{"event run", func() ([]byte, error) {
			m2 := doc
			m2.Seq, m2.Body = 1001, []byte("x")
			return core.CodecBinary.EncodeEvent(&core.Event{Channel: "room.1", Messages: []storage.Message{doc, m2}})
		}},
		{"event drop", func() ([]byte, error) {
			return core.CodecBinary.EncodeEvent(&core.Event{Channel: "room.1", Drop: []string{"bob"}})
		}},
		{"request publish", func() ([]byte, error) {
			return core.CodecBinary.EncodeRequest(&core.Request{Op: core.OpPublish, Channel: "room.1", Message: &pub,
				Identity: &core.Identity{User: "alice", Session: "0f", Scopes: []string{"chat"}}})
		}},
		{"request history", func() ([]byte, error) {
			return core.CodecBinary.EncodeRequest(&core.Request{Op: core.OpHistory, Channel: "room.1", Before: 300, Latest: true, Limit: 50})
		}},
		{"request command", func() ([]byte, error) {
			return core.CodecBinary.EncodeRequest(&core.Request{Op: core.OpCommand, Channel: "k", Command: &core.Command{Service: "chat", Body: []byte{1}}})
		}},
		{"reply results", func() ([]byte, error) {
			return core.CodecBinary.EncodeReply(&core.Reply{Results: []core.PublishResult{
				{Seq: 7, Time: commit}, {Code: jsperr.Conflict, Reason: "x", RetryAfterMS: -2}, {Seq: 5, Duplicate: true}}})
		}},
		{"reply recover", func() ([]byte, error) {
			return core.CodecBinary.EncodeReply(&core.Reply{Info: &storage.ChannelInfo{Name: "c", Oldest: 2, Last: 9}, Recoverable: true, More: true})
		}},
	}
}

func TestCodecVectors(t *testing.T) {
	var out bytes.Buffer
	for _, v := range codecVectors() {
		data, err := v.enc()
		if err != nil {
			t.Fatalf("%s: %v", v.name, err)
		}
		fmt.Fprintf(&out, "%s: %s\n", v.name, hex.EncodeToString(data))
	}
	if *updateVectors {
		if err := os.MkdirAll(filepath.Dir(vectorsPath), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(vectorsPath, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(vectorsPath)
	if err != nil {
		t.Fatalf("%v (regenerate with -update-codec)", err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		got, wantLines := strings.Split(out.String(), "\n"), strings.Split(string(want), "\n")
		for i := range min(len(got), len(wantLines)) {
			if got[i] != wantLines[i] {
				t.Fatalf("encoding changed:\ngot  %s\nwant %s\n(an intended change needs a new version byte; see docs/bus.md)", got[i], wantLines[i])
			}
		}
		t.Fatalf("encoding changed: %d vectors, want %d", len(got), len(wantLines))
	}
	// The recorded forms decode, and encode again to the same bytes.
	for _, line := range strings.Split(strings.TrimSpace(string(want)), "\n") {
		name, hx, _ := strings.Cut(line, ": ")
		data, err := hex.DecodeString(hx)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var again []byte
		switch {
		case strings.HasPrefix(name, "event"):
			var ev core.Event
			if ev, err = core.DecodeEvent(data); err == nil {
				again, err = core.CodecBinary.EncodeEvent(&ev)
			}
		case strings.HasPrefix(name, "request"):
			var req core.Request
			if req, err = core.DecodeRequest(data, nil); err == nil {
				again, err = core.CodecBinary.EncodeRequest(&req)
			}
		default:
			var rep core.Reply
			if rep, err = core.DecodeReply(data, nil); err == nil {
				again, err = core.CodecBinary.EncodeReply(&rep)
			}
		}
		if err != nil || !bytes.Equal(again, data) {
			t.Errorf("%s: decoded and encoded again: %x, %v", name, again, err)
		}
	}
}
