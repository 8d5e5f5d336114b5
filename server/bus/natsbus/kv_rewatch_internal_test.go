package natsbus

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/server/bus"
)

// TestWatchReopens ends a watch's underlying subscription the way nats.go
// does when it gives up on the watch's consumer (Updates closes without
// Stop): the watcher opens it again after the last revision delivered, so
// the handler gets every later change once and none of the earlier ones
// again.
func TestWatchReopens(t *testing.T) {
	quietLog := slog.New(slog.NewTextHandler(io.Discard, nil))
	b, err := Embedded(EmbeddedConfig{
		Server: ServerConfig{DataDir: t.TempDir(), Logger: quietLog},
		Client: ClientConfig{Logger: quietLog},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	kv, err := b.KV(ctx, bus.KVConfig{Bucket: "rw"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "a", []byte("1")); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 16)
	bw, err := kv.Watch(ctx, ">", func(e bus.KVEntry) { got <- e.Key + "=" + string(e.Value) })
	if err != nil {
		t.Fatal(err)
	}
	defer bw.Stop()
	expect := func(want string) {
		t.Helper()
		select {
		case g := <-got:
			if g != want {
				t.Fatalf("watch delivered %q, want %q", g, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("watch delivered nothing, want %q", want)
		}
	}
	expect("a=1")
	if _, err := kv.Put(ctx, "b", []byte("2")); err != nil {
		t.Fatal(err)
	}
	expect("b=2")

	w := bw.(*watcher)
	w.mu.Lock()
	old := w.w
	w.mu.Unlock()
	if err := old.Stop(); err != nil { // as nats.go ends a watch it gave up on
		t.Fatal(err)
	}
	// Changes made while the watch is down arrive after it reopens.
	if _, err := kv.Put(ctx, "c", []byte("3")); err != nil {
		t.Fatal(err)
	}
	expect("c=3")
	if err := kv.Delete(ctx, "a", 0); err != nil {
		t.Fatal(err)
	}
	expect("a=")
	select {
	case g := <-got:
		t.Fatalf("unexpected delivery %q", g)
	case <-time.After(200 * time.Millisecond):
	}
	w.mu.Lock()
	reopened := w.w != old
	w.mu.Unlock()
	if !reopened {
		t.Fatal("the watch was not reopened")
	}
}
