package bwe

import (
	"testing"

	"github.com/jetstreamproto/jsp/internal/testutil"
)

func TestMain(m *testing.M) { testutil.VerifyTestMain(m) }
