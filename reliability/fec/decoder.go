package fec

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/jetstreamproto/jsp/internal/protocol"
)

// Decoder defaults, used for zero [DecoderConfig] fields.
const (
	// DefaultHistory is how many recent source packets a decoder keeps to
	// combine with parity that arrives after them.
	DefaultHistory = 512
	// DefaultMaxGroups caps the groups a decoder tracks at once.
	DefaultMaxGroups = 64
)

// DecoderConfig configures a [Decoder]. Zero fields take their defaults.
type DecoderConfig struct {
	// MaxPacketSize caps a protected packet's length, and so the parity
	// shard length accepted. Default DefaultMaxPacketSize, at most
	// MaxPacketSize.
	MaxPacketSize int
	// History is how many recent source packets are kept, by sequence
	// number. A group whose packets have left the history can no longer
	// be repaired. Memory is at most History * MaxPacketSize. Default
	// DefaultHistory; it should exceed the packets in flight during one
	// group plus reordering.
	History int
	// MaxGroups caps the groups with parity tracked at once; the oldest
	// is dropped first. Default DefaultMaxGroups.
	MaxGroups int
}

func (c *DecoderConfig) setDefaults() {
	if c.MaxPacketSize == 0 {
		c.MaxPacketSize = DefaultMaxPacketSize
	}
	if c.History == 0 {
		c.History = DefaultHistory
	}
	if c.MaxGroups == 0 {
		c.MaxGroups = DefaultMaxGroups
	}
}

func (c *DecoderConfig) validate() error {
	switch {
	case c.MaxPacketSize < 1 || c.MaxPacketSize > MaxPacketSize:
		return fmt.Errorf("fec: MaxPacketSize %d outside 1..%d", c.MaxPacketSize, MaxPacketSize)
	case c.History < MaxK:
		return fmt.Errorf("fec: History %d below MaxK (%d): a full group would not fit", c.History, MaxK)
	case c.MaxGroups < 1:
		return fmt.Errorf("fec: MaxGroups %d below 1", c.MaxGroups)
	}
	return nil
}

// Recovered is a source packet rebuilt from parity.
type Recovered struct {
	Seq    protocol.MediaSeq
	Packet []byte
}

// DecoderStats counts what a [Decoder] did.
type DecoderStats struct {
	Source        uint64 // source packets added
	Parity        uint64 // parity packets accepted
	Recovered     uint64 // source packets rebuilt
	Unrecovered   uint64 // source packets of dropped groups that never arrived nor were rebuilt
	DupParity     uint64 // parity packets received twice
	StaleParity   uint64 // parity packets for groups already out of the history or finished
	BadParity     uint64 // parity packets rejected as malformed or inconsistent
	GroupsEvicted uint64 // groups dropped to respect MaxGroups
}

type histEntry struct {
	seq   protocol.MediaSeq
	valid bool
	data  []byte
}

type groupState struct {
	g        Group
	shardLen int
	parity   [][]byte // M entries, nil where not received
	nParity  int
	done     bool // all source packets present or rebuilt
}

// Decoder rebuilds lost source packets from parity. It is not safe for
// concurrent use.
type Decoder struct {
	cfg     DecoderConfig
	codecs  codecs
	hist    []histEntry // seq s at s % History
	highest protocol.MediaSeq
	started bool
	groups  []*groupState // sorted by Base, at most MaxGroups
	stats   DecoderStats
}

// NewDecoder returns a decoder with the given configuration.
func NewDecoder(cfg DecoderConfig) (*Decoder, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Decoder{cfg: cfg, hist: make([]histEntry, cfg.History)}, nil
}

// Stats returns the decoder's counters.
func (d *Decoder) Stats() DecoderStats { return d.stats }

// Groups returns the number of groups tracked.
func (d *Decoder) Groups() int { return len(d.groups) }

func (d *Decoder) lookup(seq protocol.MediaSeq) ([]byte, bool) {
	e := &d.hist[uint64(seq)%uint64(len(d.hist))]
	if e.valid && e.seq == seq {
		return e.data, true
	}
	return nil, false
}

