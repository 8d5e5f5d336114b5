package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/jetstreamproto/jsp/client"
	"github.com/jetstreamproto/jsp/client/voice"
	"github.com/jetstreamproto/jsp/media"
	"github.com/jetstreamproto/jsp/media/bwe"
	"github.com/jetstreamproto/jsp/media/ivf"
	"github.com/jetstreamproto/jsp/media/ogg"
	"github.com/jetstreamproto/jsp/media/simulcast"
)

// callFlags are the `jsp call` flags.
type callFlags struct {
	dialFlags
	token    string
	room     string
	oggIn    string
	ivfIn    string
	record   string
	linger   time.Duration
	duration time.Duration
	levels   string
	// noEstimate and initialEstimate steer the automatic bandwidth
	// estimation of simulcast subscriptions.
	noEstimate      bool
	initialEstimate int64
	stats           bool
	hints           bool
}

func newCallCmd() *cobra.Command {
	var f callFlags
	cmd := &cobra.Command{
		Use:   "call URL",
		Short: "Join a voice/video room: publish an Ogg/Opus and/or IVF (VP8) file, record every received track",
		Long: `Join a room of the rooms service (spec/JSP-voice.md) and take part in a call
from files: --ogg publishes an Ogg/Opus file as track "mic" and --ivf a VP8
IVF file as track "cam", both paced in real time. Every track the other
participants publish is recorded into --record DIR as <participant>-<track>.ogg
(Opus) or .ivf (VP8), which opusdec and ffmpeg play.

Without input files the call records until interrupted (Ctrl-C) or until
--duration; with files it ends --linger after the last frame was sent.
Room events (joins, leaves, tracks, mute, active speakers) are printed.

Audio levels (--levels, for active-speaker detection): the file is decoded
once with opusdec (Debian package opus-tools) and each packet carries the
RFC 6464 level of its samples; without opusdec (auto) or with --levels off
no levels are sent and the publisher never shows as a speaker.

` + urlHelp,
		Example: `  jsp call jsp://localhost --pin sha256/... --token @alice.tok --room standup --ogg hello.opus
  jsp call jsp://localhost --pin sha256/... --token @bob.tok --room standup --record ./got`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCall(cmd.Context(), &f, args[0], cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f.register(cmd)
	fs := cmd.Flags()
	fs.StringVar(&f.token, "token", "", "auth token, or @FILE to read it from a file")
	fs.StringVar(&f.room, "room", "", "room id (required)")
	fs.StringVar(&f.oggIn, "ogg", "", "Ogg/Opus file to publish as track \"mic\"")
	fs.StringVar(&f.ivfIn, "ivf", "", "IVF (VP8) file to publish as track \"cam\"")
	fs.StringVar(&f.record, "record", "", "directory to record every received track into (default: not recorded)")
	fs.DurationVar(&f.linger, "linger", 2*time.Second, "time to stay after the files were sent")
	fs.DurationVar(&f.duration, "duration", 0, "end the call after this long (0 = no limit)")
	fs.BoolVar(&f.noEstimate, "no-estimate", false, "do not estimate the bandwidth of simulcast subscriptions (the gateway then keeps the lowest layer)")
	fs.Int64Var(&f.initialEstimate, "initial-estimate", 0, "bandwidth estimate of a new simulcast subscription before any measurement, bit/s (0 = 300000)")
	fs.BoolVar(&f.stats, "stats", false, "print each subscription's statistics (bitrate, loss, recovered, late, jitter, estimate) when the call ends")
	fs.BoolVar(&f.hints, "hints", false, "print the gateway's bitrate hints for the published tracks as they arrive (a file cannot be re-encoded to follow them)")
	fs.StringVar(&f.levels, "levels", levelsAuto, "audio levels of --ogg for active-speaker detection: auto (opusdec if installed), opusdec, off")
	return cmd
}

func init() { rootCmd.AddCommand(newCallCmd()) }

func runCall(ctx context.Context, f *callFlags, url string, out, errOut io.Writer) error {
	if f.room == "" {
		return errors.New("--room is required")
	}
	if f.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, f.duration)
		defer cancel()
	}
	tok, err := readToken(f.token)
	if err != nil {
		return err
	}
	o, err := f.options(errOut)
	if err != nil {
		return err
	}
	o.Info.Auth = []byte(tok)
	c, err := client.Dial(ctx, url, o)
	if err != nil {
		return err
	}
	defer c.Close()
	if f.record != "" {
		if err := os.MkdirAll(f.record, 0o755); err != nil {
			return fmt.Errorf("--record: %w", err)
		}
	}
	cl := &call{out: out, dir: f.record, recs: map[string]*recorder{}, subs: map[string]*voice.RemoteTrack{}, ctx: ctx}
	if f.initialEstimate < 0 {
		return errors.New("--initial-estimate must not be negative")
	}
	cl.stats, cl.hints = f.stats, f.hints
	cl.room, err = voice.Join(ctx, c, f.room, voice.Options{OnEvent: cl.onEvent,
		DisableEstimate: f.noEstimate, InitialEstimate: bwe.Bitrate(f.initialEstimate)})
	if err != nil {
		return fmt.Errorf("join %q: %w", f.room, err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		cl.mu.Lock()
		cl.closing = true
		cl.mu.Unlock()
		cl.wg.Wait()
		cl.printStats()
		_ = cl.room.Close(cctx)
		cl.closeRecorders()
	}()
	cl.printf("joined %s as %s\n", f.room, cl.room.Me().ID)
	parts, err := cl.room.Participants(ctx)
	if err != nil {
		return err
	}
	for _, p := range parts {
		for _, t := range p.Tracks {
			cl.subscribe(ctx, t)
		}
	}

	var (
		wg   sync.WaitGroup
		errs = make(chan error, 2)
	)
	if f.oggIn != "" {
		wg.Go(func() { errs <- cl.publishOgg(ctx, f.oggIn, f.levels) })
	}
	if f.ivfIn != "" {
		wg.Go(func() { errs <- cl.publishIVF(ctx, f.ivfIn) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	if f.oggIn != "" || f.ivfIn != "" {
		select {
		case <-time.After(f.linger):
		case <-ctx.Done():
		}
		return nil
	}
	<-ctx.Done()
	return nil
}

// call is one participant's state; events and frames arrive on SDK
// goroutines, so recs and output are guarded by mu.
type call struct {
	room *voice.Room
	dir  string
	ctx  context.Context
	wg   sync.WaitGroup // subscriptions started by events

	mu      sync.Mutex
	out     io.Writer
	recs    map[string]*recorder          // guarded by mu, by track id
	subs    map[string]*voice.RemoteTrack // guarded by mu, by track id
	closing bool                          // guarded by mu: no more subscriptions
	stats   bool                          // print statistics at the end
	hints   bool                          // print bitrate hints
}

// watchHints prints the track's bitrate hints (--hints).
func (c *call) watchHints(t *voice.LocalTrack) {
	if !c.hints {
		return
	}
	id := t.ID()
	t.OnBitrateHint(func(h voice.BitrateHint) {
		c.printf("bitrate hint %s: %v, layers %v\n", id, h.Estimate, h.Layers)
	})
}

// printStats prints each subscription's statistics (--stats).
func (c *call) printStats() {
	if !c.stats {
		return
	}
	c.mu.Lock()
	subs := make(map[string]*voice.RemoteTrack, len(c.subs))
	for id, rt := range c.subs {
		subs[id] = rt
	}
	c.mu.Unlock()
	for id, rt := range subs {
		st := rt.Stats()
		line := fmt.Sprintf("stats %s: %d frames, %.1f kbit/s, loss %.1f%%, recovered fec %d nack %d, late %d, jitter %v",
			id, st.Frames, st.Bitrate/1000, 100*st.Loss, st.RecoveredFEC, st.RecoveredNACK, st.Late, st.Jitter)
		if es := rt.EstimateStats(); es.Enabled {
			line += fmt.Sprintf(", estimate %v (%d reports, %d probes)", es.Estimate, es.Reports, es.Receive.Probes)
		}
		c.printf("%s\n", line)
	}
}

func (c *call) printf(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprintf(c.out, format, args...)
}

func (c *call) onEvent(e voice.Event) {
	switch {
	case e.Participant != nil:
		c.printf("%s: %s (%s)\n", e.Type, e.Participant.User, e.Participant.ID)
	case e.Track != nil:
		c.printf("%s: %s (%s %s, muted %v)\n", e.Type, e.Track.ID, e.Track.Kind, e.Track.Codec, e.Track.Muted)
		if e.Type == "track.published" {
			tr := *e.Track
			c.mu.Lock()
			// Added under mu, so never after closing's Wait began.
			if !c.closing {
				c.wg.Go(func() { c.subscribe(c.ctx, tr) })
			}
			c.mu.Unlock()
		}
	case len(e.Speakers) > 0:
		var names []string
		for _, s := range e.Speakers {
			names = append(names, s.Participant)
		}
		c.printf("speakers: %s\n", strings.Join(names, ", "))
	default:
		c.printf("%s %s\n", e.Type, e.Quality)
	}
}

// recorder writes one received track to a file.
type recorder struct {
	f   *os.File
	ogg *ogg.OpusWriter
	ivf *ivf.Writer
	n   int
	// pending holds one video frame: at a simulcast up-switch the
	// forwarder sends the old layer's frame and the new layer's key frame
	// of the same capture time; the key frame replaces it, since IVF
	// needs rising timestamps.
	pending *media.ReceivedFrame
}

// subscribe receives a track of another participant and records it.
func (c *call) subscribe(ctx context.Context, t voice.Track) {
	if t.Participant == c.room.Me().ID {
		return
	}
	c.mu.Lock()
	if _, dup := c.recs[t.ID]; dup {
		c.mu.Unlock()
		return
	}
	rec := &recorder{}
	c.recs[t.ID] = rec
	c.mu.Unlock()
	if c.dir != "" {
		if err := rec.open(c.dir, t); err != nil {
			c.printf("not recording %s: %v\n", t.ID, err)
		}
	}
	rt, err := c.room.Subscribe(ctx, t.ID, func(fr media.ReceivedFrame) {
		c.mu.Lock()
		defer c.mu.Unlock()
		rec.write(fr)
	})
	if err != nil {
		c.printf("subscribe %s: %v\n", t.ID, err)
		return
	}
	c.mu.Lock()
	c.subs[t.ID] = rt
	c.mu.Unlock()
	c.printf("receiving %s\n", t.ID)
}

func recordName(t voice.Track) string {
	name := strings.NewReplacer("/", "-", string(os.PathSeparator), "-").Replace(t.ID)
	if strings.EqualFold(t.Codec, "opus") {
		return name + ".ogg"
	}
	return name + ".ivf"
}

func (r *recorder) open(dir string, t voice.Track) error {
	f, err := os.Create(filepath.Join(dir, recordName(t)))
	if err != nil {
		return err
	}
	r.f = f
	switch {
	case strings.EqualFold(t.Codec, "opus"):
		r.ogg, err = ogg.NewOpusWriter(f, ogg.OpusWriterConfig{})
	case strings.EqualFold(t.Codec, "vp8"):
		h := ivf.FileHeader{Width: 640, Height: 360}
		if n := len(t.Layers); n > 0 {
			h.Width, h.Height = uint16(t.Layers[n-1].Width), uint16(t.Layers[n-1].Height)
		}
		r.ivf, err = ivf.NewWriter(f, h)
	default:
		err = fmt.Errorf("codec %q has no file format here", t.Codec)
	}
	if err != nil {
		_ = f.Close()
		r.f = nil
	}
	return err
}

func (r *recorder) write(fr media.ReceivedFrame) {
	switch {
	case r.ogg != nil:
		if r.ogg.WritePacket(fr.Payload) == nil {
			r.n++
		}
	case r.ivf != nil:
		fr.Payload = bytes.Clone(fr.Payload)
		if p := r.pending; p != nil && !(fr.KeyFrame && fr.Timestamp-p.Timestamp < voice.VideoClockRate/100) {
			if r.ivf.WriteFrame(uint64(p.Timestamp), p.Payload) == nil {
				r.n++
			}
		}
		r.pending = &fr
	}
}

func (c *call) closeRecorders() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, r := range c.recs {
		if r.ogg != nil {
			_ = r.ogg.Close()
		}
		if r.ivf != nil {
			if p := r.pending; p != nil && r.ivf.WriteFrame(uint64(p.Timestamp), p.Payload) == nil {
				r.n++
			}
			_ = r.ivf.Close()
		}
		if r.f != nil {
			_ = r.f.Close()
			fmt.Fprintf(c.out, "recorded %s: %d frames to %s\n", id, r.n, r.f.Name())
		}
	}
}

// publishOgg sends an Ogg/Opus file as track "mic" in real time.
func (c *call) publishOgg(ctx context.Context, path, levelMode string) error {
	levels, note, err := oggLevels(ctx, levelMode, path)
	if err != nil {
		return err
	}
	if note != "" {
		c.printf("%s\n", note)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("--ogg: %w", err)
	}
	defer f.Close()
	r, err := ogg.NewOpusReader(f, ogg.OpusReaderConfig{})
	if err != nil {
		return fmt.Errorf("--ogg %s: %w", path, err)
	}
	t, err := c.room.PublishTrack(ctx, voice.TrackOptions{Name: "mic", Kind: voice.KindAudio, Codec: "opus"})
	if err != nil {
		return err
	}
	c.watchHints(t)
	if levels != nil {
		c.printf("publishing %s as %s with audio levels\n", path, t.ID())
	} else {
		c.printf("publishing %s as %s\n", path, t.ID())
	}
	start, ts, n := time.Now(), uint32(0), 0
	for {
		p, err := r.ReadPacket()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("--ogg %s: %w", path, err)
		}
		fr := media.Frame{Timestamp: ts, Payload: p.Data}
		if n < len(levels) {
			fr.AudioLevel, fr.HasAudioLevel = levels[n], true
		}
		if err := t.WriteFrame(0, fr); err != nil {
			return fmt.Errorf("send %s: %w", path, err)
		}
		ts += uint32(p.Samples)
		n++
		if !sleepUntil(ctx, start.Add(time.Duration(ts)*time.Second/voice.AudioClockRate)) {
			return nil
		}
	}
	c.printf("sent %d Opus packets of %s\n", n, path)
	return nil
}

// publishIVF sends a VP8 IVF file as track "cam" in real time. A file
// cannot make key frames on request: subscribers start at its next one.
func (c *call) publishIVF(ctx context.Context, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("--ivf: %w", err)
	}
	defer f.Close()
	r, err := ivf.NewReader(f, ivf.ReaderConfig{})
	if err != nil {
		return fmt.Errorf("--ivf %s: %w", path, err)
	}
	h := r.Header()
	if h.Codec.String() != "VP80" {
		return fmt.Errorf("--ivf %s: codec %s, want VP80", path, h.Codec)
	}
	if h.TimebaseDen == 0 || h.TimebaseNum == 0 {
		return fmt.Errorf("--ivf %s: zero time base", path)
	}
	t, err := c.room.PublishTrack(ctx, voice.TrackOptions{Name: "cam", Kind: voice.KindVideo, Codec: "vp8",
		Layers: []voice.Layer{{Width: int(h.Width), Height: int(h.Height)}}})
	if err != nil {
		return err
	}
	c.watchHints(t)
	c.printf("publishing %s (%dx%d) as %s\n", path, h.Width, h.Height, t.ID())
	start, n := time.Now(), 0
	for {
		fr, err := r.ReadFrame()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("--ivf %s: %w", path, err)
		}
		// The file's time base to the 90 kHz media clock (JSP §13.2).
		at := time.Duration(fr.Timestamp) * time.Second * time.Duration(h.TimebaseNum) / time.Duration(h.TimebaseDen)
		if !sleepUntil(ctx, start.Add(at)) {
			return nil
		}
		ts := uint32(at * voice.VideoClockRate / time.Second)
		err = t.WriteFrame(0, media.Frame{Timestamp: ts, KeyFrame: simulcast.IsVP8KeyFrame(fr.Data), Payload: fr.Data})
		if err != nil {
			return fmt.Errorf("send %s: %w", path, err)
		}
		n++
	}
	c.printf("sent %d VP8 frames of %s\n", n, path)
	return nil
}

// sleepUntil waits until t, false when ctx ends first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}
