package fragment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/wire"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestHeaderRoundTrip(t *testing.T) {
	tests := []Header{
		{ID: 0, Index: 0, Count: 1},
		{ID: 63, Index: 62, Count: 63},
		{ID: 64, Index: 63, Count: 64},
		{ID: 1 << 20, Index: 5, Count: 10},
		{ID: wire.MaxVarint, Index: 0, Count: 64},
	}
	for _, h := range tests {
		b := AppendHeader([]byte{0xaa}, h)[1:]
		if len(b) != h.Len() {
			t.Fatalf("%+v: encoded %d bytes, Len %d", h, len(b), h.Len())
		}
		got, n, err := ParseHeader(append(b, "data"...))
		if err != nil || got != h || n != len(b) {
			t.Fatalf("%+v: parsed %+v, %d, %v", h, got, n, err)
		}
		// No proper prefix of a header parses.
		for k := range len(b) {
			if _, _, err := ParseHeader(b[:k]); err == nil {
				t.Fatalf("%+v: prefix of %d bytes parsed", h, k)
			}
		}
	}
}

func TestParseHeaderRejects(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		code jsperr.Code
	}{
		{"empty", nil, jsperr.Truncated},
		{"id only", []byte{1}, jsperr.Truncated},
		{"count zero", []byte{1, 0, 0}, jsperr.MalformedFrame},
		{"index equals count", []byte{1, 3, 3}, jsperr.MalformedFrame},
		{"count 65", []byte{1, 0, 0x40, 65}, jsperr.MalformedFrame},
		{"huge count", []byte{1, 0, 0xc0, 0, 0, 0, 0x40, 0, 0, 0}, jsperr.MalformedFrame},
		{"huge index", []byte{1, 0xc0, 0, 0, 1, 0, 0, 0, 0, 2}, jsperr.MalformedFrame},
		{"non-minimal index", []byte{1, 0x40, 0, 2}, jsperr.NonMinimalVarint},
		{"truncated varint", []byte{1, 0x80, 0}, jsperr.Truncated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ParseHeader(tt.in)
			if jsperr.CodeOf(err) != tt.code {
				t.Fatalf("ParseHeader(%x) = %v, want code %s", tt.in, err, tt.code)
			}
		})
	}
}

