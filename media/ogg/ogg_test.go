package ogg

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
)

func mustPage(t testing.TB, p Page) []byte {
	t.Helper()
	b, err := p.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPageRoundTrip(t *testing.T) {
	pages := []Page{
		{Type: BOS, Granule: 0, Serial: 7, Seq: 0, Segments: []uint8{19}, Body: make([]byte, 19)},
		{Type: Continued | EOS, Granule: NoGranule, Serial: 0xdeadbeef, Seq: 99, Segments: []uint8{255, 255}, Body: bytes.Repeat([]byte{1}, 510)},
		{Granule: 1 << 40, Segments: []uint8{}, Body: []byte{}},
	}
	for _, p := range pages {
		b := mustPage(t, p)
		if len(b) != p.Len() {
			t.Fatalf("Len %d, encoded %d", p.Len(), len(b))
		}
		got, n, err := ParsePage(b)
		if err != nil || n != len(b) {
			t.Fatalf("ParsePage: n=%d err=%v", n, err)
		}
		if got.Type != p.Type || got.Granule != p.Granule || got.Serial != p.Serial || got.Seq != p.Seq ||
			!bytes.Equal(got.Segments, p.Segments) || !bytes.Equal(got.Body, p.Body) {
			t.Fatalf("round trip: got %+v want %+v", got, p)
		}
		for i := range len(b) {
			if _, _, err := ParsePage(b[:i]); err == nil {
				t.Fatalf("proper prefix of %d bytes parsed", i)
			}
		}
	}
}

func TestPageErrors(t *testing.T) {
	good := mustPage(t, Page{Type: BOS, Segments: []uint8{3}, Body: []byte{1, 2, 3}})
	mod := func(f func(b []byte)) []byte {
		b := bytes.Clone(good)
		f(b)
		return b
	}
	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"capture", mod(func(b []byte) { b[0] = 'o' }), ErrCapture},
		{"version", mod(func(b []byte) { b[4] = 1 }), ErrVersion},
		{"reserved type", mod(func(b []byte) { b[5] |= 0x08 }), ErrHeaderType},
		{"crc body", mod(func(b []byte) { b[len(b)-1] ^= 1 }), ErrCRC},
		{"crc field", mod(func(b []byte) { b[22] ^= 1 }), ErrCRC},
		{"short", good[:10], ErrTruncated},
	}
	for _, c := range cases {
		if _, _, err := ParsePage(c.in); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v want %v", c.name, err, c.want)
		}
	}
	if _, err := (&Page{Segments: []uint8{4}, Body: []byte{1}}).Append(nil); err == nil {
		t.Error("inconsistent lacing encoded")
	}
	if _, err := (&Page{Type: 0x10}).Append(nil); !errors.Is(err, ErrHeaderType) {
		t.Errorf("reserved type encoded: %v", err)
	}
}

// TestCRCKnown checks the checksum against its definition on a known
// input: the CRC-32/MPEG-2 family without final inversion, init 0
// ("CRC-32/BZIP2" without xorout and init), whose value for "123456789" is
// 0x89A1897F.
func TestCRCKnown(t *testing.T) {
	if got := crc([]byte("123456789")); got != 0x89A1897F {
		t.Fatalf("crc = %08x", got)
	}
}

type pkt struct {
	data    []byte
	granule int64
}

