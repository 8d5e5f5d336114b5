package sfu

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/media/bwe"
	"github.com/jetstreamproto/jsp/media/ivf"
	"github.com/jetstreamproto/jsp/media/simulcast"
	"github.com/jetstreamproto/jsp/reliability/mediapkt"
)

// packetize cuts a frame into media packets of at most room payload
// bytes, with K on every packet of a key frame and E on the last.
func packetize(t testing.TB, seq *mediapkt.Seq, ts uint32, key bool, frame []byte, room int) [][]byte {
	var out [][]byte
	for off := 0; off < len(frame) || off == 0; off += room {
		end := min(off+room, len(frame))
		var fl mediapkt.Flags
		if key {
			fl |= mediapkt.FlagKeyFrame
		}
		if end == len(frame) {
			fl |= mediapkt.FlagEndOfFrame
		}
		out = append(out, packet(t, mediapkt.Header{Flags: fl, Seq: *seq, Timestamp: ts}, frame[off:end]...))
		*seq++
		if end == len(frame) {
			break
		}
	}
	return out
}

// recorder rebuilds frames from a subscriber's packets and writes them to
// an IVF file, noting the width of each key frame it gets.
type recorder struct {
	t      testing.TB
	w      *ivf.Writer
	f      *os.File
	frame  []byte
	next   mediapkt.Seq
	have   bool
	frames int
	widths []int // per received frame: the width of the last key frame
	width  int
}

func newRecorder(t testing.TB, path string) *recorder {
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := ivf.NewWriter(f, ivf.FileHeader{Width: 384, Height: 216})
	if err != nil {
		t.Fatal(err)
	}
	return &recorder{t: t, w: w, f: f}
}

func (r *recorder) add(b []byte) {
	h, n, err := mediapkt.ParseHeader(b)
	if err != nil {
		r.t.Fatal(err)
	}
	if r.have && h.Seq != r.next {
		r.t.Fatalf("gap in the subscriber's sequence: %d after %d", h.Seq, r.next-1)
	}
	r.next, r.have = h.Seq+1, true
	r.frame = append(r.frame, b[n:]...)
	if !h.Flags.Has(mediapkt.FlagEndOfFrame) {
		return
	}
	if simulcast.IsVP8KeyFrame(r.frame) {
		vh, _ := simulcast.ParseVP8Header(r.frame)
		r.width = int(vh.Width)
	}
	if err := r.w.WriteFrame(uint64(h.Timestamp), r.frame); err != nil {
		r.t.Fatal(err)
	}
	r.frames++
	r.widths = append(r.widths, r.width)
	r.frame = nil
}

func (r *recorder) close() {
	if err := r.w.Close(); err != nil {
		r.t.Fatal(err)
	}
	if err := r.f.Close(); err != nil {
		r.t.Fatal(err)
	}
}

