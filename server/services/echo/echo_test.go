package echo

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"testing"

	"go.uber.org/goleak"

	"github.com/jetstreamproto/jsp/server/services"
	"github.com/jetstreamproto/jsp/server/services/servicetest"
	"github.com/jetstreamproto/jsp/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestCommand(t *testing.T) {
	for _, body := range [][]byte{nil, []byte("hi"), bytes.Repeat([]byte{7}, 1<<16)} {
		got, err := Service{}.HandleCommand(context.Background(), services.NewCaller(services.Identity{}, nil), &wire.Envelope{Body: body})
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("echo of %d bytes = %d bytes, %v", len(body), len(got), err)
		}
	}
}

func TestRegister(t *testing.T) {
	r := services.NewRegistry()
	if err := Register(r); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Command(Command); !ok {
		t.Fatal("command not registered")
	}
	if _, ok := r.Stream(Label); !ok {
		t.Fatal("label not registered")
	}
}

func TestStream(t *testing.T) {
	srv, cli := servicetest.Pipe(Label, nil)
	defer srv.Stop()
	data := make([]byte, 1<<20)
	rand.Read(data)
	done := make(chan error, 1)
	go func() {
		done <- Service{}.HandleStream(context.Background(), services.NewCaller(services.Identity{}, nil), srv)
	}()
	go func() {
		_, _ = cli.Write(data)
		_ = cli.Close()
	}()
	got, err := io.ReadAll(cli)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("echoed %d of %d bytes, err %v", len(got), len(data), err)
	}
	if err := <-done; err != nil {
		t.Fatalf("HandleStream: %v", err)
	}
}
