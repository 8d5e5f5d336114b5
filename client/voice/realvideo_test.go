package voice_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/client/voice"
	"github.com/jetstreamproto/jsp/media"
	"github.com/jetstreamproto/jsp/media/ivf"
	"github.com/jetstreamproto/jsp/media/simulcast"
)

// TestRealVP8SimulcastRoom encodes an ffmpeg test pattern to VP8 at three
// sizes (key frames every 10 frames, 10 frames/s), publishes the three
// IVF files as the layers of one track into a room, and records what two
// subscribers get: lo (same gateway, estimate 150 kbit/s) stays on the
// lowest layer; hi (other gateway, through the bus relay, estimate
// 2 Mbit/s) climbs to the top layer at a key frame. Both recordings decode
// with ffmpeg without errors.
func TestRealVP8SimulcastRoom(t *testing.T) {
	if testing.Short() {
		t.Skip("external tools are not run in -short mode")
	}
	ff, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Skip("ffmpeg not installed (Debian package ffmpeg): skipping the real VP8 simulcast room test")
	}
	dir := t.TempDir()
	names := []string{"l0.ivf", "l1.ivf", "l2.ivf"}
	args := []string{"-v", "error", "-f", "lavfi", "-i", "testsrc=size=384x216:rate=10:duration=5",
		"-filter_complex", "[0]split=3[a][b][c];[a]scale=96:54[a1];[b]scale=192:108[b1]"}
	for i, m := range []string{"[a1]", "[b1]", "[c]"} {
		args = append(args, "-map", m, "-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8",
			"-b:v", []string{"100k", "300k", "900k"}[i], "-g", "10", "-keyint_min", "10", filepath.Join(dir, names[i]))
	}
	if out, err := exec.Command(ff, args...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	var layers [3][]ivf.Frame
	for i, nm := range names {
		b, err := os.ReadFile(filepath.Join(dir, nm))
		if err != nil {
			t.Fatal(err)
		}
		r, err := ivf.NewReader(bytes.NewReader(b), ivf.ReaderConfig{})
		if err != nil {
			t.Fatal(err)
		}
		for {
			fr, err := r.ReadFrame()
			if err != nil {
				break
			}
			layers[i] = append(layers[i], fr)
		}
	}
	n := min(len(layers[0]), len(layers[1]), len(layers[2]))
	if n < 40 {
		t.Fatalf("ffmpeg made %d frames", n)
	}

	cl := newCluster(t, 2)
	ctx := ctxT(t)
	pub, err := voice.Join(ctx, cl.connect("alice", 0, nil), "sim", voice.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close(ctx)
	cam, err := pub.PublishTrack(ctx, voice.TrackOptions{Name: "cam", Kind: voice.KindVideo, Codec: "vp8", Layers: []voice.Layer{
		{Width: 96, Height: 54, Bitrate: 100_000}, {Width: 192, Height: 108, Bitrate: 300_000}, {Width: 384, Height: 216, Bitrate: 900_000}}})
	if err != nil {
		t.Fatal(err)
	}
	type rec struct {
		mu     sync.Mutex
		w      *ivf.Writer
		f      *os.File
		width  int
		widths []int
		rt     *voice.RemoteTrack
		est    int64
		// pending is held one frame: at an up-switch the forwarder sends
		// the old layer's frame and the new layer's key frame of the same
		// capture time, and the key frame replaces it (IVF needs rising
		// timestamps).
		pending *media.ReceivedFrame
		pendW   int
	}
	var recs []*rec
	for i, s := range []struct {
		user string
		gw   int
		est  int64
	}{{"lo", 0, 150_000}, {"hi", 1, 2_000_000}} {
		r := &rec{est: s.est}
		if r.f, err = os.Create(filepath.Join(dir, s.user+".ivf")); err != nil {
			t.Fatal(err)
		}
		if r.w, err = ivf.NewWriter(r.f, ivf.FileHeader{Width: 384, Height: 216}); err != nil {
			t.Fatal(err)
		}
		room, err := voice.Join(ctx, cl.connect(s.user, s.gw, nil), "sim", voice.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer room.Close(ctx)
		r.rt, err = room.Subscribe(ctx, cam.ID(), func(f media.ReceivedFrame) {
			r.mu.Lock()
			defer r.mu.Unlock()
			if simulcast.IsVP8KeyFrame(f.Payload) {
				if vh, err := simulcast.ParseVP8Header(f.Payload); err == nil {
					r.width = int(vh.Width)
				}
			}
			if r.width == 0 {
				return // before the first key frame
			}
			f.Payload = bytes.Clone(f.Payload)
			if p := r.pending; p != nil && !(f.KeyFrame && f.Timestamp-p.Timestamp < 900) {
				if err := r.w.WriteFrame(uint64(p.Timestamp), p.Payload); err == nil {
					r.widths = append(r.widths, r.pendW)
				}
			}
			r.pending, r.pendW = &f, r.width
		})
		if err != nil {
			t.Fatalf("%d: %v", i, err)
		}
		recs = append(recs, r)
	}
	start := time.Now()
	for i := range n {
		if i%3 == 0 {
			for _, r := range recs {
				if err := r.rt.SetEstimate(ctx, r.est, 0, 0); err != nil {
					t.Fatal(err)
				}
			}
		}
		ts := uint32(i * 9000)
		for l := range 3 {
			fr := layers[l][i]
			if err := cam.WriteFrame(l, media.Frame{Timestamp: ts, KeyFrame: simulcast.IsVP8KeyFrame(fr.Data), Payload: fr.Data}); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(time.Until(start.Add(time.Duration(i+1) * 100 * time.Millisecond)))
	}
	time.Sleep(600 * time.Millisecond)
	for i, r := range recs {
		r.mu.Lock()
		if p := r.pending; p != nil {
			if err := r.w.WriteFrame(uint64(p.Timestamp), p.Payload); err == nil {
				r.widths = append(r.widths, r.pendW)
			}
		}
		if err := r.w.Close(); err != nil {
			t.Fatal(err)
		}
		_ = r.f.Close()
		widths := append([]int(nil), r.widths...)
		r.mu.Unlock()
		if len(widths) < n/3 {
			t.Fatalf("subscriber %d recorded %d of %d frames", i, len(widths), n)
		}
		out, err := exec.Command(ff, "-v", "error", "-i", r.f.Name(), "-f", "null", "-").CombinedOutput()
		if err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("ffmpeg decode of subscriber %d: %v %s", i, err, out)
		}
		t.Logf("subscriber %d (estimate %d bit/s): %d frames, widths first %d last %d", i, r.est, len(widths), widths[0], widths[len(widths)-1])
		switch i {
		case 0:
			for _, w := range widths {
				if w != 96 {
					t.Fatalf("lo got width %d", w)
				}
			}
		case 1:
			if widths[len(widths)-1] != 384 {
				t.Fatalf("hi ended on width %d, want 384", widths[len(widths)-1])
			}
		}
	}
}
