package core_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/server/core"
	"github.com/jetstreamproto/jsp/server/storage"
)

var (
	t0 = time.Date(2026, 11, 29, 8, 30, 1, 123456789, time.UTC)
	// A commit time in another zone: both encodings carry the instant.
	tZone = time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("X", 5*3600+1800))
)

// fullMessage sets every field of storage.Message.
func fullMessage(seq storage.Seq) storage.Message {
	return storage.Message{
		Channel:  "room.1",
		Seq:      seq,
		ClientID: "c-0af3",
		Sender:   "alice",
		Body:     []byte{0, 1, 2, 0xff, '{'},
		Headers:  map[string]string{"content-type": "text/plain", "reply-to": "bob", "": "empty key"},
		Time:     t0.Add(time.Duration(seq) * time.Microsecond),
	}
}

func requestCases() map[string]*core.Request {
	m := fullMessage(0)
	run := []storage.Message{fullMessage(0), {Sender: "alice", Body: []byte("x")}, {Sender: "bob", ClientID: "b1", Body: []byte{}, Headers: map[string]string{}}}
	return map[string]*core.Request{
		"empty":             {},
		"publish one":       {Op: core.OpPublish, Channel: "room.1", Message: &m},
		"publish zero msg":  {Op: core.OpPublish, Channel: "room.1", Message: &storage.Message{}},
		"publish many":      {Op: core.OpPublish, Channel: "room.1", Messages: run},
		"history after":     {Op: core.OpHistory, Channel: "c", After: 1 << 40, Limit: 50},
		"history before":    {Op: core.OpHistory, Channel: "c", Before: 7, Latest: true, Limit: -3},
		"recover":           {Op: core.OpRecover, Channel: "c", After: 9},
		"subscribe":         {Op: core.OpSubscribe, Channel: "ç/ü", Identity: &core.Identity{User: "u", Device: "d", Session: "0a0b", Scopes: []string{"chat", "", "push"}}},
		"anonymous":         {Op: core.OpSubscribe, Channel: "c", Identity: &core.Identity{}},
		"command":           {Op: core.OpCommand, Channel: "k", Command: &core.Command{Service: "chat", Body: []byte(`{"x":1}`)}},
		"command no body":   {Op: core.OpCommand, Channel: "k", Command: &core.Command{}},
		"unknown op":        {Op: "future", Channel: "c"},
		"max seq":           {Op: core.OpHistory, Channel: "c", After: ^storage.Seq(0), Before: 1<<63 + 5},
		"message in a zone": {Op: core.OpPublish, Channel: "z", Message: &storage.Message{Sender: "s", Time: tZone}},
	}
}

func replyCases() map[string]*core.Reply {
	return map[string]*core.Reply{
		"empty":     {},
		"published": {Seq: 42, Time: t0},
		"duplicate": {Seq: 42, Time: tZone, Duplicate: true},
		"failure":   {Code: jsperr.CircuitOpen, Reason: "store breaker open", RetryAfterMS: 1500},
		"negative":  {Code: jsperr.Code(1 << 50), RetryAfterMS: -1},
		"history":   {Messages: []storage.Message{fullMessage(1), fullMessage(2)}, More: true},
		"recover":   {Info: &storage.ChannelInfo{Name: "c", Oldest: 3, Last: 9}, Recoverable: true, Messages: []storage.Message{fullMessage(4)}},
		"zero info": {Info: &storage.ChannelInfo{}},
		"command":   {Body: []byte{1, 2, 3}},
		"results": {Results: []core.PublishResult{
			{Seq: 1, Time: t0},
			{Seq: 1, Time: t0, Duplicate: true},
			{Code: jsperr.Conflict, Reason: "client id reused", RetryAfterMS: 20},
			{},
		}},
	}
}

