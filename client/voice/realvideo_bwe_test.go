package voice_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/client"
	"github.com/jetstreamproto/jsp/client/voice"
	"github.com/jetstreamproto/jsp/media"
	"github.com/jetstreamproto/jsp/media/ivf"
	"github.com/jetstreamproto/jsp/media/simulcast"
	"github.com/jetstreamproto/jsp/transport/tlsconf"
)

// vp8Layers encodes a noisy ffmpeg test pattern to VP8 at 96x54, 192x108 and
// 384x216 (10 frames/s, a key frame every 10 frames) at the given
// bitrates, and returns each layer's frames.
func vp8Layers(t *testing.T, ff string, d time.Duration, rates []string) [3][]ivf.Frame {
	t.Helper()
	dir := t.TempDir()
	names := []string{"l0.ivf", "l1.ivf", "l2.ivf"}
	args := []string{"-v", "error", "-f", "lavfi", "-i", "testsrc=size=384x216:rate=10:duration=" + d.String(),
		// Noise keeps the picture from compressing far under the rates
		// asked for, so each layer's real rate is near its declared one.
		"-filter_complex", "[0]noise=alls=12:allf=t+u,split=3[a][b][c];[a]scale=96:54[a1];[b]scale=192:108[b1]"}
	for i, m := range []string{"[a1]", "[b1]", "[c]"} {
		args = append(args, "-map", m, "-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8",
			"-b:v", rates[i], "-g", "10", "-keyint_min", "10", filepath.Join(dir, names[i]))
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
	return layers
}

// vp8Recorder writes what a subscriber gets to an IVF file the way a
// player would: after a discontinuity it waits for a key frame, and at an
// up-switch the new layer's key frame replaces the old layer's frame of
// the same capture time (IVF needs rising timestamps).
type vp8Recorder struct {
	mu      sync.Mutex
	f       *os.File
	w       *ivf.Writer
	width   int
	waitKey bool
	pending *media.ReceivedFrame
	pendW   int
	frames  []recFrame
}

type recFrame struct {
	at    time.Duration
	width int
}

func (r *vp8Recorder) onFrame(start time.Time) func(media.ReceivedFrame) {
	return func(f media.ReceivedFrame) {
		r.mu.Lock()
		defer r.mu.Unlock()
		key := simulcast.IsVP8KeyFrame(f.Payload)
		if f.Discontinuity && !key {
			r.waitKey = true
		}
		if key {
			r.waitKey = false
			if vh, err := simulcast.ParseVP8Header(f.Payload); err == nil {
				r.width = int(vh.Width)
			}
		}
		if r.width == 0 || r.waitKey {
			return
		}
		f.Payload = bytes.Clone(f.Payload)
		if p := r.pending; p != nil && !(key && f.Timestamp-p.Timestamp < 900) {
			if err := r.w.WriteFrame(uint64(p.Timestamp), p.Payload); err == nil {
				r.frames = append(r.frames, recFrame{time.Since(start), r.pendW})
			}
		}
		r.pending, r.pendW = &f, r.width
	}
}

func (r *vp8Recorder) close(start time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p := r.pending; p != nil {
		if err := r.w.WriteFrame(uint64(p.Timestamp), p.Payload); err == nil {
			r.frames = append(r.frames, recFrame{time.Since(start), r.pendW})
		}
	}
	if err := r.w.Close(); err != nil {
		return err
	}
	return r.f.Close()
}

// TestRealVP8AutoEstimate: real VP8 simulcast (ffmpeg, 100k/300k/900k)
// into a room; two subscribers never call SetEstimate. "wide" has an
// unlimited link and ends on the 384-pixel layer; "narrow" has a
// 500 kbit/s downlink, and after its first 5 s at least 70 % of the frames
// it plays are of the 96 or 192-pixel layers (layer probes may show the
// top layer briefly). Both recordings decode with ffmpeg without a
// message.
func TestRealVP8AutoEstimate(t *testing.T) {
	if testing.Short() {
		t.Skip("external tools are not run in -short mode")
	}
	ff, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Skip("ffmpeg not installed (Debian package ffmpeg): skipping the real VP8 estimate test")
	}
	const secs = 14
	layers := vp8Layers(t, ff, secs*time.Second, []string{"100k", "300k", "900k"})
	n := min(len(layers[0]), len(layers[1]), len(layers[2]))
	if n < secs*10-5 {
		t.Fatalf("ffmpeg made %d frames", n)
	}
	cl := newCluster(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pub, err := voice.Join(ctx, cl.connect("alice", 0, nil), "vp8bw", voice.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close(ctx)
	cam, err := pub.PublishTrack(ctx, voice.TrackOptions{Name: "cam", Kind: voice.KindVideo, Codec: "vp8", Layers: []voice.Layer{
		{Width: 96, Height: 54, Bitrate: 100_000}, {Width: 192, Height: 108, Bitrate: 300_000}, {Width: 384, Height: 216, Bitrate: 900_000}}})
	if err != nil {
		t.Fatal(err)
	}
	g := cl.gws[0]
	dir := t.TempDir()
	start := time.Now()
	recs := map[string]*vp8Recorder{}
	subs := map[string]*voice.RemoteTrack{}
	for _, s := range []struct {
		user  string
		limit int64
	}{{"wide", 0}, {"narrow", 500_000}} {
		p := newRateProxy(t, g.Addrs().QUIC.String())
		p.setRate(s.limit)
		o := client.Options{Pins: []tlsconf.Fingerprint{g.Cert().Pin}, Logger: quiet()}
		o.Info.Auth = []byte(s.user)
		c, err := client.Dial(ctx, "jsp+quic://"+p.conn.LocalAddr().String(), o)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		room, err := voice.Join(ctx, c, "vp8bw", voice.Options{MaxProbeBackoff: 4 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer room.Close(ctx)
		r := &vp8Recorder{}
		if r.f, err = os.Create(filepath.Join(dir, s.user+".ivf")); err != nil {
			t.Fatal(err)
		}
		if r.w, err = ivf.NewWriter(r.f, ivf.FileHeader{Width: 384, Height: 216}); err != nil {
			t.Fatal(err)
		}
		rt, err := room.Subscribe(ctx, cam.ID(), r.onFrame(start))
		if err != nil {
			t.Fatal(err)
		}
		subs[s.user] = rt
		recs[s.user] = r
	}
	for l, fs := range layers {
		b := 0
		for _, f := range fs[:n] {
			b += len(f.Data)
		}
		t.Logf("layer %d: %.0f kbit/s", l, float64(b*8)/float64(n)*10/1000)
	}
	// Files cannot make key frames on request: subscribers switch at the
	// files' own key frames, one a second.
	for i := range n {
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
	for _, user := range []string{"wide", "narrow"} {
		r := recs[user]
		if err := r.close(start); err != nil {
			t.Fatal(err)
		}
		// Every frame must decode: under the race detector the
		// publisher's key-frame bursts are partly lost before the
		// forwarder (the repairs show as nack-recovered below), and a
		// layer switch must still start at a key frame's first packet
		// (sfu TestKeyFrameStartAfterRepair).
		out, err := exec.Command(ff, "-v", "error", "-i", r.f.Name(), "-f", "null", "-").CombinedOutput()
		if err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("ffmpeg decode of %s's recording: %v %s", user, err, bytes.TrimSpace(out))
		}
		var late, small int
		var trace []int
		for i, f := range r.frames {
			if i%10 == 0 {
				trace = append(trace, f.width)
			}
			if f.at >= 5*time.Second {
				late++
				if f.width <= 192 {
					small++
				}
			}
		}
		es := subs[user].EstimateStats()
		t.Logf("%s: %d frames recorded; width every 10th frame %v; estimate %v, probes %d (ok %d, failed %d, ended %d), congestions %d",
			user, len(r.frames), trace, es.Estimate, es.Receive.Probes, es.Receive.ProbesOK, es.Receive.ProbesFailed, es.Receive.ProbesTimeout, es.Receive.Congestions)
		st := subs[user].Stats()
		t.Logf("%s: overuses %d, loss cuts %d, lost %d, nack-recovered %d, late %d, received %d", user, es.Receive.Measured.Overuses, es.Receive.Measured.LossCuts, st.Lost, st.RecoveredNACK, st.Late, st.Packets)
		if len(r.frames) < n/3 {
			t.Fatalf("%s recorded %d of %d frames", user, len(r.frames), n)
		}
		switch user {
		case "wide":
			if w := r.frames[len(r.frames)-1].width; w != 384 {
				t.Errorf("wide ended on width %d, want 384", w)
			}
		case "narrow":
			if share := float64(small) / float64(max(late, 1)); share < 0.7 {
				t.Errorf("narrow played only %.0f%% of its frames after 5 s at 96 or 192 pixels", 100*share)
			} else {
				t.Logf("narrow: %.0f%% of frames after 5 s at 96 or 192 pixels", 100*share)
			}
		}
	}
}
