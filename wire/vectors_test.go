package wire

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
)

var update = flag.Bool("update", false, "regenerate spec/vectors from the Go values in vectors_test.go")

const vectorDir = "../spec/vectors"

// vector is one entry of a file in spec/vectors (see its README.md).
type vector struct {
	Name string `json:"name"`
	Type string `json:"type"`
	Hex  string `json:"hex"`
	// Meaning is the decoded value (valid vectors only).
	Meaning any `json:"meaning,omitempty"`
	// Reencoded is the canonical re-encoding when it differs from Hex:
	// unknown keys are skipped on decode and so not re-encoded.
	Reencoded string `json:"reencoded,omitempty"`
	// Error is the registry name a decoder must fail with (malformed only).
	Error string `json:"error,omitempty"`
	Note  string `json:"note,omitempty"`
}

type vectorFile struct {
	Description string   `json:"description"`
	Vectors     []vector `json:"vectors"`
}

func msgVector(s sample) vector {
	return vector{Name: s.name, Type: typeName(s.msg), Hex: hx(s.msg.Append(nil)), Meaning: meaningOf(s.msg)}
}

func frameVector(name string, f Flags, sid protocol.StreamID, m Message, note string) vector {
	p := m.Append(nil)
	h := Header{Type: m.FrameType(), Flags: f, StreamID: sid, Length: uint64(len(p))}
	o := headerMeaning(h)
	o["payload"] = meaningOf(m)
	return vector{Name: name, Type: "frame", Hex: hx(AppendFrame(nil, h.Type, f, sid, p)), Meaning: o, Note: note}
}

func linkFrameVector(name string, t FrameType, f Flags, sid protocol.StreamID, p []byte, note string) vector {
	h := Header{Type: t, Flags: f, StreamID: sid, Length: uint64(len(p))}
	o := headerMeaning(h)
	payload, _, err := linkPayloadMeaning(t, p)
	if err != nil {
		panic(err)
	}
	o["payload"] = payload
	return vector{Name: name, Type: "frame", Hex: hx(AppendFrame(nil, t, f, sid, p)), Meaning: o, Note: note}
}

func samplesNamed(prefixes ...string) []vector {
	var out []vector
	for _, s := range samples() {
		for _, p := range prefixes {
			if strings.HasPrefix(s.name, p) {
				out = append(out, msgVector(s))
				break
			}
		}
	}
	return out
}