func eventCases() map[string]*core.Event {
	return map[string]*core.Event{
		"one":       {Channel: "room.1", Message: fullMessage(7)},
		"ephemeral": {Channel: "room.1", Message: storage.Message{Channel: "room.1", Sender: "bob", Body: []byte("typing")}, Ephemeral: true},
		"drop":      {Channel: "room.1", Drop: []string{"alice", "bob", ""}},
		"run":       {Channel: "room.1", Messages: []storage.Message{fullMessage(7), fullMessage(8), {Channel: "room.1", Seq: 9, Sender: "carol"}}},
		"empty":     {},
	}
}

// utc puts every time of v (a pointer to a Request, Reply or Event) in
// UTC: the binary form carries the instant, JSON the zone's offset too.
func utc(v any) {
	var walk func(reflect.Value)
	walk = func(rv reflect.Value) {
		switch rv.Kind() {
		case reflect.Pointer:
			if !rv.IsNil() {
				walk(rv.Elem())
			}
		case reflect.Slice:
			for i := range rv.Len() {
				walk(rv.Index(i))
			}
		case reflect.Struct:
			if t, ok := rv.Interface().(time.Time); ok {
				if !t.IsZero() {
					rv.Set(reflect.ValueOf(t.UTC()))
				}
				return
			}
			for i := range rv.NumField() {
				if rv.Type().Field(i).IsExported() {
					walk(rv.Field(i))
				}
			}
		}
	}
	walk(reflect.ValueOf(v))
}

// roundTrip checks one value: its JSON and binary forms decode to equal
// structs, equal to the value itself; the binary form is as long as its
// Len says and no proper prefix of it decodes.
func roundTrip[T any](t *testing.T, v *T, enc func(core.Codec, *T) ([]byte, error), dec func([]byte) (T, error), size func(*T) int) {
	t.Helper()
	jsonForm, err := enc(core.CodecJSON, v)
	if err != nil {
		t.Fatal(err)
	}
	binForm, err := enc(core.CodecBinary, v)
	if err != nil {
		t.Fatal(err)
	}
	if jsonForm[0] != '{' || core.IsBinary(jsonForm) || !core.IsBinary(binForm) {
		t.Fatalf("first bytes: json %q, binary %#x", jsonForm[0], binForm[0])
	}
	if n := size(v); n != len(binForm) {
		t.Fatalf("Len %d, encoded %d bytes", n, len(binForm))
	}
	fromJSON, err := dec(jsonForm)
	if err != nil {
		t.Fatalf("decode JSON: %v", err)
	}
	fromBin, err := dec(binForm)
	if err != nil {
		t.Fatalf("decode binary: %v", err)
	}
	want := *v
	utc(&want)
	utc(&fromJSON)
	if !reflect.DeepEqual(fromJSON, fromBin) {
		t.Fatalf("JSON and binary decode differently:\njson   %+v\nbinary %+v", fromJSON, fromBin)
	}
	// JSON's omitempty turns empty slices into nil; so does the binary
	// form, which is why the value is compared after its JSON round trip.
	wantJSON, _ := json.Marshal(&want)
	gotJSON, _ := json.Marshal(&fromBin)
	if !bytes.Equal(wantJSON, gotJSON) {
		t.Fatalf("binary round trip changed the value:\nwant %s\ngot  %s", wantJSON, gotJSON)
	}
	again, err := enc(core.CodecBinary, &fromBin)
	if err != nil || !bytes.Equal(again, binForm) {
		t.Fatalf("re-encoding the decoded value gives other bytes (%v)", err)
	}
	for i := range len(binForm) {
		if _, err := dec(binForm[:i]); err == nil {
			t.Fatalf("proper prefix of %d of %d bytes decodes", i, len(binForm))
		}
	}
}

func TestCodecRequestRoundTrip(t *testing.T) {
	for name, req := range requestCases() {
		t.Run(name, func(t *testing.T) {
			roundTrip(t, req, core.Codec.EncodeRequest,
				func(b []byte) (core.Request, error) { return core.DecodeRequest(b, nil) }, core.RequestLen)
		})
	}
}

