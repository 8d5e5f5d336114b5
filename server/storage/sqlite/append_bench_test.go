package sqlite

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/jetstreamproto/jsp/internal/proccpu"
	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/server/storage/storagetest"
)

// BenchmarkAppendGroup64 appends groups of 64 messages to one channel of a
// file-backed database through AppendMessages, as a core lane does with a
// run of publishes: one op is one group, so one commit. The messages carry
// what a PUBLISH does (gateway storedMessage): a random 16-byte envelope id
// in hex as the client id, a session id as the sender and a 200-byte body.
// cpu-µs/msg is the process's user+system CPU time per message, which
// counts work on any goroutine (a background checkpoint too) and not the
// time spent waiting for fsync.
func BenchmarkAppendGroup64(b *testing.B) { benchAppendGroups(b, 64) }

// BenchmarkAppendGroup8 is BenchmarkAppendGroup64 with groups of 8, where
// the per-commit costs weigh more per message (a publisher at a few
// thousand messages per second commits small groups).
func BenchmarkAppendGroup8(b *testing.B) { benchAppendGroups(b, 8) }

func benchAppendGroups(b *testing.B, group int) {
	s, err := Open(context.Background(), filepath.Join(b.TempDir(), "jsp.db"), storage.Config{Logger: storagetest.Quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	appendGroups(b, s, group)
}

// appendGroups is the measured loop of the append benchmarks: b.N groups
// of group messages to one channel of s, reporting ns/msg and cpu-µs/msg.
func appendGroups(b *testing.B, s *Store, group int) {
	ctx := context.Background()
	body := make([]byte, 200)
	msgs := make([]storage.Message, group)
	id := make([]byte, 16)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := proccpu.Self()
	for range b.N {
		for i := range msgs {
			rand.Read(id)
			msgs[i] = storage.Message{Sender: "s-0123456789abcdef", ClientID: benchID(id), Body: body}
		}
		_, errs := s.AppendMessages(ctx, "bench", msgs)
		for _, err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	cpu := proccpu.Self() - cpu0
	b.StopTimer()
	n := float64(b.N * group)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/msg")
	b.ReportMetric(float64(cpu.Microseconds())/n, "cpu-µs/msg")
}

// benchIDMode selects the client ids of the append benchmarks:
// JSP_BENCH_ID=none (no id, no claim), seq (increasing ids), else random.
var benchIDMode = os.Getenv("JSP_BENCH_ID")
var benchSeq int

func benchID(id []byte) string {
	switch benchIDMode {
	case "none":
		return ""
	case "seq":
		benchSeq++
		return fmt.Sprintf("%032d", benchSeq)
	}
	return hex.EncodeToString(id)
}