// generateVectors builds every vector file from Go values.
func generateVectors() map[string]vectorFile {
	files := map[string]vectorFile{}

	// frames.json: varints, headers and whole frames (JSP §3).
	var fr []vector
	for _, v := range []uint64{0, 37, 63, 64, 15293, 16383, 16384, 494878333, 1<<30 - 1, 1 << 30, 151288809941952652, MaxVarint} {
		fr = append(fr, vector{Name: "varint_" + strings.ReplaceAll(hx(AppendVarint(nil, v)), " ", ""),
			Type: "varint", Hex: hx(AppendVarint(nil, v)), Meaning: obj{"value": num(v)}})
	}
	for _, h := range []struct {
		name string
		h    Header
	}{
		{"header_hello", Header{Type: FrameHello, StreamID: 0, Length: 12}},
		{"header_stream_fin_bulk", Header{Type: FrameStream, Flags: FlagFIN.WithClass(protocol.ClassBulk), StreamID: 4, Length: 16384}},
		{"header_event_signed_compressed", Header{Type: FrameEvent, Flags: (FlagSigned | FlagCompressed).WithClass(protocol.ClassChat), StreamID: 1000000, Length: 70000}},
		{"header_reserved_flag_bits_kept", Header{Type: FramePing, Flags: 0xe0, StreamID: 0, Length: 1}},
	} {
		fr = append(fr, vector{Name: h.name, Type: "header", Hex: hx(AppendHeader(nil, h.h)), Meaning: headerMeaning(h.h)})
	}
	byName := map[string]Message{}
	for _, s := range samples() {
		byName[s.name] = s.msg
	}
	fr = append(fr,
		frameVector("frame_hello", 0, 0, byName["hello_full"], "first frame on the control stream"),
		frameVector("frame_welcome", 0, 0, byName["welcome_minimal"], ""),
		frameVector("frame_ping", 0, 0, byName["ping"], ""),
		frameVector("frame_event_chat", Flags(0).WithClass(protocol.ClassChat), 0, &EnvelopeFrame{Type: FrameEvent, Envelope: byName["envelope_chat_event"].(*EnvelopeFrame).Envelope}, ""),
		frameVector("frame_command", 0, 8, &EnvelopeFrame{Type: FrameCommand, Envelope: byName["envelope_command"].(*EnvelopeFrame).Envelope}, ""),
		frameVector("frame_publish_signed", FlagSigned.WithClass(protocol.ClassMedia), 0, &EnvelopeFrame{Type: FramePublish, Envelope: byName["envelope_signed_headers"].(*EnvelopeFrame).Envelope}, ""),
		frameVector("frame_stream_open", FlagFIN.WithClass(protocol.ClassBulk)&^FlagFIN, 4, byName["stream_open"], "first frame on a Stream API stream"),
		frameVector("frame_datagram_mixed_unreliable", Flags(0).WithClass(protocol.ClassChat), protocol.StreamID(FlowMixedUnreliable), byName["datagram_single"], "stream id = flow id 1: Mixed API unreliable"),
		frameVector("frame_announce", 0, 0, byName["announce_streams_datagrams"], "the client is about to open streams and send datagrams (JSP §5.14)"),
		linkFrameVector("frame_link_stream_fin", FrameStream, FlagFIN, 4, []byte("last bytes"), ""),
		linkFrameVector("frame_link_window_update_connection", FrameWindowUpdate, 0, 0, AppendVarintPayload(nil, 262144), "stream id 0 = connection window"),
		linkFrameVector("frame_link_reset_stream", FrameResetStream, 0, 8, AppendVarintPayload(nil, uint64(jsperr.Cancelled)), ""),
		linkFrameVector("frame_link_stop_sending", FrameStopSending, 0, 8, AppendVarintPayload(nil, uint64(jsperr.StreamReset)), ""),
		linkFrameVector("frame_link_datagram", FrameLinkDatagram, Flags(0).WithClass(protocol.ClassMedia), 0,
			AppendMessage(nil, Flags(0).WithClass(protocol.ClassMedia), 2, &Datagram{Fragment: FragmentHeader{MsgID: 7, Count: 1}, Data: []byte{0xca, 0xfe}}),
			"payload = one transport datagram = a whole DATAGRAM frame (flow 2, a media flow)"),
		linkFrameVector("frame_link_close", FrameLinkClose, 0, 0, AppendLinkClose(nil, jsperr.GoingAway, "restarting"), ""),
		linkFrameVector("frame_link_close_no_reason", FrameLinkClose, 0, 0, AppendLinkClose(nil, jsperr.NoError, ""), ""),
		vector{Name: "frame_unknown_type_skipped", Type: "frame", Hex: "3f0000" + "03" + "a10100",
			Meaning: obj{"type": uint64(0x3f), "flags": uint64(0), "stream_id": uint64(0), "length": uint64(3),
				"payload": obj{"skipped": true, "data": "a10100"}},
			Note: "unknown frame types are skipped, not fatal (JSP §8.3)"},
		vector{Name: "frame_unknown_type_two_byte_skipped", Type: "frame", Hex: "5234" + "02" + "05" + "02" + "0102",
			Meaning: obj{"type": uint64(0x1234), "flags": uint64(2), "stream_id": uint64(5), "length": uint64(2),
				"payload": obj{"skipped": true, "data": "0102"}},
			Note: "frame type 0x1234 in a two-byte varint"},
	)
	files["frames.json"] = vectorFile{Description: "JSP/1 varints, frame headers and whole frames (JSP §3, §5).", Vectors: fr}

	// envelopes.json (JSP §4).
	ev := samplesNamed("envelope_")
	base := Envelope{ID: []byte{1}, Route: Route{Name: "c"}, Body: []byte("x")}
	canon := base.Append(nil)
	unk := append([]byte{cborMap | 5}, canon[1:]...)
	unk = append(AppendCBORUint(unk, 16), AppendCBORText(nil, "future")...)
	unk = AppendCBORUint(unk, 40)
	unk = append(unk, unhexMust("82 01 a2 61 62 f5 61 61 c1 1a 514b67b0")...) // [1, {"b": true, "a": 1(tag)}]
	ev = append(ev, vector{Name: "envelope_unknown_keys_skipped", Type: "envelope", Hex: hx(unk),
		Meaning: envelopeMeaning(&base), Reencoded: hx(canon),
		Note: "keys 16 and 40 are unknown: skipped, so the re-encoding omits them (JSP §8.3)"})
	files["envelopes.json"] = vectorFile{Description: "JSP/1 envelopes: CBOR bodies of PUBLISH, EVENT, COMMAND, REPLY, NOTIFY and MESSAGE frames (JSP §4).", Vectors: ev}

	// handshake.json (JSP §5.1-§5.3).
	hs := samplesNamed("hello_", "welcome_", "error_")
	hello := Hello{Versions: []protocol.Version{1}}
	hcanon := hello.Append(nil)
	hunk := append([]byte{cborMap | 2}, hcanon[1:]...)
	hunk = append(AppendCBORUint(hunk, 63), unhexMust("a1 01 43 010203")...)
	hs = append(hs, vector{Name: "hello_unknown_key_skipped", Type: "hello", Hex: hx(hunk),
		Meaning: meaningOf(&hello), Reencoded: hx(hcanon), Note: "key 63 is unknown: skipped (JSP §8.3)"})
	files["handshake.json"] = vectorFile{Description: "JSP/1 HELLO, WELCOME and ERROR bodies (JSP §5.1-§5.3).", Vectors: hs}

	// messages.json: the other session bodies and the link payloads.
	ms := samplesNamed("ping", "pong", "goaway", "ack_", "nack", "subscribe", "unsubscribe", "stream_open", "datagram_", "announce_")
	for _, h := range []FragmentHeader{{MsgID: 0, Index: 0, Count: 1}, {MsgID: 70000, Index: 63, Count: 64}} {
		ms = append(ms, vector{Name: "fragment_header_" + hx(AppendFragmentHeader(nil, h)), Type: "fragment_header",
			Hex: hx(AppendFragmentHeader(nil, h)), Meaning: fragmentMeaning(h)})
	}
	ms = append(ms,
		vector{Name: "varint_payload_window_increment", Type: "varint_payload", Hex: hx(AppendVarintPayload(nil, 65536)), Meaning: obj{"value": uint64(65536)}},
		vector{Name: "link_close_invalid_reason_dropped", Type: "link_close", Hex: "03c328",
			Meaning: obj{"code": uint64(3)}, Reencoded: "03",
			Note: "a reason that is not UTF-8 (or over 1024 bytes) is dropped; the code is kept (JSP §3.4)"},
		vector{Name: "link_close_utf8_reason", Type: "link_close", Hex: hx(AppendLinkClose(nil, jsperr.ProtocolViolation, "unexpected frame \u2013 bye")),
			Meaning: obj{"code": uint64(jsperr.ProtocolViolation), "reason": "unexpected frame \u2013 bye"}},
	)
	files["messages.json"] = vectorFile{Description: "JSP/1 session message bodies (JSP §5.4-§5.13) and link frame payloads (JSP §3.4).", Vectors: ms}

	files["malformed.json"] = vectorFile{Description: "Inputs every JSP/1 decoder must reject, with the registry error it must report (JSP §6.3, §10).", Vectors: malformedVectors()}
	return files
}

