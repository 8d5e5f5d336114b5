package sqlite

import (
	"context"
	"fmt"
	"hash/maphash"
)

// The de-duplication filter (D41). Nearly every publish carries a fresh
// random client id, yet checking it against message_dedup is a B-tree
// seek on a random key: a page read and a dozen key comparisons in the
// driver's translated C, about a fifth of an append's CPU time. The loop
// keeps a Bloom filter of the keys message_dedup may hold live; a key the
// filter has never seen is free without a seek, and a key it may have seen
// (a resend, or one false positive in several hundred) is looked up as
// before, so the filter changes the cost, never an answer.
//
// Only keys inside the de-duplication window matter, so the filter is two
// generations, each covering one window of claim times: a key goes into
// the current one, and when a window has passed the older one is dropped
// and the current one becomes the older. Every key that can reach
// message_dedup passes through the claim log and so through claims.recent
// (made here, or read from the log when another process made it), and
// enters the filter there. The filter is built at open from the entries in
// the window.
//
// Another process that merges log rows this store has not read yet moves
// keys into message_dedup that the filter never saw; syncClaims notices
// the gap in the log's ids and turns the filter off for good (every key is
// then looked up, as before D41).

// DefaultDedupFilterBytes is the size of each of the filter's two
// generations: 8 MiB, 64 Mi bits, for a false-positive rate of 0.3 % at 4
// million keys per window and 16 % at 16 million, where most lookups seek
// again, as they did without a filter.
const DefaultDedupFilterBytes = 8 << 20

// dedupHashes is the number of bits a key sets in a generation.
const dedupHashes = 4

// dedupFilter is the append loop's filter; only the loop touches it.
type dedupFilter struct {
	seed      maphash.Seed
	window    int64    // the de-duplication window, µs
	curStart  int64    // start of the current generation's window, µs
	cur, prev []uint64 // bit sets
	off       bool     // turned off: every key may be present
}

func newDedupFilter(bytes int, window, now int64) *dedupFilter {
	words := max(bytes/8, 1)
	return &dedupFilter{
		seed:     maphash.MakeSeed(),
		window:   max(window, 1),
		curStart: now,
		cur:      make([]uint64, words),
		prev:     make([]uint64, words),
	}
}

// bits returns the filter positions of k.
func (f *dedupFilter) bits(k claimKey) [dedupHashes]uint64 {
	var h maphash.Hash
	h.SetSeed(f.seed)
	h.WriteString(k.sender)
	h.WriteByte(0) // sender names hold no NUL (sqlcommon.Name)
	h.WriteString(k.clientID)
	sum := h.Sum64()
	// Double hashing: k probes from two halves of one 64-bit hash.
	h1, h2 := sum&0xffffffff, sum>>32|1
	m := uint64(len(f.cur)) * 64
	var out [dedupHashes]uint64
	for i := range out {
		out[i] = (h1 + uint64(i)*h2) % m
	}
	return out
}

// rotate moves to the generation of time at when a window has passed.
func (f *dedupFilter) rotate(at int64) {
	for at >= f.curStart+f.window {
		if at >= f.curStart+2*f.window {
			// More than a window without a claim: both are stale.
			clear(f.cur)
			clear(f.prev)
			f.curStart = at
			return
		}
		f.cur, f.prev = f.prev, f.cur
		clear(f.cur)
		f.curStart += f.window
	}
}

// add records that k was claimed at time at (µs).
func (f *dedupFilter) add(k claimKey, at int64) {
	f.rotate(at)
	set := f.cur
	if at < f.curStart {
		set = f.prev
	}
	for _, b := range f.bits(k) {
		set[b/64] |= 1 << (b % 64)
	}
}

// absent reports whether k is certainly not live in message_dedup at
// time now (µs).
func (f *dedupFilter) absent(k claimKey, now int64) bool {
	if f.off {
		return false
	}
	f.rotate(now)
	bits := f.bits(k)
	for _, set := range [][]uint64{f.cur, f.prev} {
		in := true
		for _, b := range bits {
			if set[b/64]&(1<<(b%64)) == 0 {
				in = false
				break
			}
		}
		if in {
			return false
		}
	}
	return true
}

// loadDedupFilter fills the filter with the keys message_dedup holds
// inside the window, before the append loop starts.
func (s *Store) loadDedupFilter(ctx context.Context, cutoff int64) error {
	rows, err := s.w.QueryContext(ctx, `SELECT sender, client_id, at_us FROM message_dedup WHERE at_us >= ?`, cutoff)
	if err != nil {
		return fmt.Errorf("storage/sqlite: load de-duplication filter: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			k  claimKey
			at int64
		)
		if err := rows.Scan(&k.sender, &k.clientID, &at); err != nil {
			return fmt.Errorf("storage/sqlite: load de-duplication filter: %w", err)
		}
		s.claims.filter.add(k, at)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("storage/sqlite: load de-duplication filter: %w", err)
	}
	return nil
}
