package sqlite

import (
	"context"
	"path/filepath"
	"testing"

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
			appendGroups(b, s, group)
		})
	}
}
