package simulcast

import (
	"bytes"
	"errors"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/media/bwe"
	"github.com/jetstreamproto/jsp/media/ivf"
	"github.com/jetstreamproto/jsp/reliability/mediapkt"
)

// keyFrame is a VP8 key-frame start: tag with frame type 0, show_frame,
// start code, 640x360.
var keyFrame = []byte{0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01, 0xAA}

// interFrame has frame type 1.
var interFrame = []byte{0x31, 0x02, 0x00, 0xAA}

func TestVP8Header(t *testing.T) {
	h, err := ParseVP8Header(keyFrame)
	if err != nil || !h.KeyFrame || !h.ShowFrame || h.Width != 640 || h.Height != 360 || h.FirstPartSize != 16 {
		t.Fatalf("key frame: %+v %v", h, err)
	}
	if h, err := ParseVP8Header(interFrame); err != nil || h.KeyFrame {
		t.Fatalf("inter frame: %+v %v", h, err)
	}
	bad := bytes.Clone(keyFrame)
	bad[4] = 0
	if _, err := ParseVP8Header(bad); !errors.Is(err, ErrVP8StartCode) {
		t.Fatalf("bad start code: %v", err)
	}
	for i := range 10 {
		if _, err := ParseVP8Header(keyFrame[:i]); err == nil {
			t.Fatalf("key frame prefix of %d parsed", i)
		}
	}
	if !IsVP8KeyFrame(keyFrame) || IsVP8KeyFrame(interFrame) || IsVP8KeyFrame(bad) {
		t.Fatal("IsVP8KeyFrame")
	}
}

func TestVP8Descriptor(t *testing.T) {
	cases := []struct {
		in   []byte
		want VP8Descriptor
	}{
		{[]byte{0x10}, VP8Descriptor{Start: true, Len: 1}},
		{[]byte{0x90, 0x80, 0x05}, VP8Descriptor{Start: true, HasPictureID: true, PictureID: 5, Len: 3}},
		{[]byte{0x90, 0xE0, 0x81, 0x23, 0x07, 0x60}, VP8Descriptor{Start: true, HasPictureID: true, PictureID: 0x123,
			HasTL0: true, TL0PicIdx: 7, HasTID: true, TID: 1, LayerSync: true, Len: 6}},
		{[]byte{0xA3, 0x10, 0x1F}, VP8Descriptor{NonReference: true, PartitionID: 3, HasKeyIdx: true, KeyIdx: 31, Len: 3}},
	}
	for _, c := range cases {
		d, err := ParseVP8Descriptor(c.in)
		if err != nil || d != c.want {
			t.Errorf("%x: %+v %v, want %+v", c.in, d, err, c.want)
		}
		for i := range len(c.in) {
			if d, err := ParseVP8Descriptor(c.in[:i]); err == nil && d.Len > i {
				t.Errorf("%x: prefix %d parsed past its end", c.in, i)
			}
		}
	}
	rtp := append([]byte{0x90, 0x80, 0x05}, keyFrame...)
	if !IsVP8KeyFrameRTP(rtp) {
		t.Fatal("RTP key frame not detected")
	}
	rtp[0] = 0x80 // not the start of a partition
	if IsVP8KeyFrameRTP(rtp) {
		t.Fatal("continuation packet taken for a key frame")
	}
}

func FuzzVP8(f *testing.F) {
	f.Add(keyFrame)
	f.Add(append([]byte{0x90, 0xE0, 0x81, 0x23, 0x07, 0x60}, keyFrame...))
	f.Fuzz(func(t *testing.T, b []byte) {
		if d, err := ParseVP8Descriptor(b); err == nil && d.Len > len(b) {
			t.Fatalf("descriptor length %d past %d bytes", d.Len, len(b))
		}
		_, _ = ParseVP8Header(b)
		_ = IsVP8KeyFrameRTP(b)
	})
}