func TestCodecReplyRoundTrip(t *testing.T) {
	for name, rep := range replyCases() {
		t.Run(name, func(t *testing.T) {
			roundTrip(t, rep, core.Codec.EncodeReply,
				func(b []byte) (core.Reply, error) { return core.DecodeReply(b, nil) }, core.ReplyLen)
		})
	}
}

func TestCodecEventRoundTrip(t *testing.T) {
	for name, ev := range eventCases() {
		t.Run(name, func(t *testing.T) {
			roundTrip(t, ev, core.Codec.EncodeEvent,
				func(b []byte) (core.Event, error) { return core.DecodeEventForm(b, nil) }, core.EventLen)
		})
	}
}

// TestCodecBodyAliasesPayload: a decoded body is the payload's bytes, not
// a copy, and cannot grow into the bytes after it.
func TestCodecBodyAliasesPayload(t *testing.T) {
	m := fullMessage(3)
	data, err := core.CodecBinary.EncodeEvent(&core.Event{Channel: "c", Messages: []storage.Message{m, fullMessage(4)}})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := core.DecodeEvent(data)
	if err != nil {
		t.Fatal(err)
	}
	body := ev.Messages[0].Body
	i := bytes.Index(data, m.Body)
	if i < 0 || &data[i] != &body[0] {
		t.Fatal("body was copied")
	}
	if cap(body) != len(body) {
		t.Fatalf("body capacity %d past its length %d", cap(body), len(body))
	}
	before := bytes.Clone(data)
	_ = append(body, 'x')
	if !bytes.Equal(data, before) {
		t.Fatal("append to a body wrote into the payload")
	}
	if ev.Messages[0].Sender != ev.Messages[1].Sender || ev.Messages[0].Channel != "room.1" {
		t.Fatalf("messages %+v", ev.Messages)
	}
}

// le128 appends v as a (possibly non-minimal) LEB128 varint.
func le128(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }

// TestCodecMalformed: bad binary payloads fail with a registry code, and
// a declared length or count never allocates before it is checked.
func TestCodecMalformed(t *testing.T) {
	valid, err := core.CodecBinary.EncodeRequest(&core.Request{Op: core.OpPublish, Channel: "c", Message: &storage.Message{Sender: "a"}})
	if err != nil {
		t.Fatal(err)
	}
	// A request whose message record (flags: Headers) has one key twice.
	dupHeaders := []byte{0x01, 0x01, 0x04, 0x08, 0x20, 0x02, 0x01, 'k', 0x00, 0x01, 'k', 0x00}
	// An event whose message (flags: Time) has nanoseconds of a second or
	// more.
	trec := le128(le128([]byte{0x40}, 2), 1e9)
	nanos := append([]byte{0x01, 0x03, 0x02, byte(len(trec))}, trec...)
	for _, tc := range []struct {
		name string
		data []byte
		code jsperr.Code
	}{
		{"empty", nil, jsperr.BadRequest},
		{"unknown encoding", []byte{0x02, 0x01, 0x00}, jsperr.BadRequest},
		{"text", []byte("publish"), jsperr.BadRequest},
		{"bad JSON", []byte(`{"op":`), jsperr.BadRequest},
		{"reply as request", []byte{0x01, 0x02, 0x00}, jsperr.BadRequest},
		{"version only", []byte{0x01}, jsperr.BadRequest},
		{"non-minimal flags", []byte{0x01, 0x01, 0x80, 0x00}, jsperr.BadRequest},
		{"varint over 64 bits", append([]byte{0x01, 0x01}, bytes.Repeat([]byte{0xff}, 11)...), jsperr.BadRequest},
		{"string past the end", []byte{0x01, 0x01, 0x02, 0x7f, 'c'}, jsperr.BadRequest},
		{"huge string length", le128([]byte{0x01, 0x01, 0x02}, 1<<62), jsperr.BadRequest},
		{"messages over the limit", le128([]byte{0x01, 0x01, 0x08}, core.DefaultMaxBusMessages+1), jsperr.LimitExceeded},
		{"messages past the end", le128([]byte{0x01, 0x01, 0x08}, 1000), jsperr.BadRequest},
		{"duplicate header", dupHeaders, jsperr.BadRequest},
		{"headers over the limit", le128([]byte{0x01, 0x01, 0x04, 0x03, 0x20}, core.DefaultMaxBusHeaders+1), jsperr.LimitExceeded},
		{"record past the end", []byte{0x01, 0x01, 0x04, 0x09, 0x00}, jsperr.BadRequest},
		{"nanoseconds", nanos, jsperr.BadRequest},
		{"too large", append(valid, make([]byte, core.DefaultMaxRequestBytes)...), jsperr.MessageTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := core.DecodeRequest(tc.data, nil)
			if tc.name == "nanoseconds" {
				_, err = core.DecodeEvent(tc.data)
			}
			if err == nil {
				t.Fatal("decoded")
			}
			if got := jsperr.CodeOf(err); got != tc.code {
				t.Fatalf("code %v, want %v (%v)", got, tc.code, err)
			}
		})
	}
	// A count of a million records in a few bytes: refused before any
	// slice of that size exists.
	huge := le128([]byte{0x01, 0x01, 0x08}, 1_000_000)
	lim := core.CodecLimits{MaxMessages: 2_000_000}
	allocs := testing.AllocsPerRun(20, func() {
		if _, _, err := core.ParseRequest(huge, &lim); err == nil {
			t.Fatal("decoded")
		}
	})
	if allocs > 0 {
		t.Fatalf("%v allocations refusing an unchecked count", allocs)
	}
	// A count near 2^63 under a limit that does not stop it: refused by
	// the bytes left.
	wide := core.CodecLimits{MaxMessages: math.MaxInt}
	if _, _, err := core.ParseRequest(le128([]byte{0x01, 0x01, 0x08}, math.MaxInt), &wide); jsperr.CodeOf(err) != jsperr.BadRequest {
		t.Fatalf("count 2^63-1: %v", err)
	}
}

