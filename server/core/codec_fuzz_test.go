package core_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/jetstreamproto/jsp/server/core"
)

// fuzzCodec checks one decoded payload: when it decodes, its binary form
// decodes to a value with the same binary form and the same JSON (the
// encodings agree), whatever encoding the input was in.
func fuzzCodec[T any](t *testing.T, data []byte, enc func(core.Codec, *T) ([]byte, error), dec func([]byte) (T, error)) {
	v, err := dec(data)
	if err != nil {
		return
	}
	b1, err := enc(core.CodecBinary, &v)
	if err != nil {
		// A time JSON parses but neither encoding writes (year 0).
		return
	}
	v2, err := dec(b1)
	if err != nil {
		t.Fatalf("binary form of a decoded value does not decode: %v", err)
	}
	b2, err := enc(core.CodecBinary, &v2)
	if err != nil || !bytes.Equal(b1, b2) {
		t.Fatalf("binary form not stable (%v):\n%x\n%x", err, b1, b2)
	}
	utc(&v)
	j1, err1 := json.Marshal(&v)
	j2, err2 := json.Marshal(&v2)
	if err1 != nil || err2 != nil || !bytes.Equal(j1, j2) {
		t.Fatalf("the encodings disagree (%v, %v):\n%s\n%s", err1, err2, j1, j2)
	}
}

func FuzzRequestCodec(f *testing.F) {
	for _, req := range requestCases() {
		for _, c := range []core.Codec{core.CodecBinary, core.CodecJSON} {
			data, err := c.EncodeRequest(req)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzCodec(t, data, core.Codec.EncodeRequest, func(b []byte) (core.Request, error) { return core.DecodeRequest(b, nil) })
	})
}

func FuzzReplyCodec(f *testing.F) {
	for _, rep := range replyCases() {
		for _, c := range []core.Codec{core.CodecBinary, core.CodecJSON} {
			data, err := c.EncodeReply(rep)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzCodec(t, data, core.Codec.EncodeReply, func(b []byte) (core.Reply, error) { return core.DecodeReply(b, nil) })
	})
}

func FuzzEventCodec(f *testing.F) {
	for _, ev := range eventCases() {
		for _, c := range []core.Codec{core.CodecBinary, core.CodecJSON} {
			data, err := c.EncodeEvent(ev)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// DecodeEvent's checks of meaning run too: they must not panic on
		// any form that decodes.
		_, _ = core.DecodeEvent(data)
		fuzzCodec(t, data, core.Codec.EncodeEvent, func(b []byte) (core.Event, error) { return core.DecodeEventForm(b, nil) })
	})
}
