package media

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/reliability/fec"
	"github.com/jetstreamproto/jsp/reliability/mediapkt"
)

var update = flag.Bool("update", false, "regenerate spec/vectors/media.json from the Go values in vectors_test.go")

const vectorFile = "../spec/vectors/media.json"

// vector is one entry of spec/vectors/media.json: hex and the meaning a
// decoder must find in it, or the registry error it must fail with.
type vector struct {
	Name    string         `json:"name"`
	Type    string         `json:"type"`
	Hex     string         `json:"hex"`
	Meaning map[string]any `json:"meaning,omitempty"`
	// Reencoded is the canonical re-encoding when it differs from Hex
	// (unknown keys are skipped, so not re-encoded).
	Reencoded string `json:"reencoded,omitempty"`
	Error     string `json:"error,omitempty"`
	Note      string `json:"note,omitempty"`
}

// fecGroup is a whole FEC group: its source packets and the parity packets
// a sender emits for them (JSP §13.4).
type fecGroup struct {
	Name    string   `json:"name"`
	K       int      `json:"k"`
	M       int      `json:"m"`
	Base    uint64   `json:"base"`
	Sources []string `json:"sources"`
	Parity  []string `json:"parity"`
	Note    string   `json:"note,omitempty"`
}

type mediaVectors struct {
	Description string     `json:"description"`
	Vectors     []vector   `json:"vectors"`
	FECGroups   []fecGroup `json:"fec_groups"`
}

func hx(b []byte) string { return hex.EncodeToString(b) }

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

var flagNames = []struct {
	f    mediapkt.Flags
	name string
}{
	{mediapkt.FlagKeyFrame, "K"}, {mediapkt.FlagEndOfFrame, "E"}, {mediapkt.FlagFEC, "F"},
	{mediapkt.FlagAudioLevel, "L"}, {mediapkt.FlagRetransmission, "R"},
}

// headerMeaning is the JSON meaning of a decoded media packet.
func headerMeaning(h mediapkt.Header, payload []byte) map[string]any {
	flags := []any{}
	for _, fn := range flagNames {
		if h.Flags.Has(fn.f) {
			flags = append(flags, fn.name)
		}
	}
	m := map[string]any{
		"flags":      flags,
		"seq":        float64(h.Seq),
		"timestamp":  float64(h.Timestamp),
		"header_len": float64(h.Len()),
		"payload":    hx(payload),
	}
	if h.Flags.Has(mediapkt.FlagAudioLevel) {
		m["audio_level"] = map[string]any{"voice": h.AudioLevel.Voice, "level": float64(h.AudioLevel.Level)}
	}
	if h.Flags.Has(mediapkt.FlagFEC) {
		m["fec"] = map[string]any{"base": float64(h.FEC.Base), "k": float64(h.FEC.K), "m": float64(h.FEC.M), "index": float64(h.FEC.Index)}
	}
	return m
}

func reportMeaning(r Report) map[string]any {
	return map[string]any{"total": float64(r.Total), "lost": float64(r.Lost), "jitter_us": float64(r.Jitter / time.Microsecond)}
}

func mustPacket(h mediapkt.Header, payload []byte) []byte {
	b, err := mediapkt.AppendPacket(nil, &h, payload)
	if err != nil {
		panic(err)
	}
	return b
}

func mustReport(r Report) []byte {
	b, err := r.Append(nil)
	if err != nil {
		panic(err)
	}
	return b
}

func headerVector(name string, h mediapkt.Header, payload []byte, note string) vector {
	return vector{Name: name, Type: "media_packet", Hex: hx(mustPacket(h, payload)), Meaning: headerMeaning(h, payload), Note: note}
}

// groupSources are the source packets of the vector FEC group: four
// packets of different lengths whose numbers wrap past 65535.
func groupSources() []mediapkt.Header {
	return []mediapkt.Header{
		{Flags: mediapkt.FlagKeyFrame, Seq: 65534, Timestamp: 90000},
		{Flags: mediapkt.FlagKeyFrame | mediapkt.FlagEndOfFrame, Seq: 65535, Timestamp: 90000},
		{Flags: mediapkt.FlagEndOfFrame, Seq: 0, Timestamp: 93000},
		{Flags: mediapkt.FlagEndOfFrame | mediapkt.FlagAudioLevel, Seq: 1, Timestamp: 96000, AudioLevel: mediapkt.AudioLevel{Voice: true, Level: 30}},
	}
}