// TestCodecLimits: each limit, at its default and set, in both encodings.
func TestCodecLimits(t *testing.T) {
	msgs := func(n int) []storage.Message {
		out := make([]storage.Message, n)
		for i := range out {
			out[i] = storage.Message{Sender: "a", Body: []byte{1}}
		}
		return out
	}
	headers := func(n int) map[string]string {
		h := map[string]string{}
		for i := range n {
			h[strings.Repeat("k", i+1)] = "v"
		}
		return h
	}
	strs := func(n int) []string { return make([]string, n) }
	for _, tc := range []struct {
		name string
		lim  *core.CodecLimits
		req  *core.Request
		code jsperr.Code // NoError: decodes
	}{
		{"messages at default", nil, &core.Request{Messages: msgs(core.DefaultMaxBusMessages)}, jsperr.NoError},
		{"messages over default", nil, &core.Request{Messages: msgs(core.DefaultMaxBusMessages + 1)}, jsperr.LimitExceeded},
		{"messages set", &core.CodecLimits{MaxMessages: 3}, &core.Request{Messages: msgs(4)}, jsperr.LimitExceeded},
		{"headers at default", nil, &core.Request{Message: &storage.Message{Headers: headers(core.DefaultMaxBusHeaders)}}, jsperr.NoError},
		{"headers over default", nil, &core.Request{Message: &storage.Message{Headers: headers(core.DefaultMaxBusHeaders + 1)}}, jsperr.LimitExceeded},
		{"headers set", &core.CodecLimits{MaxHeaders: 1}, &core.Request{Messages: []storage.Message{{Headers: headers(2)}}}, jsperr.LimitExceeded},
		{"scopes at default", nil, &core.Request{Identity: &core.Identity{Scopes: strs(core.DefaultMaxBusStrings)}}, jsperr.NoError},
		{"scopes over default", nil, &core.Request{Identity: &core.Identity{Scopes: strs(core.DefaultMaxBusStrings + 1)}}, jsperr.LimitExceeded},
		{"bytes set", &core.CodecLimits{MaxBytes: 64}, &core.Request{Message: &storage.Message{Body: make([]byte, 64)}}, jsperr.MessageTooLarge},
	} {
		for _, codec := range []core.Codec{core.CodecBinary, core.CodecJSON} {
			t.Run(tc.name+"/"+codec.String(), func(t *testing.T) {
				data, err := codec.EncodeRequest(tc.req)
				if err != nil {
					t.Fatal(err)
				}
				_, err = core.DecodeRequest(data, tc.lim)
				if got := jsperr.CodeOf(err); got != tc.code {
					t.Fatalf("code %v, want %v (%v)", got, tc.code, err)
				}
			})
		}
	}
	drop := &core.Event{Channel: "c", Drop: strs(core.DefaultMaxBusStrings + 1)}
	for _, codec := range []core.Codec{core.CodecBinary, core.CodecJSON} {
		data, err := codec.EncodeEvent(drop)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := core.DecodeEvent(data); jsperr.CodeOf(err) != jsperr.LimitExceeded {
			t.Fatalf("%v: drop over the limit: %v", codec, err)
		}
	}
	results := &core.Reply{Results: make([]core.PublishResult, core.DefaultMaxBusMessages+1)}
	for _, codec := range []core.Codec{core.CodecBinary, core.CodecJSON} {
		data, err := codec.EncodeReply(results)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := core.DecodeReply(data, nil); jsperr.CodeOf(err) != jsperr.LimitExceeded {
			t.Fatalf("%v: results over the limit: %v", codec, err)
		}
	}
}

