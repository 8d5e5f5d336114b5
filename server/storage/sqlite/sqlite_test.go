package sqlite_test

import (
	"path/filepath"
	"testing"

	"go.uber.org/goleak"

	"github.com/jetstreamproto/jsp/server/storage/sqlite"
	"github.com/jetstreamproto/jsp/server/storage/storagetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fileDSN returns a fresh database file in the test's temporary directory.
func fileDSN(t testing.TB) string {
	return sqlite.Scheme + ":" + filepath.Join(t.TempDir(), "jsp.db")
}

func TestConformance(t *testing.T) { storagetest.Run(t, fileDSN) }

func BenchmarkStore(b *testing.B) { storagetest.Bench(b, fileDSN) }