// TestVP8KeyFramesFromFFmpeg checks key-frame detection on real VP8.
func TestVP8KeyFramesFromFFmpeg(t *testing.T) {
	if testing.Short() {
		t.Skip("external tools are not run in -short mode")
	}
	ff, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Skip("ffmpeg not installed (Debian package ffmpeg): skipping the real VP8 test")
	}
	path := filepath.Join(t.TempDir(), "v.ivf")
	out, err := exec.Command(ff, "-v", "error", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=10:duration=2",
		"-c:v", "libvpx", "-g", "5", "-keyint_min", "5", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	f, err := openIVF(path)
	if err != nil {
		t.Fatal(err)
	}
	var keys []int
	for i := 0; ; i++ {
		fr, err := f.ReadFrame()
		if err != nil {
			break
		}
		if IsVP8KeyFrame(fr.Data) {
			h, _ := ParseVP8Header(fr.Data)
			if h.Width != 160 || h.Height != 120 {
				t.Fatalf("frame %d: %dx%d", i, h.Width, h.Height)
			}
			keys = append(keys, i)
		}
	}
	if len(keys) != 4 || keys[0] != 0 || keys[1] != 5 {
		t.Fatalf("key frames at %v, want every 5th of 20", keys)
	}
}

var layers = []Layer{
	{Bitrate: 150 * bwe.Kbps, Width: 320, Height: 180},
	{Bitrate: 500 * bwe.Kbps, Width: 640, Height: 360},
	{Bitrate: 1500 * bwe.Kbps, Width: 1280, Height: 720},
}

func TestSelectorConfig(t *testing.T) {
	bad := [][]Layer{nil, {{Bitrate: 0}}, {layers[1], layers[0]}, {layers[0], layers[1], layers[2], {Bitrate: 5 * bwe.Mbps}}}
	for _, l := range bad {
		if _, err := NewSelector(l, SelectorConfig{}); err == nil {
			t.Errorf("%+v accepted", l)
		}
	}
	if _, err := NewSelector(layers, SelectorConfig{UpFactor: 0.5}); err == nil {
		t.Error("UpFactor below 1 accepted")
	}
}

