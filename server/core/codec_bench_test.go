package core_test

import (
	"fmt"
	"testing"

	"github.com/jetstreamproto/jsp/server/core"
	"github.com/jetstreamproto/jsp/server/storage"
)

// benchMessage is a message as a gateway commits a PUBLISH: a 32-digit
// client id, the sender, and the envelope (about 150 bytes) as the body.
func benchMessage(i int) storage.Message {
	body := make([]byte, 150)
	for j := range body {
		body[j] = byte(i + j)
	}
	return storage.Message{ClientID: fmt.Sprintf("%032x", i), Sender: "user-1234", Body: body}
}

// BenchmarkCodec measures one encode and one decode of the core
// protocol's hot messages in each encoding: a publish request of one
// message and of a 64-message window, and the event of one committed
// message and of a 64-message run.
func BenchmarkCodec(b *testing.B) {
	one := benchMessage(1)
	window := make([]storage.Message, 64)
	run := make([]storage.Message, 64)
	for i := range window {
		window[i] = benchMessage(i)
		run[i] = benchMessage(i)
		run[i].Channel, run[i].Seq, run[i].Time = "room.1", storage.Seq(1000+i), t0
	}
	committed := one
	committed.Channel, committed.Seq, committed.Time = "room.1", 1000, t0
	id := &core.Identity{User: "user-1234", Session: "9f8e7d6c5b4a39281706"}
	cases := []struct {
		name   string
		encode func(core.Codec) ([]byte, error)
		decode func([]byte) error
	}{
		{"request", func(c core.Codec) ([]byte, error) {
			return c.EncodeRequest(&core.Request{Op: core.OpPublish, Channel: "room.1", Message: &one, Identity: id})
		}, func(d []byte) error { _, err := core.DecodeRequest(d, nil); return err }},
		{"request64", func(c core.Codec) ([]byte, error) {
			return c.EncodeRequest(&core.Request{Op: core.OpPublish, Channel: "room.1", Messages: window, Identity: id})
		}, func(d []byte) error { _, err := core.DecodeRequest(d, nil); return err }},
		{"event", func(c core.Codec) ([]byte, error) {
			return c.EncodeEvent(&core.Event{Channel: "room.1", Message: committed})
		}, func(d []byte) error { _, err := core.DecodeEvent(d); return err }},
		{"event64", func(c core.Codec) ([]byte, error) {
			return c.EncodeEvent(&core.Event{Channel: "room.1", Messages: run})
		}, func(d []byte) error { _, err := core.DecodeEvent(d); return err }},
	}
	for _, tc := range cases {
		for _, codec := range []core.Codec{core.CodecJSON, core.CodecBinary} {
			b.Run(tc.name+"/"+codec.String(), func(b *testing.B) {
				size := 0
				b.ReportAllocs()
				for b.Loop() {
					data, err := tc.encode(codec)
					if err != nil {
						b.Fatal(err)
					}
					if err := tc.decode(data); err != nil {
						b.Fatal(err)
					}
					size = len(data)
				}
				b.ReportMetric(float64(size), "payload-bytes")
			})
		}
	}
}