func TestSplit(t *testing.T) {
	tests := []struct {
		name      string
		id        MsgID
		size      int
		maxSize   int
		wantCount int
		wantErr   bool
	}{
		{"empty", 1, 0, 100, 1, false},
		{"fits one", 1, 97, 100, 1, false},
		{"one over", 1, 98, 100, 2, false},
		{"63 fragments", 1, 63 * 97, 100, 63, false},
		{"64 fragments, 2-byte count", 1, 63*97 + 1, 100, 64, false},
		{"exactly 64 full", 1, 64 * 96, 100, 64, false},
		{"too large", 1, 64*96 + 1, 100, 0, true},
		{"big id", 1 << 40, 5000, 1100, 5, false},
		{"no room for data", 1, 10, 3, 0, true},
		{"one data byte per fragment", 1, 5, 4, 5, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			payload := make([]byte, tt.size)
			for i := range payload {
				payload[i] = byte(i * 31)
			}
			frags, err := Split(tt.id, payload, tt.maxSize)
			if tt.wantErr {
				if jsperr.CodeOf(err) != jsperr.DatagramTooLarge {
					t.Fatalf("Split error %v, want DATAGRAM_TOO_LARGE", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(frags) != tt.wantCount {
				t.Fatalf("%d fragments, want %d", len(frags), tt.wantCount)
			}
			var joined []byte
			minData, maxData := tt.size, 0
			for i, f := range frags {
				if len(f) > tt.maxSize {
					t.Fatalf("fragment %d is %d bytes, over %d", i, len(f), tt.maxSize)
				}
				h, n, err := ParseHeader(f)
				if err != nil || h.ID != tt.id || h.Index != i || h.Count != len(frags) {
					t.Fatalf("fragment %d header %+v, %v", i, h, err)
				}
				joined = append(joined, f[n:]...)
				minData, maxData = min(minData, len(f)-n), max(maxData, len(f)-n)
			}
			if !bytes.Equal(joined, payload) {
				t.Fatal("fragments do not join to the payload")
			}
			if maxData-minData > 1 {
				t.Errorf("uneven spread: fragment data %d..%d bytes", minData, maxData)
			}
			// Fragments must not share capacity: appending to one must not
			// clobber the next.
			if len(frags) > 1 {
				next := append([]byte(nil), frags[1]...)
				_ = append(frags[0], 0xff)
				if !bytes.Equal(frags[1], next) {
					t.Fatal("append to fragment 0 overwrote fragment 1")
				}
			}
		})
	}
}

func newR(t testing.TB, cfg Config) *Reassembler {
	t.Helper()
	r, err := NewReassembler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func split(t testing.TB, id MsgID, payload []byte, maxSize int) [][]byte {
	t.Helper()
	f, err := Split(id, payload, maxSize)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestReassembleOutOfOrderWithDuplicates(t *testing.T) {
	r := newR(t, Config{})
	payload := bytes.Repeat([]byte("jsp-"), 1000)
	frags := split(t, 7, payload, 300)
	order := rand.New(rand.NewPCG(1, 2)).Perm(len(frags))
	var got Message
	for i, k := range order {
		buf := append([]byte(nil), frags[k]...)
		msg, done, err := r.Add(buf, t0)
		if err != nil {
			t.Fatal(err)
		}
		clear(buf) // the reassembler must have copied
		if done != (i == len(order)-1) {
			t.Fatalf("fragment %d of %d: done=%v", i+1, len(order), done)
		}
		if done {
			got = msg
			break
		}
		// Every fragment arrives twice.
		if _, done, err := r.Add(frags[k], t0); done || err != nil {
			t.Fatalf("duplicate: done %v err %v", done, err)
		}
	}
	if got.ID != 7 || !bytes.Equal(got.Data, payload) {
		t.Fatalf("reassembled id %d, %d bytes", got.ID, len(got.Data))
	}
	// A late duplicate of a completed message starts nothing.
	if _, done, err := r.Add(frags[0], t0); done || err != nil || r.Partial() != 0 {
		t.Fatalf("late duplicate: done %v err %v partial %d", done, err, r.Partial())
	}
	st := r.Stats()
	want := Stats{Completed: 1, Duplicates: uint64(len(frags)-1) + 1}
	if st != want {
		t.Fatalf("stats %+v, want %+v", st, want)
	}
	if r.Buffered() != 0 {
		t.Fatalf("buffered %d after completion", r.Buffered())
	}
}

func TestReassembleSingleFragment(t *testing.T) {
	r := newR(t, Config{})
	for _, payload := range [][]byte{{}, []byte("x"), bytes.Repeat([]byte{1}, 1000)} {
		id := MsgID(len(payload))
		f := split(t, id, payload, 1100)
		msg, done, err := r.Add(f[0], t0)
		if err != nil || !done || msg.ID != id || !bytes.Equal(msg.Data, payload) {
			t.Fatalf("single fragment of %d bytes: %+v %v %v", len(payload), msg, done, err)
		}
		if r.Partial() != 0 {
			t.Fatal("single fragment left a partial message")
		}
	}
}

func TestReassemblerTimeout(t *testing.T) {
	r := newR(t, Config{Timeout: 100 * time.Millisecond})
	a := split(t, 1, make([]byte, 500), 200)
	b := split(t, 2, make([]byte, 500), 200)
	r.Add(a[0], t0)
	r.Add(b[0], t0.Add(50*time.Millisecond))
	if dl, ok := r.NextDeadline(); !ok || !dl.Equal(t0.Add(100*time.Millisecond)) {
		t.Fatalf("NextDeadline %v %v", dl, ok)
	}
	if n := r.Expire(t0.Add(99 * time.Millisecond)); n != 0 {
		t.Fatalf("expired %d before the timeout", n)
	}
	if n := r.Expire(t0.Add(100 * time.Millisecond)); n != 1 || r.Partial() != 1 {
		t.Fatalf("expired %d, partial %d; want 1 and 1", n, r.Partial())
	}
	// The rest of message 1 arrives too late: it restarts and cannot
	// complete; message 2 still can.
	for i, f := range b[1:] {
		_, done, err := r.Add(f, t0.Add(120*time.Millisecond))
		if err != nil || done != (i == len(b)-2) {
			t.Fatalf("message 2 fragment %d: done %v err %v", i+1, done, err)
		}
	}
	// Add expires on its own, without an Expire call.
	r.Add(a[1], t0.Add(130*time.Millisecond))
	if _, done, _ := r.Add(a[2], t0.Add(300*time.Millisecond)); done {
		t.Fatal("message completed across a timeout")
	}
	st := r.Stats()
	if st.TimedOut != 2 || st.Completed != 1 {
		t.Fatalf("stats %+v, want 2 timed out, 1 completed", st)
	}
	if _, ok := r.NextDeadline(); !ok {
		t.Fatal("restarted message has no deadline")
	}
}

func TestReassemblerBoundsPartialMessages(t *testing.T) {
	const maxPartial = 4
	r := newR(t, Config{MaxPartial: maxPartial})
	payload := make([]byte, 300)
	var firsts [][][]byte
	for id := range MsgID(10) {
		f := split(t, id, payload, 200)
		firsts = append(firsts, f)
		r.Add(f[0], t0)
		if r.Partial() > maxPartial {
			t.Fatalf("%d partial messages, cap %d", r.Partial(), maxPartial)
		}
	}
	st := r.Stats()
	if st.Dropped != 10-maxPartial {
		t.Fatalf("dropped %d, want %d", st.Dropped, 10-maxPartial)
	}
	// The newest survive: message 9 completes, message 0 restarts.
	if _, done, _ := r.Add(firsts[9][1], t0); !done {
		t.Fatal("newest message was evicted")
	}
	if _, done, _ := r.Add(firsts[0][1], t0); done {
		t.Fatal("oldest message was kept")
	}
}

func TestReassemblerRejects(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		frags   func(t *testing.T) [][]byte
		wantErr error
		dropped uint64
	}{
		{
			name: "inconsistent count",
			frags: func(t *testing.T) [][]byte {
				return [][]byte{
					AppendHeader(nil, Header{ID: 3, Index: 0, Count: 3}),
					AppendHeader(nil, Header{ID: 3, Index: 1, Count: 4}),
				}
			},
			wantErr: ErrInconsistent, dropped: 1,
		},
		{
			name: "message over limit",
			cfg:  Config{MaxMessageSize: 1000},
			frags: func(t *testing.T) [][]byte {
				return split(t, 4, make([]byte, 1001), 300)
			},
			wantErr: ErrTooLarge, dropped: 1,
		},
		{
			name: "single fragment over limit",
			cfg:  Config{MaxMessageSize: 10},
			frags: func(t *testing.T) [][]byte {
				return split(t, 5, make([]byte, 11), 100)
			},
			wantErr: ErrTooLarge, dropped: 1,
		},
		{
			name: "malformed header",
			frags: func(t *testing.T) [][]byte {
				return [][]byte{{1, 2, 2, 'x'}}
			},
			wantErr: ErrBadCount,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newR(t, tt.cfg)
			var last error
			for _, f := range tt.frags(t) {
				if _, done, err := r.Add(f, t0); err != nil {
					last = err
				} else if done {
					t.Fatal("message completed")
				}
			}
			if !errors.Is(last, tt.wantErr) {
				t.Fatalf("error %v, want %v", last, tt.wantErr)
			}
			if r.Stats().Dropped != tt.dropped || r.Partial() != 0 || r.Buffered() != 0 {
				t.Fatalf("stats %+v partial %d buffered %d", r.Stats(), r.Partial(), r.Buffered())
			}
		})
	}
}

func TestRecentIDsBounded(t *testing.T) {
	r := newR(t, Config{RecentIDs: 2})
	for id := range MsgID(3) {
		if _, done, _ := r.Add(split(t, id, []byte("m"), 100)[0], t0); !done {
			t.Fatal("single fragment not delivered")
		}
	}
	if len(r.recentSet) != 2 {
		t.Fatalf("remembering %d ids, cap 2", len(r.recentSet))
	}
	// Id 0 was forgotten: it is delivered again; id 2 is a duplicate.
	if _, done, _ := r.Add(split(t, 0, []byte("m"), 100)[0], t0); !done {
		t.Fatal("forgotten id not delivered")
	}
	if _, done, _ := r.Add(split(t, 2, []byte("m"), 100)[0], t0); done {
		t.Fatal("recent id delivered twice")
	}
}

func TestNewReassemblerValidates(t *testing.T) {
	for _, cfg := range []Config{{MaxPartial: -1}, {MaxMessageSize: -1}, {Timeout: -1}, {RecentIDs: -1}} {
		if _, err := NewReassembler(cfg); err == nil {
			t.Errorf("NewReassembler(%+v) accepted", cfg)
		}
	}
	r := newR(t, Config{})
	if r.cfg.MaxPartial != DefaultMaxPartial || r.cfg.Timeout != DefaultTimeout ||
		r.cfg.RecentIDs != DefaultRecentIDs || r.cfg.MaxMessageSize != 64<<10 {
		t.Fatalf("defaults %+v", r.cfg)
	}
}

// FuzzReassembler feeds arbitrary fragment sequences and checks the bounds:
// never more than MaxPartial messages or MaxPartial*MaxMessageSize bytes
// held, completed messages within MaxMessageSize, and consistent stats.
//
// Input format: repeated records of | dt (1 byte, ms) | len (1 byte) | bytes |.
func FuzzReassembler(f *testing.F) {
	var seed []byte
	for id := range MsgID(3) {
		for _, frag := range split(f, id, bytes.Repeat([]byte{byte(id)}, 700), 250) {
			seed = append(seed, 10, byte(len(frag)))
			seed = append(seed, frag...)
		}
	}
	f.Add(seed)
	f.Add([]byte{0, 3, 1, 0, 2, 0, 3, 1, 1, 2})
	f.Add([]byte{200, 4, 1, 0, 0x40, 64})
	f.Fuzz(func(t *testing.T, in []byte) {
		cfg := Config{MaxPartial: 3, MaxMessageSize: 600, Timeout: 50 * time.Millisecond, RecentIDs: 4}
		r := newR(t, cfg)
		now := t0
		var completed uint64
		for len(in) >= 2 {
			now = now.Add(time.Duration(in[0]) * time.Millisecond)
			n := min(int(in[1]), len(in)-2)
			frag := in[2 : 2+n]
			in = in[2+n:]
			msg, done, err := r.Add(frag, now)
			if done {
				completed++
				if err != nil {
					t.Fatal("done with an error")
				}
				if len(msg.Data) > int(cfg.MaxMessageSize) {
					t.Fatalf("message of %d bytes over the limit", len(msg.Data))
				}
			}
			if err != nil {
				if _, ok := errors.AsType[*jsperr.Error](err); !ok {
					t.Fatalf("error %v is not a *jsperr.Error", err)
				}
			}
			if r.Partial() > cfg.MaxPartial {
				t.Fatalf("%d partial messages", r.Partial())
			}
			if r.Buffered() < 0 || r.Buffered() > cfg.MaxPartial*int(cfg.MaxMessageSize) {
				t.Fatalf("buffered %d", r.Buffered())
			}
		}
		if r.Stats().Completed != completed {
			t.Fatalf("stats completed %d, saw %d", r.Stats().Completed, completed)
		}
		r.Expire(now.Add(time.Hour))
		if r.Partial() != 0 || r.Buffered() != 0 {
			t.Fatalf("after expiry: partial %d buffered %d", r.Partial(), r.Buffered())
		}
	})
}

// FuzzSplitReassemble checks that any payload split at any size reassembles
// exactly, whatever the arrival order and duplication.
func FuzzSplitReassemble(f *testing.F) {
	f.Add([]byte("hello"), uint16(10), uint64(1), uint64(7))
	f.Add(bytes.Repeat([]byte{9}, 5000), uint16(100), uint64(1<<33), uint64(3))
	f.Add([]byte{}, uint16(3), uint64(0), uint64(0))
	f.Fuzz(func(t *testing.T, payload []byte, maxSize uint16, id uint64, shuffle uint64) {
		id &= wire.MaxVarint
		frags, err := Split(MsgID(id), payload, int(maxSize))
		if err != nil {
			if jsperr.CodeOf(err) != jsperr.DatagramTooLarge {
				t.Fatalf("Split error %v", err)
			}
			return
		}
		r := newR(t, Config{MaxMessageSize: 1 << 20})
		rng := rand.New(rand.NewPCG(shuffle, 0))
		order := rng.Perm(len(frags))
		var got *Message
		for i, k := range order {
			if len(frags[k]) > int(maxSize) {
				t.Fatalf("fragment of %d bytes over %d", len(frags[k]), maxSize)
			}
			msg, done, err := r.Add(frags[k], t0)
			if err != nil {
				t.Fatal(err)
			}
			if done != (i == len(order)-1) {
				t.Fatalf("done=%v at %d of %d", done, i+1, len(order))
			}
			if done {
				got = &msg
			} else if rng.IntN(2) == 0 {
				if _, done, err := r.Add(frags[k], t0); done || err != nil {
					t.Fatal("duplicate accepted")
				}
			}
		}
		if got == nil || got.ID != MsgID(id) || !bytes.Equal(got.Data, payload) {
			t.Fatal("reassembled message differs")
		}
	})
}

// FuzzParseHeader checks that whatever parses re-encodes to the same bytes
// (shortest-form varints make the encoding unique).
func FuzzParseHeader(f *testing.F) {
	f.Add(AppendHeader(nil, Header{ID: 1, Index: 0, Count: 1}))
	f.Add(AppendHeader(nil, Header{ID: 1 << 40, Index: 63, Count: 64}))
	f.Add(binary.BigEndian.AppendUint64(nil, 0xc000000000000001))
	f.Fuzz(func(t *testing.T, in []byte) {
		h, n, err := ParseHeader(in)
		if err != nil {
			return
		}
		if n != h.Len() || !bytes.Equal(AppendHeader(nil, h), in[:n]) {
			t.Fatalf("%x parsed to %+v (%d bytes), re-encodes differently", in, h, n)
		}
	})
}
