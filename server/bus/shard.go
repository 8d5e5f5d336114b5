package bus

// Sharding keeps per-channel order with stateless cores: every command for
// a channel goes to subject CoreCmd(ShardOf(channel, shards)), and each
// shard is served by one core at a time (Rendezvous over the live cores),
// so one core sees a channel's commands in the order a gateway sent them.
//
// Both functions are part of the cluster's protocol: every gateway and
// core must compute the same answer, so the hash is fixed here (FNV-1a 64
// with a SplitMix64 finalizer), never a per-process seeded hash such as
// hash/maphash.

const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
)

// HashName returns a stable 64-bit hash of name.
func HashName(name string) uint64 {
	h := uint64(fnvOffset64)
	for i := 0; i < len(name); i++ {
		h ^= uint64(name[i])
		h *= fnvPrime64
	}
	return mix64(h)
}

// mix64 is the SplitMix64 finalizer. FNV-1a leaves the high bits of short
// inputs poorly mixed, and jump hash draws its first decision from the
// high bits, so without it similar names ("room-1", "room-2") would cluster.
func mix64(z uint64) uint64 {
	z ^= z >> 30
	z *= 0xbf58476d1ce4e5b9
	z ^= z >> 27
	z *= 0x94d049bb133111eb
	z ^= z >> 31
	return z
}

// JumpHash maps key to a bucket in [0, n) (Lamping and Veach, "A Fast,
// Minimal Memory, Consistent Hash Algorithm"): growing n to n+1 moves only
// about 1/(n+1) of the keys, all into the new bucket. n < 1 returns 0.
func JumpHash(key uint64, n int) int {
	if n < 1 {
		return 0
	}
	b, j := int64(-1), int64(0)
	for j < int64(n) {
		b = j
		key = key*2862933555777941757 + 1
		j = int64(float64(b+1) * (float64(int64(1)<<31) / float64((key>>33)+1)))
	}
	return int(b)
}

// ShardOf returns the shard of channel among n shards.
func ShardOf(channel string, n int) int { return JumpHash(HashName(channel), n) }

// Rendezvous returns the member that owns key by highest random weight:
// removing a member moves only the keys it owned, adding one moves only the
// keys it wins. Members need not be sorted; it returns "" for none.
func Rendezvous(key string, members []string) string {
	var best string
	var bestW uint64
	for i, m := range members {
		w := rendezvousWeight(key, m)
		// Ties (astronomically rare) go to the smaller name so that every
		// process agrees whatever the member order.
		if i == 0 || w > bestW || w == bestW && m < best {
			best, bestW = m, w
		}
	}
	return best
}

func rendezvousWeight(key, member string) uint64 {
	h := uint64(fnvOffset64)
	for i := 0; i < len(member); i++ {
		h ^= uint64(member[i])
		h *= fnvPrime64
	}
	// A separator byte that no token contains keeps ("ab","c") and
	// ("a","bc") apart.
	h ^= 0xff
	h *= fnvPrime64
	for i := 0; i < len(key); i++ {
		h ^= uint64(key[i])
		h *= fnvPrime64
	}
	return mix64(h)
}
