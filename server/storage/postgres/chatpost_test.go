package postgres_test

import (
	"testing"

	"github.com/jetstreamproto/jsp/server/storage/postgres/pgtest"
	"github.com/jetstreamproto/jsp/server/storage/storagetest"
)

func BenchmarkPost(b *testing.B) { storagetest.BenchPost(b, pgtest.DSN) }