var groupPayloads = []string{"frame one, part one", "and part two", "frame two", "3"}

// generate builds the vector file from Go values.
func generate() mediaVectors {
	v := mediaVectors{Description: "JSP/1 media packets, receiver reports and FEC groups (JSP §13); hex is the whole datagram payload of a media flow after the session's fragment header."}
	add := func(x vector) { v.Vectors = append(v.Vectors, x) }
	add(headerVector("media_plain", mediapkt.Header{Flags: mediapkt.FlagEndOfFrame, Seq: 4660, Timestamp: 0x01020304}, []byte("opus"), "a one-packet frame"))
	add(headerVector("media_key_first", mediapkt.Header{Flags: mediapkt.FlagKeyFrame, Seq: 0, Timestamp: 3000}, []byte{0xde, 0xad}, "first packet of a key frame: K without E"))
	add(headerVector("media_audio_level", mediapkt.Header{Flags: mediapkt.FlagEndOfFrame | mediapkt.FlagAudioLevel, Seq: 65535, Timestamp: 0xffffffff,
		AudioLevel: mediapkt.AudioLevel{Voice: true, Level: 42}}, []byte{1, 2, 3}, "voice active, -42 dBov, both counters at their maximum"))
	add(headerVector("media_retransmission", mediapkt.Header{Flags: mediapkt.FlagEndOfFrame | mediapkt.FlagRetransmission, Seq: 7, Timestamp: 960}, []byte("again"), "resent after a NACK"))
	add(headerVector("media_empty_payload", mediapkt.Header{Flags: mediapkt.FlagEndOfFrame, Seq: 1, Timestamp: 2}, nil, "an empty frame is one packet with no payload"))
	add(headerVector("parity", mediapkt.Header{Flags: mediapkt.FlagFEC, Seq: 3, Timestamp: 96000, FEC: mediapkt.FECInfo{Base: 65534, K: 4, M: 2, Index: 1}}, []byte{0, 0, 0xaa}, "parity shard 1 of a 4+2 group starting at 65534, repair seq 3"))

	bad := func(name, h, code, note string) {
		add(vector{Name: name, Type: "media_packet", Hex: h, Error: code, Note: note})
	}
	bad("media_truncated_6", "401234010203", "TRUNCATED", "six bytes: the timestamp is cut")
	bad("media_reserved_bit", "41123401020304", "MALFORMED_FRAME", "reserved bit 0 set")
	bad("media_audio_level_missing", "50123401020304", "TRUNCATED", "L set, no level byte")
	bad("parity_fec_missing", "20000300017700fffe0402", "TRUNCATED", "F set, FEC fields cut after m")
	bad("parity_k_zero", "20000300017700fffe000200", "MALFORMED_FRAME", "k = 0")
	bad("parity_index_over_m", "20000300017700fffe040202", "MALFORMED_FRAME", "index = m")
	bad("parity_too_many_shards", "20000300017700fffeff0100", "MALFORMED_FRAME", "k + m = 256 > 255")
	bad("parity_with_end_flag", "60000300017700fffe040200", "MALFORMED_FRAME", "F with E: a parity packet carries no media flags")

	rep := func(name string, r Report, note string) {
		add(vector{Name: name, Type: "receiver_report", Hex: hx(mustReport(r)), Meaning: reportMeaning(r), Note: note})
	}
	rep("report_clean", Report{Total: 50, Lost: 0}, "no loss, no jitter: jitter omitted")
	rep("report_lossy", Report{Total: 200, Lost: 13, Jitter: 4321 * time.Microsecond}, "6.5% loss, 4.321 ms jitter")
	rep("report_max", Report{Total: MaxReportTotal, Lost: MaxReportTotal, Jitter: MaxReportJitter}, "every field at its maximum")
	add(vector{Name: "report_unknown_key", Type: "receiver_report", Hex: "ff01a3010a0201186301", Reencoded: "ff01a2010a0201",
		Meaning: reportMeaning(Report{Total: 10, Lost: 1}), Note: "key 99 is skipped (JSP §8.3) and not re-encoded"})
	badRep := func(name, h, code, note string) {
		add(vector{Name: name, Type: "receiver_report", Hex: h, Error: code, Note: note})
	}
	badRep("report_lost_over_total", "ff01a2010a020b", "MALFORMED_FRAME", "lost 11 of 10")
	badRep("report_missing_lost", "ff01a1010a", "MISSING_FIELD", "key 2 absent")
	badRep("report_duplicate_key", "ff01a2010a010a", "DUPLICATE_FIELD", "key 1 twice")
	badRep("report_key_order", "ff01a202000100", "INVALID_CBOR", "keys 2 then 1")
	badRep("report_non_minimal", "ff01a201180a0200", "INVALID_CBOR", "10 in two bytes")
	badRep("report_total_over_cap", "ff01a2011b00000001000000000200", "MALFORMED_FRAME", "total 2^32")
	badRep("report_jitter_over_cap", "ff01a3010a0200031a03938701", "MALFORMED_FRAME", "jitter 60,000,001 us")
	badRep("report_trailing", "ff01a2010a020000", "MALFORMED_FRAME", "a byte after the body")
	badRep("report_truncated", "ff01a2010a", "TRUNCATED", "map of two, one entry")
	add(vector{Name: "control_unknown_type", Type: "control", Hex: "ff02a0", Error: "MALFORMED_FRAME",
		Note: "control type 2 is not defined in this version: skipped, not an error for the flow"})

	ext := func(name string, ref protocol.MediaSeq, s mediapkt.Seq, note string) {
		add(vector{Name: name, Type: "seq_extend", Hex: hx([]byte{byte(s >> 8), byte(s)}),
			Meaning: map[string]any{"ref": float64(ref), "extended": float64(mediapkt.Extend(ref, s))}, Note: note})
	}
	ext("extend_forward_wrap", 65535, 2, "just past the wrap: next lap")
	ext("extend_backward_wrap", 65538, 65534, "a late packet from the previous lap")
	ext("extend_first_lap", 10, 65530, "never below zero: older than ref in lap 0 means the next lap")
	ext("extend_far", 5<<16+100, 32867, "32,767 ahead of ref's low bits: still forward")

	hs := groupSources()
	var src [][]byte
	for i, h := range hs {
		src = append(src, mustPacket(h, []byte(groupPayloads[i])))
	}
	enc, err := fec.NewEncoder(fec.EncoderConfig{Params: fec.Params{K: 4, M: 2}})
	if err != nil {
		panic(err)
	}
	const base = 65534
	var par []fec.Parity
	for i, p := range src {
		out, err := enc.Add(protocol.MediaSeq(base+i), p)
		if err != nil {
			panic(err)
		}
		par = append(par, out...)
	}
	longest := 0
	for _, s := range src {
		longest = max(longest, len(s))
	}
	g := fecGroup{Name: "fec_4_2_wrapping", K: 4, M: 2, Base: base,
		Note: fmt.Sprintf("parity packets: repair seqs 0 and 1, timestamp of the newest source packet; shards are 2 + %d bytes (the longest source packet)", longest)}
	for _, s := range src {
		g.Sources = append(g.Sources, hx(s))
	}
	for j, p := range par {
		h := mediapkt.Header{Flags: mediapkt.FlagFEC, Seq: mediapkt.Seq(j), Timestamp: hs[len(hs)-1].Timestamp,
			FEC: mediapkt.FECInfo{Base: mediapkt.SeqOf(p.Group.Base), K: uint8(p.Group.K), M: uint8(p.Group.M), Index: uint8(p.Index)}}
		g.Parity = append(g.Parity, hx(mustPacket(h, p.Data)))
	}
	v.FECGroups = append(v.FECGroups, g)
	return v
}