func unhexMust(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

// malformedCause records, for each malformed vector, the sentinel error the
// Go decoder returns: finer than the registry code the vector file names.
var malformedCause = map[string]error{}

// malformedVectors lists inputs with the exact error each must produce.
func malformedVectors() []vector {
	okEnv := Envelope{ID: []byte{1}, Route: Route{Name: "c"}}
	enc := okEnv.Append(nil) // a2 01 41 01 02 82 00 61 63
	mv := func(name, typ string, b []byte, want error, note string) vector {
		malformedCause[name] = want
		return vector{Name: name, Type: typ, Hex: hx(b), Error: jsperr.CodeOf(want).String(), Note: note}
	}
	bigDatagram := append([]byte{0x00, 0x00, 0x01}, make([]byte, 1098)...)
	return []vector{
		mv("varint_non_minimal", "varint", unhexMust("4025"), ErrNonMinimalVarint, "37 in two bytes"),
		mv("varint_truncated", "varint", unhexMust("80 00 01"), ErrTruncated, ""),
		mv("header_truncated", "header", unhexMust("10 00"), ErrTruncated, "no stream id or length"),
		mv("header_frame_too_large", "header", AppendHeader(nil, Header{Type: FrameMessage, Length: uint64(protocol.DefaultMaxFrameSize) + 1}), ErrFrameTooLarge, "declared length one over the default max frame"),
		mv("frame_payload_truncated", "frame", unhexMust("13 00 00 05 a1 01 07"), ErrTruncated, ""),
		mv("frame_trailing_bytes", "frame", unhexMust("13 00 00 02 a0 00"), ErrTrailingBytes, "PING payload continues after its map"),
		mv("frame_event_kind_command", "frame", AppendFrame(nil, FrameEvent, 0, 0, (&Envelope{ID: []byte{1}, Route: Route{Name: "c"}, Kind: KindCommand}).Append(nil)), ErrKindMismatch, "EVENT must carry kind event"),
		mv("frame_datagram_too_large", "frame", AppendFrame(nil, FrameDatagram, 0, 0, bigDatagram), ErrDatagramTooLarge, "1101-byte DATAGRAM payload"),
		mv("envelope_missing_id", "envelope", unhexMust("a1 02 82 00 61 63"), ErrMissingField, ""),
		mv("envelope_missing_route", "envelope", unhexMust("a1 01 41 01"), ErrMissingField, ""),
		mv("envelope_duplicate_key", "envelope", unhexMust("a3 01 41 01 01 41 02 02 82 00 61 63"), ErrDuplicateField, "key 1 twice"),
		mv("envelope_keys_out_of_order", "envelope", unhexMust("a2 02 82 00 61 63 01 41 01"), ErrKeyOrder, "route before id"),
		mv("envelope_non_minimal_head", "envelope", append(append([]byte{0xa3}, enc[1:]...), unhexMust("05 1a 00 00 00 10")...), ErrNonCanonical, "ts 16 in a 4-byte head"),
		mv("envelope_non_minimal_length", "envelope", unhexMust("a2 01 58 01 01 02 82 00 61 63"), ErrNonCanonical, "id length 1 in a 1-byte-argument head"),
		mv("envelope_indefinite_body", "envelope", append(append([]byte{0xa3}, enc[1:]...), unhexMust("0f 5f 41 01 ff")...), ErrIndefiniteLength, "indefinite-length byte string"),
		mv("envelope_zero_kind_present", "envelope", append(append([]byte{0xa3}, enc[1:]...), unhexMust("03 00")...), ErrNonCanonical, "default values must be omitted"),
		mv("envelope_route_name_bad_utf8", "envelope", unhexMust("a2 01 41 01 02 82 00 61 ff"), ErrInvalidUTF8, ""),
		mv("envelope_route_kind_unknown", "envelope", unhexMust("a2 01 41 01 02 82 03 61 63"), ErrFieldRange, "route kind 3"),
		mv("envelope_short_signature", "envelope", append(append([]byte{0xa3}, enc[1:]...), append([]byte{0x0b, 0x58, 63}, make([]byte, 63)...)...), ErrFieldRange, "sig must be 64 bytes"),
		mv("envelope_body_over_limit", "envelope", append(append([]byte{0xa3}, enc[1:]...), unhexMust("0f 5a 00 10 00 01")...), ErrMessageTooLarge, "declared body length 2^20+1: the limit is checked before the remaining input"),
		mv("envelope_truncated", "envelope", enc[:len(enc)-1], ErrTruncated, ""),
		mv("envelope_text_key", "envelope", unhexMust("a1 61 61 00"), ErrWrongType, "keys are unsigned integers"),
		mv("envelope_unknown_key_too_deep", "envelope", append(append([]byte{0xa3}, enc[1:]...), append([]byte{0x10}, unhexMust(strings.Repeat("81", MaxCBORDepth)+"00")...)...), ErrTooDeep, "unknown value nested 17 deep"),
		mv("envelope_not_a_map", "envelope", unhexMust("82 01 02"), ErrWrongType, ""),
		mv("hello_missing_versions", "hello", unhexMust("a1 02 62 6a 73"), ErrMissingField, ""),
		mv("hello_empty_versions", "hello", unhexMust("a1 01 80"), ErrFieldRange, ""),
		mv("hello_battery_false", "hello", unhexMust("a2 01 81 01 0a f4"), ErrNonCanonical, "false is the default: omitted"),
		mv("hello_resume_missing_token", "hello", unhexMust("a2 01 81 01 06 a1 01 41 01"), ErrMissingField, ""),
		mv("welcome_missing_session_id", "welcome", unhexMust("a1 01 01"), ErrMissingField, ""),
		mv("error_missing_code", "error", unhexMust("a1 02 61 78"), ErrMissingField, ""),
		mv("nack_empty_seqs", "nack", unhexMust("a1 02 80"), ErrFieldRange, ""),
		mv("subscribe_empty_channel", "subscribe", unhexMust("a1 01 60"), ErrFieldRange, ""),
		mv("fragment_count_zero", "fragment_header", unhexMust("01 00 00"), ErrBadFragment, ""),
		mv("fragment_index_not_below_count", "fragment_header", unhexMust("01 03 03"), ErrBadFragment, ""),
		mv("fragment_count_over_64", "fragment_header", unhexMust("01 00 40 41"), ErrBadFragment, "count 65"),
		mv("varint_payload_trailing", "varint_payload", unhexMust("05 00"), ErrTrailingBytes, ""),
	}
}

// wireVectorFiles are the files of spec/vectors that this package owns and
// regenerates; the others belong to the packages that define their formats.
var wireVectorFiles = map[string]bool{
	"frames.json": true, "envelopes.json": true, "handshake.json": true,
	"messages.json": true, "malformed.json": true,
}

func loadVectorFiles(t testing.TB) map[string]vectorFile {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(vectorDir, "*.json"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no vector files in %s (run go test ./wire -update): %v", vectorDir, err)
	}
	files := map[string]vectorFile{}
	for _, p := range paths {
		if !wireVectorFiles[filepath.Base(p)] {
			continue // another package's vectors (media.json: package media)
		}
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var f vectorFile
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&f); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		files[filepath.Base(p)] = f
	}
	return files
}

