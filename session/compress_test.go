package session

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/jetstreamproto/jsp/jsperr"
)

// chatPayload is a JSON-ish batch of chat messages, typical of history
// pages and busy channels.
func chatPayload(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	words := strings.Fields("the build is green again can you review my change lunch at noon ship it " +
		"deploy failed on staging looks good to me thanks I will check after the standup meeting")
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, `{"id":"%08x","user":"user%d","channel":"team-%d","text":"`, r.Uint32(), r.IntN(40), r.IntN(5))
		for w := 0; w < 4+r.IntN(12); w++ {
			b.WriteString(words[r.IntN(len(words))] + " ")
		}
		b.WriteString(`"}` + "\n")
	}
	return b.Bytes()[:n]
}

// binaryPayload is incompressible, like encrypted or already compressed
// media.
func binaryPayload(n int) []byte {
	r := rand.New(rand.NewPCG(3, 4))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestCompressRoundTrip(t *testing.T) {
	for _, p := range [][]byte{chatPayload(600), chatPayload(64 << 10), []byte(strings.Repeat("a", 4096))} {
		c, ok := compress(nil, p)
		if !ok {
			t.Fatalf("%d-byte compressible payload not compressed", len(p))
		}
		d, err := decompress(c, len(p))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(d, p) {
			t.Fatal("round trip changed the payload")
		}
	}
	if _, ok := compress(nil, binaryPayload(4096)); ok {
		t.Fatal("random bytes were reported as compressible")
	}
}

// TestDecompressLimits: a frame that expands past the limit, or is not
// zstd at all, fails with COMPRESSION_ERROR (JSP §11.4).
func TestDecompressLimits(t *testing.T) {
	bomb, _ := compress(nil, make([]byte, 4<<20)) // 4 MiB of zeros: a few hundred bytes
	cases := []struct {
		name  string
		in    []byte
		limit int
	}{
		{"expands past limit", bomb, 1 << 20},
		{"not zstd", []byte("definitely not a zstd frame"), 1 << 20},
		{"empty", nil, 1 << 20},
		{"truncated", bomb[:len(bomb)/2], 8 << 20},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decompress(tc.in, tc.limit)
			if jsperr.CodeOf(err) != jsperr.CompressionError {
				t.Fatalf("error = %v, want COMPRESSION_ERROR", err)
			}
		})
	}
}

// BenchmarkCompress reports the compression ratio (original/compressed) and
// the cost per byte for chat-like text and binary payloads.
func BenchmarkCompress(b *testing.B) {
	for _, tc := range []struct {
		name string
		p    []byte
	}{
		{"chat-1KiB", chatPayload(1 << 10)},
		{"chat-16KiB", chatPayload(16 << 10)},
		{"binary-16KiB", binaryPayload(16 << 10)},
	} {
		b.Run(tc.name+"/compress", func(b *testing.B) {
			b.SetBytes(int64(len(tc.p)))
			var out []byte
			for b.Loop() {
				out, _ = compress(out[:0], tc.p)
			}
			if len(out) == 0 {
				out = tc.p // not worth compressing: sent as is
			}
			b.ReportMetric(float64(len(tc.p))/float64(len(out)), "ratio")
		})
		c, ok := compress(nil, tc.p)
		if !ok {
			continue
		}
		b.Run(tc.name+"/decompress", func(b *testing.B) {
			b.SetBytes(int64(len(tc.p)))
			for b.Loop() {
				if _, err := decompress(c, len(tc.p)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestCompressionBackOff: after a run of incompressible payloads the
// session stops trying zstd on most of them, and resumes as soon as a probe
// shrinks.
func TestCompressionBackOff(t *testing.T) {
	s := &Session{}
	tries := 0
	for i := 0; i < 200; i++ {
		if s.worthCompressing() {
			tries++
			s.compressResult(false)
		}
	}
	if tries >= 20 {
		t.Fatalf("%d attempts on 200 incompressible payloads, want fewer than 20", tries)
	}
	for !s.worthCompressing() {
	}
	s.compressResult(true)
	for i := 0; i < 5; i++ {
		if !s.worthCompressing() {
			t.Fatal("compression still skipped after a payload shrank")
		}
	}
}
