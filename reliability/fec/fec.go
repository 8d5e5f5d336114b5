// Package fec protects media datagrams with Reed-Solomon forward error
// correction groups (JSP §13).
//
// The sender's [Encoder] collects K consecutive source packets (whole
// encoded media datagrams, header included) into a group and, when the group
// is full, emits M parity packets. The receiver's [Decoder] remembers recent
// source packets; once any K of a group's K+M packets have arrived it
// rebuilds the missing source packets exactly, so up to M losses per group
// are repaired without a round trip. [Policy] chooses (K, M) from the
// measured loss: no FEC on a clean path, more parity as loss grows.
//
// # Shards
//
// Reed-Solomon works on equal-length shards, but media packets vary in
// length. Each source packet becomes one shard:
//
//	+----------------+-------------------+------------------+
//	| length (16 BE) | packet (length B) | zero padding ... |
//	+----------------+-------------------+------------------+
//
// padded to the group's shard length: 2 + the longest packet in the group.
// Parity shards have that same length and travel as the payload of parity
// packets, so the receiver learns the shard length from any parity packet,
// and a rebuilt shard's length prefix gives back the packet exactly.
//
// The code is the systematic Reed-Solomon code over GF(2^8) of
// github.com/klauspost/reedsolomon with its default (Vandermonde-derived)
// matrix; every JSP implementation must use the same matrix to interoperate.
//
// A group is the consecutive sequence numbers Base .. Base+K-1; parity
// packets carry (Base, K, M, index) in their media header
// (reliability/mediapkt) and number their own sequence separately from
// source packets.
//
// Everything here is a pure state machine: no I/O, no goroutines.
package fec

import (
	"encoding/binary"
	"fmt"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/klauspost/reedsolomon"
)

// Limits on group shape. Both sides enforce them: MaxK bounds the latency a
// group adds and the work one parity packet can ask of a receiver, MaxM the
// parity a sender may spend.
const (
	// MaxK is the largest number of source packets in one group.
	MaxK = 64
	// MaxM is the largest number of parity packets in one group.
	MaxM = 32
)

// DefaultMaxPacketSize caps the length of a protected packet, and so of a
// shard, for a zero Config field.
const DefaultMaxPacketSize = 2048

// MaxPacketSize is the largest packet the 16-bit length prefix can describe.
const MaxPacketSize = 1<<16 - 1

// lenPrefix is the size of a shard's length prefix.
const lenPrefix = 2

// Params is the shape of a FEC group: K source packets protected by M parity
// packets. M == 0 means no FEC.
type Params struct {
	K int
	M int
}

// Enabled reports whether p adds any parity.
func (p Params) Enabled() bool { return p.M > 0 }

// Overhead returns the parity sent per source packet, M/K.
func (p Params) Overhead() float64 {
	if !p.Enabled() {
		return 0
	}
	return float64(p.M) / float64(p.K)
}

// String formats p as "K+M", or "none".
func (p Params) String() string {
	if !p.Enabled() {
		return "none"
	}
	return fmt.Sprintf("%d+%d", p.K, p.M)
}

// Validate checks p against MaxK and MaxM. The zero Params (no FEC) is
// valid.
func (p Params) Validate() error {
	if p == (Params{}) {
		return nil
	}
	if p.K < 1 || p.K > MaxK || p.M < 1 || p.M > MaxM {
		return fmt.Errorf("fec: group %d+%d outside 1..%d + 1..%d", p.K, p.M, MaxK, MaxM)
	}
	return nil
}

// Group identifies a FEC group: source packets Base .. Base+K-1 protected by
// M parity packets.
type Group struct {
	Base protocol.MediaSeq
	K    int
	M    int
}

// Contains reports whether source packet seq belongs to g.
func (g Group) Contains(seq protocol.MediaSeq) bool {
	return seq >= g.Base && seq-g.Base < protocol.MediaSeq(g.K)
}

// Parity is one parity packet of a group: shard Index (0..M-1) of Group.
// Data is the parity shard, the payload of the parity media packet.
// Shape is the shape the encoder opened the group with (zero on parity a
// decoder is given): a Group.K below Shape.K marks a group closed early
// (see [ParityShare]).
type Parity struct {
	Group Group
	Index int
	Data  []byte
	Shape Params
}

// Errors for parity packets a decoder cannot use. Each carries a JSP code:
// they mean the peer's FEC stream is malformed, and the receiver drops the
// packet.
var (
	// ErrBadParity: the group shape, index or shard length is out of
	// range.
	ErrBadParity = jsperr.New(jsperr.MalformedFrame, "fec: invalid parity packet")
	// ErrGroupMismatch: a parity packet disagrees with earlier ones of
	// the same group on K, M or the shard length.
	ErrGroupMismatch = jsperr.New(jsperr.ProtocolViolation, "fec: parity packet disagrees with its group")
	// ErrCorruptShard: a rebuilt shard's length prefix exceeds the shard,
	// so the group's packets were not what the parity was computed from.
	ErrCorruptShard = jsperr.New(jsperr.ProtocolViolation, "fec: rebuilt shard has an impossible length")
)

// maxCodecs caps the Reed-Solomon codecs kept per encoder or decoder. A
// codec holds matrices for one (K, M); a peer that varied the shape of
// every group could otherwise make a decoder build and keep codecs for all
// MaxK*MaxM shapes.
const maxCodecs = 16

// codecs caches Reed-Solomon codecs by group shape.
type codecs map[Params]reedsolomon.Encoder

func (c *codecs) get(p Params) (reedsolomon.Encoder, error) {
	if *c == nil {
		*c = make(codecs)
	}
	if enc, ok := (*c)[p]; ok {
		return enc, nil
	}
	if len(*c) >= maxCodecs {
		clear(*c)
	}
	// One goroutine: shards are a datagram long, far below the size at
	// which splitting work across goroutines pays, and it keeps this
	// package free of goroutines. No inversion cache: it keeps a matrix per
	// pattern of lost shards, which a peer choosing what to drop could
	// grow without bound; inverting a K x K matrix per repair is cheap.
	enc, err := reedsolomon.New(p.K, p.M, reedsolomon.WithMaxGoroutines(1), reedsolomon.WithInversionCache(false))
	if err != nil {
		return nil, fmt.Errorf("fec: creating a %v codec: %w", p, err)
	}
	(*c)[p] = enc
	return enc, nil
}

// putShard writes pkt into shard as length prefix, bytes and zero padding.
func putShard(shard, pkt []byte) {
	binary.BigEndian.PutUint16(shard, uint16(len(pkt)))
	n := copy(shard[lenPrefix:], pkt)
	clear(shard[lenPrefix+n:])
}

// shardPacket returns the packet inside a rebuilt shard, checking its length
// prefix against the shard.
func shardPacket(shard []byte) ([]byte, error) {
	n := int(binary.BigEndian.Uint16(shard))
	if n > len(shard)-lenPrefix {
		return nil, ErrCorruptShard
	}
	return shard[lenPrefix : lenPrefix+n], nil
}
