package sqlite_test

import (
	"testing"

	"github.com/jetstreamproto/jsp/server/storage/storagetest"
)

func BenchmarkPost(b *testing.B) { storagetest.BenchPost(b, fileDSN) }