// TestCodecSkipsUnknownFields: fields a later release appends to a record
// or to the payload, with flag bits this release does not know, are
// skipped (docs/bus.md).
func TestCodecSkipsUnknownFields(t *testing.T) {
	want := core.Event{Channel: "c", Message: storage.Message{Seq: 5, Sender: "s", Body: []byte("b")}}
	// The message record: Seq, Sender, Body (bits 1, 3, 4), an unknown
	// bit 20, and that field's bytes after the known ones.
	rec := le128(nil, 1<<1|1<<3|1<<4|1<<20)
	rec = le128(rec, 5)
	rec = append(rec, 1, 's', 1, 'b')
	rec = append(rec, 3, 'n', 'e', 'w')
	data := []byte{0x01, 0x03}
	data = le128(data, 1<<0|1<<1|1<<30) // Channel, Message, unknown bit 30
	data = append(data, 1, 'c')
	data = le128(data, uint64(len(rec)))
	data = append(data, rec...)
	data = append(data, 0xde, 0xad) // the unknown field
	got, err := core.DecodeEvent(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func TestParseCodec(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want core.Codec
		ok   bool
	}{
		{"", core.CodecBinary, true},
		{"binary", core.CodecBinary, true},
		{"json", core.CodecJSON, true},
		{"JSON", 0, false},
		{"cbor", 0, false},
	} {
		got, err := core.ParseCodec(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseCodec(%q) = %v, %v", tc.in, got, err)
		}
		if tc.ok && tc.in != "" && got.String() != tc.in {
			t.Errorf("%v.String() = %q", got, got.String())
		}
	}
}

// TestCodecTimeRange: times JSON cannot write are refused by the binary
// encoder too.
func TestCodecTimeRange(t *testing.T) {
	far := time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, codec := range []core.Codec{core.CodecBinary, core.CodecJSON} {
		if _, err := codec.EncodeEvent(&core.Event{Channel: "c", Message: storage.Message{Seq: 1, Time: far}}); err == nil {
			t.Errorf("%v: encoded year 10000", codec)
		}
		if _, err := codec.EncodeReply(&core.Reply{Results: []core.PublishResult{{Time: far}}}); err == nil {
			t.Errorf("%v: encoded year 10000", codec)
		}
	}
}
