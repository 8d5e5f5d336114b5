package all_test

import (
	"testing"

	"go.uber.org/goleak"
)

// The SQLite store runs an append loop; every test must close its stores.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
