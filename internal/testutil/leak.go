// Package testutil holds helpers shared by the project's tests.
package testutil

import (
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// LeakGrace is how long VerifyTestMain keeps checking for leftover
// goroutines after the tests passed. quic-go keeps a closed connection's ids
// for three probe timeouts (RFC 9000 §10.2) and stops its socket goroutines
// only after that, asynchronously; on a loaded machine this takes longer
// than goleak's own retry window.
const LeakGrace = 10 * time.Second

// VerifyTestMain runs the tests and then fails the package if goroutines
// are still running after LeakGrace: use it as
//
//	func TestMain(m *testing.M) { testutil.VerifyTestMain(m) }
func VerifyTestMain(m *testing.M, opts ...goleak.Option) {
	code := m.Run()
	if code == 0 {
		deadline := time.Now().Add(LeakGrace)
		for {
			err := goleak.Find(opts...)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				fmt.Fprintf(os.Stderr, "goleak: goroutines still running %v after the tests: %v\n", LeakGrace, err)
				code = 1
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	os.Exit(code)
}