// remember stores a copy of a source packet in the history.
func (d *Decoder) remember(seq protocol.MediaSeq, pkt []byte) {
	e := &d.hist[uint64(seq)%uint64(len(d.hist))]
	if e.valid && e.seq > seq {
		return // the slot already holds a newer packet
	}
	// Reuse the slot's buffer: the history is a fixed set of slots, so
	// after warm-up storing a packet allocates nothing.
	e.data = append(e.data[:0], pkt...)
	e.seq, e.valid = seq, true
	if !d.started || seq > d.highest {
		d.highest, d.started = seq, true
	}
}

// inHistory reports whether every packet of g could still be in the
// history.
func (d *Decoder) inHistory(g Group) bool {
	if !d.started {
		return true
	}
	end := g.Base + protocol.MediaSeq(g.K) // one past the group
	return end+protocol.MediaSeq(len(d.hist)) > d.highest
}

// AddSource records a source packet as received and returns any packets
// this makes recoverable. Packets too large to be protected are ignored.
func (d *Decoder) AddSource(seq protocol.MediaSeq, pkt []byte) ([]Recovered, error) {
	if len(pkt) > d.cfg.MaxPacketSize {
		return nil, nil
	}
	if _, ok := d.lookup(seq); ok {
		return nil, nil
	}
	d.stats.Source++
	d.remember(seq, pkt)
	// Groups are sorted by base and hold at most MaxK packets, so only the
	// groups from the last one starting at or before seq back to MaxK
	// below it can contain seq. A well-behaved sender's groups do not
	// overlap, but nothing stops a peer from sending overlapping ones, so
	// every candidate is tried.
	var out []Recovered
	for i := d.groupIndex(seq+1) - 1; i >= 0 && d.groups[i].g.Base+MaxK > seq; i-- {
		gs := d.groups[i]
		if gs.done || !gs.g.Contains(seq) {
			continue
		}
		rec, err := d.tryRecover(gs)
		out = append(out, rec...)
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// groupIndex returns the index of the first group whose base is at least
// base.
func (d *Decoder) groupIndex(base protocol.MediaSeq) int {
	i, _ := slices.BinarySearchFunc(d.groups, base, func(gs *groupState, b protocol.MediaSeq) int {
		return cmp.Compare(gs.g.Base, b)
	})
	return i
}

// AddParity records a parity packet and returns the source packets it makes
// recoverable. A malformed or inconsistent parity packet is rejected with an
// error wrapping ErrBadParity, ErrGroupMismatch or ErrCorruptShard; the
// caller drops it and goes on.
func (d *Decoder) AddParity(p Parity) ([]Recovered, error) {
	g := p.Group
	if err := (Params{K: g.K, M: g.M}).Validate(); err != nil || p.Index < 0 || p.Index >= g.M ||
		len(p.Data) < lenPrefix || len(p.Data) > d.cfg.MaxPacketSize+lenPrefix {
		d.stats.BadParity++
		return nil, fmt.Errorf("fec: parity %d of group %d (%d+%d, %d bytes): %w", p.Index, g.Base, g.K, g.M, len(p.Data), ErrBadParity)
	}
	if !d.inHistory(g) {
		d.stats.StaleParity++
		return nil, nil
	}
	i := d.groupIndex(g.Base)
	var gs *groupState
	if i < len(d.groups) && d.groups[i].g.Base == g.Base {
		gs = d.groups[i]
	} else {
		if len(d.groups) >= d.cfg.MaxGroups {
			if i == 0 {
				// Older than every tracked group: it would be the
				// one evicted.
				d.stats.StaleParity++
				return nil, nil
			}
			d.evictOldest()
			i--
		}
		gs = &groupState{g: g, shardLen: len(p.Data), parity: make([][]byte, g.M)}
		d.groups = slices.Insert(d.groups, i, gs)
	}
	if gs.g != g || gs.shardLen != len(p.Data) {
		d.stats.BadParity++
		return nil, fmt.Errorf("fec: parity %d of group %d is %d+%d with %d-byte shards, group has %d+%d with %d: %w",
			p.Index, g.Base, g.K, g.M, len(p.Data), gs.g.K, gs.g.M, gs.shardLen, ErrGroupMismatch)
	}
	if gs.done {
		d.stats.StaleParity++
		return nil, nil
	}
	if gs.parity[p.Index] != nil {
		d.stats.DupParity++
		return nil, nil
	}
	d.stats.Parity++
	gs.parity[p.Index] = append([]byte(nil), p.Data...)
	gs.nParity++
	return d.tryRecover(gs)
}

// evictOldest drops the group with the lowest base, counting its packets
// that were never received nor rebuilt.
func (d *Decoder) evictOldest() {
	gs := d.groups[0]
	if !gs.done {
		for i := 0; i < gs.g.K; i++ {
			if _, ok := d.lookup(gs.g.Base + protocol.MediaSeq(i)); !ok {
				d.stats.Unrecovered++
			}
		}
	}
	d.groups[0] = nil
	d.groups = d.groups[1:]
	d.stats.GroupsEvicted++
}

// tryRecover rebuilds a group's missing source packets once enough of its
// packets are present.
func (d *Decoder) tryRecover(gs *groupState) ([]Recovered, error) {
	k, m := gs.g.K, gs.g.M
	if !d.inHistory(gs.g) {
		// Some of the group's packets may have left the history: a
		// received packet would look lost and be "rebuilt" again.
		d.finish(gs)
		return nil, nil
	}
	present := 0
	for i := 0; i < k; i++ {
		if _, ok := d.lookup(gs.g.Base + protocol.MediaSeq(i)); ok {
			present++
		}
	}
	if present == k {
		d.finish(gs)
		return nil, nil
	}
	if present+gs.nParity < k {
		return nil, nil
	}
	enc, err := d.codecs.get(Params{K: k, M: m})
	if err != nil {
		return nil, err
	}
	shards := make([][]byte, k+m)
	buf := make([]byte, k*gs.shardLen)
	for i := 0; i < k; i++ {
		pkt, ok := d.lookup(gs.g.Base + protocol.MediaSeq(i))
		if !ok {
			continue
		}
		if len(pkt)+lenPrefix > gs.shardLen {
			// Longer than any packet of the group can be: this is not
			// the packet the parity was computed from.
			d.stats.BadParity++
			d.finish(gs)
			return nil, fmt.Errorf("fec: source %d (%d bytes) does not fit group %d's %d-byte shards: %w",
				gs.g.Base+protocol.MediaSeq(i), len(pkt), gs.g.Base, gs.shardLen, ErrGroupMismatch)
		}
		shards[i] = buf[i*gs.shardLen : (i+1)*gs.shardLen]
		putShard(shards[i], pkt)
	}
	for j, p := range gs.parity {
		shards[k+j] = p
	}
	if err := enc.ReconstructData(shards); err != nil {
		d.finish(gs)
		return nil, fmt.Errorf("fec: rebuilding group %d (%d+%d): %w", gs.g.Base, k, m, err)
	}
	var out []Recovered
	for i := 0; i < k; i++ {
		seq := gs.g.Base + protocol.MediaSeq(i)
		if _, ok := d.lookup(seq); ok {
			continue
		}
		pkt, err := shardPacket(shards[i])
		if err != nil {
			d.stats.BadParity++
			d.finish(gs)
			return out, fmt.Errorf("fec: group %d, packet %d: %w", gs.g.Base, seq, err)
		}
		pkt = append([]byte(nil), pkt...)
		d.remember(seq, pkt)
		out = append(out, Recovered{Seq: seq, Packet: pkt})
		d.stats.Recovered++
	}
	d.finish(gs)
	return out, nil
}

// finish marks a group done and frees its parity; the entry stays until
// evicted so that late parity for it is recognised and ignored.
func (d *Decoder) finish(gs *groupState) {
	gs.done = true
	clear(gs.parity)
	gs.nParity = 0
}
