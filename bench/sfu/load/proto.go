package load

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jetstreamproto/jsp/bench/loadgen"
)

// The pipe protocol between the orchestrator and a client process, one
// line each:
//
//	client -> orchestrator: Ready, PhaseWindowStart, PhaseWindowEnd, result lines, SentDone
//	orchestrator -> client: Go (publisher: start sending), Stop (report and leave)
//
// Result lines are loadgen.Line with "kind" sent, lag (publisher), rx and
// latency (every process that subscribes).
const (
	Ready = "ready"
	Go    = "go"
	Stop  = "stop"
	// PhaseWindowStart and PhaseWindowEnd are printed by the publisher
	// when the measurement window opens and closes; the orchestrator
	// reads the server's CPU time at each.
	PhaseWindowStart = "phase window-start"
	PhaseWindowEnd   = "phase window-end"
	// SentDone follows the publisher's send results; it then waits for
	// Stop.
	SentDone = "sent-done"
)

// StreamKey names one layer of one track in result lines.
func StreamKey(track string, layer int) string { return track + "/" + strconv.Itoa(layer) }

// OutFrame is one frame a Stream hands to its writer.
type OutFrame struct {
	// Payload starts with the frame header; it is reused after the
	// writer returns.
	Payload []byte
	// Timestamp is the frame's media time at the stream's clock rate.
	Timestamp uint32
	// KeyFrame marks a key frame (video).
	KeyFrame bool
}

// Stream is one layer of one published track: frames of a fixed size on
// a fixed schedule.
type Stream struct {
	// Key names the stream in result lines (StreamKey).
	Key string
	// Layer is the layer index written into each frame's header.
	Layer int
	// Spec is the layer's frame rate and size.
	Spec LayerSpec
	// Offset delays the stream's schedule, so that streams do not all
	// send at the same instant.
	Offset time.Duration
	// ClockRate is the media clock (48 kHz audio, 90 kHz video).
	ClockRate uint64
	// KeyEvery makes every KeyEvery-th frame a key frame (0: only the
	// first, and only when Video is set).
	KeyEvery int
	// Video marks video streams: the first frame is a key frame.
	Video bool
	// KeyRequest is set by a key-frame request; the next frame is a key
	// frame.
	KeyRequest atomic.Bool

	frames, packets uint64 // window frames written, and their packets; Run's goroutine only
	lag             Hist
}

// Run writes the stream's frames from t0 until winEnd. Open loop: a frame
// whose time has passed is sent at once, never skipped, and the schedule
// does not move. write returns the packets the frame took.
func (st *Stream) Run(ctx context.Context, t0, winStart, winEnd time.Time, write func(OutFrame) (int, error)) {
	buf := make([]byte, max(st.Spec.FrameBytes, PayloadHeader))
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	for n := 0; ; n++ {
		at := t0.Add(st.Offset + time.Duration(n)*st.Spec.Interval())
		if !at.Before(winEnd) || ctx.Err() != nil {
			return
		}
		if d := time.Until(at); d > 0 {
			time.Sleep(d)
		}
		now := time.Now()
		win := !at.Before(winStart)
		PutHeader(buf, FrameHeader{Sent: now, Sched: at, Seq: uint32(n), Layer: st.Layer, Window: win})
		f := OutFrame{Payload: buf, Timestamp: uint32(uint64(at.Sub(t0)) * st.ClockRate / uint64(time.Second))}
		f.KeyFrame = st.Video && (n == 0 || (st.KeyEvery > 0 && n%st.KeyEvery == 0) || st.KeyRequest.Swap(false))
		pk, err := write(f)
		if err != nil {
			continue
		}
		if win {
			st.frames++
			st.packets += uint64(pk)
			st.lag.Record(now.Sub(at))
		}
	}
}

// SentLines are the publisher's results once every stream's Run has
// returned: one "sent" line per stream and one "lag" line with how late
// the frames were written against their schedule.
func SentLines(streams []*Stream) []loadgen.Line {
	var out []loadgen.Line
	lag := &Hist{}
	for _, st := range streams {
		lag.Merge(&st.lag)
		out = append(out, loadgen.Line{}.Add("kind", "sent").Add("stream", st.Key).
			Add("frames", st.frames).Add("packets", st.packets))
	}
	return append(out, loadgen.Line{}.Add("kind", "lag").Add("hist", lag.String()))
}

// Receiver records what a process's subscriptions get: window frames and
// packets per subscription and layer, and one latency histogram.
type Receiver struct {
	lat Hist

	mu   sync.Mutex
	subs []*Subscription // guarded by mu
}

// Subscription counts one subscription's window frames per layer.
type Subscription struct {
	r       *Receiver
	track   string
	want    int
	frames  [8]atomic.Uint64
	packets [8]atomic.Uint64
	bad     atomic.Uint64
	stats   atomic.Pointer[func() (lost, late uint64)]
}

// NewSubscription adds a subscription to track that asked for layer want.
func (r *Receiver) NewSubscription(track string, want int) *Subscription {
	s := &Subscription{r: r, track: track, want: want}
	r.mu.Lock()
	r.subs = append(r.subs, s)
	r.mu.Unlock()
	return s
}

// SetStats sets where the client library's own loss counters come from
// (reported alongside, to tell where losses happened).
func (s *Subscription) SetStats(f func() (lost, late uint64)) { s.stats.Store(&f) }

// OnFrame records a whole frame (payload starting with the header) that
// took packets packets and arrived at.
func (s *Subscription) OnFrame(payload []byte, packets int, at time.Time) {
	h, err := ParseHeader(payload)
	if err != nil || h.Layer >= len(s.frames) {
		s.bad.Add(1)
		return
	}
	if !h.Window {
		return
	}
	s.frames[h.Layer].Add(1)
	s.packets[h.Layer].Add(uint64(packets))
	s.r.lat.Record(at.Sub(h.Sent))
}

// Lines sums the subscriptions per stream (each attributed to the layer
// it got most window frames of, or asked for when it got none) and adds
// the latency histogram.
func (r *Receiver) Lines() []loadgen.Line {
	type agg struct{ subs, frames, packets, bad, lost, late uint64 }
	sums := map[string]*agg{}
	var keys []string
	r.mu.Lock()
	for _, s := range r.subs {
		best := s.want
		var frames, packets uint64
		for l := range s.frames {
			frames += s.frames[l].Load()
			packets += s.packets[l].Load()
			if s.frames[l].Load() > s.frames[best].Load() {
				best = l
			}
		}
		k := StreamKey(s.track, best)
		a := sums[k]
		if a == nil {
			a = &agg{}
			sums[k] = a
			keys = append(keys, k)
		}
		a.subs++
		a.frames += frames
		a.packets += packets
		a.bad += s.bad.Load()
		if f := s.stats.Load(); f != nil {
			// Counters of the whole run, not only the window.
			lost, late := (*f)()
			a.lost += lost
			a.late += late
		}
	}
	r.mu.Unlock()
	var out []loadgen.Line
	for _, k := range keys {
		a := sums[k]
		out = append(out, loadgen.Line{}.Add("kind", "rx").Add("stream", k).Add("subs", a.subs).
			Add("frames", a.frames).Add("packets", a.packets).Add("bad", a.bad).
			Add("rx-lost", a.lost).Add("rx-late", a.late))
	}
	return append(out, loadgen.Line{}.Add("kind", "latency").Add("hist", r.lat.String()))
}
