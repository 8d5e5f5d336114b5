package voice_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/client/voice"
	"github.com/jetstreamproto/jsp/internal/simnet"
	"github.com/jetstreamproto/jsp/media"
	"github.com/jetstreamproto/jsp/media/ogg"
)

// speechText is about three seconds of speech.
const speechText = "Joining the standup from the second gateway. The build is green."

// realTools returns the paths of espeak-ng, opusenc and opusdec, or
// skips the test naming the missing Debian package.
func realTools(t *testing.T) (espeak, enc, dec string) {
	t.Helper()
	if testing.Short() {
		t.Skip("external tools are not run in -short mode")
	}
	var err error
	if espeak, err = exec.LookPath("espeak-ng"); err != nil {
		t.Skip("espeak-ng not installed (Debian package espeak-ng): skipping the real speech test")
	}
	e1, err1 := exec.LookPath("opusenc")
	e2, err2 := exec.LookPath("opusdec")
	if err1 != nil || err2 != nil {
		t.Skip("opusenc/opusdec not installed (Debian package opus-tools): skipping the real speech test")
	}
	return espeak, e1, e2
}

type opusFile struct {
	head    ogg.OpusHead
	packets []ogg.OpusPacket
}

// speech makes speech with espeak-ng and encodes it with opusenc (20 ms
// frames).
func speech(t *testing.T, dir string) opusFile {
	espeak, enc, _ := realTools(t)
	wav, opus := filepath.Join(dir, "speech.wav"), filepath.Join(dir, "speech.opus")
	if out, err := exec.Command(espeak, "-w", wav, speechText).CombinedOutput(); err != nil {
		t.Fatalf("espeak-ng: %v: %s", err, out)
	}
	if out, err := exec.Command(enc, "--quiet", "--bitrate", "24", "--framesize", "20", wav, opus).CombinedOutput(); err != nil {
		t.Fatalf("opusenc: %v: %s", err, out)
	}
	f, err := os.Open(opus)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := ogg.NewOpusReader(f, ogg.OpusReaderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	of := opusFile{head: r.Head()}
	for {
		p, err := r.ReadPacket()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		of.packets = append(of.packets, p)
	}
	if len(of.packets) < 50 {
		t.Fatalf("only %d Opus packets of speech", len(of.packets))
	}
	return of
}

// lossCase is one impairment of every client link (both directions).
type lossCase struct {
	name string
	link simnet.Config
}

func lossCases() []lossCase {
	delay := 10 * time.Millisecond
	// Gilbert-Elliott with a mean of 5 %: bursts of 5 packets on average.
	burst := &simnet.GilbertElliott{PGoodToBad: 0.0125, PBadToGood: 0.2, LossBad: 0.85}
	return []lossCase{
		{"5% random", simnet.Config{Loss: 0.05, Delay: delay}},
		{"10% random", simnet.Config{Loss: 0.10, Delay: delay}},
		{"20% random", simnet.Config{Loss: 0.20, Delay: delay}},
		{fmt.Sprintf("%.0f%% burst", 100*burst.MeanLoss()), simnet.Config{Burst: burst, Delay: delay}},
	}
}

// result is what one receiver got.
type result struct {
	sent, onTime, recovered, recoveredFEC int
	decodedSamples                        int64
}

// repair is a call's repair mode: NACK, FEC (every client offers
// media.CapFEC: parity on the publisher's uplink, decoded by its gateway,
// and per-subscriber parity from the forwarder on each downlink), both, or
// none.
type repair struct{ nack, fec bool }

var repairModes = []repair{{}, {nack: true}, {fec: true}, {nack: true, fec: true}}

func (r repair) String() string {
	switch {
	case r.nack && r.fec:
		return "NACK+FEC"
	case r.nack:
		return "NACK"
	case r.fec:
		return "FEC"
	}
	return "none"
}

// TestRealSpeechOverLoss sends espeak-ng speech encoded by opusenc into a
// room of three (alice and bob on gateway a, carol on gateway b, so
// carol's audio crosses the bus) with loss on every client link, repaired
// by NACK, FEC, both or neither, records what bob and carol play out to Ogg
// files and decodes them with opusdec (four calls at a time). It logs the
// share of frames on time and concealed; it asserts only loose bounds.
func TestRealSpeechOverLoss(t *testing.T) {
	dir := t.TempDir()
	sp := speech(t, dir)
	_, _, dec := realTools(t)
	cl := newCluster(t, 2)

	type row struct {
		loss, mode string
		res        [2]result
	}
	var (
		mu   sync.Mutex
		rows []row
	)
	t.Run("matrix", func(t *testing.T) {
		// Calls run in real time and use little CPU: four at a time keep
		// the package short without t.Parallel's GOMAXPROCS limit.
		var wg sync.WaitGroup
		sem := make(chan struct{}, 4)
		defer wg.Wait()
		for ci, lc := range lossCases() {
			for mi, rp := range repairModes {
				mode := rp.String()
				name := strings.NewReplacer("%", "pct", " ", "-", "+", "").Replace(lc.name) + "-" + mode
				seed := uint64(ci*10 + 1 + mi)
				wg.Add(1)
				sem <- struct{}{}
				go func() {
					defer wg.Done()
					defer func() { <-sem }()
					// Run may be called from several goroutines; each
					// returns before the matrix does (wg).
					t.Run(name, func(t *testing.T) {
						res := runSpeech(t, cl, sp, dec, filepath.Join(dir, name), lc.link, seed, rp)
						mu.Lock()
						rows = append(rows, row{lc.name, mode, res})
						mu.Unlock()
					})
				}()
			}
		}
	})
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].loss != rows[j].loss {
			return rows[i].loss < rows[j].loss
		}
		return rows[i].mode < rows[j].mode
	})
	var b strings.Builder
	fmt.Fprintf(&b, "\n| Loss (each link) | Repair | Receiver | Frames sent | On time | Concealed | Repaired by NACK | Repaired by FEC |\n|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		for i, who := range []string{"bob (same gateway)", "carol (other gateway)"} {
			x := r.res[i]
			fmt.Fprintf(&b, "| %s | %s | %s | %d | %.1f %% | %.1f %% | %d | %d |\n", r.loss, r.mode, who, x.sent,
				100*float64(x.onTime)/float64(x.sent), 100*float64(x.sent-x.onTime)/float64(x.sent), x.recovered, x.recoveredFEC)
		}
	}
	t.Log(b.String())
}

