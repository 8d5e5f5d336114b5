package natsbus_test

import (
	"context"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/server/bus"
)

// TestKVPutTTLExpiryReachesWatchers checks what presence relies on (D39):
// a key written with Put and a per-key TTL in a KeyTTL bucket stays
// while it is rewritten, and once nobody rewrites it, it expires and
// watchers see the expiry as a delete (the bucket's limit marker).
func TestKVPutTTLExpiryReachesWatchers(t *testing.T) {
	b := embedded(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kv, err := b.KV(ctx, bus.KVConfig{Bucket: "putttl", KeyTTL: true})
	if err != nil {
		t.Fatal(err)
	}
	events := make(chan bus.KVEntry, 16)
	w, err := kv.Watch(ctx, ">", func(e bus.KVEntry) { events <- e })
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	var last uint64
	for range 3 { // rewritten within its TTL: it stays
		if last, err = kv.Put(ctx, "gw", []byte("beat"), bus.WithTTL(time.Second)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(400 * time.Millisecond)
	}
	if _, err := kv.Get(ctx, "gw"); err != nil {
		t.Fatalf("a key rewritten within its TTL: %v", err)
	}
	for {
		select {
		case e := <-events:
			if e.Op == bus.KVDelete {
				if e.Key != "gw" || e.Revision <= last {
					t.Fatalf("delete %+v after revision %d", e, last)
				}
				return
			}
		case <-ctx.Done():
			t.Fatal("no delete reached the watcher after the key's TTL")
		}
	}
}