func TestSelectorHysteresis(t *testing.T) {
	s, err := NewSelector(layers, SelectorConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(0, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	if s.Target() != 0 {
		t.Fatalf("initial target %d", s.Target())
	}
	// Enough for layer 2 with margin, but not yet for UpHold.
	s.SetEstimate(at(0), 2*bwe.Mbps)
	s.SetEstimate(at(1900*time.Millisecond), 2*bwe.Mbps)
	if s.Target() != 0 {
		t.Fatalf("went up before UpHold: %d", s.Target())
	}
	s.SetEstimate(at(2*time.Second), 2*bwe.Mbps)
	if s.Target() != 2 {
		t.Fatalf("target %d after UpHold", s.Target())
	}
	// A dip shorter than DownHold is ridden out.
	s.SetEstimate(at(3*time.Second), 1*bwe.Mbps)
	s.SetEstimate(at(3200*time.Millisecond), 2*bwe.Mbps)
	s.SetEstimate(at(3400*time.Millisecond), 2*bwe.Mbps)
	if s.Target() != 2 {
		t.Fatalf("short dip moved the target to %d", s.Target())
	}
	// A longer one is not: down to the best layer the estimate covers.
	s.SetEstimate(at(4*time.Second), 600*bwe.Kbps)
	s.SetEstimate(at(4300*time.Millisecond), 600*bwe.Kbps)
	if s.Target() != 1 {
		t.Fatalf("target %d after a long dip", s.Target())
	}
	// 560 kbit/s covers layer 1 but not with the 15 % margin for going up;
	// it does not send the target back down either.
	s.SetEstimate(at(5*time.Second), 560*bwe.Kbps)
	if s.Target() != 1 {
		t.Fatalf("target %d", s.Target())
	}
	// Requested size caps the layer at once.
	s.SetEstimate(at(10*time.Second), 5*bwe.Mbps)
	s.SetEstimate(at(13*time.Second), 5*bwe.Mbps)
	if s.Target() != 2 {
		t.Fatalf("target %d", s.Target())
	}
	s.SetRequestedSize(at(13*time.Second), 400, 300)
	if s.Target() != 0 {
		t.Fatalf("size 400x300: target %d", s.Target())
	}
	s.SetRequestedSize(at(14*time.Second), 0, 0)
	s.SetEstimate(at(16*time.Second), 5*bwe.Mbps)
	if s.Target() != 2 {
		t.Fatalf("size limit lifted: target %d", s.Target())
	}
	// A paused layer is left at once; all paused: NoLayer.
	s.SetLayerActive(at(16*time.Second), 2, false)
	if s.Target() != 1 {
		t.Fatalf("layer 2 paused: target %d", s.Target())
	}
	s.SetLayerActive(at(16*time.Second), 0, false)
	s.SetLayerActive(at(16*time.Second), 1, false)
	if s.Target() != NoLayer {
		t.Fatalf("all paused: target %d", s.Target())
	}
	if _, ok := s.NeedKeyFrame(); ok {
		t.Fatal("key frame wanted with nothing published")
	}
}

// TestSelectorTickCompletesHold: an estimate given once is enough; the
// pending switch completes when Tick passes the hold time, in both
// directions, and Tick without a pending switch changes nothing.
func TestSelectorTickCompletesHold(t *testing.T) {
	s, err := NewSelector(layers, SelectorConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(0, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	s.Tick(at(time.Hour))
	if s.Target() != 0 {
		t.Fatalf("tick without estimate moved the target to %d", s.Target())
	}
	s.SetEstimate(at(0), 5*bwe.Mbps)
	s.Tick(at(DefaultUpHold - time.Millisecond))
	if s.Target() != 0 {
		t.Fatalf("went up before UpHold: %d", s.Target())
	}
	s.Tick(at(DefaultUpHold))
	if s.Target() != 2 {
		t.Fatalf("one estimate and a tick after UpHold: target %d, want 2", s.Target())
	}
	s.SetEstimate(at(3*time.Second), 300*bwe.Kbps)
	s.Tick(at(3*time.Second + DefaultDownHold))
	if s.Target() != 0 {
		t.Fatalf("one low estimate and a tick after DownHold: target %d, want 0", s.Target())
	}
}

func TestSelectorSwitchesAtKeyFrames(t *testing.T) {
	s, _ := NewSelector(layers, SelectorConfig{UpHold: -1, DownHold: -1})
	now := time.Unix(0, 0)
	if l, ok := s.NeedKeyFrame(); !ok || l != 0 {
		t.Fatalf("start: need key frame on %d, %v", l, ok)
	}
	if s.OnPacket(0, false) {
		t.Fatal("forwarded before the first key frame")
	}
	if !s.OnPacket(0, true) || s.Current() != 0 {
		t.Fatal("key frame of the target not taken")
	}
	s.SetEstimate(now, 2*bwe.Mbps)
	if s.Target() != 2 {
		t.Fatalf("target %d", s.Target())
	}
	if l, ok := s.NeedKeyFrame(); !ok || l != 2 {
		t.Fatalf("need key frame on %d, %v", l, ok)
	}
	// Until layer 2's key frame arrives, layer 0 goes on and layer 2's
	// inter frames are dropped.
	if !s.OnPacket(0, false) || s.OnPacket(2, false) || s.OnPacket(1, true) {
		t.Fatal("forwarding before the switch")
	}
	if !s.OnPacket(2, true) || s.Current() != 2 || s.OnPacket(0, false) || s.OnPacket(0, true) {
		t.Fatal("switch at layer 2's key frame")
	}
	if _, ok := s.NeedKeyFrame(); ok {
		t.Fatal("key frame wanted after the switch")
	}
	if st := s.Stats(); st.Switches != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// TestRewriterSeamless forwards three layers with unrelated sequence and
// timestamp bases through switches, one upstream loss and a wrap, and
// checks the subscriber's view.
func TestRewriterSeamless(t *testing.T) {
	r, err := NewRewriter(RewriterConfig{InitialSeq: 65530, InitialTimestamp: 1 << 31})
	if err != nil {
		t.Fatal(err)
	}
	type pkt struct {
		layer int
		seq   mediapkt.Seq
		ts    uint32
	}
	base := []struct {
		seq mediapkt.Seq
		ts  uint32
	}{{100, 5000}, {65500, 1 << 30}, {7, 4_000_000_000}}
	next := [3]int{}
	mk := func(layer, frames int) []pkt {
		var out []pkt
		for range frames {
			i := next[layer]
			next[layer]++
			// Two packets per frame, 3000 ticks (30 fps) apart.
			for k := range 2 {
				out = append(out, pkt{layer, base[layer].seq + mediapkt.Seq(2*i+k), base[layer].ts + uint32(i)*3000})
			}
		}
		return out
	}
	// Every layer advances in step, as the publisher sends them all; the
	// subscriber gets 10 frames of layer 0, then 10 of 2, then 10 of 1.
	var seq []pkt
	for phase, l := range []int{0, 2, 1} {
		for _, other := range []int{0, 1, 2} {
			p := mk(other, 10)
			if other == l {
				seq = append(seq, p...)
			}
		}
		_ = phase
	}
	now := time.Unix(0, 0)
	var outs []mediapkt.Seq
	var tss []uint32
	lost := 7 // drop one packet upstream of the rewriter
	for i, p := range seq {
		now = now.Add(16 * time.Millisecond)
		if i == lost {
			continue
		}
		o, ts, ok := r.Rewrite(now, p.layer, p.seq, p.ts)
		if !ok {
			t.Fatalf("packet %d refused", i)
		}
		outs, tss = append(outs, o), append(tss, ts)
		if src, lts, ok := r.Lookup(o); !ok || src != (Source{p.layer, p.seq}) || lts != ts {
			t.Fatalf("lookup %d: %+v %v", o, src, ok)
		}
	}
	if outs[0] != 65530 || tss[0] != 1<<31 {
		t.Fatalf("first packet %d/%d", outs[0], tss[0])
	}
	for i := 1; i < len(outs); i++ {
		d := outs[i].Diff(outs[i-1])
		want := 1
		if i == lost {
			want = 2 // the upstream loss stays a gap to NACK
		}
		if d != want {
			t.Fatalf("out seq %d after %d (index %d)", outs[i], outs[i-1], i)
		}
		if int32(tss[i]-tss[i-1]) < 0 {
			t.Fatalf("timestamp went back at %d: %d after %d", i, tss[i], tss[i-1])
		}
	}
	if r.Switches() != 2 {
		t.Fatalf("%d switches", r.Switches())
	}
	// A late packet of layer 1 from before the switch to it is dropped.
	if _, _, ok := r.Rewrite(now, 1, base[1].seq+5, 0); ok || r.Dropped() != 1 {
		t.Fatal("packet from before the switch forwarded")
	}
	if _, _, ok := r.Lookup(outs[len(outs)-1] + 1); ok {
		t.Fatal("lookup of an unsent number")
	}
}

func TestRewriterHistory(t *testing.T) {
	r, _ := NewRewriter(RewriterConfig{History: 4})
	now := time.Unix(0, 0)
	for i := range 10 {
		r.Rewrite(now, 0, mediapkt.Seq(i), uint32(i))
	}
	if _, _, ok := r.Lookup(5); ok {
		t.Fatal("lookup beyond the history")
	}
	if src, ts, ok := r.Lookup(9); !ok || src.Seq != 9 || ts != 9 {
		t.Fatal("lookup within the history")
	}
	for _, c := range []RewriterConfig{{History: -1}, {History: MaxHistory + 1}, {ClockRate: -1}} {
		if _, err := NewRewriter(c); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

func FuzzRewriter(f *testing.F) {
	f.Add([]byte{0, 1, 0, 0, 2, 5, 1, 3, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, _ := NewRewriter(RewriterConfig{History: 16})
		now := time.Unix(0, 0)
		var last mediapkt.Seq
		started := false
		for i := 0; i+2 < len(b); i += 3 {
			now = now.Add(time.Duration(b[i+2]) * time.Millisecond)
			layer := int(b[i]) % 3
			o, _, ok := r.Rewrite(now, layer, mediapkt.Seq(b[i+1])<<4, uint32(i))
			if !ok {
				continue
			}
			if src, _, ok := r.Lookup(o); !ok || src.Layer != layer {
				t.Fatal("fresh packet not found by lookup")
			}
			if started && layer != r.Layer() {
				t.Fatal("layer bookkeeping")
			}
			last, started = o, true
		}
		_ = last
	})
}

func openIVF(path string) (*ivf.Reader, error) {
	f, err := openFile(path)
	if err != nil {
		return nil, err
	}
	return ivf.NewReader(f, ivf.ReaderConfig{})
}
