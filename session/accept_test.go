package session

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
)

// AcceptStreamOrDatagram returns a datagram and a stream as they come,
// exactly one per call, and ErrClosed once the session ends.
func TestAcceptStreamOrDatagram(t *testing.T) {
	cli, srv := establishOn(t, transportFactories["mem"], Config{}, Config{}, ClientInfo{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cli.SendDatagram([]byte{42}, protocol.ClassMedia); err != nil {
		t.Fatal(err)
	}
	st, dg, err := srv.AcceptStreamOrDatagram(ctx)
	if err != nil || st != nil || len(dg) != 1 || dg[0] != 42 {
		t.Fatalf("datagram: stream %v, datagram %v, %v", st, dg, err)
	}
	cst, err := cli.OpenStream(ctx, protocol.ClassBulk, "files", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cst.Close()
	st, dg, err = srv.AcceptStreamOrDatagram(ctx)
	if err != nil || st == nil || dg != nil || st.Label() != "files" {
		t.Fatalf("stream: stream %v, datagram %v, %v", st, dg, err)
	}
	_ = srv.Close()
	if _, _, err := srv.AcceptStreamOrDatagram(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v, want ErrClosed", err)
	}
}
