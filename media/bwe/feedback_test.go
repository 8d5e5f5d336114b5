package bwe

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/reliability/mediapkt"
)

var t0 = time.Unix(1_700_000_000, 0)

func TestFeedbackCodec(t *testing.T) {
	ms := func(d int) time.Time { return t0.Add(time.Duration(d) * time.Millisecond) }
	cases := []Feedback{
		{Base: 65534, Arrivals: []time.Time{ms(0), {}, ms(5), ms(3), {}, {}, {}, {}, ms(40)}}, // wrap, loss, reordering
		{Base: 7, Arrivals: []time.Time{ms(1)}},
		{Base: 0, Arrivals: func() []time.Time {
			a := make([]time.Time, MaxFeedbackCount)
			for i := range a {
				a[i] = ms(i)
			}
			return a
		}()},
	}
	for _, f := range cases {
		b, err := AppendFeedback(nil, f)
		if err != nil {
			t.Fatal(err)
		}
		if len(f.Arrivals) == MaxFeedbackCount && len(b) > 1085 {
			t.Fatalf("full feedback of %d bytes does not fit a datagram", len(b))
		}
		got, err := ParseFeedback(b)
		if err != nil {
			t.Fatal(err)
		}
		if got.Base != f.Base || len(got.Arrivals) != len(f.Arrivals) {
			t.Fatalf("round trip %+v", got)
		}
		for i := range f.Arrivals {
			if !got.Arrivals[i].Equal(f.Arrivals[i]) {
				t.Fatalf("arrival %d: %v vs %v", i, got.Arrivals[i], f.Arrivals[i])
			}
		}
		for i := range len(b) {
			if _, err := ParseFeedback(b[:i]); err == nil {
				t.Fatalf("prefix of %d parsed", i)
			}
		}
		if _, err := ParseFeedback(append(b, 0, 0)); err == nil {
			t.Fatal("trailing delta parsed")
		}
	}
	bad := []Feedback{
		{Arrivals: nil},
		{Arrivals: make([]time.Time, 3)},
		{Arrivals: make([]time.Time, MaxFeedbackCount+1)},
		{Arrivals: []time.Time{t0, t0.Add(9 * time.Second)}},
	}
	for _, f := range bad {
		if _, err := AppendFeedback(nil, f); !errors.Is(err, ErrProbeMalformed) {
			t.Errorf("%d arrivals encoded: %v", len(f.Arrivals), err)
		}
	}
	b, _ := AppendFeedback(nil, Feedback{Base: 1, Arrivals: []time.Time{t0, {}, {}}})
	b[FeedbackHeaderLen] |= 0x01 // a padding bit of the bitmap
	if _, err := ParseFeedback(b); !errors.Is(err, ErrProbeMalformed) {
		t.Fatalf("padding bit: %v", err)
	}
}

func FuzzParseFeedback(f *testing.F) {
	b, _ := AppendFeedback(nil, Feedback{Base: 65535, Arrivals: []time.Time{t0, {}, t0.Add(-time.Millisecond), t0.Add(time.Second)}})
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		fb, err := ParseFeedback(b)
		if err != nil {
			return
		}
		again, err := AppendFeedback(nil, fb)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs: %v", err)
		}
	})
}

func TestRecorderAndHistory(t *testing.T) {
	rec, _ := NewFeedbackRecorder(0)
	hist, _ := NewSendHistory(0)
	// Packets 65530.. (wrapping) sent 1 ms apart; 65533 and 2 lost; 1
	// arrives after 3.
	var sent []protocol.MediaSeq
	for i := range 10 {
		q := protocol.MediaSeq(65530 + i)
		hist.OnSent(q, t0.Add(time.Duration(i)*time.Millisecond), 100+i)
		sent = append(sent, q)
	}
	arrive := func(q protocol.MediaSeq, ms int) {
		rec.Record(mediapkt.SeqOf(q), t0.Add(time.Duration(ms)*time.Millisecond))
	}
	for _, q := range sent {
		switch uint16(q) {
		case 65533, 2:
		case 1:
		default:
			arrive(q, int(q-65530)+20)
		}
	}
	arrive(sent[7], 40) // seq 1, late
	pkts := rec.Build()
	if len(pkts) != 1 {
		t.Fatalf("%d feedback packets", len(pkts))
	}
	f, err := ParseFeedback(pkts[0])
	if err != nil {
		t.Fatal(err)
	}
	res := hist.Results(f)
	if len(res) != 10 {
		t.Fatalf("%d results", len(res))
	}
	lost := 0
	for i, r := range res {
		if r.Size != 100+i || !r.SendTime.Equal(t0.Add(time.Duration(i)*time.Millisecond)) {
			t.Fatalf("result %d: %+v", i, r)
		}
		if r.Lost() {
			lost++
		}
	}
	if lost != 2 || !res[7].Arrival.Equal(t0.Add(40*time.Millisecond)) {
		t.Fatalf("lost %d, late arrival %v", lost, res[7].Arrival)
	}
	// Nothing new: no feedback. An arrival of a reported number: ignored.
	if len(rec.Build()) != 0 {
		t.Fatal("feedback without news")
	}
	arrive(sent[3], 50)
	if len(rec.Build()) != 0 {
		t.Fatal("feedback for an already reported number")
	}
	// The pending cap: past it the oldest span is given up.
	small, _ := NewFeedbackRecorder(4)
	for i := range 10 {
		small.Record(mediapkt.Seq(i*2), t0)
	}
	if small.Dropped() == 0 || len(small.arr) > 4 {
		t.Fatalf("recorder holds %d, dropped %d", len(small.arr), small.Dropped())
	}
	// The history forgets beyond its size.
	h2, _ := NewSendHistory(4)
	for i := range 8 {
		h2.OnSent(protocol.MediaSeq(i), t0, 1)
	}
	if r := h2.Results(Feedback{Base: 0, Arrivals: make([]time.Time, 8)}); len(r) != 4 {
		t.Fatalf("history of 4 matched %d", len(r))
	}
	if _, err := NewSendHistory(-1); err == nil {
		t.Fatal("negative history accepted")
	}
	if _, err := NewFeedbackRecorder(-1); err == nil {
		t.Fatal("negative pending accepted")
	}
}