// runSpeech runs one call and returns bob's and carol's results.
func runSpeech(t *testing.T, cl *cluster, sp opusFile, dec, dir string, link simnet.Config, seed uint64, rp repair) [2]result {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	room := fmt.Sprintf("call-%d", seed)
	opts := voice.Options{DisableNACK: !rp.nack, DisableFEC: !rp.fec}
	var caps []string
	if rp.fec {
		caps = []string{media.CapFEC}
	}
	lk := func(s uint64) *simnet.Config { c := link; c.Seed = seed*100 + s; return &c }
	alice, err := voice.Join(ctx, cl.connectCaps("alice", 0, lk(1), caps), room, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close(ctx)
	mic, err := alice.PublishTrack(ctx, voice.TrackOptions{Name: "mic", Kind: voice.KindAudio, Codec: "opus"})
	if err != nil {
		t.Fatal(err)
	}
	type rx struct {
		mu   sync.Mutex
		buf  bytes.Buffer
		w    *ogg.OpusWriter
		n    int
		room *voice.Room
		rt   *voice.RemoteTrack
	}
	var rxs [2]*rx
	for i, who := range []struct {
		user string
		gw   int
	}{{"bob", 0}, {"carol", 1}} {
		r := &rx{}
		if r.w, err = ogg.NewOpusWriter(&r.buf, ogg.OpusWriterConfig{Head: sp.head}); err != nil {
			t.Fatal(err)
		}
		if r.room, err = voice.Join(ctx, cl.connectCaps(who.user, who.gw, lk(uint64(2+i)), caps), room, opts); err != nil {
			t.Fatal(err)
		}
		defer r.room.Close(ctx)
		r.rt, err = r.room.Subscribe(ctx, mic.ID(), func(f media.ReceivedFrame) {
			r.mu.Lock()
			defer r.mu.Unlock()
			if err := r.w.WritePacket(f.Payload); err == nil {
				r.n++
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		rxs[i] = r
	}
	// Let the relay to gateway b start before the speech does.
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	var ts uint32
	for i, p := range sp.packets {
		if err := mic.WriteFrame(0, media.Frame{Timestamp: ts, Payload: p.Data}); err != nil {
			t.Fatal(err)
		}
		ts += uint32(p.Samples)
		// Real time: packet i+1 leaves at its capture time.
		time.Sleep(time.Until(start.Add(time.Duration(i+1) * 20 * time.Millisecond)))
	}
	// The jitter buffer holds at most MaxDelay (400 ms).
	time.Sleep(600 * time.Millisecond)
	var out [2]result
	for i, r := range rxs {
		st := r.rt.Stats()
		r.mu.Lock()
		if err := r.w.Close(); err != nil {
			t.Fatal(err)
		}
		out[i] = result{sent: len(sp.packets), onTime: r.n, recovered: int(st.RecoveredNACK), recoveredFEC: int(st.RecoveredFEC)}
		data := bytes.Clone(r.buf.Bytes())
		r.mu.Unlock()
		in := filepath.Join(dir, fmt.Sprintf("rx%d.ogg", i))
		wav := filepath.Join(dir, fmt.Sprintf("rx%d.wav", i))
		if err := os.WriteFile(in, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if o, err := exec.Command(dec, "--quiet", "--rate", "48000", in, wav).CombinedOutput(); err != nil {
			t.Fatalf("opusdec of receiver %d: %v: %s", i, err, o)
		}
		// 48 kHz 16-bit mono: 1,920 bytes per 20 ms frame played.
		fi, err := os.Stat(wav)
		if err != nil || fi.Size() < int64(out[i].onTime)*1920*9/10 {
			t.Fatalf("decoded receiver %d: %v (%d bytes for %d frames)", i, err, fi.Size(), out[i].onTime)
		}
		// Loose bounds: two lossy links at up to 20 % each leave more
		// than a third; with NACK at 5 % nearly everything arrives.
		share := float64(out[i].onTime) / float64(out[i].sent)
		if share < 0.35 || out[i].onTime > out[i].sent {
			t.Errorf("receiver %d: %d of %d frames on time", i, out[i].onTime, out[i].sent)
		}
		// FEC alone is not held to it: its policy starts at no parity
		// and needs a few reports to shape it.
		if rp.nack && link.Loss == 0.05 && share < 0.85 {
			t.Errorf("receiver %d with %v at 5 %% loss: only %.2f on time", i, rp, share)
		}
	}
	return out
}