func encodeVectors(v mediaVectors) []byte {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		panic(err)
	}
	return append(b, '\n')
}

// TestVectors checks spec/vectors/media.json: the file matches what the Go
// codecs produce (run with -update to rewrite it), every valid vector
// decodes to its meaning and re-encodes byte for byte, every malformed one
// fails with its registry error, and the FEC group's parity is what both
// the library and an independent implementation of the JSP §13.4
// construction compute.
func TestVectors(t *testing.T) {
	want := encodeVectors(generate())
	if *update {
		if err := os.WriteFile(vectorFile, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(vectorFile)
	if err != nil {
		t.Fatalf("%v (run go test ./media -run TestVectors -update)", err)
	}
	if !bytes.Equal(raw, want) {
		t.Errorf("%s is out of date with the Go codecs; run with -update and review the diff", vectorFile)
	}
	var file mediaVectors
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	for _, v := range file.Vectors {
		t.Run(v.Name, func(t *testing.T) { checkVector(t, v) })
	}
	for _, g := range file.FECGroups {
		t.Run(g.Name, func(t *testing.T) { checkGroup(t, g) })
	}
}

func checkVector(t *testing.T, v vector) {
	b := unhex(t, v.Hex)
	var meaning map[string]any
	var again []byte
	var err error
	switch v.Type {
	case "media_packet":
		var h mediapkt.Header
		var payload []byte
		h, payload, err = mediapkt.Parse(b)
		if err == nil {
			meaning = headerMeaning(h, payload)
			again = mustPacket(h, payload)
		}
	case "receiver_report", "control":
		var r Report
		r, err = ParseReport(b)
		if err == nil {
			meaning = reportMeaning(r)
			again = mustReport(r)
		}
	case "seq_extend":
		ref := protocol.MediaSeq(v.Meaning["ref"].(float64))
		s := mediapkt.Seq(uint16(b[0])<<8 | uint16(b[1]))
		meaning = map[string]any{"ref": float64(ref), "extended": float64(mediapkt.Extend(ref, s))}
		again = b
	default:
		t.Fatalf("unknown vector type %q", v.Type)
	}
	if v.Error != "" {
		if err == nil {
			t.Fatalf("decoded %x, want %s", b, v.Error)
		}
		if got := jsperr.CodeOf(err).String(); got != v.Error {
			t.Fatalf("error %v (%s), want %s", err, got, v.Error)
		}
		return
	}
	if err != nil {
		t.Fatalf("decode %x: %v", b, err)
	}
	if !reflect.DeepEqual(meaning, jsonRoundTrip(t, v.Meaning)) {
		t.Fatalf("meaning %v, file says %v", meaning, v.Meaning)
	}
	wantAgain := b
	if v.Reencoded != "" {
		wantAgain = unhex(t, v.Reencoded)
	}
	if !bytes.Equal(again, wantAgain) {
		t.Fatalf("re-encoded %x, want %x", again, wantAgain)
	}
}

func jsonRoundTrip(t *testing.T, m map[string]any) map[string]any {
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func checkGroup(t *testing.T, g fecGroup) {
	var src [][]byte
	for _, s := range g.Sources {
		src = append(src, unhex(t, s))
	}
	var shards [][]byte // parity shards from the file's parity packets
	for j, s := range g.Parity {
		h, payload, err := mediapkt.Parse(unhex(t, s))
		if err != nil {
			t.Fatalf("parity %d: %v", j, err)
		}
		if !h.Flags.Has(mediapkt.FlagFEC) || int(h.FEC.K) != g.K || int(h.FEC.M) != g.M || int(h.FEC.Index) != j ||
			protocol.MediaSeq(h.FEC.Base) != protocol.MediaSeq(mediapkt.SeqOf(protocol.MediaSeq(g.Base))) {
			t.Fatalf("parity %d header %+v does not describe shard %d of %d+%d at %d", j, h, j, g.K, g.M, g.Base)
		}
		shards = append(shards, payload)
	}
	// An independent implementation of JSP §13.4 must agree.
	if got := referenceParity(src, g.M); !reflect.DeepEqual(got, shards) {
		t.Fatalf("reference construction gives %x, file has %x", got, shards)
	}
	// Lose M source packets; the decoder rebuilds them from the rest.
	dec, err := fec.NewDecoder(fec.DecoderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	lost := map[int]bool{0: true, 2: true}
	for i, s := range src {
		if !lost[i] {
			if _, err := dec.AddSource(protocol.MediaSeq(g.Base)+protocol.MediaSeq(i), s); err != nil {
				t.Fatal(err)
			}
		}
	}
	var rec []fec.Recovered
	for j, p := range shards {
		out, err := dec.AddParity(fec.Parity{Group: fec.Group{Base: protocol.MediaSeq(g.Base), K: g.K, M: g.M}, Index: j, Data: p})
		if err != nil {
			t.Fatal(err)
		}
		rec = append(rec, out...)
	}
	if len(rec) != len(lost) {
		t.Fatalf("rebuilt %d packets, want %d", len(rec), len(lost))
	}
	for _, r := range rec {
		if i := int(r.Seq - protocol.MediaSeq(g.Base)); !lost[i] || !bytes.Equal(r.Packet, src[i]) {
			t.Fatalf("rebuilt packet %d = %x, want %x", r.Seq, r.Packet, src[i])
		}
	}
}

// referenceParity computes the parity shards of JSP §13.4 from first
// principles, without the Reed-Solomon library: GF(2^8) with the
// polynomial x^8+x^4+x^3+x^2+1, the (K+M) x K Vandermonde matrix
// V[r][c] = r^c (0^0 = 1), made systematic by multiplying with the inverse
// of its top K x K square; parity shard j is row K+j of the result times
// the source shards (2-byte big-endian length, packet, zero padding to
// 2 + the longest packet).
func referenceParity(src [][]byte, m int) [][]byte {
	var exp [512]byte
	var log [256]int
	x := 1
	for i := 0; i < 255; i++ {
		exp[i], exp[i+255] = byte(x), byte(x)
		log[x] = i
		x <<= 1
		if x&0x100 != 0 {
			x ^= 0x11d
		}
	}
	mul := func(a, b byte) byte {
		if a == 0 || b == 0 {
			return 0
		}
		return exp[log[a]+log[b]]
	}
	inv := func(a byte) byte { return exp[255-log[a]] }
	pow := func(a byte, n int) byte {
		r := byte(1)
		for range n {
			r = mul(r, a)
		}
		return r
	}
	k := len(src)
	v := make([][]byte, k+m)
	for r := range v {
		v[r] = make([]byte, k)
		for c := range v[r] {
			v[r][c] = pow(byte(r), c)
		}
	}
	// Invert the top square by Gauss-Jordan elimination on [top | I].
	aug := make([][]byte, k)
	for r := range aug {
		aug[r] = make([]byte, 2*k)
		copy(aug[r], v[r])
		aug[r][k+r] = 1
	}
	for c := 0; c < k; c++ {
		p := c
		for aug[p][c] == 0 {
			p++
		}
		aug[c], aug[p] = aug[p], aug[c]
		s := inv(aug[c][c])
		for j := range aug[c] {
			aug[c][j] = mul(aug[c][j], s)
		}
		for r := 0; r < k; r++ {
			if r != c && aug[r][c] != 0 {
				f := aug[r][c]
				for j := range aug[r] {
					aug[r][j] ^= mul(f, aug[c][j])
				}
			}
		}
	}
	shardLen := 0
	for _, s := range src {
		shardLen = max(shardLen, 2+len(s))
	}
	shards := make([][]byte, k)
	for i, s := range src {
		shards[i] = make([]byte, shardLen)
		shards[i][0], shards[i][1] = byte(len(s)>>8), byte(len(s))
		copy(shards[i][2:], s)
	}
	out := make([][]byte, m)
	for j := range out {
		// Row K+j of V times inv(top).
		row := make([]byte, k)
		for c := 0; c < k; c++ {
			for t := 0; t < k; t++ {
				row[c] ^= mul(v[k+j][t], aug[t][k+c])
			}
		}
		out[j] = make([]byte, shardLen)
		for i := 0; i < k; i++ {
			for b := range out[j] {
				out[j][b] ^= mul(row[i], shards[i][b])
			}
		}
	}
	return out
}
