package chat

import (
	"context"
	"testing"

	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/server/bus/membus"
)

func TestKVPresence(t *testing.T) {
	b, err := membus.New(membus.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	kv, err := b.KV(ctx, bus.KVConfig{Bucket: bus.BucketPresence})
	if err != nil {
		t.Fatal(err)
	}
	put := func(user, sess, status string) {
		t.Helper()
		k, err := bus.PresenceKey(user, sess)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Put(ctx, k, []byte(status)); err != nil {
			t.Fatal(err)
		}
	}
	put("alice", "s1", StatusAway)
	put("alice", "s2", StatusOnline)
	put("bob", "s3", StatusAway)
	put("bob.smith", "s4", StatusOnline) // another user whose id extends bob's
	k, _ := bus.PresenceKey("carol", "s5")
	put("carol", "s5", StatusOnline)
	if err := kv.Delete(ctx, k, 0); err != nil {
		t.Fatal(err)
	}
	p := KVPresence{KV: kv}
	for user, want := range map[string]string{"alice": StatusOnline, "bob": StatusAway, "carol": StatusOffline, "dave": StatusOffline} {
		got, err := p.Status(ctx, user)
		if err != nil || got != want {
			t.Errorf("Status(%s) = %q, %v; want %q", user, got, err, want)
		}
	}
}