// TestRealVP8Simulcast encodes a test pattern to VP8 at three sizes with
// ffmpeg, publishes the three IVF files as the layers of one track, and
// records what four subscribers get: one per layer, and one whose estimate
// drops at frame 8 and recovers at frame 15 (10 frames per second, key
// frames every 10). Each recording decodes with
// ffmpeg without errors, and the layer each subscriber got follows its
// estimate, switching at key frames.
func TestRealVP8Simulcast(t *testing.T) {
	if testing.Short() {
		t.Skip("external tools are not run in -short mode")
	}
	ff, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Skip("ffmpeg not installed (Debian package ffmpeg): skipping the real VP8 simulcast test")
	}
	dir := t.TempDir()
	enc := func(i int) []string {
		return []string{"-map", []string{"[a1]", "[b1]", "[c]"}[i], "-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8",
			"-b:v", []string{"100k", "300k", "900k"}[i], "-g", "10", "-keyint_min", "10", filepath.Join(dir, []string{"l0.ivf", "l1.ivf", "l2.ivf"}[i])}
	}
	args := []string{"-v", "error", "-f", "lavfi", "-i", "testsrc=size=384x216:rate=10:duration=3",
		"-filter_complex", "[0]split=3[a][b][c];[a]scale=96:54[a1];[b]scale=192:108[b1]"}
	for i := range 3 {
		args = append(args, enc(i)...)
	}
	if out, err := exec.Command(ff, args...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	var layers [3][]ivf.Frame
	var tb [3]ivf.FileHeader
	for i := range 3 {
		b, err := os.ReadFile(filepath.Join(dir, []string{"l0.ivf", "l1.ivf", "l2.ivf"}[i]))
		if err != nil {
			t.Fatal(err)
		}
		r, err := ivf.NewReader(bytes.NewReader(b), ivf.ReaderConfig{})
		if err != nil {
			t.Fatal(err)
		}
		tb[i] = r.Header()
		for {
			fr, err := r.ReadFrame()
			if err != nil {
				break
			}
			layers[i] = append(layers[i], fr)
		}
	}
	n := min(len(layers[0]), len(layers[1]), len(layers[2]))
	if n < 30 {
		t.Fatalf("ffmpeg made %d frames", n)
	}

	f, clk := newForwarder(t, Config{})
	tr, err := f.Publish(TrackConfig{ID: "cam", Kind: KindVideo, Layers: []simulcast.Layer{
		{Bitrate: 100 * bwe.Kbps, Width: 96, Height: 54},
		{Bitrate: 300 * bwe.Kbps, Width: 192, Height: 108},
		{Bitrate: 900 * bwe.Kbps, Width: 384, Height: 216},
	}})
	if err != nil {
		t.Fatal(err)
	}
	// The estimate of subscriber j at frame i, as its bandwidth estimator
	// would report it every frame.
	est := func(j, i int) bwe.Bitrate {
		switch {
		case j == 0:
			return 150 * bwe.Kbps
		case j == 1:
			return 500 * bwe.Kbps
		case j == 3 && i >= 8 && i < 15:
			return 150 * bwe.Kbps // under layer 1: down to layer 0
		}
		return 2 * bwe.Mbps
	}
	var downs []*DownTrack
	var recs []*recorder
	for i := range 4 {
		d, err := f.Subscribe("cam", SubscriberConfig{ID: string(rune('A' + i)), QueuePackets: 4096,
			Selector: simulcast.SelectorConfig{UpHold: 300 * time.Millisecond, DownHold: 100 * time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		downs = append(downs, d)
		recs = append(recs, newRecorder(t, filepath.Join(dir, string(rune('A'+i))+".ivf")))
	}
	// Estimates arrive for 400 ms before the first frame, long enough
	// for the selectors' UpHold: every subscriber starts on its layer.
	for range 2 {
		for j, d := range downs {
			d.SetEstimate(est(j, 0))
		}
		clk.Add(400 * time.Millisecond)
	}
	var seqs [3]mediapkt.Seq
	seqs[1], seqs[2] = 30000, 60000 // unrelated numbering per layer
	for i := range n {
		for j, d := range downs {
			d.SetEstimate(est(j, i))
		}
		for l := range 3 {
			fr := layers[l][i]
			// IVF time base to the 90 kHz media clock, with a different
			// origin per layer as independent encoders would have.
			ts := uint32(fr.Timestamp*90000*uint64(tb[l].TimebaseNum)/uint64(tb[l].TimebaseDen)) + uint32(l)*1_000_000
			for _, p := range packetize(t, &seqs[l], ts, simulcast.IsVP8KeyFrame(fr.Data), fr.Data, 500) {
				if err := tr.WritePacket(l, p); err != nil {
					t.Fatal(err)
				}
			}
		}
		for j, d := range downs {
			for _, b := range drain(d) {
				recs[j].add(b)
			}
		}
		clk.Add(100 * time.Millisecond)
	}
	layerOf := map[int]int{96: 0, 192: 1, 384: 2}
	// Decode the four recordings at once: ffmpeg is most of this test's
	// time.
	decoded := make([][]byte, len(recs))
	decErr := make([]error, len(recs))
	var wg sync.WaitGroup
	for j, r := range recs {
		r.close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			decoded[j], decErr[j] = exec.Command(ff, "-v", "error", "-xerror", "-threads", "1",
				"-i", filepath.Join(dir, string(rune('A'+j))+".ivf"), "-f", "framemd5", "-").Output()
		}()
	}
	wg.Wait()
	for j, r := range recs {
		var got []int
		for _, w := range r.widths {
			got = append(got, layerOf[w])
		}
		t.Logf("subscriber %c: %d frames, layers %v", 'A'+j, r.frames, got)
		out, err := decoded[j], decErr[j]
		if err != nil {
			t.Fatalf("subscriber %c: ffmpeg could not decode the recording: %v", 'A'+j, err)
		}
		if dec := strings.Count(string(out), "\n0,"); dec != r.frames {
			t.Fatalf("subscriber %c: ffmpeg decoded %d of %d frames", 'A'+j, dec, r.frames)
		}
		// Runs of layers. A switch up can deliver the old layer's frame
		// and the new layer's key frame of the same instant (the old one
		// was published first), so D may get one frame more than n.
		var runs []int
		var lens []int
		for _, l := range got {
			if len(runs) == 0 || runs[len(runs)-1] != l {
				runs, lens = append(runs, l), append(lens, 0)
			}
			lens[len(lens)-1]++
		}
		want := [][]int{{0}, {1}, {2}, {2, 0, 2}}[j]
		if !slices.Equal(runs, want) || r.frames < n || r.frames > n+len(want)-1 {
			t.Fatalf("subscriber %c: layer runs %v (lengths %v, %d frames), want %v", 'A'+j, runs, lens, r.frames, want)
		}
		if j == 3 && (lens[0] != 10 || lens[1] < 10 || lens[1] > 11) {
			// Key frames every 10 frames. The drop at frame 8 sets the
			// target after DownHold (frame 9) and takes effect at the
			// key frame of frame 10; the recovery at 15 sets it after
			// UpHold (frame 18) and takes effect at frame 20.
			t.Fatalf("subscriber D: run lengths %v, want 10 on layer 2, then 10-11 on layer 0", lens)
		}
	}
}
