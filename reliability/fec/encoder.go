package fec

import (
	"fmt"

	"github.com/jetstreamproto/jsp/internal/protocol"
)

// EncoderConfig configures an [Encoder]. Zero fields take their defaults.
type EncoderConfig struct {
	// Params is the initial group shape. Default: no FEC until SetParams.
	Params Params
	// MaxPacketSize caps a protected packet's length. Default
	// DefaultMaxPacketSize, at most MaxPacketSize.
	MaxPacketSize int
}

func (c *EncoderConfig) setDefaults() {
	if c.MaxPacketSize == 0 {
		c.MaxPacketSize = DefaultMaxPacketSize
	}
}

func (c *EncoderConfig) validate() error {
	if c.MaxPacketSize < 1 || c.MaxPacketSize > MaxPacketSize {
		return fmt.Errorf("fec: MaxPacketSize %d outside 1..%d", c.MaxPacketSize, MaxPacketSize)
	}
	return c.Params.Validate()
}

// EncoderStats counts what an [Encoder] did.
type EncoderStats struct {
	Groups        uint64 // groups closed with parity
	PartialGroups uint64 // of those, closed before K packets (Flush or a jump)
	Source        uint64 // source packets protected
	Parity        uint64 // parity packets emitted
	ParityBytes   uint64 // parity bytes emitted
}

// Encoder groups outgoing source packets and emits parity packets. It is not
// safe for concurrent use.
type Encoder struct {
	cfg     EncoderConfig
	params  Params // shape of the open group
	next    Params // shape for the next group
	codecs  codecs
	base    protocol.MediaSeq
	lens    []int  // lengths of the open group's packets
	data    []byte // the open group's packets, back to back
	scratch []byte // source shards, reused across groups
	stats   EncoderStats
}

// NewEncoder returns an encoder with the given configuration.
func NewEncoder(cfg EncoderConfig) (*Encoder, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Encoder{cfg: cfg, params: cfg.Params, next: cfg.Params}, nil
}

// Params returns the shape that the next group will have.
func (e *Encoder) Params() Params { return e.next }

// Stats returns the encoder's counters.
func (e *Encoder) Stats() EncoderStats { return e.stats }

// SetParams changes the group shape. The open group keeps its shape; the
// change applies from the next group, so parity always matches the packets
// it protects.
func (e *Encoder) SetParams(p Params) error {
	if err := p.Validate(); err != nil {
		return err
	}
	e.next = p
	if len(e.lens) == 0 {
		e.params = p
	}
	return nil
}

// Add protects the source packet pkt with sequence number seq and returns
// the parity packets of the group it completes, if any. Packets of a group
// must be consecutive: when seq does not follow the open group's last packet,
// that group is closed first with the packets it has, and its parity is
// returned too. With FEC off Add keeps nothing and returns nil.
func (e *Encoder) Add(seq protocol.MediaSeq, pkt []byte) ([]Parity, error) {
	if len(pkt) > e.cfg.MaxPacketSize {
		return nil, fmt.Errorf("fec: packet %d of %d bytes over the %d-byte limit", seq, len(pkt), e.cfg.MaxPacketSize)
	}
	var out []Parity
	if n := len(e.lens); n > 0 && seq != e.base+protocol.MediaSeq(n) {
		var err error
		if out, err = e.close(); err != nil {
			return nil, err
		}
	}
	if !e.params.Enabled() {
		return out, nil
	}
	if len(e.lens) == 0 {
		e.base = seq
	}
	e.lens = append(e.lens, len(pkt))
	e.data = append(e.data, pkt...)
	e.stats.Source++
	if len(e.lens) == e.params.K {
		more, err := e.close()
		if err != nil {
			return nil, err
		}
		out = append(out, more...)
	}
	return out, nil
}

// Flush closes the open group with the packets it has (for example at the
// end of a frame or when the flow pauses, so that the last packets are not
// left unprotected) and returns its parity.
func (e *Encoder) Flush() ([]Parity, error) {
	if len(e.lens) == 0 {
		return nil, nil
	}
	return e.close()
}

// close computes the parity of the open group and starts a new one with the
// pending shape.
func (e *Encoder) close() ([]Parity, error) {
	k := len(e.lens)
	g := Group{Base: e.base, K: k, M: e.params.M}
	defer func() {
		e.lens = e.lens[:0]
		e.data = e.data[:0]
		e.params = e.next
	}()
	if k < e.params.K {
		e.stats.PartialGroups++
	}
	enc, err := e.codecs.get(Params{K: k, M: g.M})
	if err != nil {
		return nil, err
	}
	shardLen := 0
	for _, n := range e.lens {
		shardLen = max(shardLen, n)
	}
	shardLen += lenPrefix

	if need := k * shardLen; cap(e.scratch) < need {
		e.scratch = make([]byte, need)
	}
	// Parity shards are handed to the caller, so they get fresh memory;
	// the source shards are scratch.
	parity := make([]byte, g.M*shardLen)
	shards := make([][]byte, k+g.M)
	off := 0
	for i, n := range e.lens {
		shards[i] = e.scratch[i*shardLen : (i+1)*shardLen]
		putShard(shards[i], e.data[off:off+n])
		off += n
	}
	for j := 0; j < g.M; j++ {
		shards[k+j] = parity[j*shardLen : (j+1)*shardLen]
	}
	if err := enc.Encode(shards); err != nil {
		return nil, fmt.Errorf("fec: encoding group %d (%d+%d): %w", g.Base, k, g.M, err)
	}
	out := make([]Parity, g.M)
	for j := range out {
		out[j] = Parity{Group: g, Index: j, Data: shards[k+j], Shape: e.params}
	}
	e.stats.Groups++
	e.stats.Parity += uint64(g.M)
	e.stats.ParityBytes += uint64(len(parity))
	return out, nil
}
