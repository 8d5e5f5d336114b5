package postgres_test

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/jetstreamproto/jsp/server/storage/postgres/pgtest"
	"github.com/jetstreamproto/jsp/server/storage/storagetest"

	// Registers the postgres scheme for storage.Open.
	_ "github.com/jetstreamproto/jsp/server/storage/postgres"
)

func TestMain(m *testing.M) {
	code := pgtest.Run(m)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func TestConformance(t *testing.T) { storagetest.Run(t, pgtest.DSN) }

func BenchmarkStore(b *testing.B) { storagetest.Bench(b, pgtest.DSN) }
