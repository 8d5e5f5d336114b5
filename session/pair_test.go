package session

import (
	"testing"

	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/transport/memtransport"
	"github.com/jetstreamproto/jsp/transport/mux"
)

// newPair returns a connected in-memory client/server transport pair.
func newPair(t *testing.T) (transport.Conn, transport.Conn) {
	t.Helper()
	c, s := memtransport.NewPair(mux.Config{})
	t.Cleanup(func() {
		c.CloseWithError(0, "")
		s.CloseWithError(0, "")
	})
	return c, s
}