func writeStream(t testing.TB, pkts []pkt, flushEvery int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(&buf, 42)
	for i, p := range pkts {
		if err := w.WritePacket(p.data, p.granule); err != nil {
			t.Fatal(err)
		}
		if flushEvery > 0 && (i+1)%flushEvery == 0 {
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.WritePacket(nil, 0); !errors.Is(err, ErrWriterClosed) {
		t.Fatalf("write after close: %v", err)
	}
	return buf.Bytes()
}

func readAll(t testing.TB, b []byte, cfg ReaderConfig) ([]Packet, error) {
	t.Helper()
	r, err := NewPacketReader(bytes.NewReader(b), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var out []Packet
	for {
		p, err := r.ReadPacket()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, p)
	}
}

func TestPacketRoundTrip(t *testing.T) {
	sizes := []int{0, 1, 254, 255, 256, 510, 511, 65025, 70000, 3, 255 * 255, 100}
	rng := rand.New(rand.NewPCG(1, 2))
	var pkts []pkt
	for i, n := range sizes {
		d := make([]byte, n)
		for j := range d {
			d[j] = byte(rng.Uint32())
		}
		pkts = append(pkts, pkt{d, int64(i * 960)})
	}
	for _, flush := range []int{0, 1, 3} {
		b := writeStream(t, pkts, flush)
		got, err := readAll(t, b, ReaderConfig{})
		if err != nil {
			t.Fatalf("flush %d: %v", flush, err)
		}
		if len(got) != len(pkts) {
			t.Fatalf("flush %d: %d packets, want %d", flush, len(got), len(pkts))
		}
		for i, p := range got {
			if !bytes.Equal(p.Data, pkts[i].data) {
				t.Fatalf("flush %d: packet %d differs (len %d want %d)", flush, i, len(p.Data), len(pkts[i].data))
			}
			if p.Granule != NoGranule && p.Granule != pkts[i].granule {
				t.Fatalf("flush %d: packet %d granule %d want %d", flush, i, p.Granule, pkts[i].granule)
			}
			if flush == 1 && p.Granule != pkts[i].granule {
				t.Fatalf("one packet per page: packet %d granule %d", i, p.Granule)
			}
			if (i == 0) != p.BOS {
				t.Fatalf("BOS on packet %d", i)
			}
		}
		if last := got[len(got)-1]; flush == 0 && !last.EOS {
			t.Fatalf("flush %d: last packet not EOS", flush)
		}
	}
}

func TestPacketLimits(t *testing.T) {
	b := writeStream(t, []pkt{{make([]byte, 1000), 0}}, 0)
	if _, err := readAll(t, b, ReaderConfig{MaxPacketSize: 999}); !errors.Is(err, ErrPacketTooLarge) {
		t.Fatalf("over the limit: %v", err)
	}
	if got, err := readAll(t, b, ReaderConfig{MaxPacketSize: 1000}); err != nil || len(got) != 1 {
		t.Fatalf("at the limit: %v", err)
	}
	if _, err := NewPacketReader(nil, ReaderConfig{MaxPacketSize: -1}); err == nil {
		t.Fatal("negative limit accepted")
	}
}

func TestStreamErrors(t *testing.T) {
	p0 := mustPage(t, Page{Type: BOS, Serial: 1, Seq: 0, Segments: []uint8{255}, Body: make([]byte, 255)})
	p1 := mustPage(t, Page{Type: Continued, Serial: 1, Seq: 1, Segments: []uint8{1}, Body: []byte{1}})
	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"no BOS", mustPage(t, Page{Seq: 0, Segments: []uint8{1}, Body: []byte{1}}), ErrSequence},
		{"gap", cat(p0, mustPage(t, Page{Type: Continued, Serial: 1, Seq: 2, Segments: []uint8{1}, Body: []byte{1}})), ErrSequence},
		{"serial", cat(p0, mustPage(t, Page{Type: Continued, Serial: 2, Seq: 1, Segments: []uint8{1}, Body: []byte{1}})), ErrSerial},
		{"missing continued", cat(p0, mustPage(t, Page{Serial: 1, Seq: 1, Segments: []uint8{1}, Body: []byte{1}})), ErrContinuation},
		{"open at end", p0, ErrTruncated},
		{"cut page", cat(p0, p1[:len(p1)-1]), ErrTruncated},
	}
	for _, c := range cases {
		if _, err := readAll(t, c.in, ReaderConfig{}); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v want %v", c.name, err, c.want)
		}
	}
	if got, err := readAll(t, cat(p0, p1), ReaderConfig{}); err != nil || len(got) != 1 || len(got[0].Data) != 256 {
		t.Fatalf("good pair: %v", err)
	}
}

func cat(bs ...[]byte) []byte { return bytes.Join(bs, nil) }

func FuzzParsePage(f *testing.F) {
	f.Add(mustPage(f, Page{Type: BOS, Segments: []uint8{3}, Body: []byte{1, 2, 3}}))
	f.Add(writeStream(f, []pkt{{make([]byte, 600), 960}}, 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, n, err := ParsePage(b)
		if err != nil {
			return
		}
		again, err := p.Append(nil)
		if err != nil || !bytes.Equal(again, b[:n]) {
			t.Fatalf("re-encoding differs: %v", err)
		}
	})
}

func FuzzPacketReader(f *testing.F) {
	f.Add(writeStream(f, []pkt{{[]byte("OpusHead"), 0}, {make([]byte, 300), 960}, {make([]byte, 70000), 1920}}, 1))
	f.Add(writeStream(f, []pkt{{make([]byte, 255), 0}, {nil, 5}}, 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		pkts, _ := readAll(t, b, ReaderConfig{MaxPacketSize: 1 << 16})
		for _, p := range pkts {
			if len(p.Data) > 1<<16 {
				t.Fatalf("packet of %d bytes over the limit", len(p.Data))
			}
		}
	})
}
