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
// Only keys inside the de-duplication window matter, and memory should
// follow the keys the window holds, so the filter is a list of segments,
// each a Bloom filter filled up to a set number of keys, twice the size of
// the one before it (from 64 KiB), and dropped when its newest key has
// left the window. Every key that can reach message_dedup passes through
// the claim log and so through claims.recent (made here, or read from the
// log when another process made it), and enters the filter there. The
// filter is built at open from the entries in the window.
//
// The segments together are bounded by DefaultDedupFilterBytes. A key
// that finds no room is not recorded, so the filter says nothing for a
// window after it: every key is looked up until then, as without a
// filter. Another process that merges log rows this store has not read
// yet moves keys into message_dedup that the filter never saw; syncClaims
// notices the gap in the log's ids and turns the filter off for good.

// DefaultDedupFilterBytes bounds the filter's memory: 32 MiB hold 16
// million keys per de-duplication window, two bytes a key, at a
// false-positive rate of about 0.3 % per segment.
const DefaultDedupFilterBytes = 32 << 20

const (
	dedupHashes       = 4        // bits a key sets in a segment
	dedupBitsPerKey   = 16       // a segment's bits per key it takes
	dedupFirstSegment = 64 << 10 // bytes of the first segment
)

// bloomSegment is one segment of the filter.
type bloomSegment struct {
	bits   []uint64
	n, cap int   // keys added, keys it takes
	newest int64 // newest claim time added, µs
}

// dedupFilter is the append loop's filter; only the loop touches it.
type dedupFilter struct {
	seed      maphash.Seed
	window    int64 // the de-duplication window, µs
	maxBytes  int
	bytes     int // in segs
	segs      []*bloomSegment
	blindTill int64 // a key went unrecorded: say nothing before this time, µs
	off       bool  // turned off: every key may be present
}

func newDedupFilter(maxBytes int, window int64) *dedupFilter {
	return &dedupFilter{seed: maphash.MakeSeed(), window: max(window, 1), maxBytes: maxBytes}
}

// hash returns k's 64-bit hash.
func (f *dedupFilter) hash(k claimKey) uint64 {
	var h maphash.Hash
	h.SetSeed(f.seed)
	h.WriteString(k.sender)
	h.WriteByte(0) // sender names hold no NUL (sqlcommon.Name)
	h.WriteString(k.clientID)
	return h.Sum64()
}

// positions returns the bits of hash in a segment of m bits: double
// hashing, dedupHashes probes from the two halves of one 64-bit hash.
func positions(hash, m uint64) [dedupHashes]uint64 {
	h1, h2 := hash&0xffffffff, hash>>32|1
	var out [dedupHashes]uint64
	for i := range out {
		out[i] = (h1 + uint64(i)*h2) % m
	}
	return out
}

// expire drops the segments whose keys have all left the window at now.
func (f *dedupFilter) expire(now int64) {
	kept := f.segs[:0]
	for _, s := range f.segs {
		if s.newest >= now-f.window {
			kept = append(kept, s)
		} else {
			f.bytes -= len(s.bits) * 8
		}
	}
	clear(f.segs[len(kept):])
	f.segs = kept
}

// add records that k was claimed at time at (µs).
func (f *dedupFilter) add(k claimKey, at int64) {
	var seg *bloomSegment
	if n := len(f.segs); n > 0 && f.segs[n-1].n < f.segs[n-1].cap {
		seg = f.segs[n-1]
	} else {
		f.expire(at)
		size := dedupFirstSegment
		if n := len(f.segs); n > 0 {
			size = 2 * len(f.segs[n-1].bits) * 8
		}
		size = min(size, f.maxBytes-f.bytes)
		if size < 8 {
			// No room: this key is not recorded, so nothing may be
			// called absent until it has left the window.
			f.blindTill = max(f.blindTill, at+f.window)
			return
		}
		seg = &bloomSegment{bits: make([]uint64, size/8), cap: size * 8 / dedupBitsPerKey}
		f.segs = append(f.segs, seg)
		f.bytes += size / 8 * 8
	}
	for _, b := range positions(f.hash(k), uint64(len(seg.bits))*64) {
		seg.bits[b/64] |= 1 << (b % 64)
	}
	seg.n++
	seg.newest = max(seg.newest, at)
}

// absent reports whether k is certainly not live in message_dedup at
// time now (µs).
func (f *dedupFilter) absent(k claimKey, now int64) bool {
	if f.off || now < f.blindTill {
		return false
	}
	h := f.hash(k)
	for _, seg := range f.segs {
		if seg.newest < now-f.window {
			continue // its keys have all left the window
		}
		in := true
		for _, b := range positions(h, uint64(len(seg.bits))*64) {
			if seg.bits[b/64]&(1<<(b%64)) == 0 {
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
