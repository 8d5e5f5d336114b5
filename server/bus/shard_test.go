package bus_test

import (
	"fmt"
	"math"
	"testing"

	"github.com/jetstreamproto/jsp/server/bus"
)

func TestJumpHashRange(t *testing.T) {
	for _, n := range []int{-1, 0, 1} {
		if got := bus.JumpHash(12345, n); got != 0 {
			t.Errorf("JumpHash(_, %d) = %d, want 0", n, got)
		}
	}
	for k := range uint64(1000) {
		if b := bus.JumpHash(k, 7); b < 0 || b >= 7 {
			t.Fatalf("JumpHash(%d, 7) = %d", k, b)
		}
	}
}

// TestShardStable pins values: the hash is part of the cluster protocol,
// and a silent change would move every channel to another shard while old
// and new processes run side by side.
func TestShardStable(t *testing.T) {
	tests := []struct {
		channel string
		n, want int
	}{{"room-1", 16, 4}, {"room-2", 16, 14}, {"general", 64, 11}, {"ü", 3, 1}}
	for _, tt := range tests {
		if got := bus.ShardOf(tt.channel, tt.n); got != tt.want {
			t.Errorf("ShardOf(%q, %d) = %d, want %d", tt.channel, tt.n, got, tt.want)
		}
	}
	if h := bus.HashName("room-1"); h != 0x8092b68d8a8c9e8c {
		t.Errorf("HashName(room-1) = %#x", h)
	}
	if o := bus.Rendezvous("7", []string{"core-a", "core-b", "core-c"}); o != "core-c" {
		t.Errorf("Rendezvous(7) = %q, want core-c", o)
	}
}

// TestShardBalance checks that 100k channel names spread evenly: every
// shard within 5% of the mean (the binomial standard deviation is about
// 1.2% here, so this fails only when the hash is biased).
func TestShardBalance(t *testing.T) {
	const keys = 100_000
	for _, n := range []int{4, 16, 64} {
		counts := make([]int, n)
		for i := range keys {
			counts[bus.ShardOf(fmt.Sprintf("room-%d", i), n)]++
		}
		mean := float64(keys) / float64(n)
		for s, c := range counts {
			if math.Abs(float64(c)-mean)/mean > 0.05+3/math.Sqrt(mean) {
				t.Errorf("n=%d: shard %d has %d keys, mean %.0f", n, s, c, mean)
			}
		}
	}
}

// TestShardMinimalMovement checks the consistent-hash property: growing
// from n to n+1 shards moves only keys into the new shard, about 1/(n+1)
// of them.
func TestShardMinimalMovement(t *testing.T) {
	const keys = 50_000
	for _, n := range []int{1, 4, 15, 63} {
		moved := 0
		for i := range keys {
			name := fmt.Sprintf("chan/%d", i)
			a, b := bus.ShardOf(name, n), bus.ShardOf(name, n+1)
			if a != b {
				if b != n {
					t.Fatalf("n=%d: %q moved from %d to old shard %d", n, name, a, b)
				}
				moved++
			}
		}
		want := float64(keys) / float64(n+1)
		if math.Abs(float64(moved)-want)/want > 0.1 {
			t.Errorf("n=%d -> %d: moved %d keys, want about %.0f", n, n+1, moved, want)
		}
	}
}

func TestRendezvous(t *testing.T) {
	if got := bus.Rendezvous("x", nil); got != "" {
		t.Fatalf("no members: %q", got)
	}
	members := []string{"core-a", "core-b", "core-c", "core-d"}
	reversed := []string{"core-d", "core-c", "core-b", "core-a"}
	const shards = 4096
	counts := map[string]int{}
	owner := make([]string, shards)
	for s := range shards {
		key := fmt.Sprint(s)
		owner[s] = bus.Rendezvous(key, members)
		if o := bus.Rendezvous(key, reversed); o != owner[s] {
			t.Fatalf("shard %d: owner depends on member order (%q vs %q)", s, owner[s], o)
		}
		counts[owner[s]]++
	}
	mean := float64(shards) / float64(len(members))
	for m, c := range counts {
		if math.Abs(float64(c)-mean)/mean > 0.1 {
			t.Errorf("member %s owns %d shards, mean %.0f", m, c, mean)
		}
	}
	// Removing a member moves only its shards; adding one moves only the
	// shards it wins.
	without := []string{"core-a", "core-c", "core-d"}
	with := append([]string{"core-e"}, members...)
	gained := 0
	for s := range shards {
		key := fmt.Sprint(s)
		if o := bus.Rendezvous(key, without); owner[s] != "core-b" && o != owner[s] {
			t.Fatalf("shard %d moved from %s to %s when core-b left", s, owner[s], o)
		}
		if o := bus.Rendezvous(key, with); o != owner[s] {
			if o != "core-e" {
				t.Fatalf("shard %d moved from %s to %s when core-e joined", s, owner[s], o)
			}
			gained++
		}
	}
	if want := float64(shards) / 5; math.Abs(float64(gained)-want)/want > 0.15 {
		t.Errorf("new member took %d shards, want about %.0f", gained, want)
	}
}
