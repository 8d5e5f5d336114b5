package fec

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/jetstreamproto/jsp/internal/protocol"
)

// stream produces n packets of random length (1..maxLen) with recognisable
// contents.
func stream(rng *rand.Rand, n, maxLen int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		p := make([]byte, 1+rng.IntN(maxLen))
		for j := range p {
			p[j] = byte(rng.Uint32())
		}
		out[i] = p
	}
	return out
}

// encodeAll runs packets through an encoder, numbering them from base, and
// returns the parity it emitted (with a final Flush).
func encodeAll(t testing.TB, p Params, base protocol.MediaSeq, pkts [][]byte) []Parity {
	t.Helper()
	e, err := NewEncoder(EncoderConfig{Params: p})
	if err != nil {
		t.Fatal(err)
	}
	var par []Parity
	for i, pkt := range pkts {
		out, err := e.Add(base+protocol.MediaSeq(i), pkt)
		if err != nil {
			t.Fatal(err)
		}
		par = append(par, out...)
	}
	out, err := e.Flush()
	if err != nil {
		t.Fatal(err)
	}
	return append(par, out...)
}

func TestParamsValidate(t *testing.T) {
	tests := []struct {
		p  Params
		ok bool
	}{
		{Params{}, true},
		{Params{K: 1, M: 1}, true},
		{Params{K: MaxK, M: MaxM}, true},
		{Params{K: 0, M: 1}, false},
		{Params{K: 1, M: 0}, false},
		{Params{K: MaxK + 1, M: 1}, false},
		{Params{K: 1, M: MaxM + 1}, false},
		{Params{K: -1, M: 2}, false},
	}
	for _, tt := range tests {
		if err := tt.p.Validate(); (err == nil) != tt.ok {
			t.Errorf("%+v.Validate() = %v", tt.p, err)
		}
	}
}

// TestRandomLossRecovers drops random subsets of each group's K+M packets:
// every lost source packet comes back byte for byte when a group lost at
// most M, and none does when it lost more.
func TestRandomLossRecovers(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, p := range []Params{{1, 1}, {4, 2}, {10, 1}, {10, 2}, {8, 3}, {5, 4}, {MaxK, MaxM}} {
		trials := 30
		if p.K > 16 {
			trials = 6 // the largest shape is slow under the race detector
		}
		for trial := 0; trial < trials; trial++ {
			k := p.K
			base := protocol.MediaSeq(rng.Uint64N(1 << 40))
			pkts := stream(rng, k, 1200)
			par := encodeAll(t, p, base, pkts)
			if len(par) != p.M {
				t.Fatalf("%v: %d parity packets", p, len(par))
			}
			// Choose the number of losses, half the time within M.
			n := k + p.M
			losses := rng.IntN(p.M + 1)
			if trial%2 == 1 {
				losses = p.M + 1 + rng.IntN(k)
				losses = min(losses, n)
			}
			lost := map[int]bool{}
			for _, i := range rng.Perm(n)[:losses] {
				lost[i] = true
			}
			d, err := NewDecoder(DecoderConfig{})
			if err != nil {
				t.Fatal(err)
			}
			got := map[protocol.MediaSeq][]byte{}
			// Deliver in a random order, parity mixed in.
			for _, i := range rng.Perm(n) {
				if lost[i] {
					continue
				}
				var rec []Recovered
				if i < k {
					rec, err = d.AddSource(base+protocol.MediaSeq(i), pkts[i])
				} else {
					rec, err = d.AddParity(par[i-k])
				}
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range rec {
					if _, dup := got[r.Seq]; dup {
						t.Fatalf("%v: %d recovered twice", p, r.Seq)
					}
					got[r.Seq] = r.Packet
				}
			}
			for s, pkt := range got {
				if !bytes.Equal(pkt, pkts[s-base]) {
					t.Fatalf("%v: packet %d rebuilt wrong", p, s)
				}
			}
			if losses <= p.M {
				// Every lost source packet is rebuilt. A packet that was
				// merely late may be rebuilt too, when enough parity
				// overtook it.
				for i := 0; i < k; i++ {
					if _, ok := got[base+protocol.MediaSeq(i)]; lost[i] && !ok {
						t.Fatalf("%v, %d losses: source %d not recovered", p, losses, i)
					}
				}
			} else if len(got) != 0 {
				t.Fatalf("%v, %d losses: recovered %d packets from too few shards", p, losses, len(got))
			}
		}
	}
}

