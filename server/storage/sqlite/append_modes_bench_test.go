package sqlite

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	sqlitedrv "modernc.org/sqlite"

	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/server/storage/storagetest"
)

// BenchmarkAppendModes is BenchmarkAppendGroup64 with the claim log on
// (the default) and off (claims upserted into message_dedup, as before
// migration 0007), to tell the claim log's share of the gain from the
// multi-row inserts' and the checkpointer's; and with the driver's
// process-wide fdatasync switch on, an opt-in this package does not take
// (docs/benchmarks.md, "SQLite appends after D41").
func BenchmarkAppendModes(b *testing.B) {
	for _, mode := range []struct {
		name      string
		lo        loopOptions
		fdatasync bool
	}{
		{"ClaimLog", loopOptions{}, false},
		{"Direct", loopOptions{noClaimLog: true}, false},
		{"ClaimLogFdatasync", loopOptions{}, true},
	} {
		b.Run(mode.name, func(b *testing.B) {
			if mode.fdatasync {
				prev, err := sqlitedrv.Fdatasync(true)
				if err != nil {
					b.Skip(err)
				}
				defer sqlitedrv.Fdatasync(prev)
			}
			const group = 64
			ctx := context.Background()
			ms, err := Migrations()
			if err != nil {
				b.Fatal(err)
			}
			s, err := open(ctx, filepath.Join(b.TempDir(), "jsp.db"), storage.Config{Logger: storagetest.Quiet}, ms, mode.lo)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			body := make([]byte, 200)
			msgs := make([]storage.Message, group)
			id := make([]byte, 16)
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := processCPU()
			for range b.N {
				for i := range msgs {
					rand.Read(id)
					msgs[i] = storage.Message{Sender: "s-0123456789abcdef", ClientID: hex.EncodeToString(id), Body: body}
				}
				_, errs := s.AppendMessages(ctx, "bench", msgs)
				for _, err := range errs {
					if err != nil {
						b.Fatal(err)
					}
				}
			}
			cpu := processCPU() - cpu0
			b.StopTimer()
			n := float64(b.N * group)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/msg")
			b.ReportMetric(float64(cpu.Microseconds())/n, "cpu-µs/msg")
		})
	}
}

// processCPU is the process's user plus system CPU time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