func marshalVectorFile(f vectorFile) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(f); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// normalize round-trips v through JSON so Go values and file contents
// compare equal when they mean the same.
func normalize(t testing.TB, v any) any {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestVectors decodes every vector in spec/vectors: valid ones must mean
// what the file says and re-encode byte for byte; malformed ones must fail
// with exactly the registry error named. With -update the files are first
// regenerated from the Go values above.
func TestVectors(t *testing.T) {
	gen := generateVectors()
	if *update {
		if err := os.MkdirAll(vectorDir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, f := range gen {
			if err := os.WriteFile(filepath.Join(vectorDir, name), marshalVectorFile(f), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	files := loadVectorFiles(t)
	for name, f := range gen {
		raw, err := os.ReadFile(filepath.Join(vectorDir, name))
		if err != nil || !bytes.Equal(raw, marshalVectorFile(f)) {
			t.Errorf("%s is stale or missing: run go test ./wire -update (%v)", name, err)
		}
	}
	total, malformed, names := 0, 0, map[string]bool{}
	for fname, f := range files {
		for _, v := range f.Vectors {
			total++
			t.Run(fname+"/"+v.Name, func(t *testing.T) {
				if names[v.Name] {
					t.Fatalf("duplicate vector name")
				}
				names[v.Name] = true
				b, err := hex.DecodeString(v.Hex)
				if err != nil {
					t.Fatalf("hex: %v", err)
				}
				meaning, re, err := decodeVector(v.Type, b)
				if v.Error != "" {
					malformed++
					if err == nil {
						t.Fatalf("decoded, want %s", v.Error)
					}
					if got := jsperr.CodeOf(err).String(); got != v.Error {
						t.Fatalf("error %s (%v), want %s", got, err, v.Error)
					}
					return
				}
				if err != nil {
					t.Fatalf("decode: %v", err)
				}
				if got, want := normalize(t, meaning), normalize(t, v.Meaning); !reflect.DeepEqual(got, want) {
					gj, _ := json.Marshal(got)
					wj, _ := json.Marshal(want)
					t.Fatalf("meaning:\n got %s\nwant %s", gj, wj)
				}
				want := v.Hex
				if v.Reencoded != "" {
					want = v.Reencoded
				}
				if hx(re) != want {
					t.Fatalf("re-encoding:\n got %s\nwant %s", hx(re), want)
				}
			})
		}
	}
	if total < 40 || malformed < 10 {
		t.Errorf("%d vectors with %d malformed; the spec promises at least 40 and 10", total, malformed)
	}
	// Every decodable type has at least one valid vector.
	have := map[string]bool{}
	for _, f := range files {
		for _, v := range f.Vectors {
			if v.Error == "" {
				have[v.Type] = true
			}
		}
	}
	var missing []string
	for typ := range parsers {
		if !have[typ] {
			missing = append(missing, typ)
		}
	}
	for _, typ := range []string{"varint", "header", "frame", "fragment_header", "varint_payload", "link_close"} {
		if !have[typ] {
			missing = append(missing, typ)
		}
	}
	slices.Sort(missing)
	if len(missing) != 0 {
		t.Errorf("no valid vector for %v", missing)
	}
}

// TestMalformedCauses checks that each malformed vector fails for the reason
// it was written for, not for another reason with the same code.
func TestMalformedCauses(t *testing.T) {
	for _, v := range malformedVectors() {
		_, _, err := decodeVector(v.Type, unhexMust(v.Hex))
		if want := malformedCause[v.Name]; err != want {
			t.Errorf("%s: err = %v, want %v", v.Name, err, want)
		}
	}
}