func TestEncoderGrouping(t *testing.T) {
	e, _ := NewEncoder(EncoderConfig{Params: Params{K: 3, M: 1}})
	pk := []byte("x")
	add := func(s protocol.MediaSeq) []Parity {
		t.Helper()
		out, err := e.Add(s, pk)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if out := add(10); out != nil {
		t.Fatalf("parity after one packet: %v", out)
	}
	add(11)
	if out := add(12); len(out) != 1 || out[0].Group != (Group{Base: 10, K: 3, M: 1}) {
		t.Fatalf("full group parity = %+v", out)
	}
	// A jump closes the open group early.
	add(13)
	if err := e.SetParams(Params{K: 2, M: 2}); err != nil {
		t.Fatal(err)
	}
	if e.Params() != (Params{K: 2, M: 2}) {
		t.Fatalf("Params = %v", e.Params())
	}
	out := add(20)
	if len(out) != 1 || out[0].Group != (Group{Base: 13, K: 1, M: 1}) {
		t.Fatalf("jump: parity = %+v, want the 1-packet group 13 in the old shape", out)
	}
	// The new shape applies from the group that starts at 20.
	if out := add(21); len(out) != 2 || out[0].Group != (Group{Base: 20, K: 2, M: 2}) {
		t.Fatalf("new shape: %+v", out)
	}
	// Turning FEC off: nothing kept, nothing emitted.
	if err := e.SetParams(Params{}); err != nil {
		t.Fatal(err)
	}
	for s := protocol.MediaSeq(22); s < 40; s++ {
		if out := add(s); out != nil {
			t.Fatalf("FEC off, parity %v", out)
		}
	}
	if out, _ := e.Flush(); out != nil {
		t.Fatalf("Flush with FEC off = %v", out)
	}
	st := e.Stats()
	if st.Groups != 3 || st.PartialGroups != 1 || st.Source != 6 || st.Parity != 4 {
		t.Fatalf("stats %+v", st)
	}
	if err := e.SetParams(Params{K: 0, M: 3}); err == nil {
		t.Fatal("SetParams accepted K = 0")
	}
	if _, err := e.Add(50, make([]byte, DefaultMaxPacketSize+1)); err == nil {
		t.Fatal("oversize packet accepted")
	}
}

func TestShardLength(t *testing.T) {
	par := encodeAll(t, Params{K: 3, M: 2}, 0, [][]byte{make([]byte, 10), nil, make([]byte, 700)})
	for _, p := range par {
		if len(p.Data) != 702 {
			t.Fatalf("parity shard of %d bytes, want 702 (longest packet + 2)", len(p.Data))
		}
	}
	// An empty packet is protected too.
	d, _ := NewDecoder(DecoderConfig{})
	d.AddSource(0, make([]byte, 10))
	d.AddSource(2, make([]byte, 700))
	rec, err := d.AddParity(par[1])
	if err != nil || len(rec) != 1 || rec[0].Seq != 1 || len(rec[0].Packet) != 0 {
		t.Fatalf("empty packet: %+v, %v", rec, err)
	}
}

func TestDecoderRejects(t *testing.T) {
	good := encodeAll(t, Params{K: 2, M: 2}, 100, [][]byte{[]byte("ab"), []byte("cde")})
	tests := []struct {
		name string
		p    Parity
		want error
	}{
		{"k zero", Parity{Group: Group{Base: 100, K: 0, M: 2}, Data: good[0].Data}, ErrBadParity},
		{"k too big", Parity{Group: Group{Base: 100, K: MaxK + 1, M: 2}, Data: good[0].Data}, ErrBadParity},
		{"index out of range", Parity{Group: Group{Base: 100, K: 2, M: 2}, Index: 2, Data: good[0].Data}, ErrBadParity},
		{"negative index", Parity{Group: Group{Base: 100, K: 2, M: 2}, Index: -1, Data: good[0].Data}, ErrBadParity},
		{"shard too short", Parity{Group: Group{Base: 100, K: 2, M: 2}, Data: []byte{0}}, ErrBadParity},
		{"shard too long", Parity{Group: Group{Base: 100, K: 2, M: 2}, Data: make([]byte, DefaultMaxPacketSize+3)}, ErrBadParity},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, _ := NewDecoder(DecoderConfig{})
			if _, err := d.AddParity(tt.p); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	t.Run("mismatch within a group", func(t *testing.T) {
		d, _ := NewDecoder(DecoderConfig{})
		if _, err := d.AddParity(good[0]); err != nil {
			t.Fatal(err)
		}
		other := good[1]
		other.Group.K = 3
		if _, err := d.AddParity(other); !errors.Is(err, ErrGroupMismatch) {
			t.Fatalf("K mismatch: %v", err)
		}
		other = good[1]
		other.Data = other.Data[:len(other.Data)-1]
		if _, err := d.AddParity(other); !errors.Is(err, ErrGroupMismatch) {
			t.Fatalf("shard length mismatch: %v", err)
		}
		if _, err := d.AddParity(good[0]); err != nil || d.Stats().DupParity != 1 {
			t.Fatalf("duplicate parity: %v, %+v", err, d.Stats())
		}
	})
	t.Run("corrupt shard", func(t *testing.T) {
		d, _ := NewDecoder(DecoderConfig{})
		bad := Parity{Group: Group{Base: 7, K: 1, M: 1}, Data: bytes.Repeat([]byte{0xff}, 10)}
		if _, err := d.AddParity(bad); !errors.Is(err, ErrCorruptShard) {
			t.Fatalf("err = %v, want ErrCorruptShard", err)
		}
	})
	t.Run("source longer than the shards", func(t *testing.T) {
		d, _ := NewDecoder(DecoderConfig{})
		d.AddSource(100, make([]byte, 50))
		if _, err := d.AddParity(good[0]); !errors.Is(err, ErrGroupMismatch) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestDecoderBounds(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	d, err := NewDecoder(DecoderConfig{History: 128, MaxGroups: 4})
	if err != nil {
		t.Fatal(err)
	}
	// Parity for 10 groups whose source packets all went missing: only
	// the newest four are kept.
	for g := 0; g < 10; g++ {
		base := protocol.MediaSeq(g * 4)
		par := encodeAll(t, Params{K: 4, M: 1}, base, stream(rng, 4, 100))
		if _, err := d.AddParity(par[0]); err != nil {
			t.Fatal(err)
		}
		if d.Groups() > 4 {
			t.Fatalf("%d groups tracked, cap 4", d.Groups())
		}
	}
	if st := d.Stats(); st.GroupsEvicted != 6 || st.Unrecovered != 24 {
		t.Fatalf("stats %+v", st)
	}
	// Parity for a group whose packets left the history is ignored.
	pkts := stream(rng, 4, 100)
	par := encodeAll(t, Params{K: 4, M: 1}, 1000, pkts)
	d.AddSource(1000+300, []byte("newer"))
	if rec, err := d.AddParity(par[0]); err != nil || rec != nil || d.Stats().StaleParity != 1 {
		t.Fatalf("stale parity: %v %v %+v", rec, err, d.Stats())
	}
}

func TestDecoderConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  DecoderConfig
		ok   bool
	}{
		{"zero", DecoderConfig{}, true},
		{"history below MaxK", DecoderConfig{History: MaxK - 1}, false},
		{"packet size too big", DecoderConfig{MaxPacketSize: MaxPacketSize + 1}, false},
		{"negative groups", DecoderConfig{MaxGroups: -1}, false},
	}
	for _, tt := range tests {
		if _, err := NewDecoder(tt.cfg); (err == nil) != tt.ok {
			t.Errorf("%s: err = %v", tt.name, err)
		}
	}
	if _, err := NewEncoder(EncoderConfig{MaxPacketSize: -1}); err == nil {
		t.Error("encoder accepted a negative MaxPacketSize")
	}
	if _, err := NewEncoder(EncoderConfig{Params: Params{K: 1}}); err == nil {
		t.Error("encoder accepted 1+0")
	}
}

// FuzzDecoderParity feeds a decoder arbitrary parity packets between genuine
// source packets: it must never panic, never keep more than MaxGroups groups,
// and never report as recovered a packet it was given.
func FuzzDecoderParity(f *testing.F) {
	pkts := [][]byte{[]byte("first"), []byte("second packet"), []byte("3")}
	for _, p := range encodeAll(f, Params{K: 3, M: 2}, 0, pkts) {
		f.Add(byte(p.Group.K), byte(p.Group.M), byte(p.Index), byte(0), p.Data)
	}
	f.Fuzz(func(t *testing.T, k, m, idx, base byte, data []byte) {
		d, err := NewDecoder(DecoderConfig{MaxGroups: 3})
		if err != nil {
			t.Fatal(err)
		}
		given := map[protocol.MediaSeq]bool{}
		for i := 0; i < 4; i++ {
			s := protocol.MediaSeq(base%8) + protocol.MediaSeq(i*2)
			d.AddSource(s, []byte{byte(i), 1, 2})
			given[s] = true
			g := Group{Base: protocol.MediaSeq(base%4) + protocol.MediaSeq(i), K: int(k % 70), M: int(m % 35)}
			rec, _ := d.AddParity(Parity{Group: g, Index: int(idx % 36), Data: data})
			for _, r := range rec {
				if given[r.Seq] {
					t.Fatalf("recovered %d, which was given", r.Seq)
				}
				if !g.Contains(r.Seq) {
					t.Fatalf("recovered %d outside group %+v", r.Seq, g)
				}
			}
			if d.Groups() > 3 {
				t.Fatalf("%d groups", d.Groups())
			}
		}
	})
}

// benchGroup returns a 10+2 group of 1,200-byte packets and its parity.
func benchGroup(b *testing.B) ([][]byte, []Parity) {
	rng := rand.New(rand.NewPCG(5, 6))
	pkts := make([][]byte, 10)
	for i := range pkts {
		pkts[i] = make([]byte, 1200)
		for j := range pkts[i] {
			pkts[i][j] = byte(rng.Uint32())
		}
	}
	return pkts, encodeAll(b, Params{K: 10, M: 2}, 0, pkts)
}

// BenchmarkEncode10x2 measures protecting one 10+2 group of 1,200-byte
// packets; bytes/s counts source bytes.
func BenchmarkEncode10x2(b *testing.B) {
	pkts, _ := benchGroup(b)
	e, _ := NewEncoder(EncoderConfig{Params: Params{K: 10, M: 2}})
	b.SetBytes(10 * 1200)
	b.ReportAllocs()
	seq := protocol.MediaSeq(0)
	for b.Loop() {
		for _, p := range pkts {
			if _, err := e.Add(seq, p); err != nil {
				b.Fatal(err)
			}
			seq++
		}
	}
}

// BenchmarkDecode10x2 measures rebuilding two lost packets of a 10+2 group
// of 1,200-byte packets, from the eight survivors and both parity packets.
func BenchmarkDecode10x2(b *testing.B) {
	pkts, par := benchGroup(b)
	b.SetBytes(10 * 1200)
	b.ReportAllocs()
	d, _ := NewDecoder(DecoderConfig{})
	base := protocol.MediaSeq(0)
	for b.Loop() {
		for i := 2; i < 10; i++ {
			if _, err := d.AddSource(base+protocol.MediaSeq(i), pkts[i]); err != nil {
				b.Fatal(err)
			}
		}
		var n int
		for _, p := range par {
			p.Group.Base = base
			rec, err := d.AddParity(p)
			if err != nil {
				b.Fatal(err)
			}
			n += len(rec)
		}
		if n != 2 {
			b.Fatalf("recovered %d packets, want 2", n)
		}
		base += 10
	}
}

// TestCodecCacheBounded checks that a peer varying the group shape cannot
// make a decoder keep a codec per shape.
func TestCodecCacheBounded(t *testing.T) {
	d, _ := NewDecoder(DecoderConfig{MaxGroups: 1})
	base := protocol.MediaSeq(0)
	for k := 1; k <= 8; k++ {
		for m := 1; m <= 8; m++ {
			// Parity alone: where m >= k (36 of the 64 shapes, more
			// than maxCodecs) that is enough to rebuild, so a codec for
			// k+m is built.
			par := encodeAll(t, Params{K: k, M: m}, base, stream(rand.New(rand.NewPCG(uint64(k), uint64(m))), k, 50))
			for _, p := range par {
				if _, err := d.AddParity(p); err != nil {
					t.Fatal(err)
				}
			}
			if len(d.codecs) > maxCodecs {
				t.Fatalf("%d codecs cached, cap %d", len(d.codecs), maxCodecs)
			}
			base += protocol.MediaSeq(k)
		}
	}
}
